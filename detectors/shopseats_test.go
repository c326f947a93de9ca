package detectors

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
)

// seatWorld runs the real chat and presence engines over a script and keeps
// what a store would (current counters, waiting sets, agents' latest human
// message), so the shop-level evaluation sees the figures it sees live.
type seatWorld struct {
	t      *testing.T
	rules  *Rules
	chat   *Engine
	seat   *SeatEngine
	convs  map[string]*Conversation
	seats  map[string]*Seat
	counts map[string]int64
	sets   map[string]map[string]int64
	spells SeatSpells
	alerts []string
	n      int
}

func newSeatWorld(t *testing.T, r *Rules) *seatWorld {
	rf := func(string) *Rules { return r }
	return &seatWorld{t: t, rules: r, chat: &Engine{Rules: rf}, seat: &SeatEngine{Rules: rf},
		convs: map[string]*Conversation{}, seats: map[string]*Seat{}, counts: map[string]int64{},
		sets: map[string]map[string]int64{}}
}

func (w *seatWorld) keep(fx *Effects) {
	for _, f := range fx.Figures {
		if f.Day == "" {
			w.counts[f.Field] += f.Delta
		}
	}
	for _, a := range fx.Activity {
		k := AgentField(a.Agent, FieldLastHuman)
		w.counts[k] = max(w.counts[k], a.At)
	}
	for _, op := range fx.Waits {
		set := w.sets[op.Set()]
		if set == nil {
			set = map[string]int64{}
			w.sets[op.Set()] = set
		}
		if op.Add {
			set[op.Buyer] = op.Start
		} else {
			delete(set, op.Buyer)
		}
	}
	for _, a := range fx.Alerts {
		w.record(a)
	}
}

func (w *seatWorld) record(a alerting.Alert) {
	if a.Kind != alerting.KindIdleSeat && a.Kind != alerting.KindSeatAway && a.Kind != alerting.KindShopUncovered {
		return
	}
	s := a.At.In(w.rules.Hours.Loc).Format("15:04:05") + " " + a.Kind + "/" + a.Status
	if a.Reason != "" {
		s += "/" + a.Reason
	}
	if a.AgentID != "" {
		s += " " + a.AgentID
	}
	w.alerts = append(w.alerts, s)
}

// do applies one script line: "<agent> online|busy|away|offline",
// "<buyer> buyer <agent>", "<agent> reply <buyer>", "<buyer> transfer <agent>".
func (w *seatWorld) do(at time.Time, line string) {
	f := strings.Fields(line)
	w.n++
	ev := &event.Event{EventID: fmt.Sprint("e", w.n), TS: event.Time{Time: at}, ShopID: "s1"}
	var fx Effects
	switch f[1] {
	case "online", "busy", "away", "offline":
		s := w.seats[f[0]]
		if s == nil {
			s = &Seat{Shop: "s1", Agent: f[0]}
			w.seats[f[0]] = s
		}
		ev.Type, ev.AgentID, ev.Status = event.TypeAgentStatus, f[0], f[1]
		w.seat.Presence(s, ev, &fx)
	case "buyer", "reply", "transfer":
		buyer, agent := f[0], f[2]
		ev.Type, ev.Sender = event.TypeMessage, event.SenderBuyer
		switch f[1] {
		case "reply":
			buyer, agent, ev.Sender = f[2], f[0], event.SenderAgent
		case "transfer":
			ev.Type = event.TypeTransfer
		}
		ev.BuyerID, ev.AgentID = buyer, agent
		c := w.convs[buyer]
		if c == nil {
			c = &Conversation{Shop: "s1", Buyer: buyer}
			w.convs[buyer] = c
		}
		w.chat.Chat(c, ev, &fx)
	default:
		w.t.Fatalf("bad script line %q", line)
	}
	w.keep(&fx)
}

func oldestOf(set map[string]int64) int64 {
	o := int64(0)
	for _, s := range set {
		if o == 0 || s < o {
			o = s
		}
	}
	return o
}

func (w *seatWorld) snapshot() ShopSeats {
	agents := map[string]int64{}
	for name, set := range w.sets {
		if shop, agent, ok := SplitAgentSet(name); ok && shop == "s1" && len(set) > 0 {
			agents[agent] = oldestOf(set)
		}
	}
	return SeatsFromCounters("s1", w.counts, int64(len(w.sets["s1"])), oldestOf(w.sets["s1"]), agents)
}

