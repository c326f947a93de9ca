package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
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
		if port, err = freePort(); err != nil {
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
	cmd  *exec.Cmd
	done chan struct{}
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
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		r, err := startRedis(bin, dir, port)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startRedis(bin, dir string, port int) (*RedisServer, error) {
	logPath := filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the redis-server log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--loglevel", "warning",
		"--logfile", "")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for ping(addr) != nil {
		select {
		case <-done:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, strings.TrimSpace(string(out)))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s", port)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := &RedisServer{Addr: addr, URL: "redis://" + addr + "/0", PID: cmd.Process.Pid, cmd: cmd, done: done}
	r.Client = redis.NewClient(&redis.Options{Addr: addr, PoolSize: 4})
	return r, nil
}

// Stop kills the server and waits for it.
func (r *RedisServer) Stop() {
	r.Client.Close()
	_ = r.cmd.Process.Kill()
	<-r.done
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

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
