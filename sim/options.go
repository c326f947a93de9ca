// Package sim owns the traffic simulator: realistic contract events (chat,
// orders, seat presence) for shops on a daily curve, deterministic for a seed.
// It writes them as JSONL, produces them to Kafka, or hands them to tests and
// the demo, in event-time order. It does not apply any rule: what it produces
// is input, never an expectation.
package sim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/event"
)

// Record is one event and the stream and Kafka key it belongs to.
type Record struct {
	Topic event.Stream
	Key   string
	Event event.Event
}

// Options say what to simulate. Zero values take the defaults.
type Options struct {
	Seed uint64
	// Shops is the number of shops, default 3.
	Shops int
	// Agents is the number of agents per shop, default 4; shops vary around it.
	Agents int
	// Rate multiplies the daily curve, default 1 (about 3,000 chat events
	// per 4-agent shop per day).
	Rate float64
	// Start and End bound the event time generated, [Start, End). Start is
	// required; End defaults to Start + 24h for Generate and to never for Live.
	Start, End time.Time
	// Location is the shops' time zone, default Asia/Shanghai.
	Location *time.Location
	// Platforms are given to shops in turn; by default most shops are pdd and
	// some taobao, jd and tmall.
	Platforms []string
	// NoPresence is how many shops, the last ones, send no presence events:
	// replywatch infers their seats from human messages.
	NoPresence int
	// LunchTogether is how many shops, the first ones, have every agent
	// take the midday meal at the same time, leaving the shop uncovered.
	LunchTogether int
	// Quiet is the share of replies an agent sends only after going quiet
	// for 4 to 8 minutes with the buyer waiting (idle seats); 0 by default.
	Quiet float64
}

// Defaults.
const (
	DefaultShops  = 3
	DefaultAgents = 4
)

// defaultPlatforms is the default mix, given to shops in turn.
var defaultPlatforms = []string{"pdd", "pdd", "taobao", "pdd", "jd", "pdd", "tmall", "pdd"}

// Shanghai is Asia/Shanghai, or the same fixed +08:00 (no DST since 1991)
// when the system has no time zone database.
func Shanghai() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}

// normalize applies the defaults and checks the options. live says whether an
// open end is allowed.
func (o Options) normalize(live bool) (Options, error) {
	if o.Shops == 0 {
		o.Shops = DefaultShops
	}
	if o.Shops < 0 || o.Shops > 9999 {
		return o, fmt.Errorf("shops %d is not between 1 and 9999", o.Shops)
	}
	if o.Agents == 0 {
		o.Agents = DefaultAgents
	}
	if o.Agents < 0 || o.Agents > 999 {
		return o, fmt.Errorf("agents %d is not between 1 and 999", o.Agents)
	}
	if o.Rate == 0 {
		o.Rate = 1
	}
	if !(o.Rate > 0) || o.Rate > 1e6 {
		return o, fmt.Errorf("rate %v is not a positive multiplier", o.Rate)
	}
	if o.Location == nil {
		o.Location = Shanghai()
	}
	if o.Start.IsZero() {
		return o, fmt.Errorf("start time is required")
	}
	if o.End.IsZero() && !live {
		o.End = o.Start.Add(24 * time.Hour)
	}
	if !o.End.IsZero() && !o.End.After(o.Start) {
		return o, fmt.Errorf("end %s is not after start %s", event.FormatTime(o.End), event.FormatTime(o.Start))
	}
	if o.NoPresence < 0 || o.NoPresence > o.Shops || o.LunchTogether < 0 || o.LunchTogether > o.Shops {
		return o, fmt.Errorf("no-presence shops %d and lunch-together shops %d must be between 0 and the %d shops", o.NoPresence, o.LunchTogether, o.Shops)
	}
	if o.Quiet < 0 || o.Quiet > 1 {
		return o, fmt.Errorf("quiet share %v is not between 0 and 1", o.Quiet)
	}
	for _, p := range o.Platforms {
		if !event.Platforms[p] {
			return o, fmt.Errorf("platform %q is not one of pdd, taobao, tmall, jd, douyin, other", p)
		}
	}
	if len(o.Platforms) == 0 {
		o.Platforms = defaultPlatforms
	}
	return o, nil
}

