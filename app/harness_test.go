package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
)

// Topics of the test cluster: input topics with several partitions so that
// keys spread, alerts on one partition so they are read in order.
var testTopics = map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1,
	"cs.chat.DLT": 1, "cs.orders.DLT": 1, "cs.presence.DLT": 1}

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// sh is a Shanghai wall time on the test day.
func sh(hms string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", "2026-11-24 "+hms, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

// fakeClock is the wall clock the processor sees.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func testConfig(t *testing.T, broker, redisURL, group string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.GroupID = group
	cfg.Kafka.SessionTimeout = 2 * time.Second
	cfg.Kafka.RebalanceTimeout = 2 * time.Second
	cfg.Redis.URL = redisURL
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Clock.Tick = 20 * time.Millisecond
	cfg.Metrics.ReportInterval = 100 * time.Millisecond
	cfg.Metrics.ReporterLease = 2 * time.Second
	cfg.Metrics.PerAgent = true
	cfg.Alerts.Lease = 2 * time.Second
	cfg.Shops = map[string]config.ShopOverride{"s1": {}, "s2": {}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type running struct {
	app    *App
	cancel context.CancelFunc
	done   chan error
}

// start runs a replica until the test ends (or stop is called).
func start(t *testing.T, cfg *config.Config, clock *fakeClock, holder string) *running {
	t.Helper()
	a, err := New(cfg, Options{Log: zaptest.NewLogger(t).Named(holder), Now: clock.Now, Holder: holder})
	if err != nil {
		t.Fatal(err)
	}
	return runApp(t, a)
}

// runApp listens and runs a built replica until the test ends (or stop is
// called).
func runApp(t *testing.T, a *App) *running {
	t.Helper()
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("replica stopped with %v", err)
		}
		r.done <- nil
	case <-time.After(15 * time.Second):
		t.Errorf("replica did not stop within 15 s")
	}
}

func produce(t *testing.T, broker, topic string, evs ...event.Event) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(ev.Key(event.Chat)), Value: b}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}

func produceRaw(t *testing.T, broker, topic string, key string, values ...[]byte) {
	t.Helper()
	// Batches up to 4 MiB: poison records of a megabyte are produced too.
	w := &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll,
		BatchBytes: 4 << 20}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(key), Value: v}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}

// readTopic reads every record of partition 0 of topic until none arrived for quiet.
func readTopic(t *testing.T, broker, topic string, quiet time.Duration) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

func readAlerts(t *testing.T, broker string) []alerting.Alert {
	t.Helper()
	var out []alerting.Alert
	for _, m := range readTopic(t, broker, "cs.alerts", 500*time.Millisecond) {
		var a alerting.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("alert record is not contract JSON: %v: %s", err, m.Value)
		}
		if string(m.Key) != a.ShopID {
			t.Errorf("alert %s keyed %q, want its shop_id %q", a.ID, m.Key, a.ShopID)
		}
		out = append(out, a)
	}
	return out
}

// scrape returns the replywatch metrics of one replica.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	m, err := testenv.Scrape("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	testenv.Eventually(t, within, what, cond)
}

// figuresOf keeps the per-shop business gauges (not per-agent, not process ones).
func figuresOf(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		for _, name := range []string{"replywatch_waiting_buyers", "replywatch_consulting_buyers",
			"replywatch_reply_breached_buyers", "replywatch_reply_rate", "replywatch_buyer_messages",
			"replywatch_response_30s_rate", "replywatch_avg_response_seconds"} {
			if strings.HasPrefix(k, name+"{") {
				out[k] = v
			}
		}
	}
	return out
}

func expectFigures(got map[string]float64, want map[string]float64) error {
	var diffs []string
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s missing (want %v)", k, v))
		} else if d := g - v; d > 1e-9 || d < -1e-9 {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", k, g, v))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s", strings.Join(diffs, "; "))
	}
	return nil
}

// evaluatedAt moves the clock to now and waits until the lease holder's
// shop-level rules have evaluated at it (their clock gauge, the reporter's
// clock minus the grace, reached it): what the rules would do at now is
// then done, with no sleep.
func evaluatedAt(t *testing.T, r *running, clock *fakeClock, now time.Time) {
	t.Helper()
	clock.Set(now)
	want := float64(now.Add(-r.app.Config.Clock.Grace).UnixMilli()) / 1000
	eventually(t, 30*time.Second, "shop-level rules evaluated at "+now.Format(time.TimeOnly), func() error {
		if got := scrape(t, r.app.Addr())["replywatch_shop_rules_clock_seconds{}"]; got < want {
			return fmt.Errorf("shop-level rules clock %v, want %v", got, want)
		}
		return nil
	})
}

// timersFiredAt moves the clock to now and waits until every partition of
// cs.chat has fired the timers due before its clock (now less the grace)
// and written what they changed: what live processing does by now is done,
// with no sleep. (The watermark says only that the clock moved.)
func timersFiredAt(t *testing.T, r *running, clock *fakeClock, now time.Time) {
	t.Helper()
	clock.Set(now)
	want := float64(now.Add(-r.app.Config.Clock.Grace).UnixMilli()) / 1000
	eventually(t, 30*time.Second, "timers fired up to "+now.Format(time.TimeOnly), func() error {
		m := scrape(t, r.app.Addr())
		for p := range testTopics["cs.chat"] {
			if got := m[fmt.Sprintf("replywatch_timers_fired_seconds{partition=%d,topic=cs.chat}", p)]; got < want {
				return fmt.Errorf("cs.chat/%d fired timers up to %v, want %v", p, got, want)
			}
		}
		return nil
	})
}