// evaluate is one tick of the lease holder at now.
func (w *seatWorld) evaluate(now time.Time) (SeatsView, time.Duration) {
	for _, s := range w.seats {
		var fx Effects
		w.seat.Advance(s, now, &fx)
		w.keep(&fx)
	}
	sh := w.snapshot()
	var fx Effects
	// The spells go through their encoding as they do through Redis.
	blob, err := w.spells.MarshalBinary()
	if err != nil {
		w.t.Fatal(err)
	}
	w.spells = SeatSpells{}
	if err := w.spells.UnmarshalBinary(blob); err != nil {
		w.t.Fatal(err)
	}
	u := w.rules.EvaluateSeats(&sh, &w.spells, now, &fx)
	for _, a := range fx.Alerts {
		w.record(a)
	}
	return w.rules.View(&sh, now), u
}

type seatLine struct{ at, what string }

// seatRuleCases are scripts of presence and chat with the seat alerts and
// figures a hand count gives. The lease holder evaluates every 5 s from the
// first line to end; checks look at the idle seats and states at a tick.
var seatRuleCases = []struct {
	name      string
	hours     []hours.Range
	script    []seatLine
	end       string
	idle      map[string]int64  // tick -> replywatch_idle_seats
	states    map[string]string // tick -> "online=1 busy=0 away=0 offline=0"
	alerts    []string
	uncovered time.Duration
}{
	{name: "a buyer waiting 3 s on an online agent is no idle seat",
		script: []seatLine{{"08:50:00", "a1 online"}, {"09:00:00", "b1 buyer a1"}, {"09:04:00", "a1 reply b1"}},
		end:    "09:05:00",
		idle:   map[string]int64{"09:00:05": 0, "09:02:55": 0, "09:03:05": 1, "09:04:05": 0},
		alerts: []string{"09:03:00 idle_seat/firing a1", "09:04:00 idle_seat/resolved/replied a1"}},
	{name: "an agent coming online with buyers already waiting is not idle at once",
		script: []seatLine{{"09:00:00", "b1 buyer a1"}, {"09:10:00", "a1 online"}, {"09:13:30", "a1 reply b1"}},
		end:    "09:14:00",
		idle:   map[string]int64{"09:10:00": 0, "09:12:55": 0, "09:13:05": 1},
		alerts: []string{
			// No presence yet today: buyers wait with no human message.
			"09:05:00 shop_uncovered/firing", "09:10:00 shop_uncovered/resolved/covered",
			"09:13:00 idle_seat/firing a1", "09:13:30 idle_seat/resolved/replied a1"},
		uncovered: 10 * time.Minute},
	{name: "replying to one buyer while another waits restarts the idle clock",
		script: []seatLine{{"08:50:00", "a1 online"}, {"09:00:00", "b1 buyer a1"}, {"09:01:00", "b2 buyer a1"},
			{"09:02:00", "a1 reply b1"}, {"09:06:00", "a1 reply b2"}},
		end:    "09:07:00",
		idle:   map[string]int64{"09:04:00": 0, "09:05:05": 1},
		alerts: []string{"09:05:00 idle_seat/firing a1", "09:06:00 idle_seat/resolved/replied a1"}},
	{name: "busy is working; going away hands over to seat_away",
		script: []seatLine{{"08:50:00", "a1 busy"}, {"08:50:00", "a2 online"}, {"09:00:00", "b1 buyer a1"},
			{"09:04:00", "a1 away"}, {"09:14:30", "a1 online"}},
		end:    "09:15:00",
		idle:   map[string]int64{"09:03:05": 1, "09:04:05": 0},
		states: map[string]string{"09:01:00": "online=1 busy=1 away=0 offline=0", "09:05:00": "online=1 busy=0 away=1 offline=0"},
		alerts: []string{"09:03:00 idle_seat/firing a1", "09:04:00 idle_seat/resolved/seat_away a1",
			"09:14:00 seat_away/firing a1", "09:14:30 seat_away/resolved/returned a1"}},
	{name: "away and back: the idle clock starts again when the agent is back",
		script: []seatLine{{"08:00:00", "a1 online"}, {"08:00:00", "a2 online"}, {"09:00:00", "a1 away"},
			{"09:05:00", "b1 buyer a1"}, {"09:15:00", "a1 online"}},
		end:  "09:20:00",
		idle: map[string]int64{"09:10:00": 0, "09:17:55": 0, "09:18:05": 1},
		alerts: []string{"09:10:00 seat_away/firing a1", "09:15:00 seat_away/resolved/returned a1",
			"09:18:00 idle_seat/firing a1"}},
	{name: "the last agent going offline 30 s before closing leaves 30 s uncovered and no alert",
		script: []seatLine{{"22:00:00", "a1 online"}, {"22:59:30", "a1 offline"}},
		end:    "23:05:00", uncovered: 30 * time.Second},
	{name: "uncovered two minutes before closing fires, closing resolves",
		script:    []seatLine{{"22:00:00", "a1 online"}, {"22:58:00", "a1 offline"}},
		end:       "23:05:00",
		states:    map[string]string{"22:59:00": "online=0 busy=0 away=0 offline=1"},
		alerts:    []string{"22:59:00 shop_uncovered/firing", "23:00:00 shop_uncovered/resolved/closed"},
		uncovered: 2 * time.Minute},
	{name: "a shop without presence: seats are inferred from human messages",
		script: []seatLine{{"09:00:00", "b0 buyer a1"}, {"09:00:10", "a1 reply b0"}, {"09:01:00", "b1 buyer a1"},
			{"09:07:00", "a1 reply b1"}},
		end:    "09:08:00",
		idle:   map[string]int64{"09:03:55": 0, "09:04:05": 1},
		states: map[string]string{"09:02:00": "online=1 busy=0 away=0 offline=0"},
		alerts: []string{"09:04:00 idle_seat/firing a1", "09:06:00 shop_uncovered/firing",
			"09:07:00 idle_seat/resolved/replied a1", "09:07:00 shop_uncovered/resolved/replied"},
		uncovered: 6 * time.Minute},
	{name: "an inferred seat goes offline inferred_offline_after after its last human message",
		script: []seatLine{{"09:00:00", "b0 buyer a1"}, {"09:00:00", "a1 reply b0"}, {"09:10:00", "b1 buyer a1"}},
		end:    "09:35:00",
		states: map[string]string{"09:31:00": "online=0 busy=0 away=0 offline=1"},
		alerts: []string{"09:13:00 idle_seat/firing a1", "09:15:00 shop_uncovered/firing",
			"09:30:00 idle_seat/resolved/offline a1"},
		uncovered: 25 * time.Minute},
	{name: "split shifts: the lunch gap is neither uncovered time nor an alert",
		hours:  []hours.Range{{Start: 9 * 60, End: 12 * 60}, {Start: 13 * 60, End: 22 * 60}},
		script: []seatLine{{"09:00:00", "a1 online"}, {"11:50:00", "a1 offline"}, {"13:05:00", "a1 online"}},
		end:    "13:10:00",
		alerts: []string{"11:51:00 shop_uncovered/firing", "12:00:00 shop_uncovered/resolved/closed",
			"13:01:00 shop_uncovered/firing", "13:05:00 shop_uncovered/resolved/covered"},
		uncovered: 15 * time.Minute},
	{name: "a transfer moves the wait, and the idle spell, to the new agent",
		script: []seatLine{{"08:00:00", "a1 online"}, {"08:00:00", "a2 online"}, {"09:00:00", "b1 buyer a1"},
			{"09:04:00", "b1 transfer a2"}, {"09:06:00", "a2 reply b1"}},
		end:  "09:07:00",
		idle: map[string]int64{"09:03:05": 1, "09:04:05": 1, "09:06:05": 0},
		// The wait started 09:00 and a2 has sent nothing since coming
		// online: a2 is idle on it as soon as it is theirs.
		alerts: []string{"09:03:00 idle_seat/firing a1", "09:04:00 idle_seat/resolved/cleared a1",
			"09:03:00 idle_seat/firing a2", "09:06:00 idle_seat/resolved/replied a2"}},
}

