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

	"github.com/redis/go-redis/v9"
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

// leaseTTL is long enough that a lease never lapses by the wall clock
// during a test: a holder's death is played by lapse.
const leaseTTL = time.Hour

// lapse ends the reporter lease as its running out after its holder died
// would: the next contender takes it.
func lapse(t *testing.T, client redis.UniversalClient) {
	t.Helper()
	if err := client.Del(context.Background(), "rw:lease:reporter").Err(); err != nil {
		t.Fatal(err)
	}
}

func (r *replica) tick(t *testing.T, now time.Time) bool {
	t.Helper()
	ctx := context.Background()
	held, err := r.store.Lease(ctx, "reporter", r.name, leaseTTL)
	if err != nil {
		t.Fatal(err)
	}
	if !held {
		r.ev.Drop()
		return false
	}
	scopes, err := r.store.Scopes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	figs, err := r.store.Figures(ctx, scopes, func(string) string { return now.In(shanghai).Format(time.DateOnly) })
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
	lapse(t, client)
	if !b.tick(t, at("10:03:30")) || a.tick(t, at("10:03:30")) {
		t.Fatal("b did not take the lapsed lease alone")
	}
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
	if a.tick(t, at("10:07:00")) {
		t.Fatal("a took b's lease")
	}
	b.sink.failing = true
	b.tick(t, at("10:08:05"))
	lapse(t, client)
	if !a.tick(t, at("10:08:10")) {
		t.Fatal("a did not take the lapsed lease")
	}
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
		if al.Kind != alerting.KindIdleSeat || al.Severity != alerting.Warning {
			t.Errorf("unexpected alert %+v", al)
		}
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
		if string(m.Key) != a.ShopID {
			t.Errorf("unexpected alert record %s keyed %s", m.Value, m.Key)
		}
		out = append(out, a)
	}
}

// TestDayRulesSurviveFailover: effective_reply_risk and the perfunctory
// replies of an agent-day, judged on figures summed over two partitions,
// across two lease holders over Redis. The risk fires once, the new holder
// neither raises it again nor forgets to resolve it; the agent's
// perfunctory replies, split between the partitions, alert once past the
// allowance, whichever holder sees them; the replaced holder writes
// nothing.
func TestDayRulesSurviveFailover(t *testing.T) {
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
			Rules: func(string) *detectors.Rules { return testRules }, Language: "en", Log: zaptest.NewLogger(t).Named(name),
			AlertBelow: func(string) float64 { return 0.6 }, PerfunctoryAfter: func(string) int { return 2 }}}
	}
	offsets := map[string]int64{}
	add := func(scope, field string, d int64) {
		t.Helper()
		b := &state.Batch{Token: 1, Offset: offsets[scope],
			Figures: []detectors.FigureDelta{{Shop: "s1", Day: "2026-11-24", Field: field, Delta: d}}}
		offsets[scope]++
		if _, err := store.Apply(ctx, scope, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"chat.0", "chat.1", "presence.0"} {
		if _, err := store.Claim(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
	}
	perf := detectors.AgentField("a1", detectors.FlagField("perfunctory"))
	// 120 buyers by noon, 20 effectively replied: the day projects to ~500
	// at 0.17. a1 sent two perfunctory replies, the allowance.
	for _, s := range []string{"chat.0", "chat.1"} {
		add(s, detectors.FieldConsulting, 60)
		add(s, detectors.FieldEffective, 10)
	}
	add("chat.0", perf, 2)
	a, b := newReplica("a"), newReplica("b")
	if !a.tick(t, at("12:00:00")) || b.tick(t, at("12:00:00")) {
		t.Fatal("a did not take the lease alone")
	}
	a.tick(t, at("12:00:15"))
	// a dies; b takes over: the risk is not raised again. a1's third
	// perfunctory reply, to a buyer on the other partition, alerts once.
	lapse(t, client)
	if !b.tick(t, at("12:00:30")) || a.tick(t, at("12:00:30")) {
		t.Fatal("b did not take the lapsed lease alone")
	}
	add("chat.1", perf, 1)
	b.tick(t, at("12:00:45"))
	add("chat.1", perf, 1)
	b.tick(t, at("12:01:00"))
	// b dies in turn; 70 more buyers were effectively replied (0.75): a,
	// back, resolves the risk b inherited. b, with its old token, writes
	// and delivers nothing.
	lapse(t, client)
	add("chat.0", detectors.FieldEffective, 70)
	if !a.tick(t, at("12:01:15")) {
		t.Fatal("a did not take the lapsed lease")
	}
	a.tick(t, at("12:01:30"))
	// a2 passes the allowance: b, with its old token, would alert it.
	add("chat.0", detectors.AgentField("a2", detectors.FlagField("perfunctory")), 3)
	figs, err := store.Figures(ctx, []string{"chat.0", "chat.1"}, func(string) string { return "2026-11-24" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ev.Evaluate(ctx, figs, at("12:01:45")); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("the replaced holder's evaluation: %v, want ErrFenced", err)
	}
	a.tick(t, at("12:02:00"))
	a.tick(t, at("12:02:15"))

	risk := alerting.ID(alerting.KindEffectiveReplyRisk, "s1", "2026-11-24")
	perfID := alerting.ID(alerting.KindAbusiveReply, "s1", "a1", "2026-11-24", alerting.ReasonPerfunctory)
	perfA2 := alerting.ID(alerting.KindAbusiveReply, "s1", "a2", "2026-11-24", alerting.ReasonPerfunctory)
	want := []string{risk + " firing", perfID + " firing", risk + " resolved/recovered", perfA2 + " firing"}
	var got []string
	for _, al := range readAlerts(t, broker) {
		s := al.ID + " " + al.Status
		if al.Reason != "" && al.Reason != alerting.ReasonPerfunctory {
			s += "/" + al.Reason
		}
		got = append(got, s)
		switch al.ID {
		case perfID:
			if al.Kind != alerting.KindAbusiveReply || al.Reason != alerting.ReasonPerfunctory || al.AgentID != "a1" || al.BuyerID != "" ||
				al.Category != "perfunctory" || !strings.Contains(al.Summary, "agent a1") {
				t.Errorf("perfunctory alert %+v", al)
			}
		case risk:
			if al.Kind != alerting.KindEffectiveReplyRisk || al.AgentID != "" {
				t.Errorf("risk alert %+v", al)
			}
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alerts topic holds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
