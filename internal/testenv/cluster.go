package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/internal/redisproc"
)

// RedisCluster is a real Redis Cluster of three masters, each with one
// replica: six redis-server processes with cluster mode on, joined by
// `redis-cli --cluster create`.
type RedisCluster struct {
	// Addrs are the six nodes' host:port, the seeds a client is given.
	Addrs []string
	// URL is a redis:// URL of database 0 of the first node, for the
	// settings a cluster client takes from it.
	URL   string
	Nodes []*RedisProc

	t testing.TB
}

// Cluster starts a three-master Redis Cluster with one replica each on
// loopback ports and waits until every node says the cluster is ok. Nodes
// time out after 2 s, so a dead master is replaced quickly.
func Cluster(t testing.TB) *RedisCluster {
	t.Helper()
	cli := lookPath(t, "redis-cli")
	c := &RedisCluster{t: t}
	for range 6 {
		n := RedisServerArgs(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no")
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr)
	}
	c.URL = c.Nodes[0].URL
	args := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	Eventually(t, 60*time.Second, "every cluster node ok", func() error {
		for _, a := range c.Addrs {
			n := node(a)
			info, err := n.ClusterInfo(context.Background()).Result()
			n.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:6") {
				return fmt.Errorf("node %s: %s", a, strings.Join(strings.Fields(info)[:3], " "))
			}
		}
		return nil
	})
	return c
}

// node is a plain client of one server; the caller closes it.
func node(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
}

// role is the replication role of the server at addr ("master", "slave")
// and, for a replica, its master's port.
func role(addr string) (string, int, error) {
	c := node(addr)
	defer c.Close()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		return "", 0, err
	}
	var r string
	port := 0
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "role":
			r = v
		case "master_port":
			port, _ = strconv.Atoi(v)
		}
	}
	return r, port, nil
}

// busiest is the master holding the most keys and its replica.
func (c *RedisCluster) busiest() (master, replica string) {
	c.t.Helper()
	ctx := context.Background()
	most := int64(-1)
	for _, a := range c.Addrs {
		r, _, err := role(a)
		if err != nil {
			continue // a node killed by KillMaster
		}
		if r != "master" {
			continue
		}
		n := node(a)
		keys, err := n.DBSize(ctx).Result()
		n.Close()
		if err != nil {
			c.t.Fatalf("cluster node %s: %v", a, err)
		}
		if keys > most {
			most, master = keys, a
		}
	}
	return master, c.replicaOf(master)
}

// replicaOf is the address of the replica of the master at addr.
func (c *RedisCluster) replicaOf(master string) (replica string) {
	c.t.Helper()
	_, port, _ := strings.Cut(master, ":")
	for _, a := range c.Addrs {
		if r, p, err := role(a); err == nil && r == "slave" && strconv.Itoa(p) == port {
			replica = a
		}
	}
	if replica == "" {
		c.t.Fatalf("no replica of cluster master %s", master)
	}
	return replica
}

// masterOf is the address of the master serving key's slot.
func (c *RedisCluster) masterOf(key string) string {
	c.t.Helper()
	ctx := context.Background()
	for _, a := range c.Addrs {
		n := node(a)
		slot, err := n.ClusterKeySlot(ctx, key).Result()
		var slots []redis.ClusterSlot
		if err == nil {
			slots, err = n.ClusterSlots(ctx).Result()
		}
		n.Close()
		if err != nil {
			continue // a node killed before
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				return s.Nodes[0].Addr
			}
		}
	}
	c.t.Fatalf("no cluster master serves %s", key)
	return ""
}

// proc is the node at addr.
func (c *RedisCluster) proc(addr string) *RedisProc {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	c.t.Fatalf("no cluster node %s", addr)
	return nil
}

// following waits until the replica at addr has synchronised with its
// master and follows it (master_link_status:up): a replica that never did
// would not take over.
func following(t testing.TB, addr string) {
	t.Helper()
	Eventually(t, 60*time.Second, "replica "+addr+" following its master", func() error {
		c := node(addr)
		defer c.Close()
		info, err := c.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("%s: master link down", addr)
		}
		return nil
	})
}

// cut has the replica at replica stop following the master at master:
// the replica is paused (SIGSTOP), so that it cannot connect again, and
// the master drops its replication link (CLIENT KILL TYPE replica), so
// that what the master writes from now on is only in the master.
// Pausing alone is not enough on loopback: what the master wrote waits in
// the socket buffers and reaches the replica once it runs again, even
// after the master is dead.
func cut(t testing.TB, master string, replica *RedisProc) {
	t.Helper()
	replica.Pause()
	n := node(master)
	defer n.Close()
	if err := n.ClientKillByFilter(context.Background(), "TYPE", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica on %s: %v", master, err)
	}
}

