package detectors

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// reorderCases are conversations whose records arrive out of ts order
// (2026-11-24 Shanghai, PDD 08:00–23:00, 3m and 5m): each must give what the
// rules give for its events in ts order, corrections included.
var reorderCases = []struct {
	name    string
	ops     []op // in arrival order
	alerts  []string
	figures map[string]int64
	waits   []string // checked when not nil
}{
	{
		name: "a reply read before the buyer message it answers: both breaches and 471 s",
		ops:  []op{human("10:07:51", "a7"), buyer("10:00:00")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:5m firing - @10:04:00", "reply_breach:5m firing - @10:05:00",
			"reply_warning:3m resolved/replied a7 @10:07:51", "reply_breach:3m resolved/replied a7 @10:07:51",
			"reply_warning:5m resolved/replied a7 @10:07:51", "reply_breach:5m resolved/replied a7 @10:07:51"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"resp_ms", 471000, d24+"resp_n", 1),
		waits: []string{},
	},
	{
		name: "an earlier buyer message read second moves the wait start: a 3m breach and 210 s",
		ops:  []op{buyer("10:01:00"), buyer("10:00:00"), human("10:03:30", "a7")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:3m resolved/replied a7 @10:03:30", "reply_breach:3m resolved/replied a7 @10:03:30"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 2, d24+"breached:3m", 1, d24+"resp_ms", 210000, d24+"resp_n", 1),
		waits:   []string{"add 10:01:00", "remove", "add 10:00:00", "remove"},
	},
	{
		name: "a reply read last that ended the first wait: the second wait 10:05→10:15 keeps its breaches",
		ops:  []op{buyer("10:00:00"), buyer("10:05:00"), human("10:15:00", "a7"), human("10:01:00", "a7")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:5m firing - @10:04:00", "reply_breach:5m firing - @10:05:00",
			"reply_warning:3m resolved/replied a7 @10:15:00", "reply_breach:3m resolved/replied a7 @10:15:00",
			"reply_warning:5m resolved/replied a7 @10:15:00", "reply_breach:5m resolved/replied a7 @10:15:00",
			"reply_warning:3m resolved/retracted a7 @10:01:00", "reply_breach:3m resolved/retracted a7 @10:01:00",
			"reply_warning:5m resolved/retracted a7 @10:01:00", "reply_breach:5m resolved/retracted a7 @10:01:00",
			"reply_warning:3m firing a7 @10:07:00", "reply_breach:3m firing a7 @10:08:00",
			"reply_warning:5m firing a7 @10:09:00", "reply_breach:5m firing a7 @10:10:00",
			"reply_warning:3m resolved/replied a7 @10:15:00", "reply_breach:3m resolved/replied a7 @10:15:00",
			"reply_warning:5m resolved/replied a7 @10:15:00", "reply_breach:5m resolved/replied a7 @10:15:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 2, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"resp_ms", 60000+600000, d24+"resp_n", 2),
	},
	{
		name:    "an earlier reply read second answers within 30 s",
		ops:     []op{buyer("10:00:00"), human("10:01:00", "a7"), human("10:00:20", "a7")},
		alerts:  nil,
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"ans30", 1, d24+"resp_ms", 20000, d24+"resp_n", 1),
	},
	{
		name:    "a reply in the same millisecond as the buyer message answers it, whichever is read first",
		ops:     []op{human("10:00:00", "a7"), buyer("10:00:00"), advance("10:10:00")},
		alerts:  nil,
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"ans30", 1, d24+"resp_n", 1),
		waits:   []string{},
	},
	{
		name: "a wait open at midnight does not stop the next day's first message from starting that day's wait",
		ops: []op{buyer("22:00:00"), advance(d25 + "10:00:00"), buyer(d25 + "10:00:00"), advance(d25 + "10:05:00.001"),
			human(d25+"10:06:00", "a7")},
		alerts: alerts("reply_warning:3m firing - @22:02:00", "reply_breach:3m firing - @22:03:00",
			"reply_warning:5m firing - @22:04:00", "reply_breach:5m firing - @22:05:00",
			"long_no_reply firing - @2026-11-25 00:00:00",
			"reply_warning:3m firing - @2026-11-25 10:02:00", "reply_breach:3m firing - @2026-11-25 10:03:00",
			"reply_warning:5m firing - @2026-11-25 10:04:00", "reply_breach:5m firing - @2026-11-25 10:05:00",
			"reply_warning:3m resolved/replied a7 @2026-11-25 10:06:00", "reply_breach:3m resolved/replied a7 @2026-11-25 10:06:00",
			"reply_warning:5m resolved/replied a7 @2026-11-25 10:06:00", "reply_breach:5m resolved/replied a7 @2026-11-25 10:06:00",
			"long_no_reply resolved/replied a7 @2026-11-25 10:06:00",
			"reply_warning:3m resolved/replied a7 @2026-11-25 10:06:00", "reply_breach:3m resolved/replied a7 @2026-11-25 10:06:00",
			"reply_warning:5m resolved/replied a7 @2026-11-25 10:06:00", "reply_breach:5m resolved/replied a7 @2026-11-25 10:06:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"resp_ms", (12*60+6)*60000, d24+"resp_n", 1,
			"2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 breached:3m", 1, "2026-11-25 breached:5m", 1,
			"2026-11-25 resp_ms", 360000, "2026-11-25 resp_n", 1),
		waits: []string{"add 22:00:00", "remove", "add 2026-11-25 10:00:00", "remove"},
	},
}

