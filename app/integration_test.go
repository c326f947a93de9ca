package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/state"
)

// testDay is the hand-counted day (internal/scenario) on the test date.
var testDay = scenario.Day{Loc: shanghai, Date: "2026-11-24"}

func day() []event.Event { return testDay.Events() }

// endOfDay is when the checks are made: after every deadline of the day.
var endOfDay = testDay.End()

var wantFigures = scenario.Figures

func wantFiring() map[string]string { return testDay.Firing() }

// waitForDay waits until a replica shows the hand-counted figures and the
// alerts topic holds the hand-counted alerts.
func waitForDay(t *testing.T, broker, addr string) {
	t.Helper()
	eventually(t, 20*time.Second, "figures", func() error {
		return expectFigures(scrape(t, addr), wantFigures)
	})
	waitForAlerts(t, broker, 10*time.Second)
}

func waitForAlerts(t *testing.T, broker string, within time.Duration) {
	t.Helper()
	eventually(t, within, "alerts", func() error {
		got, err := outcome(readAlerts(t, broker))
		if err != nil {
			return err
		}
		return sameOutcome(scenario.Standing(got), wantFiring())
	})
}

func outcome(alerts []alerting.Alert) (map[string]string, error) { return scenario.Outcome(alerts) }

func sameOutcome(got, want map[string]string) error { return scenario.SameOutcome(got, want) }

type env struct {
	broker string
	kafka  *kfake.Cluster
	redis  string
}

func newEnv(t *testing.T) env {
	addr, c := testenv.Kafka(t, testTopics)
	return env{broker: addr, kafka: c, redis: testenv.Redis(t)}
}

// The day's events produced as a backlog and processed by `run`'s assembly
// give on cs.alerts exactly the hand-counted alerts, and on /metrics the
// hand-counted figures.
func TestDayFromBacklog(t *testing.T) {
	e := newEnv(t)
	produce(t, e.broker, "cs.chat", day()...)
	clock := &fakeClock{t: endOfDay}
	r := start(t, testConfig(t, e.broker, e.redis, "g1"), clock, "r1")
	waitForDay(t, e.broker, r.app.Addr())
	m := scrape(t, r.app.Addr())
	if v := m["replywatch_events_total{result=applied,topic=cs.chat}"]; v != 16 {
		t.Errorf("applied events = %v, want 16", v)
	}
	if v := m["replywatch_agent_reply_breached_buyers{agent=a1,shop=s1,threshold=3m}"]; v < 1 {
		t.Errorf("per-agent breaches for a1 = %v, want at least 1", v)
	}

	// Timers of the backlog fire in catch-up, hours late; a wait that starts
	// once the partition has caught up fires live, within the grace. The
	// delay objective looks at live fires only.
	const live, catchup = "replywatch_timer_fire_delay_seconds_count{mode=live}", "replywatch_timer_fire_delay_seconds_count{mode=catchup}"
	backlog := m[catchup]
	if backlog < 1 || m[live] != 0 {
		t.Fatalf("after the backlog: %v catch-up and %v live fires, want every fire in catch-up", backlog, m[live])
	}
	now := clock.Now()
	produce(t, e.broker, "cs.chat", event.Event{EventID: "live-1", Type: event.TypeMessage, TS: event.Time{Time: now},
		ShopID: "s1", BuyerID: "b-live", Sender: event.SenderBuyer})
	eventually(t, 10*time.Second, "live message applied", func() error {
		if got := scrape(t, r.app.Addr())["replywatch_events_total{result=applied,topic=cs.chat}"]; got != 17 {
			return fmt.Errorf("applied %v of 17", got)
		}
		return nil
	})
	// The warning is due at 2m, the breach at 3m; each fires once the clock
	// passes it by the grace.
	for i, step := range []time.Duration{2*time.Minute + 2500*time.Millisecond, 3*time.Minute + 2500*time.Millisecond} {
		clock.Set(now.Add(step))
		want := float64(i + 1)
		eventually(t, 10*time.Second, "live fire", func() error {
			if got := scrape(t, r.app.Addr())[live]; got != want {
				return fmt.Errorf("%v live fires, want %v", got, want)
			}
			return nil
		})
	}
	eventually(t, 10*time.Second, "live warning and breach", func() error {
		m := scrape(t, r.app.Addr())
		if m[live] != 2 || m[catchup] != backlog {
			return fmt.Errorf("%v live and %v catch-up fires, want 2 and %v", m[live], m[catchup], backlog)
		}
		if sum := m["replywatch_timer_fire_delay_seconds_sum{mode=live}"]; sum > 2*3 {
			return fmt.Errorf("live fires took %vs in all, want each within the 2s grace and a step", sum)
		}
		return nil
	})
}

