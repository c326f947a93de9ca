package metrics

import (
	"time"

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

// dayShare is the share of a usual day's in-window consulting buyers that
// has arrived by now, in quarter hours of the shop's schedule.
func dayShare(h *hours.Schedule, now time.Time) float64 {
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

// effectiveReply is a shop's effective reply rate so far and projected to
// the end of the day: consulting buyers scaled by the usual curve, the rate
// as it is so far. ok is false while no one consulted; projected is false
// too early in the day to project.
func effectiveReply(h *hours.Schedule, now time.Time, consulting, effective int64) (rate, projConsulting float64, ok, projected bool) {
	if consulting <= 0 {
		return 0, 0, false, false
	}
	rate = float64(effective) / float64(consulting)
	if s := dayShare(h, now); s >= minShare {
		return rate, float64(consulting) / s, true, true
	}
	return rate, 0, true, false
}
