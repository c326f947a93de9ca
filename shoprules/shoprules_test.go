package shoprules_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/shoprules"
	"github.com/replywatch/replywatch/state"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func at(hms string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", "2026-11-24 "+hms, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

var testRules = &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(shanghai, hours.Range{Start: 480, End: 1380}),
	Thresholds: []time.Duration{3 * time.Minute}, Seats: detectors.SeatRules{IdleAfter: 3 * time.Minute,
		AwayAfter: 10 * time.Minute, UncoveredAfter: time.Minute, UncoveredAfterInferred: 5 * time.Minute,
		InferredOfflineAfter: 30 * time.Minute}}

// failingSink refuses deliveries while failing is set, like a broker that
// is down, and otherwise passes them to the real alerts topic.
type failingSink struct {
	shoprules.Sink
	failing bool
}

func (s *failingSink) Deliver(ctx context.Context, ds []state.Delivery) error {
	if s.failing {
		return errors.New("alerts topic unavailable")
	}
	return s.Sink.Deliver(ctx, ds)
}

// replica is one reporter-lease contender: each tick takes or renews the
// lease and, holding it, evaluates, as metrics.Reporter does.
type replica struct {
	name  string
	store *state.Redis
	ev    *shoprules.Evaluator
	sink  *failingSink
}

func (r *replica) tick(t *testing.T, now time.Time) bool {
	t.Helper()
	ctx := context.Background()
	held, err := r.store.Lease(ctx, "reporter", r.name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !held {
		r.ev.Drop()
		return false
	}
	figs, err := r.store.Figures(ctx, []string{"chat.0", "presence.0"}, func(string) string { return now.In(shanghai).Format(time.DateOnly) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ev.Evaluate(ctx, figs, now); err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	return true
}

// TestFailoverFiresOnceWithTheSameID kills the lease holder mid-spell, and
// later after it wrote an alert it could not deliver: each time the next
// holder fires or delivers the alert once, with the id the spell's start
// gives, and no spell fires twice.
func TestFailoverFiresOnceWithTheSameID(t *testing.T) {
	ctx := context.Background()
	broker, _ := testenv.Kafka(t, map[string]int{"cs.alerts": 1})
	client, err := state.Dial(testenv.Redis(t), state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewRedis(client, "rw", 72*time.Hour)
	sinks := kafkasink.New([]string{broker}, "cs.alerts")
	t.Cleanup(func() { sinks.Close() })
	newReplica := func(name string) *replica {
		sink := &failingSink{Sink: sinks}
		return &replica{name: name, store: store, sink: sink, ev: &shoprules.Evaluator{Store: store, Sink: sink,
			Rules: func(string) *detectors.Rules { return testRules }, Language: "en", Log: zaptest.NewLogger(t).Named(name)}}
	}
	apply := func(scope string, offset int64, b *state.Batch) {
		t.Helper()
		b.Token, b.Offset = 1, offset
		if _, err := store.Apply(ctx, scope, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"chat.0", "presence.0"} {
		if _, err := store.Claim(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
	}
	// a1 is online from 09:00; buyer b1 waits on a1 from 10:00.
	apply("presence.0", 0, &state.Batch{Figures: []detectors.FigureDelta{
		{Shop: "s1", Field: detectors.AgentField("a1", detectors.SeatField("online")), Delta: 1},
		{Shop: "s1", Field: detectors.AgentField("a1", detectors.FieldSeatSince), Delta: at("09:00:00").UnixMilli()},
		{Shop: "s1", Field: detectors.AgentField("a1", detectors.FieldSeatAt), Delta: at("09:00:00").UnixMilli()},
	}})
	wait := func(offset int64, buyer, start string, add bool) {
		d := int64(-1)
		if add {
			d = 1
		}
		ms := at(start).UnixMilli()
		apply("chat.0", offset, &state.Batch{
			Figures: []detectors.FigureDelta{{Shop: "s1", Field: detectors.AgentField("a1", detectors.FieldWaiting), Delta: d}},
			Waits: []detectors.WaitOp{{Shop: "s1", Buyer: buyer, Start: ms, Add: add},
				{Shop: "s1", Agent: "a1", Buyer: buyer, Start: ms, Add: add}}})
	}
	wait(0, "b1", "10:00:00", true)

	a, b := newReplica("a"), newReplica("b")
	if !a.tick(t, at("10:02:00")) || b.tick(t, at("10:02:00")) {
		t.Fatal("a did not take the lease alone")
	}
	// a dies mid-spell, without giving the lease up. b takes over once the
	// lease lapses and fires the pending spell when it is due.
	testenv.Eventually(t, 5*time.Second, "b takes the lapsed lease", func() error {
		if !b.tick(t, at("10:03:30")) {
			return errors.New("lease still held")
		}
		return nil
	})
	for _, now := range []string{"10:03:35", "10:03:40", "10:04:00"} {
		b.tick(t, at(now))
	}
	// a1 replies at 10:04:10 to b1: the spell resolves.
	apply("chat.0", 1, &state.Batch{Activity: []detectors.Activity{{Shop: "s1", Agent: "a1", At: at("10:04:10").UnixMilli()}}})
	wait(2, "b1", "10:00:00", false)
	b.tick(t, at("10:04:15"))

	// A second spell: b2 waits from 10:05. b writes its firing alert but the
	// alerts topic refuses it, and b dies. a comes back and takes over.
	wait(3, "b2", "10:05:00", true)
	b.tick(t, at("10:07:00"))
	b.sink.failing = true
	b.tick(t, at("10:08:05"))
	testenv.Eventually(t, 5*time.Second, "a takes the lapsed lease", func() error {
		if !a.tick(t, at("10:08:10")) {
			return errors.New("lease still held")
		}
		return nil
	})
	a.tick(t, at("10:08:15"))

	// a1 replies at 10:08:30. b, woken up with its old token, would resolve
	// the spell, but can write and deliver nothing; a resolves it.
	apply("chat.0", 4, &state.Batch{Activity: []detectors.Activity{{Shop: "s1", Agent: "a1", At: at("10:08:30").UnixMilli()}}})
	b.sink.failing = false
	figs, err := store.Figures(ctx, []string{"chat.0", "presence.0"}, func(string) string { return "2026-11-24" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ev.Evaluate(ctx, figs, at("10:09:00")); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("the replaced holder's evaluation: %v, want ErrFenced", err)
	}
	a.tick(t, at("10:09:05"))

	spell := func(start string) string {
		return alerting.ID(alerting.KindIdleSeat, "s1", "a1", strconv.FormatInt(at(start).UnixMilli(), 10))
	}
	want := []string{
		spell("10:00:00") + " firing", spell("10:00:00") + " resolved/replied",
		spell("10:05:00") + " firing", spell("10:05:00") + " resolved/replied",
	}
	var got []string
	for _, al := range readAlerts(t, broker) {
		s := al.ID + " " + al.Status
		if al.Reason != "" {
			s += "/" + al.Reason
		}
		got = append(got, s)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alerts topic holds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func readAlerts(t *testing.T, broker string) []alerting.Alert {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "cs.alerts", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []alerting.Alert
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return out
		}
		var a alerting.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatal(fmt.Errorf("alert record %s: %w", m.Value, err))
		}
		if a.Kind != alerting.KindIdleSeat || string(m.Key) != a.ShopID || a.Severity != alerting.Warning {
			t.Errorf("unexpected alert record %s keyed %s", m.Value, m.Key)
		}
		out = append(out, a)
	}
}
