package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/event"
)

// gen is a discrete-event simulation: a heap of pending records and control
// steps ordered by (time, sequence). A control step (a shop's next
// conversation, its next after-sales event on an earlier order, a new day's
// seat schedule) plans records at or after its own time, so popping the heap
// yields records in event-time order. Records are planned into a slab and
// the heap holds small items, which keeps it fast.
type gen struct {
	o          Options
	seed       uint64
	loc        *time.Location
	r          *rand.Rand
	start, end int64 // [start, end) in Unix ms; end is MaxInt64 when open
	shops      []*shop

	heap []item
	seq  uint64
	slab []Record
	free []int32

	n       uint64 // records emitted
	idBase  []byte // "<seed>-<start>-"
	seedLen int
	idBuf   []byte
}

type item struct {
	at   int64
	seq  uint64
	slot int32 // ≥0: a record in the slab; <0: a control step, see ctrl
}

// Control steps, per shop.
const (
	ctrlArrival    = iota // next conversation
	ctrlBackground        // next after-sales event on an earlier order
	ctrlDay               // seat schedules of a new day
	nCtrl
)

func ctrlSlot(shop, kind int) int32 { return -1 - int32(shop*nCtrl+kind) }

func newGen(o Options) *gen {
	g := &gen{
		o:     o,
		seed:  o.Seed,
		loc:   o.Location,
		r:     rand.New(rand.NewPCG(o.Seed, 0xda7a5eed)),
		start: o.Start.UnixMilli(),
		end:   math.MaxInt64,
		shops: buildShops(o),
	}
	if !o.End.IsZero() {
		g.end = o.End.UnixMilli()
	}
	g.idBase = strconv.AppendUint(nil, o.Seed, 10)
	g.seedLen = len(g.idBase)
	g.idBase = append(g.idBase, '-')
	g.idBase = strconv.AppendInt(g.idBase, o.Start.Unix(), 10)
	g.idBase = append(g.idBase, '-')
	for i, s := range g.shops {
		// Each shop draws its arrival times from its own streams: the times
		// before End then do not depend on End, and a run with an end is
		// exactly the beginning of the same run without one.
		s.arrivals = rand.New(rand.NewPCG(o.Seed, uint64(i)<<8|ctrlArrival))
		s.backlog = rand.New(rand.NewPCG(o.Seed, uint64(i)<<8|ctrlBackground))
		g.pushCtrl(g.start, i, ctrlDay)
		g.pushCtrl(g.nextArrival(s.arrivals, g.start, s.convPerDay), i, ctrlArrival)
		g.pushCtrl(g.nextArrival(s.backlog, g.start, s.bgPerDay), i, ctrlBackground)
	}
	return g
}

// next returns the next record in event-time order, or false at the end.
func (g *gen) next() (Record, bool) {
	for len(g.heap) > 0 {
		it := g.pop()
		if it.at >= g.end {
			return Record{}, false
		}
		if it.slot >= 0 {
			rec := g.slab[it.slot]
			g.slab[it.slot] = Record{}
			g.free = append(g.free, it.slot)
			g.stamp(&rec)
			return rec, true
		}
		c := int(-1 - it.slot)
		s := g.shops[c/nCtrl]
		switch c % nCtrl {
		case ctrlArrival:
			g.conversation(s, it.at)
			g.pushCtrl(g.nextArrival(s.arrivals, it.at, s.convPerDay), s.idx, ctrlArrival)
		case ctrlBackground:
			g.background(s, it.at)
			g.pushCtrl(g.nextArrival(s.backlog, it.at, s.bgPerDay), s.idx, ctrlBackground)
		case ctrlDay:
			g.day(s, it.at)
		}
	}
	return Record{}, false
}

// stamp gives a record its event id (and msg_id for messages) in emission
// order, so ids are unique and stable for a seed and start.
func (g *gen) stamp(rec *Record) {
	g.n++
	g.idBuf = strconv.AppendUint(append(g.idBuf[:0], g.idBase...), g.n, 10)
	rec.Event.EventID = string(g.idBuf)
	if rec.Event.Type == event.TypeMessage {
		// "<start>-<n>": unique per run, and shares the id's bytes.
		rec.Event.MsgID = rec.Event.EventID[g.seedLen+1:]
	}
}

// nextArrival draws the time of the next event of a non-homogeneous Poisson
// process following the daily curve with perDay events a day (thinning).
// It returns g.end when there is none before the end.
func (g *gen) nextArrival(r *rand.Rand, t int64, perDay float64) int64 {
	if perDay <= 0 {
		return g.end
	}
	lmax := perDay * curveMax / curveDay / 3_600_000 // per ms
	for {
		gap := r.ExpFloat64() / lmax
		if gap >= float64(g.end-t) {
			return g.end
		}
		t += int64(gap) + 1
		if t >= g.end {
			return g.end
		}
		if r.Float64()*curveMax < curveAt(msOfDay(t, g.loc)) {
			return t
		}
	}
}

// day plans one shop-local day of seat statuses from t (the start of the
// run, or a midnight) and the next day's step. At the start of the run every
// seat reports its current status, so the day's picture is whole.
func (g *gen) day(s *shop, t int64) {
	_, next := localDay(t, g.loc)
	for _, a := range s.agents {
		d := g.schedule(s, a, t)
		if t == g.start {
			g.presence(s, a, t, d.statusAt(t))
		}
		for _, tr := range d.trans {
			if tr.at > t || (tr.at == t && t != g.start) {
				g.presence(s, a, tr.at, tr.status)
			}
		}
	}
	g.pushCtrl(next, s.idx, ctrlDay)
}

func (g *gen) presence(s *shop, a *agent, at int64, status string) {
	if s.noPresence {
		return
	}
	g.push(at, Record{Topic: event.Presence, Key: s.id + "/" + a.id, Event: event.Event{
		Type: event.TypeAgentStatus, ShopID: s.id, Platform: s.platform, AgentID: a.id, Status: status,
	}})
}

// push plans a record at time at (Unix ms); records at or after the end are
// dropped.
func (g *gen) push(at int64, rec Record) {
	if at >= g.end || at < g.start {
		return
	}
	rec.Event.TS = event.Time{Time: time.UnixMilli(at).In(g.loc)}
	var slot int32
	if n := len(g.free); n > 0 {
		slot = g.free[n-1]
		g.free = g.free[:n-1]
		g.slab[slot] = rec
	} else {
		slot = int32(len(g.slab))
		g.slab = append(g.slab, rec)
	}
	g.pushItem(item{at: at, slot: slot})
}

func (g *gen) pushCtrl(at int64, shop, kind int) {
	if at >= g.end {
		return
	}
	g.pushItem(item{at: at, slot: ctrlSlot(shop, kind)})
}

func (a item) less(b item) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

func (g *gen) pushItem(it item) {
	g.seq++
	it.seq = g.seq
	h := append(g.heap, it)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	g.heap = h
}

func (g *gen) pop() item {
	h := g.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	g.heap = h
	return top
}