func seatRulesFor(hs []hours.Range) *Rules {
	r := pddRules()
	if hs != nil {
		r.Hours = hours.MustNew(shanghai, hs...)
	}
	r.Seats = SeatRules{IdleAfter: 3 * time.Minute, AwayAfter: 10 * time.Minute, UncoveredAfter: time.Minute,
		UncoveredAfterInferred: 5 * time.Minute, InferredOfflineAfter: 30 * time.Minute}
	return r
}

func TestSeatRules(t *testing.T) {
	for _, c := range seatRuleCases {
		t.Run(c.name, func(t *testing.T) {
			w := newSeatWorld(t, seatRulesFor(c.hours))
			tick := clockAt(shanghai, c.script[0].at)
			end := clockAt(shanghai, c.end)
			var u time.Duration
			for i := 0; !tick.After(end); tick = tick.Add(5 * time.Second) {
				for ; i < len(c.script) && !clockAt(shanghai, c.script[i].at).After(tick); i++ {
					w.do(clockAt(shanghai, c.script[i].at), c.script[i].what)
				}
				var v SeatsView
				v, u = w.evaluate(tick)
				clock := tick.Format("15:04:05")
				if want, ok := c.idle[clock]; ok && v.Idle != want {
					t.Errorf("idle seats at %s = %d, want %d", clock, v.Idle, want)
				}
				if want, ok := c.states[clock]; ok {
					n := map[string]int{}
					for _, a := range v.Agents {
						n[a.State]++
					}
					got := fmt.Sprintf("online=%d busy=%d away=%d offline=%d", n["online"], n["busy"], n["away"], n["offline"])
					if got != want {
						t.Errorf("seat states at %s: %s, want %s", clock, got, want)
					}
				}
			}
			if strings.Join(w.alerts, "\n") != strings.Join(c.alerts, "\n") {
				t.Errorf("alerts:\n%s\nwant:\n%s", strings.Join(w.alerts, "\n"), strings.Join(c.alerts, "\n"))
			}
			if u != c.uncovered {
				t.Errorf("uncovered %s, want %s", u, c.uncovered)
			}
		})
	}
}

