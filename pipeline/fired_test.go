package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/state"
)

// replywatch_timers_fired_seconds says up to when a partition's timers
// fired, not only that its clock moved: after every step no timer due
// before it is left in the store. A step fires at most TimerBatch timers,
// so a partition with more due at once fires them over several steps; the
// signal stops at the earliest one left each time, and reaches the
// partition clock once none is due before it.
func TestTimersFiredSignal(t *testing.T) {
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 1, "cs.alerts": 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sinks := kafkasink.New([]string{broker}, "cs.alerts")
	defer sinks.Close()
	store := state.NewMemory()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, metrics.NewProcess(reg))
	wall := stepStart.Add(time.Hour)
	p := New(Options{
		Config: Config{Brokers: []string{broker}, Topics: map[event.Stream]string{event.Chat: "cs.chat"},
			TimerBatch: 3, Grace: 2 * time.Second, Allowance: time.Second},
		Store:    store,
		Handlers: map[event.Stream]Handler{event.Chat: stepRules()},
		Alerts:   sinks, DLT: sinks,
		Metrics: m,
		Now:     func() time.Time { return wall },
	})
	w := p.newWorker(nil, "cs.chat", event.Chat, 0, 1)
	if _, err := store.Claim(ctx, w.scope, w.token); err != nil {
		t.Fatal(err)
	}
	w.courier.start(ctx)
	defer w.courier.stop()
	fired := func() time.Time {
		return time.UnixMilli(int64(testutil.ToFloat64(m.TimersFired.WithLabelValues("cs.chat", "0")) * 1000))
	}
	// left returns how many timers due before t the store still holds.
	left := func(t0 time.Time) int {
		t.Helper()
		l, err := store.Load(ctx, w.scope, nil, t0.UnixMilli()-1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Due)
	}
	process := func() {
		t.Helper()
		if err := w.process(ctx); err != nil {
			t.Fatal(err)
		}
		if n := left(fired()); n != 0 {
			t.Fatalf("%d timers due before the signal %s are still in the store", n, fired().Format(time.TimeOnly))
		}
	}

	// A backlog: eight buyers write in the first 70 s, with records still
	// to read after them. The clock follows the event times; no deadline
	// has passed.
	w.behind = true
	for i := range 8 {
		ev := event.Event{EventID: fmt.Sprint("e", i), Type: event.TypeMessage, TS: event.Time{Time: stepStart.Add(time.Duration(i) * 10 * time.Second)},
			ShopID: "s1", BuyerID: fmt.Sprint("b", i), Sender: event.SenderBuyer}
		v, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		w.cur.msgs = append(w.cur.msgs, kafka.Message{Topic: "cs.chat", Offset: int64(i), HighWaterMark: 100, Value: v, Time: ev.TS.Time})
	}
	process()
	if got, want := fired(), stepStart.Add(70*time.Second-time.Second); !got.Equal(want) {
		t.Fatalf("after the backlog's batch the timers fired up to %s, want the partition clock %s", got.Format(time.TimeOnly), want.Format(time.TimeOnly))
	}

	// Caught up: the clock jumps to the wall clock less the grace, an hour
	// on, when every buyer's warning and breaches are due.
	w.behind = false
	now := wall.Add(-2 * time.Second)
	if left(now) <= 3 {
		t.Fatalf("%d timers due, want more than one step fires", left(now))
	}
	prev, steps := fired(), 0
	for fired().Before(now) {
		w.cur.reset()
		process()
		steps++
		if got := fired(); !got.After(prev) || got.After(now) {
			t.Fatalf("step %d: timers fired up to %s after %s, want later and not past the clock %s",
				steps, got.Format(time.TimeOnly), prev.Format(time.TimeOnly), now.Format(time.TimeOnly))
		} else if got.Before(now) && left(now) == 0 {
			t.Fatalf("step %d: signal at %s while no timer is left before the clock", steps, got.Format(time.TimeOnly))
		}
		prev = fired()
		if steps > 100 {
			t.Fatal("the timers never all fired")
		}
	}
	if steps < 2 {
		t.Errorf("every timer fired in %d step, want several of at most 3", steps)
	}
}
