package detectors

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

func joinEngine() *JoinEngine {
	return &JoinEngine{
		Rules: func(string) *Rules {
			r := pddRules()
			r.PriorityWarnBefore = 90 * time.Second
			return r
		},
		Orders:   orderRules,
		PerAgent: true,
	}
}

// jstep is one fact of a join script: "buyer", "buyer!" (complaint
// intent), "agent", an order event type, or "advance" the clock.
type jstep struct {
	kind, at, agent, order string
}

func jb(at string) jstep             { return jstep{kind: "buyer", at: at} }
func jbOf(at, agent string) jstep    { return jstep{kind: "buyer", at: at, agent: agent} }
func jcomplain(at string) jstep      { return jstep{kind: "buyer!", at: at} }
func jr(at, agent string) jstep      { return jstep{kind: "agent", at: at, agent: agent} }
func jo(typ, order, at string) jstep { return jstep{kind: typ, at: at, order: order} }
func jadvance(at string) jstep       { return jstep{kind: "advance", at: at} }
func (s jstep) id(i int) string      { return fmt.Sprintf("e%d-%s-%s", i, s.kind, s.at) }
func (s jstep) isAdvance() bool      { return s.kind == "advance" }
func (s jstep) time() time.Time      { return clockAt(shanghai, s.at) }
func joinTime(at string) event.Time  { return event.Time{Time: clockAt(shanghai, at)} }
func joinMs(at string) int64         { return clockAt(shanghai, at).UnixMilli() }

func (s jstep) event(i int) *event.Event {
	ev := &event.Event{EventID: s.id(i), Type: s.kind, TS: joinTime(s.at), ShopID: "s1", BuyerID: "b1",
		AgentID: s.agent, OrderID: s.order}
	switch s.kind {
	case "buyer", "buyer!":
		ev.Type, ev.Sender = event.TypeMessage, event.SenderBuyer
		if s.kind == "buyer!" {
			ev.Intent = event.IntentComplaint
		}
	case "agent":
		ev.Type, ev.Sender = event.TypeMessage, event.SenderAgent
	}
	return ev
}

// runJoin applies the script through a codec round trip after every step
// and returns the alerts (kind/severity/status[/reason]@at) and the net
// figures by "day field".
func runJoin(t *testing.T, e *JoinEngine, steps []jstep) ([]alerting.Alert, map[string]int64) {
	t.Helper()
	b := &BuyerJoin{Shop: "s1", Buyer: "b1"}
	fx := &Effects{}
	for i, s := range steps {
		if s.isAdvance() {
			e.Advance(b, s.time(), fx)
		} else if res := e.Event(b, s.event(i), fx); res != Applied {
			t.Fatalf("step %d (%s at %s): %v, want applied", i, s.kind, s.at, res)
		}
		data, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back := &BuyerJoin{Shop: "s1", Buyer: "b1"}
		if err := back.UnmarshalBinary(data); err != nil {
			t.Fatalf("step %d: decoding: %v", i, err)
		}
		if again, _ := back.MarshalBinary(); string(again) != string(data) {
			t.Fatalf("step %d: the state does not encode the same after a round trip", i)
		}
		b = back
	}
	return fx.Alerts, joinFigures(fx.Figures)
}

func joinFigures(fs []FigureDelta) map[string]int64 {
	out := netFigures(&Effects{Figures: fs})
	maps.DeleteFunc(out, func(_ string, v int64) bool { return v == 0 })
	return out
}

func alertLine(a alerting.Alert) string {
	s := a.Kind + "/" + a.Severity + "/" + a.Status
	if a.Reason != "" {
		s += "/" + a.Reason
	}
	return s + "@" + a.At.In(shanghai).Format("15:04:05")
}

