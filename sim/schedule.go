package sim

import (
	"math/rand/v2"
	"slices"
	"time"
)

// curve is the relative chat traffic at the start of each shop-local hour
// (index 24 is the next midnight), linear in between: a quiet night and
// morning, a peak after lunch around 14:00 and the highest one 20:00–22:00.
var curve = [25]float64{
	0.22, 0.12, 0.06, 0.04, 0.03, 0.04, 0.09, 0.22, // 00–07
	0.45, 0.70, 0.88, 0.95, 0.80, 0.95, 1.35, 1.25, // 08–15
	1.05, 0.95, 0.90, 1.10, 1.45, 1.55, 1.25, 0.65, // 16–23
	0.22,
}

// curveMax bounds the curve, for thinning; curveDay is its integral over a
// day in hours, so that a shop's conversations per day match its setting.
var curveMax, curveDay = func() (float64, float64) {
	m, sum := 0.0, 0.0
	for h := 0; h < 24; h++ {
		m = max(m, curve[h])
		sum += (curve[h] + curve[h+1]) / 2
	}
	return m, sum
}()

// curveAt is the curve at a shop-local time of day in milliseconds.
func curveAt(msOfDay int64) float64 {
	if msOfDay < 0 {
		msOfDay = 0
	}
	h := msOfDay / 3_600_000
	if h >= 24 {
		return curve[24]
	}
	f := float64(msOfDay-h*3_600_000) / 3_600_000
	return curve[h] + (curve[h+1]-curve[h])*f
}

// Seat statuses as the contract spells them.
const (
	stOffline = "offline"
	stOnline  = "online"
	stBusy    = "busy"
	stAway    = "away"
)

// transition: from at on, the agent has status.
type transition struct {
	at     int64
	status string
}

// daySchedule is one agent's seat statuses over one shop-local day. The day
// starts offline; transitions are in time order.
type daySchedule struct {
	midnight, next int64
	trans          []transition
}

func (d daySchedule) statusAt(t int64) string {
	st := stOffline
	for _, tr := range d.trans {
		if tr.at > t {
			break
		}
		st = tr.status
	}
	return st
}

// availableFrom is the first time ≥ t in this day when the agent can reply
// (online or busy), or -1.
func (d daySchedule) availableFrom(t int64) int64 {
	if available(d.statusAt(t)) {
		return t
	}
	for _, tr := range d.trans {
		if tr.at > t && available(tr.status) {
			return tr.at
		}
	}
	return -1
}

func available(status string) bool { return status == stOnline || status == stBusy }

// localDay returns the shop-local midnight of the day holding t and the next
// midnight, in Unix ms.
func localDay(t int64, loc *time.Location) (int64, int64) {
	y, m, d := time.UnixMilli(t).In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UnixMilli(), time.Date(y, m, d+1, 0, 0, 0, 0, loc).UnixMilli()
}

// msOfDay is the shop-local time of day of t in milliseconds.
func msOfDay(t int64, loc *time.Location) int64 {
	tt := time.UnixMilli(t).In(loc)
	h, m, s := tt.Clock()
	return int64(h*3600+m*60+s)*1000 + int64(tt.Nanosecond()/1e6)
}

// schedule returns the agent's schedule for the shop-local day holding t. A
// day's schedule depends on the seed, the shop, the agent and the date only,
// so any span of a seed sees the same shifts.
// It returns a copy: the cache moves entries.
func (g *gen) schedule(s *shop, a *agent, t int64) daySchedule {
	for _, d := range a.days {
		if t >= d.midnight && t < d.next {
			return d
		}
	}
	mid, next := localDay(t, g.loc)
	y, mo, dd := time.UnixMilli(mid).In(g.loc).Date()
	r := rand.New(rand.NewPCG(g.seed^(uint64(s.idx+1)*0x9e3779b97f4a7c15), uint64(a.idx)<<32|uint64(y*10000+int(mo)*100+dd)))
	d := daySchedule{midnight: mid, next: next, trans: shift(r, s, a, mid)}
	if len(a.days) >= 3 {
		copy(a.days, a.days[1:])
		a.days = a.days[:2]
	}
	a.days = append(a.days, d)
	return d
}

type spell struct {
	from, to int64
	status   string
}

// shift draws one agent's day: a shift by pattern with jittered start and
// end, a meal break, short breaks (now and then one that runs long, which
// leaves the seat away) and busy spells. Shops with three or more agents give
// each a day off now and then.
func shift(r *rand.Rand, s *shop, a *agent, midnight int64) []transition {
	if len(s.agents) >= 3 && r.IntN(100) < 6 {
		return nil
	}
	minute := func(m int) int64 { return midnight + int64(m)*60_000 + r.Int64N(60_000) }
	var start, end int64
	var meals []int // meal break windows: start minute of the window
	switch a.pattern {
	case shiftFull:
		start, end = minute(470+r.IntN(15)), minute(1383+r.IntN(10))
		meals = []int{690, 1050}
	case shiftEarly:
		start, end = minute(460+r.IntN(25)), minute(960+r.IntN(60))
		meals = []int{690}
	case shiftLate:
		start, end = minute(810+r.IntN(60)), minute(1380+r.IntN(20))
		meals = []int{1050}
	default:
		start, end = minute(540+r.IntN(60)), minute(1080+r.IntN(60))
		meals = []int{690}
	}
	var spells []spell
	var lunch *spell
	for _, m := range meals {
		// Colleagues take their meals in turn, unless the whole shop eats
		// together (the midday meal: nobody covers the seats).
		from := minute(m - 30 + 40*(a.idx%3) + r.IntN(30))
		if s.lunchTogether && m == 690 {
			from = midnight + int64(m)*60_000
			lunch = &spell{from, from + int64(30+r.IntN(16))*60_000, stAway}
			continue
		}
		spells = append(spells, spell{from, from + int64(30+r.IntN(16))*60_000, stAway})
	}
	span := (end - start) / 60_000
	for n := 2 + r.IntN(3); n > 0; n-- {
		from := start + (15+r.Int64N(max(1, span-30)))*60_000
		d := int64(5 + r.IntN(11))
		if r.IntN(100) < 8 {
			d = int64(25 + r.IntN(21)) // a break that runs long
		}
		spells = append(spells, spell{from, from + d*60_000 + r.Int64N(60_000), stAway})
	}
	for n := 1 + r.IntN(3); n > 0; n-- {
		from := start + (15+r.Int64N(max(1, span-30)))*60_000
		spells = append(spells, spell{from, from + int64(5+r.IntN(16))*60_000, stBusy})
	}
	if lunch != nil {
		// The shared lunch wins over breaks that would crowd it.
		spells = slices.DeleteFunc(spells, func(sp spell) bool {
			return sp.from < lunch.to+5*60_000 && sp.to > lunch.from-5*60_000
		})
		spells = append(spells, *lunch)
	}
	slices.SortFunc(spells, func(x, y spell) int { return cmpInt64(x.from, y.from) })

	trans := []transition{{start, stOnline}}
	last := start
	for _, sp := range spells {
		// Keep spells apart and inside the shift.
		if sp.from < last+5*60_000 || sp.to > end-10*60_000 {
			continue
		}
		trans = append(trans, transition{sp.from, sp.status}, transition{sp.to, stOnline})
		last = sp.to
	}
	return append(trans, transition{end, stOffline})
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
