package detectors

import (
	"errors"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

type seatStep struct {
	id, status, at string // status "" = advance the clock to at
}

var seatCases = []struct {
	name    string
	steps   []seatStep
	figures map[string]int64 // net seat figure changes
	alerts  []string         // kind/status[/reason] in order
	status  string
}{
	{"online then busy moves the count",
		[]seatStep{{"e1", "online", "09:00:00"}, {"e2", "busy", "09:05:00"}},
		map[string]int64{"seats:online": 0, "seats:busy": 1, "a:a1:seats:online": 0, "a:a1:seats:busy": 1}, nil, "busy"},
	{"away within the limit fires nothing",
		[]seatStep{{"e1", "online", "09:00:00"}, {"e2", "away", "09:10:00"}, {"", "", "09:20:00"}, {"e3", "online", "09:20:00"}},
		map[string]int64{"seats:online": 1, "seats:away": 0}, nil, "online"},
	{"away past the limit fires, coming back resolves",
		[]seatStep{{"e1", "online", "09:00:00"}, {"e2", "away", "09:10:00"}, {"", "", "09:20:00.001"}, {"", "", "09:30:00"}, {"e3", "online", "09:31:00"}},
		map[string]int64{"seats:online": 1, "seats:away": 0},
		[]string{"seat_away/firing", "seat_away/resolved/returned"}, "online"},
	{"the status event itself catches up a due alert",
		[]seatStep{{"e1", "away", "09:00:00"}, {"e2", "offline", "09:40:00"}},
		map[string]int64{"seats:offline": 1, "seats:away": 0},
		[]string{"seat_away/firing", "seat_away/resolved/returned"}, "offline"},
	{"duplicates and older events change nothing",
		[]seatStep{{"e1", "online", "09:00:00"}, {"e2", "offline", "10:00:00"}, {"e1", "online", "09:00:00"}, {"e0", "away", "08:00:00"}},
		map[string]int64{"seats:online": 0, "seats:offline": 1}, nil, "offline"},
}

func TestSeats(t *testing.T) {
	e := &SeatEngine{Rules: func(string) *Rules { return pddRules() }, AwayAfter: 10 * time.Minute}
	for _, c := range seatCases {
		s := &Seat{Shop: "s1", Agent: "a1"}
		var fx Effects
		for _, st := range c.steps {
			at := clockAt(shanghai, "2026-11-24 "+st.at+map[bool]string{true: "", false: ".000"}[len(st.at) > 8])
			if st.status == "" {
				e.Advance(s, at, &fx)
				continue
			}
			e.Presence(s, &event.Event{EventID: st.id, Type: event.TypeAgentStatus, TS: event.Time{Time: at},
				ShopID: "s1", AgentID: "a1", Status: st.status}, &fx)
			// Every step survives a round trip through the store.
			blob, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			s = &Seat{Shop: "s1", Agent: "a1"}
			if err := s.UnmarshalBinary(blob); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		got := map[string]int64{}
		for _, f := range fx.Figures {
			if f.Shop != "s1" || f.Day != "" {
				t.Errorf("%s: figure %+v not a current shop counter", c.name, f)
			}
			got[f.Field] += f.Delta
		}
		for k, v := range c.figures {
			if got[k] != v {
				t.Errorf("%s: %s = %d, want %d", c.name, k, got[k], v)
			}
		}
		var kinds []string
		for _, a := range fx.Alerts {
			k := a.Kind + "/" + a.Status
			if a.Reason != "" {
				k += "/" + a.Reason
			}
			kinds = append(kinds, k)
			if a.ID != fx.Alerts[0].ID || a.AgentID != "a1" || a.Threshold != "10m" {
				t.Errorf("%s: alert %+v", c.name, a)
			}
		}
		if len(kinds) != len(c.alerts) {
			t.Errorf("%s: alerts %v, want %v", c.name, kinds, c.alerts)
		} else {
			for i := range kinds {
				if kinds[i] != c.alerts[i] {
					t.Errorf("%s: alerts %v, want %v", c.name, kinds, c.alerts)
				}
			}
		}
		if s.status != c.status {
			t.Errorf("%s: status %q, want %q", c.name, s.status, c.status)
		}
	}
}

func TestSeatAlertIsStable(t *testing.T) {
	e := &SeatEngine{Rules: func(string) *Rules { return pddRules() }, AwayAfter: time.Minute}
	s := &Seat{Shop: "s1", Agent: "a1", status: "away", since: 1_000_000}
	var fx Effects
	e.Advance(s, time.UnixMilli(1_060_001), &fx)
	if len(fx.Alerts) != 1 || fx.Alerts[0].ID != alerting.ID(alerting.KindSeatAway, "s1", "a1", "1000000") {
		t.Fatalf("alerts %+v", fx.Alerts)
	}
	e.Advance(s, time.UnixMilli(2_000_000), &fx)
	if len(fx.Alerts) != 1 {
		t.Error("seat_away fired twice for one away spell")
	}
}

func TestSeatDecodingGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {3, 0, 0, 0, 0, 0}, {1, 9, 0, 0, 0, 0}, {1, 1, 0, 0x80}, {1, 1, 0, 5, 0, 1}} {
		s := Seat{Shop: "s1", status: "busy"}
		if err := s.UnmarshalBinary(b); !errors.Is(err, ErrCorrupt) || s.status != "busy" {
			t.Errorf("%v: %v (state changed: %v)", b, err, s.status != "busy")
		}
	}
}