var joinCases = []struct {
	name    string
	steps   []jstep
	alerts  []string
	figures map[string]int64
}{
	{"a consulting buyer who pays is credited to the last agent before payment",
		[]jstep{jbOf("10:00:00", "a1"), jr("10:00:20", "a1"), jr("10:30:00", "a2"), jo("order_paid", "o1", "11:00:00"),
			jr("11:30:00", "a3")},
		nil, map[string]int64{"2026-11-24 converted": 1, "2026-11-24 a:a2:converted": 1}},
	{"a payment before consulting does not convert",
		[]jstep{jo("order_paid", "o1", "09:00:00"), jb("10:00:00"), jr("10:00:20", "a1")},
		nil, map[string]int64{}},
	{"a payment past the window does not convert",
		[]jstep{jb("10:00:00"), jr("10:00:20", "a1"), jo("order_paid", "o1", "2026-11-25 10:00:01")},
		nil, map[string]int64{}},
	{"a payment at the window's end converts, for the consulting day",
		[]jstep{jb("10:00:00"), jr("10:00:20", "a1"), jo("order_grouped", "o1", "2026-11-25 10:00:00")},
		nil, map[string]int64{"2026-11-24 converted": 1, "2026-11-24 a:a1:converted": 1}},
	{"a message outside service hours is not consulting",
		[]jstep{jb("07:00:00"), jr("07:00:20", "a1"), jo("order_paid", "o1", "07:30:00")},
		nil, map[string]int64{}},
	{"paid without a human reply converts for the shop only",
		[]jstep{jb("10:00:00"), jo("order_paid", "o1", "10:01:00"), jr("10:02:00", "a1")},
		nil, map[string]int64{"2026-11-24 converted": 1}},
	{"a payment read before the chat converts and credits the same agent",
		[]jstep{jo("order_paid", "o1", "11:00:00"), jb("10:00:00"), jr("10:00:20", "a1"), jr("10:30:00", "a2")},
		nil, map[string]int64{"2026-11-24 converted": 1, "2026-11-24 a:a2:converted": 1}},
	{"an open refund escalates the wait 90 s ahead, resolved on reply",
		[]jstep{jo("refund_requested", "o1", "09:00:00"), jbOf("10:00:00", "a1"), jadvance("10:01:30"),
			jadvance("10:01:30.001"), jr("10:02:00", "a1")},
		[]string{"reply_warning/critical/firing/priority@10:01:30", "reply_warning/critical/resolved/replied@10:02:00"}, map[string]int64{}},
	{"a reply before the escalation's due time: nothing",
		[]jstep{jo("dispute_opened", "o1", "09:00:00"), jb("10:00:00"), jr("10:01:30", "a1"), jadvance("10:05:00")},
		nil, map[string]int64{}},
	{"a refund completed before the wait: not a priority",
		[]jstep{jo("refund_requested", "o1", "09:00:00"), jo("refund_completed", "o1", "09:30:00"), jb("10:00:00"),
			jadvance("10:05:00")},
		nil, map[string]int64{}},
	{"a dispute closed before the due time: not a priority",
		[]jstep{jo("complaint_opened", "o1", "09:00:00"), jb("10:00:00"), jo("dispute_closed", "o1", "10:01:00"),
			jadvance("10:05:00")},
		nil, map[string]int64{}},
	{"complaint intent makes the buyer a priority for the rest of the day",
		[]jstep{jcomplain("10:00:00"), jr("10:00:10", "a1"), jb("15:00:00"), jadvance("15:02:00"), jr("15:03:00", "a1"),
			jb("2026-11-25 10:00:00"), jadvance("2026-11-25 10:05:00")},
		[]string{"reply_warning/critical/firing/priority@15:01:30", "reply_warning/critical/resolved/replied@15:03:00"},
		map[string]int64{}},
	{"a late reply from before the due time retracts the escalation",
		[]jstep{jo("refund_requested", "o1", "09:00:00"), jb("10:00:00"), jadvance("10:02:00"), jr("10:01:00", "a1")},
		[]string{"reply_warning/critical/firing/priority@10:01:30", "reply_warning/critical/resolved/retracted@10:01:30"},
		map[string]int64{}},
	{"a late refund completion from before the due time retracts the escalation",
		[]jstep{jo("refund_requested", "o1", "09:00:00"), jb("10:00:00"), jadvance("10:02:00"),
			jo("refund_rejected", "o1", "10:00:30")},
		[]string{"reply_warning/critical/firing/priority@10:01:30", "reply_warning/critical/resolved/retracted@10:01:30"},
		map[string]int64{}},
	{"a late refund request fires the escalation it makes due",
		[]jstep{jb("10:00:00"), jadvance("10:02:00"), jo("refund_requested", "o1", "09:00:00"), jadvance("10:02:00.001")},
		[]string{"reply_warning/critical/firing/priority@10:01:30"}, map[string]int64{}},
	{"a reply known to come after the due time fires and resolves at once",
		[]jstep{jo("refund_requested", "o1", "09:00:00"), jb("10:00:00"), jr("10:02:00", "a1")},
		[]string{"reply_warning/critical/firing/priority@10:01:30", "reply_warning/critical/resolved/replied@10:02:00"},
		map[string]int64{}},
}

func TestJoin(t *testing.T) {
	for _, c := range joinCases {
		t.Run(c.name, func(t *testing.T) {
			as, figs := runJoin(t, joinEngine(), c.steps)
			var got []string
			for _, a := range as {
				got = append(got, alertLine(a))
			}
			if !slices.Equal(got, c.alerts) {
				t.Errorf("alerts\n got %q\nwant %q", got, c.alerts)
			}
			if !maps.Equal(figs, c.figures) {
				t.Errorf("figures\n got %v\nwant %v", figs, c.figures)
			}
		})
	}
}