// Invariant 3: the same day fed live (events arriving as their time comes)
// gives the same figures and the same non-retracted alerts as the backlog.
func TestLiveEqualsBacklog(t *testing.T) {
	e := newEnv(t)
	evs := day()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].TS.Before(evs[j].TS.Time) })
	clock := &fakeClock{t: evs[0].TS.Add(-time.Minute)}
	r := start(t, testConfig(t, e.broker, e.redis, "live"), clock, "live")
	eventually(t, 20*time.Second, "joined", func() error {
		if !r.app.Processor.Joined() {
			return errors.New("not joined")
		}
		return nil
	})
	for i, ev := range evs {
		// Let time pass up to the event in steps, as a live day would,
		// each step's timers fired before the next.
		for clock.Now().Before(ev.TS.Time) {
			timersFiredAt(t, r, clock, minTime(clock.Now().Add(30*time.Second), ev.TS.Time))
		}
		produce(t, e.broker, "cs.chat", ev)
		want := float64(i + 1)
		eventually(t, 10*time.Second, "event applied", func() error {
			if got := scrape(t, r.app.Addr())["replywatch_events_total{result=applied,topic=cs.chat}"]; got != want {
				return fmt.Errorf("applied %v of %v", got, want)
			}
			return nil
		})
	}
	for clock.Now().Before(endOfDay) {
		timersFiredAt(t, r, clock, minTime(clock.Now().Add(time.Minute), endOfDay))
	}
	waitForDay(t, e.broker, r.app.Addr())
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Invariant 1: delivering the same events again, as duplicates with new
// offsets (in reverse order) and by re-reading the partitions from the start in a new group,
// changes no figure and emits no new alert.
func TestRedeliveryChangesNothing(t *testing.T) {
	e := newEnv(t)
	produce(t, e.broker, "cs.chat", day()...)
	clock := &fakeClock{t: endOfDay}
	r := start(t, testConfig(t, e.broker, e.redis, "g1"), clock, "r1")
	eventually(t, 20*time.Second, "figures", func() error { return expectFigures(scrape(t, r.app.Addr()), wantFigures) })
	waitForAlerts(t, e.broker, 10*time.Second)
	before := len(readAlerts(t, e.broker))

	// The same event ids again, in reverse order: a repeated id is a
	// duplicate however late and in whatever order it comes.
	again := day()
	slices.Reverse(again)
	produce(t, e.broker, "cs.chat", again...)
	eventually(t, 20*time.Second, "duplicates counted", func() error {
		if got := scrape(t, r.app.Addr())["replywatch_events_total{result=duplicate,topic=cs.chat}"]; got != 16 {
			return fmt.Errorf("duplicates = %v, want 16", got)
		}
		return nil
	})
	r.stop(t)

	// A second group reads every partition from offset 0 against the same state.
	r2 := start(t, testConfig(t, e.broker, e.redis, "g2"), clock, "r2")
	eventually(t, 20*time.Second, "second group caught up", func() error {
		m := scrape(t, r2.app.Addr())
		if m["replywatch_owned_partitions{topic=cs.chat}"] != 4 {
			return errors.New("partitions not owned yet")
		}
		return expectFigures(m, wantFigures)
	})
	// Every partition has read to its end (records the state has applied
	// are dropped as they are decoded, before a step could apply them):
	// none may have been applied.
	eventually(t, 20*time.Second, "second group read every record", func() error {
		m := scrape(t, r2.app.Addr())
		for p := range testTopics["cs.chat"] {
			k := fmt.Sprintf("replywatch_consumer_lag_messages{partition=%d,topic=cs.chat}", p)
			if v, ok := m[k]; !ok || v != 0 {
				return fmt.Errorf("%s = %v (exported: %v)", k, v, ok)
			}
		}
		return nil
	})
	if m := scrape(t, r2.app.Addr()); m["replywatch_events_total{result=applied,topic=cs.chat}"] != 0 {
		t.Errorf("re-read records were applied again: %v", m["replywatch_events_total{result=applied,topic=cs.chat}"])
	}
	if after := len(readAlerts(t, e.broker)); after != before {
		t.Errorf("alert records went from %d to %d after redelivery", before, after)
	}
}