func TestReorderedArrival(t *testing.T) {
	for _, c := range reorderCases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, pddRules(), false)
			h.run(c.ops)
			if got := h.rendered(); !slices.Equal(got, c.alerts) {
				t.Errorf("alerts:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.alerts, "\n     "))
			}
			if got := h.figures(); !maps.Equal(got, c.figures) {
				t.Errorf("figures:\n got %v\nwant %v", sorted(got), sorted(c.figures))
			}
			if c.waits != nil {
				if got := h.waits(); !slices.Equal(got, c.waits) {
					t.Errorf("waits: got %q, want %q", got, c.waits)
				}
			}
		})
	}
}

// R3 (each day on its own) with R12: the wait carried from an earlier day
// only fires long_no_reply and ends with the next human reply.
var dayCases = []struct {
	name    string
	rules   func() *Rules
	ops     []op
	alerts  []string
	figures map[string]int64
	waits   []string
}{
	{
		name: "a reply before the next day's first message ends yesterday's wait: nothing carried",
		ops:  []op{buyer("22:58:00"), human(d25+"08:00:00", "a7"), buyer(d25 + "09:00:00"), human(d25+"09:00:10", "a7")},
		alerts: alerts("reply_warning:3m firing - @23:00:00", "reply_breach:3m firing - @23:01:00",
			"reply_warning:5m firing - @23:02:00", "reply_breach:5m firing - @23:03:00",
			"long_no_reply firing - @2026-11-25 00:00:00",
			"reply_warning:3m resolved/replied a7 @2026-11-25 08:00:00", "reply_breach:3m resolved/replied a7 @2026-11-25 08:00:00",
			"reply_warning:5m resolved/replied a7 @2026-11-25 08:00:00", "reply_breach:5m resolved/replied a7 @2026-11-25 08:00:00",
			"long_no_reply resolved/replied a7 @2026-11-25 08:00:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"resp_ms", (9*60+2)*60000, d24+"resp_n", 1,
			"2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 ans30", 1, "2026-11-25 resp_ms", 10000, "2026-11-25 resp_n", 1),
		waits: []string{"add 22:58:00", "remove", "add 2026-11-25 09:00:00", "remove"},
	},
	{
		name: "a message outside the next day's window starts nothing: the old wait goes on",
		ops:  []op{buyer("22:58:00"), buyer(d25 + "07:00:00"), advance(d25 + "07:30:00")},
		alerts: alerts("reply_warning:3m firing - @23:00:00", "reply_breach:3m firing - @23:01:00",
			"reply_warning:5m firing - @23:02:00", "reply_breach:5m firing - @23:03:00",
			"long_no_reply firing - @2026-11-25 00:00:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1),
		waits:   []string{"add 22:58:00"},
	},
	{
		name:  "start_at_open: yesterday's wait is carried from the opening, and its 24 h alert still fires",
		rules: openAtRules,
		ops:   []op{buyer("22:58:00"), buyer(d25 + "07:00:00"), advance(d25 + "23:00:00")},
		alerts: alerts("reply_warning:3m firing - @23:00:00", "reply_breach:3m firing - @23:01:00",
			"reply_warning:5m firing - @23:02:00", "reply_breach:5m firing - @23:03:00",
			"long_no_reply firing - @2026-11-25 00:00:00",
			"reply_warning:3m firing - @2026-11-25 08:02:00", "reply_breach:3m firing - @2026-11-25 08:03:00",
			"reply_warning:5m firing - @2026-11-25 08:04:00", "reply_breach:5m firing - @2026-11-25 08:05:00",
			"long_no_reply firing - @2026-11-25 22:58:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			"2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 breached:3m", 1, "2026-11-25 breached:5m", 1),
		waits: []string{"add 22:58:00", "remove", "add 2026-11-25 08:00:00"},
	},
	{
		name: "a block on the new day cancels the carried wait too",
		ops:  []op{buyer("22:58:00"), buyer(d25 + "10:00:00"), block(d25 + "10:01:00"), advance(d25 + "23:00:00")},
		alerts: alerts("reply_warning:3m firing - @23:00:00", "reply_breach:3m firing - @23:01:00",
			"reply_warning:5m firing - @23:02:00", "reply_breach:5m firing - @23:03:00",
			"long_no_reply firing - @2026-11-25 00:00:00",
			"reply_warning:3m resolved/excluded - @2026-11-25 10:01:00", "reply_breach:3m resolved/excluded - @2026-11-25 10:01:00",
			"reply_warning:5m resolved/excluded - @2026-11-25 10:01:00", "reply_breach:5m resolved/excluded - @2026-11-25 10:01:00",
			"long_no_reply resolved/excluded - @2026-11-25 10:01:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1),
		waits:   []string{"add 22:58:00", "remove", "add 2026-11-25 10:00:00", "remove"},
	},
	{
		name: "the new day's wait read before yesterday's message it follows: the same as in ts order",
		ops:  []op{buyer(d25 + "10:00:00"), buyer("22:58:00"), human(d25+"10:01:00", "a7")},
		alerts: alerts("reply_warning:3m firing - @23:00:00", "reply_breach:3m firing - @23:01:00",
			"reply_warning:5m firing - @23:02:00", "reply_breach:5m firing - @23:03:00",
			"long_no_reply firing - @2026-11-25 00:00:00",
			"reply_warning:3m resolved/replied a7 @2026-11-25 10:01:00", "reply_breach:3m resolved/replied a7 @2026-11-25 10:01:00",
			"reply_warning:5m resolved/replied a7 @2026-11-25 10:01:00", "reply_breach:5m resolved/replied a7 @2026-11-25 10:01:00",
			"long_no_reply resolved/replied a7 @2026-11-25 10:01:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"resp_ms", (11*60+3)*60000, d24+"resp_n", 1,
			"2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 resp_ms", 60000, "2026-11-25 resp_n", 1),
	},
}

func TestDayBoundaries(t *testing.T) {
	for _, c := range dayCases {
		t.Run(c.name, func(t *testing.T) {
			rules := pddRules
			if c.rules != nil {
				rules = c.rules
			}
			h := newHarness(t, rules(), false)
			h.run(c.ops)
			if got := h.rendered(); !slices.Equal(got, c.alerts) {
				t.Errorf("alerts:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.alerts, "\n     "))
			}
			if got := h.figures(); !maps.Equal(got, c.figures) {
				t.Errorf("figures:\n got %v\nwant %v", sorted(got), sorted(c.figures))
			}
			if c.waits != nil {
				if got := h.waits(); !slices.Equal(got, c.waits) {
					t.Errorf("waits: got %q, want %q", got, c.waits)
				}
			}
		})
	}
}

// An event id seen again however many events later is a duplicate
// (CONTRACT.md §2), also after the state went through its encoding.
func TestDuplicateFarBack(t *testing.T) {
	h := newHarness(t, pddRules(), false)
	var ops []op
	for i := 0; i < 200; i++ {
		at := clockAt(shanghai, "10:00:00").Add(time.Duration(i) * 10 * time.Second).Format("15:04:05")
		o := buyer(at)
		if i%2 == 1 {
			o = human(at, "a7")
		}
		ops = append(ops, withID(o, "id"+strconv.Itoa(i)))
	}
	h.run(ops)
	before := h.figures()
	b, err := h.c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a conversation of 200 events encodes in %d bytes", len(b))
	h.c = Conversation{Shop: "s1", Buyer: "b1"}
	if err := h.c.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	// The first one, 200 events back (and again at a later time).
	h.run([]op{again(buyer("10:00:00"), "id0"), again(buyer("11:00:00"), "id0"), again(human("11:00:00", "a7"), "id65")})
	if got := h.figures(); !maps.Equal(got, before) {
		t.Errorf("repeated ids changed the figures:\n%v\n%v", sorted(got), sorted(before))
	}
}

// inTSOrder is the script's events in ts order as the engine orders them
// (a buyer message before other events of its millisecond), first
// deliveries of an id only.
func inTSOrder(s script) script {
	seen := map[string]bool{}
	var evs []*event.Event
	for _, ev := range s.events {
		if !seen[ev.EventID] {
			seen[ev.EventID] = true
			evs = append(evs, ev)
		}
	}
	slices.SortStableFunc(evs, func(a, b *event.Event) int {
		x, y := logEventOf(a), logEventOf(b)
		switch {
		case x.before(&y):
			return -1
		case y.before(&x):
			return 1
		}
		return 0
	})
	s.events = evs
	return s
}

// TestArrivalOrderDoesNotChangeOutcome is DESIGN.md §5 invariant 6: any
// arrival order of a conversation's events within the allowed lateness
// gives the figures, the standing alerts and the waiting set that ts order
// gives, whatever the partition clock did meanwhile and with the state
// encoded between events.
func TestArrivalOrderDoesNotChangeOutcome(t *testing.T) {
	for seed := uint64(0); seed < propertySeeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		s := genScript(r)
		want := play(t, inTSOrder(s), nil, false)
		// Arrival: each event held back by up to 15 minutes, on top of the
		// script's own disorder (up to 10 minutes).
		perm := s
		perm.events = slices.Clone(s.events)
		delay := make(map[*event.Event]time.Duration, len(perm.events))
		for i, ev := range perm.events {
			delay[ev] = time.Duration(i)*time.Millisecond + time.Duration(r.IntN(15*60_000))*time.Millisecond
		}
		slices.SortStableFunc(perm.events, func(a, b *event.Event) int {
			return a.TS.Add(delay[a]).Compare(b.TS.Add(delay[b]))
		})
		got := play(t, perm, func(last time.Time) time.Time {
			if last.IsZero() || r.IntN(2) == 0 {
				return time.Time{}
			}
			return last.Add(time.Duration(r.IntN(1_200_000)-120_000) * time.Millisecond)
		}, seed%2 == 0)
		if !maps.Equal(got.figures, want.figures) {
			t.Errorf("seed %d: figures in arrival order\n%v\nin ts order\n%v", seed, sorted(got.figures), sorted(want.figures))
		}
		if !slices.Equal(got.alerts, want.alerts) {
			t.Errorf("seed %d: standing alerts in arrival order %v, in ts order %v", seed, got.alerts, want.alerts)
		}
		if got.waiting != want.waiting {
			t.Errorf("seed %d: waiting set %q in arrival order, %q in ts order", seed, got.waiting, want.waiting)
		}
		if t.Failed() {
			for _, ev := range perm.events {
				t.Logf("%s %s %s %s %s", ev.EventID, ev.TS.In(shanghai).Format("01-02 15:04:05.000"), ev.Type, ev.Sender, ev.AgentID)
			}
			t.Logf("rules: start_at_open=%v hours=%v per-agent=%v", s.rules.StartAtOpen, s.rules.Hours.Ranges, s.perAgent)
			return
		}
	}
}

// An event older than every kept one (here with a lateness of a minute) is
// applied to the state before them, as far as makes sense: a reply inside
// a wait a later reply ended still corrects it.
func TestEventBeyondLateness(t *testing.T) {
	h := newHarness(t, pddRules(), true)
	h.e.Lateness = time.Minute
	h.run([]op{buyer("10:00:00"), human("10:06:00", "a7"), buyer("10:20:00")})
	if len(h.c.log) != 1 || h.c.base.lastTS != clockAt(shanghai, "10:06:00").UnixMilli() {
		t.Fatalf("kept %d events, state before them at %d: want the last one kept", len(h.c.log), h.c.base.lastTS)
	}
	h.fx.Reset()
	h.run([]op{human("10:02:30", "a8"), human("10:20:10", "a8")})
	want := alerts("reply_breach:3m resolved/retracted a7 @10:02:30", "reply_warning:5m resolved/retracted a7 @10:02:30",
		"reply_breach:5m resolved/retracted a7 @10:02:30")
	if got := h.rendered(); !slices.Equal(got, want) {
		t.Errorf("alerts:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	// The first wait is no longer breached and took 150 s (a8), not 360 s
	// (a7); the 10:20 wait, still a7's, is answered by a8 in 10 s.
	wantFigs := figs(d24+"breached:3m", -1, d24+"breached:5m", -1,
		d24+"resp_ms", -360000+150000+10000, d24+"resp_n", 1, d24+"ans30", 1,
		d24+"a:a7:resp_ms", -360000, d24+"a:a7:resp_n", -1,
		d24+"a:a8:resp_ms", 160000, d24+"a:a8:resp_n", 2, d24+"a:a8:ans30", 1, "now a:a7:waiting", -1)
	if got := h.figures(); !maps.Equal(got, wantFigs) {
		t.Errorf("figures:\n got %v\nwant %v", sorted(got), sorted(wantFigs))
	}
}