// The escalation's record: a critical reply_warning for the first
// threshold, from the wait start, due at the threshold, to the assigned
// agent, with an id of its own that stays the same on every derivation.
// bad_review goes to the agent who last served the buyer in chat when the
// review names none; an order's second review raises nothing.
func TestJoinBadReview(t *testing.T) {
	e := joinEngine()
	b := &BuyerJoin{Shop: "s1", Buyer: "b1"}
	fx := &Effects{}
	review := func(id, order, at string, rating int, agent string) *event.Event {
		return &event.Event{EventID: id, Type: event.TypeReviewPosted, TS: joinTime(at), ShopID: "s1", BuyerID: "b1",
			OrderID: order, Rating: rating, AgentID: agent}
	}
	steps := []*event.Event{
		jo("order_paid", "o1", "09:00:00").event(0),
		jb("10:00:00").event(1), jr("10:01:00", "a1").event(2), jr("10:05:00", "a2").event(3),
		review("r1", "o1", "11:00:00", 1, ""),
		review("r2", "o1", "11:05:00", 1, ""), // the same order again
		review("r3", "o2", "11:10:00", 5, ""), // a good one
		review("r4", "o3", "11:20:00", 2, "a9"),
	}
	for _, ev := range steps {
		e.Event(b, ev, fx)
	}
	var got []string
	for _, a := range fx.Alerts {
		if a.Kind == alerting.KindBadReview {
			got = append(got, a.OrderID+":"+a.AgentID+"@"+a.At.In(shanghai).Format("15:04"))
			if a.ID != alerting.ID(alerting.KindBadReview, "s1", "b1", a.OrderID) || a.Severity != alerting.Critical {
				t.Errorf("record %+v", a)
			}
		}
	}
	if want := []string{"o1:a2@11:00", "o3:a9@11:20"}; !slices.Equal(got, want) {
		t.Errorf("bad reviews %q, want %q", got, want)
	}
}

func TestJoinEscalationRecord(t *testing.T) {
	as, _ := runJoin(t, joinEngine(), []jstep{jo("dispute_opened", "o1", "09:00:00"), jbOf("10:00:00", "a7"),
		jadvance("10:01:31"), jr("10:04:00", "a7")})
	if len(as) != 2 {
		t.Fatalf("got %d alerts, want a firing and a resolved one", len(as))
	}
	f := as[0]
	want := alerting.Alert{ID: PriorityAlertID("s1", "b1", 3*time.Minute, joinMs("10:00:00")), Kind: alerting.KindReplyWarning,
		Status: alerting.Firing, Severity: alerting.Critical, Threshold: "3m", Platform: "pdd", ShopID: "s1", BuyerID: "b1",
		AgentID: "a7", Reason: alerting.ReasonPriority}
	got := f
	got.Since, got.Due, got.At = time.Time{}, time.Time{}, time.Time{}
	if !reflectEqualAlert(got, want) {
		t.Errorf("firing record %+v, want %+v", got, want)
	}
	if !f.Since.Equal(clockAt(shanghai, "10:00:00")) || !f.Due.Equal(clockAt(shanghai, "10:03:00")) || !f.At.Equal(clockAt(shanghai, "10:01:30")) {
		t.Errorf("since/due/at %v %v %v", f.Since, f.Due, f.At)
	}
	if as[1].ID != f.ID || as[1].Status != alerting.Resolved {
		t.Errorf("resolved record %+v does not end the firing one", as[1])
	}
	ordinary := alerting.ID(alerting.KindReplyWarning, "3m", "s1", "b1", fmt.Sprint(joinMs("10:00:00")))
	if f.ID == ordinary {
		t.Error("the escalation has the ordinary warning's id")
	}
}