// Invariant 2: when the alerts topic does not accept alerts and the replica
// dies, the next owner sends them with the same ids.
func TestAlertsSurviveCrashBeforeDelivery(t *testing.T) {
	e := newEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	e.kafka.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !failing.Load() || len(pr.Topics) == 0 || pr.Topics[0].Topic != "cs.alerts" {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	produce(t, e.broker, "cs.chat", day()...)
	clock := &fakeClock{t: endOfDay}
	cfg := testConfig(t, e.broker, e.redis, "g1")
	cfg.Alerts.Lease = time.Hour // only a new owner re-sends
	r := start(t, cfg, clock, "r1")
	eventually(t, 30*time.Second, "figures with alerts undelivered", func() error {
		m := scrape(t, r.app.Addr())
		if m["replywatch_alert_deliveries_total{result=error,sink=kafka}"] == 0 {
			return errors.New("no failed delivery yet")
		}
		return expectFigures(m, wantFigures)
	})
	r.cancel() // the replica dies with its alerts in the outbox
	<-r.done
	r.done <- nil
	if n := len(readAlerts(t, e.broker)); n != 0 {
		t.Fatalf("%d alerts reached the topic while it refused them", n)
	}
	failing.Store(false)
	start(t, cfg, clock, "r2")
	waitForAlerts(t, e.broker, 30*time.Second) // re-sent by the next owner
}

// Invariant 4: after a rebalance hands a partition to another consumer, the
// one that lost it cannot write its state.
func TestLostPartitionIsFenced(t *testing.T) {
	e := newEnv(t)
	clock := &fakeClock{t: endOfDay}
	a := start(t, testConfig(t, e.broker, e.redis, "g"), clock, "a")
	eventually(t, 20*time.Second, "a owns every partition", func() error {
		if v := scrape(t, a.app.Addr())["replywatch_owned_partitions{topic=cs.chat}"]; v != 4 {
			return fmt.Errorf("a owns %v", v)
		}
		return nil
	})
	b := start(t, testConfig(t, e.broker, e.redis, "g"), clock, "b")
	eventually(t, 30*time.Second, "partitions shared after the rebalance", func() error {
		va := scrape(t, a.app.Addr())["replywatch_owned_partitions{topic=cs.chat}"]
		vb := scrape(t, b.app.Addr())["replywatch_owned_partitions{topic=cs.chat}"]
		if va == 0 || vb == 0 || va+vb != 4 {
			return fmt.Errorf("a owns %v, b owns %v", va, vb)
		}
		return nil
	})
	// Every partition is now claimed with the newer generation's token; a
	// write with the first generation's token is refused and changes nothing.
	store := a.app.Store
	ctx := context.Background()
	for p := 0; p < 4; p++ {
		scope := state.Scope("chat", p)
		_, err := store.Apply(ctx, scope, &state.Batch{Token: 1, Offset: 1 << 40,
			States: map[string][]byte{"s1/ghost": []byte("x")}, Now: time.Now().UnixMilli()})
		if !errors.Is(err, state.ErrFenced) {
			t.Errorf("%s: write with the old token: %v, want ErrFenced", scope, err)
		}
		loaded, err := store.Load(ctx, scope, []string{"s1/ghost"}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := loaded.States["s1/ghost"]; ok {
			t.Errorf("%s: fenced write left state behind", scope)
		}
	}
}

// Invariant 5: bad input lands in the topic's .DLT with its reason and the
// partition keeps flowing.
func TestBadInputIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	bad := [][]byte{
		[]byte(`not json`),
		[]byte(`{"event_id":"x1","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","sender":"buyer"}`),
		[]byte(`{"event_id":"x2","type":"teleport","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1"}`),
		[]byte(`{"event_id":"x3","type":"message","ts":"2030-01-01T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`),
		[]byte(`{"event_id":"x4","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer","text":"` + strings.Repeat("长", 30000) + `"}`),
	}
	produceRaw(t, e.broker, "cs.chat", "s1/b1", bad...)
	produce(t, e.broker, "cs.chat", day()...)
	clock := &fakeClock{t: endOfDay}
	r := start(t, testConfig(t, e.broker, e.redis, "g1"), clock, "r1")
	eventually(t, 20*time.Second, "valid events after bad ones", func() error {
		return expectFigures(scrape(t, r.app.Addr()), wantFigures)
	})
	dl := readTopic(t, e.broker, "cs.chat.DLT", 500*time.Millisecond)
	if len(dl) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(bad))
	}
	wantReasons := []string{"bad_json", "missing_field: buyer_id", "unknown_type", "future_ts", "oversize"}
	for i, m := range dl {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if !strings.HasPrefix(h["rw-error"], strings.Split(wantReasons[i], ":")[0]) || !strings.Contains(h["rw-error"], strings.TrimSpace(lastPart(wantReasons[i]))) {
			t.Errorf("dead letter %d: rw-error %q, want %q", i, h["rw-error"], wantReasons[i])
		}
		if h["rw-topic"] != "cs.chat" || h["rw-partition"] == "" || h["rw-offset"] == "" {
			t.Errorf("dead letter %d headers: %v", i, h)
		}
		if string(m.Value) != string(bad[i]) || string(m.Key) != "s1/b1" {
			t.Errorf("dead letter %d does not keep the original key and value", i)
		}
	}
	m := scrape(t, r.app.Addr())
	for _, reason := range []string{"bad_json", "missing_field", "unknown_type", "future_ts", "oversize"} {
		if m["replywatch_dead_letters_total{reason="+reason+",topic=cs.chat}"] != 1 {
			t.Errorf("dead_letters_total{reason=%s} = %v, want 1", reason, m["replywatch_dead_letters_total{reason="+reason+",topic=cs.chat}"])
		}
	}
}

func lastPart(s string) string {
	if i := strings.Index(s, ":"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// A consumer group deleted and recreated starts its generations again at 1,
// below the tokens its predecessor left in Redis: once no member of a newer
// generation can still be alive, the new group takes the partitions over.
func TestRecreatedGroupTakesOver(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig(t, e.broker, e.redis, "fresh")
	old, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p := 0; p < 4; p++ {
		if _, err := old.Store.Claim(context.Background(), state.Scope("chat", p), 50); err != nil {
			t.Fatal(err)
		}
	}
	produce(t, e.broker, "cs.chat", day()...)
	r := start(t, cfg, &fakeClock{t: endOfDay}, "r1")
	// Takeover waits out 2 × rebalance timeout + session timeout (6 s here).
	eventually(t, 40*time.Second, "figures after the takeover", func() error {
		return expectFigures(scrape(t, r.app.Addr()), wantFigures)
	})
}
