package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/sim"
)

// TestEffectiveReplyBacktest replays simulated shop days through the reply
// rules and the effective-reply count and compares the projection made at
// 12:00, 16:00 and 20:00 with the day's final figures: it reports the mean
// absolute error of the projected rate and the relative error of the
// projected consulting buyers (BENCHMARKS.md), and fails only when the
// projection is far off (a rate error over 0.2).
func TestEffectiveReplyBacktest(t *testing.T) {
	loc := sim.Shanghai()
	sched := hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60})
	rules := &detectors.Rules{Platform: "pdd", Hours: sched, Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	rf := func(string) *detectors.Rules { return rules }
	engine := &detectors.Engine{Rules: rf}
	eff := &detectors.Effective{Rules: rf, Within: func(string) time.Duration { return time.Hour }}
	checks := []string{"12:00", "16:00", "20:00"}

	type sample struct{ rateErr, consultErr float64 }
	errs := map[string][]sample{}
	for seed := uint64(1); seed <= 4; seed++ {
		day := time.Date(2026, 11, 10+int(seed), 0, 0, 0, 0, loc)
		var evs []event.Event
		err := sim.Generate(sim.Options{Seed: seed, Shops: 6, Agents: 4, Rate: 1.5, Start: day, End: day.Add(24 * time.Hour),
			Platforms: []string{"pdd"}}, func(r sim.Record) error {
			if r.Topic == event.Chat {
				evs = append(evs, r.Event)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortStableFunc(evs, func(a, b event.Event) int { return a.TS.Compare(b.TS.Time) })
		convs := map[string]*detectors.ChatState{}
		type counts struct{ consulting, effective int64 }
		totals := map[string]*counts{}
		at := map[string]map[string]counts{} // check time → shop → counts
		next := 0
		snapshot := func() {
			m := map[string]counts{}
			for s, c := range totals {
				m[s] = *c
			}
			at[checks[next]] = m
			next++
		}
		var fx detectors.Effects
		for i := range evs {
			ev := &evs[i]
			for next < len(checks) && !ev.TS.Before(clock(t, day, checks[next])) {
				snapshot()
			}
			key := ev.ShopID + "/" + ev.BuyerID
			cs := convs[key]
			if cs == nil {
				cs = &detectors.ChatState{Conv: detectors.Conversation{Shop: ev.ShopID, Buyer: ev.BuyerID}}
				convs[key] = cs
			}
			fx.Reset()
			if engine.Chat(&cs.Conv, ev, &fx) == detectors.Applied {
				eff.Event(&cs.Eff, ev.ShopID, ev, &fx)
			}
			for _, f := range fx.Figures {
				c := totals[f.Shop]
				if c == nil {
					c = &counts{}
					totals[f.Shop] = c
				}
				switch {
				case f.Field == detectors.FieldConsulting:
					c.consulting += f.Delta
				case f.Field == detectors.FieldEffective:
					c.effective += f.Delta
				}
			}
		}
		for next < len(checks) {
			snapshot()
		}
		for _, hm := range checks {
			for shop, c := range at[hm] {
				final := totals[shop]
				if final.consulting == 0 {
					continue
				}
				rate, proj, ok, projected := effectiveReply(sched, clock(t, day, hm), c.consulting, c.effective)
				if !ok || !projected {
					continue
				}
				finalRate := float64(final.effective) / float64(final.consulting)
				errs[hm] = append(errs[hm], sample{math.Abs(rate - finalRate), math.Abs(proj-float64(final.consulting)) / float64(final.consulting)})
			}
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-6s %9s %10s %30s\n", "at", "shop-days", "rate MAE", "consulting mean abs rel error")
	for _, hm := range checks {
		var r, c float64
		for _, s := range errs[hm] {
			r += s.rateErr
			c += s.consultErr
		}
		n := float64(len(errs[hm]))
		if n == 0 {
			t.Fatalf("no shop-day projected at %s", hm)
		}
		fmt.Fprintf(&table, "%-6s %9d %10.3f %30.3f\n", hm, len(errs[hm]), r/n, c/n)
		if r/n > 0.2 {
			t.Errorf("at %s the projected rate is off by %.3f on average", hm, r/n)
		}
	}
	t.Log(table.String())
}

func clock(t *testing.T, day time.Time, hm string) time.Time {
	v, err := time.ParseInLocation("2006-01-02 15:04", day.Format("2006-01-02")+" "+hm, day.Location())
	if err != nil {
		t.Fatal(err)
	}
	return v
}