func reflectEqualAlert(a, b alerting.Alert) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// A day of one buyer's chat and orders: any arrival order of its facts,
// then the clock at the end of the day, gives the same figures and the
// same alerts still standing (not retracted) as event-time order
// (invariant 6 for the join); each fact delivered again changes nothing
// (invariant 1).
func TestJoinAnyOrder(t *testing.T) {
	day := []jstep{
		jo("refund_requested", "o1", "09:00:00"),
		jbOf("10:00:00", "a1"), jr("10:02:00", "a1"), // escalated, replied
		jo("refund_completed", "o1", "11:00:00"),
		jb("12:00:00"), jr("12:01:00", "a2"), // not a priority any more
		jo("order_paid", "o2", "12:30:00"), // converts, credited to a2
		jcomplain("14:00:00"), jr("14:00:30", "a2"),
		jb("16:00:00"), jr("16:05:00", "a3"), // priority by intent
		jo("dispute_opened", "o2", "17:00:00"),
		jb("18:00:00"), // never replied: escalated at 18:01:30
		jo("dispute_closed", "o2", "19:00:00"),
	}
	end := jadvance("23:59:00")
	standing := func(as []alerting.Alert) []string {
		final := map[string]alerting.Alert{}
		for _, a := range as {
			final[a.ID] = a
		}
		var out []string
		for id, a := range final {
			if a.Reason != alerting.ReasonRetracted {
				out = append(out, id[:8]+" "+a.Status+"/"+a.Reason)
			}
		}
		slices.Sort(out)
		return out
	}
	as, wantFigs := runJoin(t, joinEngine(), append(slices.Clone(day), end))
	want := standing(as)
	if len(want) != 3 {
		t.Fatalf("in event-time order: %d standing escalations %q, want 3", len(want), want)
	}
	if wantFigs["2026-11-24 a:a2:converted"] != 1 {
		t.Fatalf("in event-time order: figures %v, want the conversion credited to a2", wantFigs)
	}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		idx := rng.Perm(len(day))
		steps := make([]jstep, 0, len(day)+1)
		e := joinEngine()
		b := &BuyerJoin{Shop: "s1", Buyer: "b1"}
		fx := &Effects{}
		for _, i := range idx {
			steps = append(steps, day[i])
			if res := e.Event(b, day[i].event(i), fx); res != Applied {
				t.Fatalf("seed %d: %v", seed, res)
			}
			if rng.IntN(3) == 0 {
				e.Advance(b, day[i].time(), fx)
			}
			if rng.IntN(4) == 0 { // redelivery
				if res := e.Event(b, day[i].event(i), fx); res != Duplicate {
					t.Fatalf("seed %d: redelivered fact %v, want duplicate", seed, res)
				}
			}
		}
		e.Advance(b, end.time(), fx)
		if got := standing(fx.Alerts); !slices.Equal(got, want) {
			t.Errorf("seed %d: standing %q, want %q", seed, got, want)
		}
		if got := joinFigures(fx.Figures); !maps.Equal(got, wantFigs) {
			t.Errorf("seed %d: figures %v, want %v", seed, got, wantFigs)
		}
	}
}

// The state stays bounded however long a buyer talks, and what it keeps
// still derives the newest waits.
func TestJoinBounded(t *testing.T) {
	e := joinEngine()
	b := &BuyerJoin{Shop: "s1", Buyer: "b1"}
	fx := &Effects{}
	e.Event(b, jo("refund_requested", "o1", "08:00:00").event(0), fx)
	at := clockAt(shanghai, "08:30:00")
	for i := range 500 {
		ts := at.Add(time.Duration(i) * time.Minute)
		kind := "buyer"
		if i%2 == 1 {
			kind = "agent"
		}
		s := jstep{kind: kind, at: ts.In(shanghai).Format("2006-01-02 15:04:05"), agent: "a1"}
		e.Event(b, s.event(i+1), fx)
	}
	if len(b.facts) > maxJoinFacts || len(b.seen) > joinSeenIDs || len(b.esc) > maxJoinFacts {
		t.Fatalf("facts %d, seen %d, escalations %d: over their bounds", len(b.facts), len(b.seen), len(b.esc))
	}
	data, _ := b.MarshalBinary()
	if len(data) > 2048 {
		t.Errorf("state of %d bytes", len(data))
	}
	fx.Reset()
	s := jb("2026-11-24 22:00:00")
	e.Event(b, s.event(9999), fx)
	e.Advance(b, clockAt(shanghai, "22:02:00"), fx)
	if len(fx.Alerts) != 1 || fx.Alerts[0].Status != alerting.Firing {
		t.Errorf("after a long chat, a new wait gives %v, want one escalation", fx.Alerts)
	}
}

func TestJoinCodecCorrupt(t *testing.T) {
	as, _ := runJoin(t, joinEngine(), []jstep{jo("refund_requested", "o1", "09:00:00"), jbOf("10:00:00", "a1"),
		jadvance("10:02:00"), jo("order_paid", "o2", "10:30:00"), jr("10:40:00", "a2")})
	if len(as) == 0 {
		t.Fatal("the script fired nothing")
	}
	b := &BuyerJoin{Shop: "s1", Buyer: "b1"}
	e := joinEngine()
	for i, s := range []jstep{jo("refund_requested", "o1", "09:00:00"), jbOf("10:00:00", "a1"), jr("10:40:00", "a2")} {
		e.Event(b, s.event(i), &Effects{})
	}
	data, _ := b.MarshalBinary()
	for n := range len(data) {
		var x BuyerJoin
		if err := x.UnmarshalBinary(data[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(data), err)
		}
	}
	var x BuyerJoin
	if err := x.UnmarshalBinary(append(slices.Clone(data), 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing byte: %v", err)
	}
	bad := slices.Clone(data)
	bad[0] = 9
	if err := x.UnmarshalBinary(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 9: %v", err)
	}
}
