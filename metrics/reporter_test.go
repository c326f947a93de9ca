package metrics

import (
	"context"
	"strconv"
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
	r := &Reporter{Source: store, Holder: holder, LeaseTTL: time.Hour, Interval: 100 * time.Millisecond,
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

	// a dies: it neither renews nor releases. b takes over once the lease
	// lapses (played here: the lease is an hour long, so no tick of a
	// loaded machine lets it lapse by itself).
	b.tick(ctx)
	if testutil.ToFloat64(b.Process.ReporterLeader) != 0 {
		t.Fatal("b took a's live lease")
	}
	if err := client.Del(ctx, "rw:lease:"+LeaseName).Err(); err != nil {
		t.Fatal(err)
	}
	b.tick(ctx)
	if testutil.ToFloat64(b.Process.ReporterLeader) != 1 {
		t.Fatal("b did not take the lapsed lease")
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

// seriesOf counts the series of the named metric family a scrape of reg sees.
func seriesOf(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// While Redis is down the leader keeps exporting its last complete figures,
// with their age, for as long as the lease it held lasts (no other replica
// can hold it before); then it stops.
func TestFiguresOutliveRedisDownWhileTheLeaseLasts(t *testing.T) {
	srv := testenv.RedisServer(t)
	// No retries: each lease check on the dead server fails at once.
	client, err := state.Dial(srv.URL+"?max_retries=-1", state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewRedis(client, "rw", 72*time.Hour)
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, shanghai)
	if _, err := store.Claim(ctx, "chat.0", 1); err != nil {
		t.Fatal(err)
	}
	figs := []detectors.FigureDelta{{Shop: "s1", Day: now.Format(time.DateOnly), Field: detectors.FieldConsulting, Delta: 4}}
	if _, err := store.Apply(ctx, "chat.0", &state.Batch{Token: 1, Offset: 0, Figures: figs, Now: now.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	r, reg := newReporter(t, store, "a", now)
	// The lease and the figures' age run on a clock of the test's: it
	// moves to just inside the lease and just past it.
	const ttl = 3 * time.Second
	read := time.Now()
	clock := read
	r.Clock = func() time.Time { return clock }
	r.LeaseTTL = ttl
	r.tick(ctx)
	if seriesOf(t, reg, "replywatch_consulting_buyers") != 1 || seriesOf(t, reg, "replywatch_figures_age_seconds") != 1 {
		t.Fatal("the leader does not export its figures and their age")
	}
	age := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "replywatch_figures_age_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}

	srv.Kill()
	clock = read.Add(time.Second)
	r.tick(ctx)
	if got := testutil.ToFloat64(r.consulting.WithLabelValues("s1")); got != 4 {
		t.Fatalf("with Redis down inside the lease: consulting %v, want the last figure 4", got)
	}
	if got := age(); got != 1 {
		t.Errorf("figures age %v s with Redis down, want the 1 s since they were read", got)
	}
	clock = read.Add(ttl - time.Millisecond)
	r.tick(ctx)
	if seriesOf(t, reg, "replywatch_consulting_buyers") != 1 || testutil.ToFloat64(r.Process.ReporterLeader) != 1 {
		t.Fatal("figures withdrawn before the lease ran out")
	}
	clock = read.Add(ttl)
	r.tick(ctx)
	if n := seriesOf(t, reg, "replywatch_consulting_buyers"); n != 0 {
		t.Errorf("figures still exported (%d series) once the lease ran out", n)
	}
	if seriesOf(t, reg, "replywatch_figures_age_seconds") != 0 || testutil.ToFloat64(r.Process.ReporterLeader) != 0 {
		t.Error("the replica exports a figures age, or says it leads, after its lease ran out")
	}
}

// A scrape during a refill sees the figures of the last complete read, all
// of them: never a set half reset and half filled.
func TestScrapeNeverSeesHalfARefill(t *testing.T) {
	client, err := state.Dial(testenv.Redis(t), state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewRedis(client, "rw", 72*time.Hour)
	r, reg := newReporter(t, store, "a", time.Date(2026, 11, 24, 12, 0, 0, 0, shanghai))
	const shops = 1000
	for i := range shops {
		r.Shops = append(r.Shops, "s"+strconv.Itoa(i))
	}
	ctx := context.Background()
	r.tick(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			r.tick(ctx)
		}
	}()
	scrapes := 0
	for running := true; running; scrapes++ {
		select {
		case <-done:
			running = false
		default:
		}
		if n := seriesOf(t, reg, "replywatch_waiting_buyers"); n != shops {
			t.Fatalf("scrape %d saw %d shops of %d", scrapes, n, shops)
		}
	}
	t.Logf("%d scrapes during 10 refills of %d shops", scrapes, shops)
}
