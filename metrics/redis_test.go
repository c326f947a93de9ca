package metrics

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/state"
)

// TestRedisMemory reads a real redis-server's memory figures.
func TestRedisMemory(t *testing.T) {
	client, err := state.Dial(testenv.Redis(t), state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	if err := client.ConfigSet(ctx, "maxmemory", "64mb").Err(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewRedisMemory(func(ctx context.Context) (string, error) { return client.Info(ctx, "memory").Result() })
	reg.MustRegister(m)
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
	}
	if got["replywatch_redis_maxmemory_bytes"] != 64<<20 {
		t.Errorf("maxmemory %v, want %d", got["replywatch_redis_maxmemory_bytes"], 64<<20)
	}
	if used := got["replywatch_redis_used_memory_bytes"]; used < 100<<10 || used > 64<<20 {
		t.Errorf("used memory %v bytes, want what an empty server uses (hundreds of KiB)", used)
	}

	// Redis gone: the series are absent, the scrape still works.
	client.Close()
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("with Redis gone: %d series (%v), want none", n, err)
	}
}
