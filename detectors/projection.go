package detectors

import (
	"strconv"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/hours"
)

// consultCurve is the usual share of a day's consulting buyers per
// shop-local hour (relative weights): a morning and an evening peak, as
// the platform articles and the simulator's traffic describe a consumer
// shop's day. The projection of the effective reply rate scales the day so
// far by it; a shop's own curve learnt from its past days is not built.
var consultCurve = [24]float64{
	0.5, 0.3, 0.2, 0.1, 0.1, 0.2, 0.5, 1.5, 3, 5, 7, 7,
	5, 5.5, 6.5, 7, 6.5, 5.5, 5, 6, 7.5, 8, 6, 2,
}

// minShare is the least share of the day's consulting buyers that must be
// in before the day's total is projected: earlier, the projection is noise.
const minShare = 0.05

// DayShare is the share of a usual day's in-window consulting buyers that
// has arrived by now, in quarter hours of the shop's schedule.
func DayShare(h *hours.Schedule, now time.Time) float64 {
	local := now.In(h.Loc)
	mid := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, h.Loc)
	var done, total float64
	for q := 0; q < 96; q++ {
		start := mid.Add(time.Duration(q) * 15 * time.Minute)
		if !h.Open(start.Add(7*time.Minute + 30*time.Second)) {
			continue
		}
		w := consultCurve[q/4] / 4
		total += w
		switch end := start.Add(15 * time.Minute); {
		case !now.Before(end):
			done += w
		case now.After(start):
			done += w * float64(now.Sub(start)) / float64(15*time.Minute)
		}
	}
	if total == 0 {
		return 0
	}
	return done / total
}

// Projection is a shop's effective reply rate so far today and projected
// to the end of the day.
type Projection struct {
	// Consulting and Effective are the day's counts so far.
	Consulting, Effective int64
	// Rate is the rate so far; valid when Consulting > 0.
	Rate float64
	// Share is the share of a usual day's consulting buyers in by now.
	Share float64
	// Projected says whether the day is far enough in to project; then
	// ProjectedConsulting is the day's consulting buyers scaled by the
	// usual curve, and the projected rate is Rate (the rate so far).
	Projected           bool
	ProjectedConsulting float64
}

// ProjectEffective projects a shop's day from its counts so far at now:
// consulting buyers scaled by the usual daily curve, the rate as it is so
// far. The projection is absent (Projected false) while no one consulted
// or too early in the day.
func ProjectEffective(h *hours.Schedule, now time.Time, consulting, effective int64) Projection {
	p := Projection{Consulting: consulting, Effective: effective}
	if consulting <= 0 {
		return p
	}
	p.Rate = float64(effective) / float64(consulting)
	p.Share = DayShare(h, now)
	if p.Share >= minShare {
		p.Projected, p.ProjectedConsulting = true, float64(consulting)/p.Share
	}
	return p
}

// Effective-reply risk (DESIGN.md §4): PDD fines a shop whose day ends
// with at least riskMinConsulting consulting buyers and an effective
// reply rate under 50 %. The alert fires while the projection falls below
// effective_reply.alert_below, but not on the noise of an early morning,
// and does not flap around the line:
const (
	riskMinConsulting = 100
	// riskWarmupBuyers and riskWarmupShare: no risk is raised before this
	// many buyers have consulted today and this share of a usual day's
	// buyers has come (about 11:30 for an 08:00–23:00 shop). Ten buyers at
	// 10:00 projected to 110 at a rate of 0.3 are one agent's slow start,
	// not a day's outcome: with 30 buyers the rate so far is known to about
	// ±0.09 (one standard deviation at a rate of 0.5), and by a fifth of the
	// day the curve's scaling error is under a quarter (BENCHMARKS.md,
	// "Effective reply projection"). Both are constants, not configuration:
	// they are properties of the projection, which CONTRACT.md does not
	// expose, not of a shop.
	riskWarmupBuyers = 30
	riskWarmupShare  = 0.2
	// riskRecoverMargin and riskRecoverConsulting are the hysteresis: a
	// firing risk resolves only once the projected rate is this much above
	// alert_below, or the projected day falls to this many consulting
	// buyers, so that a rate hovering at the line raises one alert, not one
	// every few reports.
	riskRecoverMargin     = 0.05
	riskRecoverConsulting = 90
)

