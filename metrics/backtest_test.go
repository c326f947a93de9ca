package metrics_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
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
//
// It also counts how often effective_reply_risk would fire on each
// shop-day judged every minute of the service window, with the line put at
// the day's own final rate (a shop ending right at alert_below, the worst
// case for flapping): by the rule (warm-up and hysteresis) and by the bare
// comparison (projected rate under the line with 100 buyers projected).
// The rule must raise at most two alerts on any shop-day.
func TestEffectiveReplyBacktest(t *testing.T) {
	loc := sim.Shanghai()
	sched := hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60})
	rules := &detectors.Rules{Platform: "pdd", Hours: sched, Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	rf := func(string) *detectors.Rules { return rules }
	engine := &detectors.Engine{Rules: rf}
	eff := &detectors.Effective{Rules: rf, Within: func(string) time.Duration { return time.Hour }}
	checks := []string{"12:00", "16:00", "20:00"}

	type sample struct{ rateErr, consultErr float64 }
	type counts struct{ consulting, effective int64 }
	errs := map[string][]sample{}
	var flaps struct{ shopDays, rule, bare, ruleMulti, bareMulti, ruleMax, bareMax int }
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
		totals := map[string]*counts{}
		// The shops' counts at the end of each minute of the window.
		open, close := clock(t, day, "08:00"), clock(t, day, "23:00")
		var minutes []time.Time
		for m := open.Add(time.Minute); !m.After(close); m = m.Add(time.Minute) {
			minutes = append(minutes, m)
		}
		byMinute := make([]map[string]counts, len(minutes))
		next := 0
		snapshot := func() {
			m := map[string]counts{}
			for s, c := range totals {
				m[s] = *c
			}
			byMinute[next] = m
			next++
		}
		var fx detectors.Effects
		for i := range evs {
			ev := &evs[i]
			for next < len(minutes) && !ev.TS.Before(minutes[next]) {
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
		for next < len(minutes) {
			snapshot()
		}
		for shop, final := range totals {
			if final.consulting == 0 {
				continue
			}
			finalRate := float64(final.effective) / float64(final.consulting)
			for i, m := range minutes {
				hm := m.Format("15:04")
				if !slices.Contains(checks, hm) {
					continue
				}
				c := byMinute[i][shop]
				p := detectors.ProjectEffective(sched, m, c.consulting, c.effective)
				if !p.Projected {
					continue
				}
				errs[hm] = append(errs[hm], sample{math.Abs(p.Rate - finalRate), math.Abs(p.ProjectedConsulting-float64(final.consulting)) / float64(final.consulting)})
			}
			// Flapping, with the line at the day's final rate.
			var sp detectors.EffectiveSpell
			rule, bare, firing := 0, 0, false
			for i, m := range minutes {
				c := byMinute[i][shop]
				p := detectors.ProjectEffective(sched, m, c.consulting, c.effective)
				var fx detectors.Effects
				detectors.EvaluateEffectiveRisk(shop, "pdd", day.Format(time.DateOnly), p, finalRate, &sp, m, &fx)
				for _, a := range fx.Alerts {
					if a.Status == alerting.Firing {
						rule++
					}
				}
				risk := p.Projected && p.ProjectedConsulting >= 100 && p.Rate < finalRate
				if risk && !firing {
					bare++
				}
				firing = risk
			}
			flaps.shopDays++
			flaps.rule += rule
			flaps.bare += bare
			flaps.ruleMax, flaps.bareMax = max(flaps.ruleMax, rule), max(flaps.bareMax, bare)
			if rule > 1 {
				flaps.ruleMulti++
			}
			if bare > 1 {
				flaps.bareMulti++
			}
			if rule > 2 {
				t.Errorf("seed %d shop %s: effective_reply_risk fired %d times in a day", seed, shop, rule)
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
	fmt.Fprintf(&table, "\nflapping, line at each shop-day's final rate, judged every minute 08:00-23:00 (%d shop-days):\n", flaps.shopDays)
	fmt.Fprintf(&table, "%-26s %8s %28s %18s\n", "", "alerts", "shop-days with more than one", "most in one day")
	fmt.Fprintf(&table, "%-26s %8d %28d %18d\n", "warm-up and hysteresis", flaps.rule, flaps.ruleMulti, flaps.ruleMax)
	fmt.Fprintf(&table, "%-26s %8d %28d %18d\n", "bare comparison", flaps.bare, flaps.bareMulti, flaps.bareMax)
	t.Log(table.String())
}

func clock(t *testing.T, day time.Time, hm string) time.Time {
	v, err := time.ParseInLocation("2006-01-02 15:04", day.Format("2006-01-02")+" "+hm, day.Location())
	if err != nil {
		t.Fatal(err)
	}
	return v
}