// Failover promotes the replica of the master holding the most keys with
// CLUSTER FAILOVER (the replica takes over once it has every write of its
// master, as an operator's planned failover does), and waits until the
// replica is a master, its old master a replica, and every node agrees on
// the cluster being ok. It returns the old master's and the new master's
// addresses.
func (c *RedisCluster) Failover() (from, to string) {
	c.t.Helper()
	ctx := context.Background()
	from, to = c.busiest()
	// A manual failover that does not complete within its own timeout
	// (the master must pause its clients and the replica catch up, which
	// a loaded machine can delay) is abandoned by Redis without an error:
	// CLUSTER FAILOVER is asked again every 10 s until the roles change.
	var asked time.Time
	Eventually(c.t, 60*time.Second, "replica "+to+" promoted", func() error {
		if time.Since(asked) >= 10*time.Second {
			if r, _, err := role(to); err != nil || r != "master" {
				n := node(to)
				err := n.ClusterFailover(ctx).Err()
				n.Close()
				if err != nil {
					return fmt.Errorf("CLUSTER FAILOVER on %s: %w", to, err)
				}
			}
			asked = time.Now()
		}
		if r, _, err := role(to); err != nil || r != "master" {
			return fmt.Errorf("%s is %s (%v)", to, r, err)
		}
		if r, _, err := role(from); err != nil || r != "slave" {
			return fmt.Errorf("old master %s is %s (%v)", from, r, err)
		}
		return c.ok("")
	})
	return from, to
}

// ok says whether every node but the one at except says the cluster is ok.
func (c *RedisCluster) ok(except string) error {
	for _, a := range c.Addrs {
		if a == except {
			continue
		}
		n := node(a)
		info, err := n.ClusterInfo(context.Background()).Result()
		n.Close()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("node %s not ok (%v)", a, err)
		}
	}
	return nil
}

// KillMaster kills (SIGKILL) the master holding the most keys, as a
// crashed host ends it, and waits until the other nodes have promoted its
// replica and agree on the cluster being ok. Replication is asynchronous,
// so the replica may lack the master's last writes; to make sure it does,
// the replica is cut off (see cut) while meanwhile runs (meanwhile should
// take well under the 2 s node timeout, or the replica is itself taken
// for failed) and resumed once the master is dead. It returns the killed
// master's and the promoted replica's addresses.
func (c *RedisCluster) KillMaster(meanwhile func()) (from, to string) {
	c.t.Helper()
	from, to = c.busiest()
	return c.kill(from, to, meanwhile)
}

// KillMasterOf is KillMaster for the master serving key's slot: the one a
// partition still being written keeps its state on ("{chat.3}").
func (c *RedisCluster) KillMasterOf(key string, meanwhile func()) (from, to string) {
	c.t.Helper()
	from = c.masterOf(key)
	return c.kill(from, c.replicaOf(from), meanwhile)
}

func (c *RedisCluster) kill(from, to string, meanwhile func()) (string, string) {
	c.t.Helper()
	following(c.t, to)
	replica := c.proc(to)
	cut(c.t, from, replica)
	meanwhile()
	c.proc(from).Kill()
	replica.Resume()
	ctx := context.Background()
	Eventually(c.t, 60*time.Second, "replica "+to+" promoted after its master was killed", func() error {
		if r, _, err := role(to); err != nil || r != "master" {
			n := node(to)
			nodes, _ := n.ClusterNodes(ctx).Result()
			n.Close()
			lg, _ := os.ReadFile(filepath.Join(replica.dir, fmt.Sprintf("redis-%d.log", replica.runs)))
			var keep []string
			for _, l := range strings.Split(string(lg), "\n") {
				if !strings.Contains(l, "SYNC") {
					keep = append(keep, l)
				}
			}
			lg = []byte(strings.Join(keep[max(0, len(keep)-40):], "\n"))
			return fmt.Errorf("%s is %s (%v); its view of the cluster:\n%s\nits log:\n%s", to, r, err, nodes, lg)
		}
		return c.ok(from)
	})
	return from, to
}

// RedisSentinel is a Redis primary with one replica watched by three
// sentinels (quorum 2), each a real process.
type RedisSentinel struct {
	// Addrs are the sentinels' host:port; MasterName the monitored name.
	Addrs      []string
	MasterName string
	// URL is a redis:// URL of database 0 of the first primary, for the
	// settings a sentinel client takes from it.
	URL     string
	Servers []*RedisProc

	t testing.TB
}