// Shop describes one simulated shop, for callers that configure replywatch
// to match the simulation (platform per shop, agent ids).
type Shop struct {
	ID       string
	Platform string
	Agents   []string
	// ShipPromise is the shop's shipping promise from payment (or grouping on PDD).
	ShipPromise time.Duration
}

// Shops lists the shops the options simulate, in order. They depend only on
// Seed, Shops, Agents and Platforms.
func Shops(opts Options) ([]Shop, error) {
	opts.Start = time.Unix(0, 0) // the shops do not depend on the span
	o, err := opts.normalize(true)
	if err != nil {
		return nil, err
	}
	out := make([]Shop, 0, o.Shops)
	for _, s := range buildShops(o) {
		sh := Shop{ID: s.id, Platform: s.platform, ShipPromise: s.promise}
		for _, a := range s.agents {
			sh.Agents = append(sh.Agents, a.id)
		}
		out = append(out, sh)
	}
	return out, nil
}

// Shift patterns of an agent's day.
const (
	shiftFull = iota
	shiftEarly
	shiftLate
	shiftMiddle
)

// Patterns for shops with two or more agents: early and late overlap in the
// afternoon peak, middle and a second late cover lunch and the evening peak.
var shiftCycle = []int{shiftEarly, shiftLate, shiftMiddle, shiftLate, shiftEarly, shiftMiddle}

type agent struct {
	id      string
	idx     int
	pattern int
	// days caches the schedules of the last few days used.
	days []daySchedule
	// active holds the time of the last planned reply of each conversation
	// the agent holds: how busy the agent is.
	active []int64
}

type shop struct {
	idx      int
	id       string
	platform string
	agents   []*agent
	// size scales the traffic; slow scales reply delays (team quality).
	size, slow float64
	// noPresence: the shop sends no presence events; lunchTogether: its
	// agents take the midday meal at once.
	noPresence, lunchTogether bool
	// flash: PDD 闪电发货, a 24 h shipping promise sent as ship_by.
	flash   bool
	promise time.Duration

	convPerDay float64 // conversations per day at the curve's mean
	bgPerDay   float64 // after-sales events on earlier orders per day

	// arrivals and backlog draw the times of conversations and of
	// after-sales events on earlier orders.
	arrivals, backlog *rand.Rand

	nextBuyer int
	nextOrder int
	nextPrior int
	recent    []recentBuyer
	recentPos int
}

type recentBuyer struct {
	id   string
	free int64 // when the buyer's last conversation ended
}

// buildShops derives the shops from the seed only, so that any span of the
// same seed sees the same shops, agents and shift patterns.
func buildShops(o Options) []*shop {
	r := rand.New(rand.NewPCG(o.Seed, 0x5309c0ffee))
	shops := make([]*shop, o.Shops)
	for i := range shops {
		n := o.Agents
		if n > 2 {
			n += r.IntN(3) - 1 // shops vary around the given size
		}
		s := &shop{
			idx:      i,
			id:       "shop-" + pad2(i+1),
			platform: o.Platforms[i%len(o.Platforms)],
			slow:     0.75 + 0.4*r.Float64(),
			promise:  48 * time.Hour,
		}
		s.noPresence = i >= o.Shops-o.NoPresence
		s.lunchTogether = i < o.LunchTogether
		s.flash = s.platform == "pdd" && r.IntN(3) == 0
		if s.flash {
			s.promise = 24 * time.Hour
		}
		s.size = float64(n) / DefaultAgents * (0.8 + 0.45*r.Float64())
		s.convPerDay = 420 * o.Rate * s.size
		s.bgPerDay = 90 * o.Rate * s.size
		s.nextBuyer = 100000
		for j := 0; j < n; j++ {
			a := &agent{id: s.id + "-a" + strconv.Itoa(j+1), idx: j, pattern: shiftFull}
			if n > 1 {
				a.pattern = shiftCycle[j%len(shiftCycle)]
			}
			s.agents = append(s.agents, a)
		}
		shops[i] = s
	}
	return shops
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
