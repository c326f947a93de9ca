package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replywatch/replywatch/internal/redisproc"
)

// Topic names and partition counts of the benchmark cluster: the
// contract's defaults, with as many chat partitions as a mid-size
// deployment uses.
const (
	TopicChat     = "cs.chat"
	TopicOrders   = "cs.orders"
	TopicPresence = "cs.presence"
	TopicAlerts   = "cs.alerts"
)

// Topics maps each topic of the benchmark cluster to its partition count.
var Topics = map[string]int{
	TopicChat: 12, TopicOrders: 4, TopicPresence: 4, TopicAlerts: 4,
	TopicChat + ".DLT": 1, TopicOrders + ".DLT": 1, TopicPresence + ".DLT": 1,
}

// Broker is an in-process Kafka-protocol broker (kfake) on a loopback port.
type Broker struct {
	Addr    string
	cluster *kfake.Cluster
}

// StartBroker starts a kfake broker with the benchmark topics. Its
// goroutines carry the profiler label role=broker, so a CPU profile of this
// process tells the broker's share from the processor's.
func StartBroker(minSession time.Duration) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(minSession),
	}
	for name, n := range Topics {
		opts = append(opts, kfake.SeedTopics(int32(n), name))
	}
	var (
		c   *kfake.Cluster
		err error
	)
	// The free port may be taken between the probe and the bind: retry.
	for range 3 {
		var port int
		if port, err = redisproc.FreePort(); err != nil {
			continue
		}
		pprof.Do(context.Background(), pprof.Labels("role", "broker"), func(context.Context) {
			c, err = kfake.NewCluster(append(opts, kfake.Ports(port))...)
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("starting the kfake broker: %w", err)
	}
	return &Broker{Addr: c.ListenAddrs()[0], cluster: c}, nil
}

// Close stops the broker and drops everything it stored.
func (b *Broker) Close() { b.cluster.Close() }

// RedisServer is a redis-server child process without persistence.
type RedisServer struct {
	Addr string
	URL  string
	PID  int
	proc *redisproc.Proc
	// Client is a connection pool for the harness's own reads.
	Client *redis.Client
}

// StartRedis runs redis-server from PATH on a free loopback port, with
// persistence off (--save "" --appendonly no), and waits until it answers.
func StartRedis(dir string) (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH: install it (apt-get install redis-server)")
	}
	var lastErr error
	for range 3 {
		port, err := redisproc.FreePort()
		if err != nil {
			lastErr = err
			continue
		}
		// The kernel ends the server with the harness, however that stops.
		p, err := redisproc.Start(bin, dir, port, redisproc.Options{
			Attr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, LogName: "redis-" + strconv.Itoa(port) + ".log"})
		if err == nil {
			return &RedisServer{Addr: p.Addr, URL: p.URL, PID: p.PID, proc: p,
				Client: redis.NewClient(&redis.Options{Addr: p.Addr, PoolSize: 4})}, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Stop kills the server and waits for it.
func (r *RedisServer) Stop() {
	r.Client.Close()
	r.proc.Kill()
}

// Reset empties the server and its command statistics between parts.
func (r *RedisServer) Reset(ctx context.Context) error {
	if err := r.Client.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flushing redis: %w", err)
	}
	if err := r.Client.ConfigResetStat(ctx).Err(); err != nil {
		return fmt.Errorf("resetting redis stats: %w", err)
	}
	return nil
}