// TestSeatSpellIDs: an evaluator that takes over mid-spell (a fresh spells
// state but the same figures) fires the same ids; one that continues fires
// nothing twice.
func TestSeatSpellIDs(t *testing.T) {
	w := newSeatWorld(t, seatRulesFor(nil))
	w.do(clockAt(shanghai, "08:50:00"), "a1 online")
	w.do(clockAt(shanghai, "09:00:00"), "b1 buyer a1")
	w.do(clockAt(shanghai, "09:00:00"), "a1 offline")
	sh := w.snapshot()
	var first, again, other Effects
	var sp, fresh SeatSpells
	now := clockAt(shanghai, "09:05:00")
	w.rules.EvaluateSeats(&sh, &sp, now, &first)
	w.rules.EvaluateSeats(&sh, &sp, now.Add(5*time.Second), &again)
	w.rules.EvaluateSeats(&sh, &fresh, now.Add(10*time.Second), &other)
	if len(first.Alerts) != 1 || len(again.Alerts) != 0 || len(other.Alerts) != 1 {
		t.Fatalf("alerts %v, then %v, then from a fresh state %v", first.Alerts, again.Alerts, other.Alerts)
	}
	want := alerting.ID(alerting.KindShopUncovered, "s1", "", fmt.Sprint(clockAt(shanghai, "09:00:00").UnixMilli()))
	if first.Alerts[0].ID != want || other.Alerts[0].ID != want || first.Alerts[0].Severity != alerting.Critical {
		t.Errorf("ids %s and %s, want %s", first.Alerts[0].ID, other.Alerts[0].ID, want)
	}
}

func TestSeatsFromCountersIgnoresOtherFields(t *testing.T) {
	counts := map[string]int64{
		AgentField("a:1", SeatField("online")): 1, AgentField("a:1", SeatField("away")): 0,
		AgentField("a:1", FieldSeatSince): 5, AgentField("a2", FieldWaiting): -1,
		AgentField("a2", FieldLastHuman): 7, "seats:online": 1, "waiting": 3,
	}
	sh := SeatsFromCounters("s1", counts, 0, 0, map[string]int64{"a2": 9})
	got := map[string]AgentSeat{}
	for _, a := range sh.Agents {
		got[a.Agent] = a
	}
	want := map[string]AgentSeat{"a:1": {Agent: "a:1", Status: "online", SeatSince: 5}, "a2": {Agent: "a2", LastHuman: 7}}
	if !maps.Equal(got, want) {
		t.Errorf("agents %+v, want %+v", got, want)
	}
}
