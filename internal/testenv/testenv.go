// Package testenv starts the real servers integration tests talk to: a
// redis-server process and an in-process Kafka-protocol broker (kfake), each
// on a free loopback port. Tests reach them over TCP exactly as the
// production code reaches its servers; nothing here fakes a protocol. Every
// server is stopped when the test that started it ends.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replywatch/replywatch/internal/redisproc"
)

const redisMissing = "redis-server not found: install it with apt-get install redis-server"

// RedisProc is a redis-server process owned by a test.
type RedisProc struct {
	// Addr is host:port, URL the redis:// URL of database 0.
	Addr string
	URL  string

	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	mu   sync.Mutex
	proc *redisproc.Proc
	runs int
}

// Redis starts a redis-server for the test and returns its URL,
// redis://127.0.0.1:PORT/0.
func Redis(t testing.TB) string {
	t.Helper()
	return RedisServer(t).URL
}

// RedisServer starts a redis-server for the test, without persistence, and
// stops it when the test ends. Without redis-server on PATH the test is
// skipped, or fails when the CI environment variable is set.
func RedisServer(t testing.TB) *RedisProc {
	t.Helper()
	return RedisServerArgs(t)
}

// RedisServerArgs is RedisServer with extra redis-server arguments, kept
// across restarts: "--appendonly", "yes" makes Restart keep the data, as a
// server with AOF does after a crash.
func RedisServerArgs(t testing.TB, args ...string) *RedisProc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(redisMissing)
		}
		t.Skip(redisMissing)
	}
	r := &RedisProc{t: t, bin: bin, dir: t.TempDir(), args: args}
	// Another process may take the free port between our probe and the
	// server's bind: try a few ports before giving up.
	for attempt := 0; ; attempt++ {
		r.port, err = redisproc.FreePort()
		if err == nil {
			err = r.start()
		}
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("starting redis-server: %v", err)
		}
	}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.URL = "redis://" + r.Addr + "/0"
	t.Cleanup(r.Kill)
	return r
}

// start runs redis-server on r.port and waits until it answers PING.
func (r *RedisProc) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	p, err := redisproc.Start(r.bin, r.dir, r.port, redisproc.Options{LogName: fmt.Sprintf("redis-%d.log", r.runs), Args: r.args})
	if err != nil {
		return err
	}
	r.proc = p
	return nil
}

// Kill stops the server (SIGKILL, as a crash would) and waits for it to
// exit. Killing a stopped server does nothing.
func (r *RedisProc) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return
	}
	r.proc.Kill()
	r.proc = nil
}

// Pause stops the server (SIGSTOP): it holds its connections and answers
// nothing, as a frozen host does, until Resume.
func (r *RedisProc) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *RedisProc) Resume() { r.signal(syscall.SIGCONT) }

func (r *RedisProc) signal(s syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		r.t.Fatalf("signal %v to a stopped redis-server", s)
	}
	if err := syscall.Kill(r.proc.PID, s); err != nil {
		r.t.Fatalf("signal %v to redis-server: %v", s, err)
	}
}

// Restart kills the server and starts a fresh one on the same port. Data
// and the script cache are lost, as after a restart without persistence
// (with RedisServerArgs' "--appendonly yes" the data is read back).
func (r *RedisProc) Restart() {
	r.t.Helper()
	r.Kill()
	// The old socket may linger briefly; redis-server binds with
	// SO_REUSEADDR, so a few retries suffice.
	var err error
	for range 50 {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("restarting redis-server on port %d: %v", r.port, err)
}

// Kafka starts an in-process Kafka-protocol broker (kfake) on a free
// loopback port with the given topics (name → partitions), automatic topic
// creation, and a 100ms minimum group session timeout so that group
// rebalances are quick. Extra options are applied last. It returns the
// broker's host:port and the cluster, which is closed when the test ends.
func Kafka(t testing.TB, topics map[string]int, extra ...kfake.Opt) (addr string, c *kfake.Cluster) {
	t.Helper()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(int32(n), name))
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = redisproc.FreePort(); err != nil {
			continue
		}
		all := append(append(opts[:len(opts):len(opts)], kfake.Ports(port)), extra...)
		if c, err = kfake.NewCluster(all...); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], c
}

// KafkaBroker is a kfake broker that keeps its log, offsets and groups in a
// directory, so that it can be stopped and started again on the same port
// with its data, as a real broker restarts.
type KafkaBroker struct {
	// Addr is the broker's host:port, the same across restarts.
	Addr string

	t    testing.TB
	opts []kfake.Opt

	mu sync.Mutex
	c  *kfake.Cluster
}

// PersistentKafka starts a broker as Kafka does, with its data in a
// directory of the test. It is stopped when the test ends.
func PersistentKafka(t testing.TB, topics map[string]int, extra ...kfake.Opt) *KafkaBroker {
	t.Helper()
	dir := t.TempDir()
	k := &KafkaBroker{t: t}
	t.Cleanup(k.Stop)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = redisproc.FreePort(); err != nil {
			continue
		}
		k.opts = []kfake.Opt{
			kfake.NumBrokers(1),
			kfake.AllowAutoTopicCreation(),
			kfake.GroupMinSessionTimeout(100 * time.Millisecond),
			kfake.DataDir(dir),
			kfake.Ports(port),
		}
		for name, n := range topics {
			k.opts = append(k.opts, kfake.SeedTopics(int32(n), name))
		}
		k.opts = append(k.opts, extra...)
		if k.c, err = kfake.NewCluster(k.opts...); err == nil {
			k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			return k
		}
	}
	t.Fatalf("starting kfake: %v", err)
	return nil
}

// Stop closes the broker; its data stays in its directory. Stopping a
// stopped broker does nothing.
func (k *KafkaBroker) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// Start starts a stopped broker again on the same port, with its data.
func (k *KafkaBroker) Start() {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		return
	}
	var err error
	// The closed listener's port may take a moment to be free again.
	for range 100 {
		if k.c, err = kfake.NewCluster(k.opts...); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	k.t.Fatalf("restarting kfake on %s: %v", k.Addr, err)
}

// Restart stops the broker and starts it again on the same port.
func (k *KafkaBroker) Restart() {
	k.t.Helper()
	k.Stop()
	k.Start()
}