// EffectiveSpell is what the shop-level rules remember of a shop's
// effective_reply_risk on its current shop-local day. It is kept with the
// lease's fencing, so a replica that takes the lease over neither raises a
// firing risk again nor forgets to resolve it.
type EffectiveSpell struct {
	Day string `json:"day,omitempty"`
	// Firing says whether the day's latest alert is firing, since Since
	// (Unix ms).
	Firing bool  `json:"firing,omitempty"`
	Since  int64 `json:"since,omitempty"`
	// Fired counts the day's alerts: a risk that recovered and came back
	// is a new alert, with an id of its own.
	Fired int `json:"fired,omitempty"`
}

// EvaluateEffectiveRisk judges a shop's projection for its shop-local day
// at now: it fires effective_reply_risk when the warmed-up projection falls
// below alertBelow with at least 100 consulting buyers projected, and
// resolves it (reason recovered) once the projection is clear of the line
// by the hysteresis margin, or the day is over.
func EvaluateEffectiveRisk(shop, platform, day string, p Projection, alertBelow float64, sp *EffectiveSpell, now time.Time, fx *Effects) {
	if sp.Day != day {
		if sp.Firing {
			fx.Alerts = append(fx.Alerts, EffectiveRiskAlert(shop, platform, sp.Day, sp.Fired, now, false))
		}
		*sp = EffectiveSpell{Day: day}
	}
	switch {
	case !sp.Firing && EffectiveRisk(p, alertBelow):
		sp.Firing, sp.Since = true, now.UnixMilli()
		sp.Fired++
		fx.Alerts = append(fx.Alerts, EffectiveRiskAlert(shop, platform, day, sp.Fired, now, true))
	case sp.Firing && effectiveRecovered(p, alertBelow):
		sp.Firing, sp.Since = false, 0
		fx.Alerts = append(fx.Alerts, EffectiveRiskAlert(shop, platform, day, sp.Fired, now, false))
	}
	if sp.Fired == 0 {
		*sp = EffectiveSpell{} // nothing to remember
	}
}

// EffectiveRisk reports whether a projection raises the risk: warmed up,
// at least 100 consulting buyers projected, the rate under alertBelow.
func EffectiveRisk(p Projection, alertBelow float64) bool {
	return p.Projected && p.Consulting >= riskWarmupBuyers && p.Share >= riskWarmupShare &&
		p.ProjectedConsulting >= riskMinConsulting && p.Rate < alertBelow
}

// effectiveRecovered reports whether a firing risk's projection is clear
// of the line by the hysteresis margin.
func effectiveRecovered(p Projection, alertBelow float64) bool {
	return p.Projected && (p.Rate >= alertBelow+riskRecoverMargin || p.ProjectedConsulting < riskRecoverConsulting)
}

// EffectiveRiskAlert is the n-th (from 1) effective_reply_risk alert of a
// shop-local day: firing while at risk, resolved (reason recovered) when
// the projection is back. The day's first has the id of the shop and day;
// a later one the id of its number too.
func EffectiveRiskAlert(shop, platform, day string, n int, at time.Time, firing bool) alerting.Alert {
	id := alerting.ID(alerting.KindEffectiveReplyRisk, shop, day)
	if n > 1 {
		id = alerting.ID(alerting.KindEffectiveReplyRisk, shop, day, strconv.Itoa(n))
	}
	a := alerting.Alert{
		ID: id, Kind: alerting.KindEffectiveReplyRisk,
		Status: alerting.Firing, Severity: alerting.Warning, Platform: platform, ShopID: shop, At: at,
	}
	if !firing {
		a.Status, a.Reason = alerting.Resolved, alerting.ReasonRecovered
	}
	return a
}