// Sentinel starts a primary, its replica and three sentinels on loopback
// ports, and waits until every sentinel knows the replica and the other
// sentinels. A primary unreachable for 2 s is down.
func Sentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	bin := lookPath(t, "redis-server")
	s := &RedisSentinel{t: t, MasterName: "replywatch"}
	primary := RedisServer(t)
	replica := RedisServerArgs(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	s.Servers = []*RedisProc{primary, replica}
	s.URL = primary.URL
	for i := range 3 {
		dir := t.TempDir()
		var p *exec.Cmd
		var addr string
		for attempt := 0; ; attempt++ {
			port, err := redisproc.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(dir, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile %q\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %[4]s 2000\n"+
				"sentinel failover-timeout %[4]s 20000\nsentinel parallel-syncs %[4]s 1\n",
				port, dir, filepath.Join(dir, "sentinel.log"), s.MasterName, primary.port)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			p = exec.Command(bin, conf, "--sentinel")
			p.Dir = dir
			if err := p.Start(); err != nil {
				t.Fatalf("starting sentinel %d: %v", i, err)
			}
			addr = "127.0.0.1:" + strconv.Itoa(port)
			deadline := time.Now().Add(10 * time.Second)
			for redisproc.Ping(addr) != nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if redisproc.Ping(addr) == nil {
				break
			}
			_ = p.Process.Kill()
			_ = p.Wait()
			if attempt == 2 {
				out, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
				t.Fatalf("sentinel %d did not answer: %s", i, out)
			}
		}
		t.Cleanup(func() { _ = p.Process.Kill(); _ = p.Wait() })
		s.Addrs = append(s.Addrs, addr)
	}
	Eventually(t, 60*time.Second, "sentinels know the replica and each other", func() error {
		for _, a := range s.Addrs {
			c := redis.NewSentinelClient(&redis.Options{Addr: a})
			replicas, err := c.Replicas(context.Background(), s.MasterName).Result()
			master, err2 := c.Master(context.Background(), s.MasterName).Result()
			c.Close()
			if err != nil || err2 != nil {
				return fmt.Errorf("sentinel %s: %v %v", a, err, err2)
			}
			if len(replicas) != 1 || master["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %s: %d replicas, %s other sentinels", a, len(replicas), master["num-other-sentinels"])
			}
		}
		return nil
	})
	return s
}

// Failover has a sentinel promote the replica (SENTINEL FAILOVER) and
// waits until every sentinel names it primary and the old primary follows
// it. It returns the old and the new primary's addresses.
func (s *RedisSentinel) Failover() (from, to string) {
	s.t.Helper()
	ctx := context.Background()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
	defer c.Close()
	old, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		s.t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	from = strings.Join(old, ":")
	if err := c.Failover(ctx, s.MasterName).Err(); err != nil {
		s.t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	return from, s.promoted(from, true)
}

// promoted waits until every sentinel names a primary other than from,
// which says it is one, and, when following, from follows it; it returns
// the new primary's address.
func (s *RedisSentinel) promoted(from string, following bool) (to string) {
	s.t.Helper()
	ctx := context.Background()
	Eventually(s.t, 60*time.Second, "the replica promoted in place of "+from, func() error {
		for _, a := range s.Addrs {
			c := redis.NewSentinelClient(&redis.Options{Addr: a})
			addr, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
			c.Close()
			if err != nil {
				return err
			}
			if to = strings.Join(addr, ":"); to == from {
				return fmt.Errorf("sentinel %s still names %s", a, from)
			}
		}
		if r, _, err := role(to); err != nil || r != "master" {
			return fmt.Errorf("new primary %s is %s (%v)", to, r, err)
		}
		if r, _, err := role(from); following && (err != nil || r != "slave") {
			return fmt.Errorf("old primary %s is %s (%v)", from, r, err)
		}
		return nil
	})
	return to
}

// KillPrimary kills (SIGKILL) the primary, as a crashed host ends it, and
// waits until every sentinel names the replica primary and the replica
// says it is one. As with RedisCluster.KillMaster, the replica is cut off
// while meanwhile runs, so that it lacks the primary's last writes when it
// is promoted. It returns the killed and the new primary's addresses.
func (s *RedisSentinel) KillPrimary(meanwhile func()) (from, to string) {
	s.t.Helper()
	primary, replica := s.Servers[0], s.Servers[1]
	if r, _, err := role(replica.Addr); err != nil || r != "slave" {
		primary, replica = replica, primary
	}
	from = primary.Addr
	following(s.t, replica.Addr)
	cut(s.t, from, replica)
	meanwhile()
	primary.Kill()
	replica.Resume()
	return from, s.promoted(from, false)
}

// lookPath finds a Redis program, skipping the test without it (failing
// when the CI environment variable is set).
func lookPath(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found: install it with apt-get install redis-server redis-tools"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}
