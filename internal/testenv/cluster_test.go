//go:build faults

package testenv

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

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
	// ForEachMaster calls fn on every master at once.
	var masters atomic.Int32
	if err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if n, err := m.DBSize(ctx).Result(); err != nil || n == 0 {
			return fmt.Errorf("master %s holds %d keys (%v)", m.Options().Addr, n, err)
		}
		masters.Add(1)
		return nil
	}); err != nil || masters.Load() != 3 {
		t.Fatalf("%d masters: %v", masters.Load(), err)
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
