package detectors

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// effOp is one chat event of an effective-reply script and the figure
// deltas it must give ("2026-11-24:+1").
type effOp struct {
	kind, at string // buyer, agent, block
	want     []string
}

var effectiveCases = []struct {
	name string
	ops  []effOp
}{
	{"a reply within the hour", []effOp{
		{"buyer", "10:00:00", nil}, {"buyer", "10:20:00", nil}, {"agent", "10:59:59", []string{baseDay + ":+1"}}, {"agent", "11:30:00", nil},
	}},
	{"a reply exactly an hour later counts, a millisecond more does not", []effOp{
		{"buyer", "10:00:00", nil}, {"agent", "11:00:00.001", nil},
	}},
	{"exactly an hour", []effOp{{"buyer", "10:00:00", nil}, {"agent", "11:00:00", []string{baseDay + ":+1"}}}},
	{"a late earlier buyer message moves the first message and undoes the count", []effOp{
		{"buyer", "10:00:00", nil}, {"agent", "10:50:00", []string{baseDay + ":+1"}}, {"buyer", "09:40:00", []string{baseDay + ":-1"}},
	}},
	{"a late reply stamped earlier counts", []effOp{
		{"buyer", "10:00:00", nil}, {"agent", "12:00:00", nil}, {"agent", "10:30:00", []string{baseDay + ":+1"}},
	}},
	{"a reply before the first message is no reply to it", []effOp{
		{"agent", "09:00:00", nil}, {"buyer", "10:00:00", nil},
	}},
	{"a blocked buyer leaves the count", []effOp{
		{"buyer", "10:00:00", nil}, {"agent", "10:01:00", []string{baseDay + ":+1"}}, {"block", "10:05:00", []string{baseDay + ":-1"}},
		{"buyer", "10:10:00", nil}, {"agent", "10:11:00", nil},
	}},
	{"outside service hours nothing starts", []effOp{
		{"buyer", "07:30:00", nil}, {"agent", "07:31:00", nil}, {"buyer", "08:00:00", nil}, {"agent", "08:10:00", []string{baseDay + ":+1"}},
	}},
	{"each day counts on its own", []effOp{
		{"buyer", "22:30:00", nil}, {"buyer", "2026-11-25 08:30:00", nil}, {"agent", "2026-11-25 08:40:00", []string{"2026-11-25:+1"}},
	}},
}

func TestEffectiveReply(t *testing.T) {
	for _, c := range effectiveCases {
		t.Run(c.name, func(t *testing.T) {
			e := &Effective{Rules: func(string) *Rules { return pddRules() }, Within: func(string) time.Duration { return time.Hour }}
			var st EffectiveState
			for i, op := range c.ops {
				ev := &event.Event{EventID: fmt.Sprint(i), Type: event.TypeMessage, TS: event.Time{Time: clockAt(shanghai, op.at)}, ShopID: "s1", BuyerID: "b1"}
				switch op.kind {
				case "buyer":
					ev.Sender = event.SenderBuyer
				case "agent":
					ev.Sender, ev.AgentID = event.SenderAgent, "a1"
				case "block":
					ev.Type = event.TypeBuyerBlocked
				}
				var fx Effects
				e.Event(&st, "s1", ev, &fx)
				var got []string
				for _, f := range fx.Figures {
					if f.Field != FieldEffective || f.Shop != "s1" {
						t.Errorf("op %d: figure %+v", i, f)
					}
					got = append(got, fmt.Sprintf("%s:%+d", f.Day, f.Delta))
				}
				if !slices.Equal(got, op.want) {
					t.Errorf("op %d (%s %s): %v, want %v", i, op.kind, op.at, got, op.want)
				}
				// The state survives its encoding at every step.
				var back EffectiveState
				if rest, err := DecodeEffectiveState(&back, st.AppendBinary(nil)); err != nil || len(rest) != 0 || back != st {
					t.Errorf("op %d: state %+v decodes to %+v (%v)", i, st, back, err)
				}
			}
		})
	}
}

func TestEffectiveRisk(t *testing.T) {
	for _, c := range []struct {
		consulting, rate, below float64
		want                    bool
	}{
		{100, 0.59, 0.6, true},
		{99.9, 0.1, 0.6, false}, // under 100 buyers the platform does not fine
		{150, 0.6, 0.6, false},  // at the line is not under it
		{1000, 0.45, 0.5, true},
	} {
		if got := EffectiveRisk(c.consulting, c.rate, c.below); got != c.want {
			t.Errorf("EffectiveRisk(%v, %v, %v) = %v", c.consulting, c.rate, c.below, got)
		}
	}
}
