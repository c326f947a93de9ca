package detectors

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
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

// TestEffectiveRisk: the risk is raised only once the day is warmed up
// (30 buyers so far, a fifth of a usual day in) with 100 consulting buyers
// projected and the rate under the line.
func TestEffectiveRisk(t *testing.T) {
	p := func(consulting int64, share, projected, rate float64) Projection {
		return Projection{Consulting: consulting, Share: share, Projected: true, ProjectedConsulting: projected, Rate: rate}
	}
	for _, c := range []struct {
		name  string
		p     Projection
		below float64
		want  bool
	}{
		{"under the line", p(40, 0.3, 133, 0.59), 0.6, true},
		{"at the line is not under it", p(40, 0.3, 133, 0.6), 0.6, false},
		{"under 100 buyers projected the platform does not fine", p(29, 0.3, 99.9, 0.1), 0.6, false},
		{"ten buyers at 10:00 are too few to judge the day by", p(10, 0.09, 110, 0.3), 0.6, false},
		{"29 buyers so far are too few", p(29, 0.25, 116, 0.3), 0.6, false},
		{"too early in the day", p(40, 0.19, 210, 0.3), 0.6, false},
		{"warmed up", p(30, 0.2, 150, 0.3), 0.6, true},
		{"not projected", Projection{Consulting: 500, Share: 0.5, Rate: 0.1}, 0.6, false},
	} {
		if got := EffectiveRisk(c.p, c.below); got != c.want {
			t.Errorf("%s: EffectiveRisk(%+v, %v) = %v", c.name, c.p, c.below, got)
		}
	}
}

// TestEffectiveRiskHysteresis: a rate hovering at the line fires once and
// resolves only clear of it; a new day resolves the last day's alert.
func TestEffectiveRiskHysteresis(t *testing.T) {
	var sp EffectiveSpell
	at := clockAt(shanghai, "12:00:00")
	var got []string
	step := func(day string, rate, projected float64) {
		var fx Effects
		EvaluateEffectiveRisk("s1", "pdd", day, Projection{Consulting: 60, Share: 0.3, Projected: true, ProjectedConsulting: projected, Rate: rate}, 0.6, &sp, at, &fx)
		for _, a := range fx.Alerts {
			if a.Kind != alerting.KindEffectiveReplyRisk || !a.At.Equal(at) || a.AgentID != "" {
				t.Errorf("alert %+v", a)
			}
			n := "?"
			for k := range 4 {
				if a.ID == EffectiveRiskAlert("s1", "pdd", baseDay, k, at, true).ID { // the new day resolves the last day's
					n = fmt.Sprint(k)
				}
			}
			got = append(got, fmt.Sprintf("%.2f:%s:%s", rate, a.Status, n))
		}
		at = at.Add(time.Minute)
	}
	for _, r := range []float64{0.61, 0.59, 0.61, 0.58, 0.62, 0.64, 0.649, 0.65, 0.64, 0.59} {
		step(baseDay, r, 200)
	}
	step(baseDay, 0.3, 85) // the day's projection fell under 90 buyers
	step(baseDay, 0.3, 200)
	step("2026-11-25", 0.9, 200)
	want := []string{"0.59:firing:1", "0.65:resolved:1", "0.59:firing:2", "0.30:resolved:2", "0.30:firing:3", "0.90:resolved:3"}
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
}
