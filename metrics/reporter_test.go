package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/state"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func newReporter(t *testing.T, store *state.Redis, holder string, now time.Time) (*Reporter, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(shanghai, hours.Range{Start: 480, End: 1380}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, Target: 0.9}
	r := &Reporter{Source: store, Holder: holder, LeaseTTL: time.Second, Interval: 100 * time.Millisecond,
		Info: func(string) ShopInfo { return ShopInfo{Rules: rules, Target: rules.Target} }, PerAgent: true, MaxAgents: 2,
		Now: func() time.Time { return now }, Log: zap.NewNop(), Process: NewProcess(reg)}
	r.Register(reg)
	return r, reg
}

// Exactly one replica exports the business gauges; when it dies without
// giving the lease up, another takes over once the lease lapses.
func TestReporterLeaseAndTakeover(t *testing.T) {
	client, err := state.Dial(testenv.Redis(t), state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewRedis(client, "rw", 72*time.Hour)
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, shanghai)
	day := now.Format(time.DateOnly)
	if _, err := store.Claim(ctx, "chat.0", 1); err != nil {
		t.Fatal(err)
	}
	figs := []detectors.FigureDelta{
		{Shop: "s1", Day: day, Field: detectors.FieldConsulting, Delta: 4},
		{Shop: "s1", Day: day, Field: "breached:3m", Delta: 1},
		{Shop: "s1", Day: day, Field: detectors.FieldMessages, Delta: 10},
		{Shop: "s1", Day: day, Field: detectors.FieldAnswered30, Delta: 5},
	}
	for i, a := range []string{"a1", "a2", "a3"} {
		figs = append(figs, detectors.FigureDelta{Shop: "s1", Day: day, Field: detectors.AgentField(a, detectors.FieldMessages), Delta: int64(3 - i)})
	}
	if _, err := store.Apply(ctx, "chat.0", &state.Batch{Token: 1, Offset: 0, Figures: figs, Now: now.UnixMilli()}); err != nil {
		t.Fatal(err)
	}

	a, _ := newReporter(t, store, "a", now)
	b, _ := newReporter(t, store, "b", now)
	a.tick(ctx)
	b.tick(ctx)
	if got := testutil.ToFloat64(a.rate.WithLabelValues("s1", "3m")); got != 0.75 {
		t.Errorf("leader's reply rate = %v, want 0.75", got)
	}
	if testutil.ToFloat64(a.Process.ReporterLeader) != 1 || testutil.ToFloat64(b.Process.ReporterLeader) != 0 {
		t.Error("lease not held by exactly the first replica")
	}
	if n := testutil.CollectAndCount(b.rate); n != 0 {
		t.Errorf("the replica without the lease exports %d reply-rate series", n)
	}
	if n := testutil.CollectAndCount(a.agMessages); n != 2 {
		t.Errorf("per-agent series = %d, want the cap of 2", n)
	}
	if got := testutil.ToFloat64(a.dropped); got != 1 {
		t.Errorf("dropped agent series = %v, want 1", got)
	}

	// a dies: it neither renews nor releases. b takes over after the TTL.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(b.Process.ReporterLeader) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no takeover within 5 s of a 1 s lease")
		}
		time.Sleep(100 * time.Millisecond)
		b.tick(ctx)
	}
	if got := testutil.ToFloat64(b.consulting.WithLabelValues("s1")); got != 4 {
		t.Errorf("new leader's consulting buyers = %v, want 4", got)
	}
	// a comes back: it must find the lease taken and stop exporting.
	a.tick(ctx)
	if testutil.ToFloat64(a.Process.ReporterLeader) != 0 || testutil.CollectAndCount(a.rate) != 0 {
		t.Error("a replica that lost the lease still exports business gauges")
	}
}
