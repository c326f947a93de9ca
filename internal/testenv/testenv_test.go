package testenv

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

func TestRedisRestartKeepsPortLosesData(t *testing.T) {
	srv := RedisServer(t)
	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Addr != srv.Addr || opts.DB != 0 {
		t.Fatalf("URL %q does not name %s db 0", srv.URL, srv.Addr)
	}
	ctx := context.Background()
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	// The client reconnects to the same address; the data is gone.
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("after restart GET k = %v, want redis.Nil", err)
	}
	srv.Kill()
	if _, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
		t.Fatalf("%s still accepts connections after Kill", srv.Addr)
	}
}

func TestKafkaGoProducesAndConsumes(t *testing.T) {
	addr, _ := Kafka(t, map[string]int{"in": 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	parts, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := parts.ReadPartitions("in")
	parts.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("topic in has %d partitions, want 3", len(ps))
	}

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "in", Balancer: &kafka.Hash{}, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	var want []string
	var msgs []kafka.Message
	for i := range 20 {
		v := fmt.Sprintf("m%02d", i)
		want = append(want, v)
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(v)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	// A consumer group reads every partition, which needs the group
	// coordinator as well as fetch.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "g", Topic: "in",
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond, SessionTimeout: time.Second})
	defer r.Close()
	var got []string
	for len(got) < len(want) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		got = append(got, string(m.Value))
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumed %v, want %v", got, want)
	}

	// Auto-created topics work too (dead-letter topics rely on it).
	w2 := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "fresh", AllowAutoTopicCreation: true, BatchTimeout: 10 * time.Millisecond}
	defer w2.Close()
	var werr error
	for range 20 {
		if werr = w2.WriteMessages(ctx, kafka.Message{Value: []byte("x")}); werr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if werr != nil {
		t.Fatalf("writing to an auto-created topic: %v", werr)
	}
}

// The three-master cluster takes writes on every master, and a key written
// before a failover is read after it through a cluster client, from the
// promoted replica.
func TestClusterFailoverKeepsWrites(t *testing.T) {
	c := Cluster(t)
	ctx := context.Background()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	defer cl.Close()
	for i := range 100 {
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	masters := 0
	if err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if n, err := m.DBSize(ctx).Result(); err != nil || n == 0 {
			return fmt.Errorf("master %s holds %d keys (%v)", m.Options().Addr, n, err)
		}
		masters++
		return nil
	}); err != nil || masters != 3 {
		t.Fatalf("%d masters: %v", masters, err)
	}
	from, to := c.Failover()
	if r, _, err := role(to); err != nil || r != "master" || from == to {
		t.Fatalf("after failover %s→%s the new one is %s (%v)", from, to, r, err)
	}
	for i := range 100 {
		if v, err := cl.Get(ctx, fmt.Sprintf("k%d", i)).Int(); err != nil || v != i {
			t.Fatalf("k%d after failover: %v %v", i, v, err)
		}
	}
}

// Sentinel promotes the replica on SENTINEL FAILOVER; a failover client
// follows it, and writes made before it are there.
func TestSentinelFailoverKeepsWrites(t *testing.T) {
	s := Sentinel(t)
	ctx := context.Background()
	cl := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs})
	defer cl.Close()
	if err := cl.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The write reached the replica before the failover is asked for.
	if err := cl.Wait(ctx, 1, 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	from, to := s.Failover()
	if from != s.Servers[0].Addr || to != s.Servers[1].Addr {
		t.Fatalf("failover %s→%s, want %s→%s", from, to, s.Servers[0].Addr, s.Servers[1].Addr)
	}
	Eventually(t, 30*time.Second, "writes through the failover client after the failover", func() error {
		if err := cl.Set(ctx, "k2", "after", 0).Err(); err != nil {
			return err
		}
		if v, err := cl.Get(ctx, "k").Result(); err != nil || v != "before" {
			return fmt.Errorf("k = %q (%v)", v, err)
		}
		return nil
	})
	direct := redis.NewClient(&redis.Options{Addr: to})
	defer direct.Close()
	if v, err := direct.Get(ctx, "k2").Result(); err != nil || v != "after" {
		t.Fatalf("k2 on the new primary = %q (%v)", v, err)
	}
}
