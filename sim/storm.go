package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/event"
)

// StormOptions size a bad day: a 双11 afternoon backlog of many short
// conversations in which agents fall behind, so that a large share of
// records starts or ends an alert.
type StormOptions struct {
	Seed uint64
	// Conversations is the number of conversations, five chat messages
	// each (buyer, buyer, agent, buyer, agent), each with a buyer of its
	// own; default 200,000.
	Conversations int
	// Shops and Agents (per shop): default 40 and 30.
	Shops, Agents int
	// Start is the event time of the first message (required); PerSecond
	// how many conversations start each second of event time, default 40.
	Start     time.Time
	PerSecond float64
	// Late is the share of records sent after a few later ones (at most a
	// second of event time, well inside the allowed lateness), default
	// 1 %; Duplicates the share sent twice, default 0.5 %.
	Late, Duplicates float64
}

// Storm generates the bad day's chat records in event-time order, apart
// from the few late ones, and passes each to emit. The first agent reply
// of a conversation comes after 30 s to 7 min: nearly half in time, the
// rest after a reply warning, a breach of the 3-minute threshold, or both
// thresholds; buyers write with text, some of it what the text rules look
// for (complaints, and agents' abusive, off-platform or perfunctory
// replies).
func Storm(o StormOptions, emit func(Record) error) error {
	if o.Conversations == 0 {
		o.Conversations = 200_000
	}
	if o.Shops == 0 {
		o.Shops = 40
	}
	if o.Agents == 0 {
		o.Agents = 30
	}
	if o.PerSecond == 0 {
		o.PerSecond = 40
	}
	if o.Late == 0 {
		o.Late = 0.01
	}
	if o.Duplicates == 0 {
		o.Duplicates = 0.005
	}
	if o.Start.IsZero() {
		return fmt.Errorf("storm: start time is required")
	}
	if o.Conversations < 0 || o.Shops < 1 || o.Agents < 1 || o.PerSecond < 0 || o.Late < 0 || o.Duplicates < 0 {
		return fmt.Errorf("storm: negative sizes in %+v", o)
	}
	g := &storm{o: o, r: rand.New(rand.NewPCG(o.Seed, 0x570a3)), emit: emit, loc: o.Start.Location()}
	for i := range o.Shops {
		g.platforms = append(g.platforms, defaultPlatforms[i%len(defaultPlatforms)])
	}
	start := o.Start.UnixMilli()
	for c := range o.Conversations {
		t0 := start + int64(float64(c)*1000/o.PerSecond)
		if err := g.flush(t0); err != nil {
			return err
		}
		g.conversation(c, t0)
	}
	if err := g.flush(1<<62 - 1); err != nil {
		return err
	}
	return g.release()
}

// stormFollowUps are the buyers' answers to the first reply.
var stormFollowUps = append(append([]string{}, presaleMore...), thanks...)

type storm struct {
	o         StormOptions
	r         *rand.Rand
	emit      func(Record) error
	loc       *time.Location
	platforms []string
	pending   stormHeap
	seq       int64
	// held are records sent late: after a few later ones.
	held  []Record
	holdN int
}

type stormItem struct {
	at, seq int64
	rec     Record
}

type stormHeap []stormItem

func (h stormHeap) Len() int { return len(h) }
func (h stormHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}
func (h stormHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *stormHeap) Push(x any)   { *h = append(*h, x.(stormItem)) }
func (h *stormHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// flush emits the planned records before t.
func (g *storm) flush(t int64) error {
	for len(g.pending) > 0 && g.pending[0].at < t {
		it := heap.Pop(&g.pending).(stormItem)
		if err := g.send(it.rec); err != nil {
			return err
		}
	}
	return nil
}

// send emits r, now and then twice, or holds it back for a few records.
func (g *storm) send(r Record) error {
	if len(g.held) > 0 && r.Event.TS.Sub(g.held[0].Event.TS.Time) > time.Second {
		if err := g.release(); err != nil {
			return err
		}
	}
	if g.r.Float64() < g.o.Late {
		if len(g.held) == 0 {
			g.holdN = 1 + g.r.IntN(40)
		}
		g.held = append(g.held, r)
		return nil
	}
	if err := g.emit(r); err != nil {
		return err
	}
	if g.r.Float64() < g.o.Duplicates {
		if err := g.emit(r); err != nil {
			return err
		}
	}
	if len(g.held) > 0 {
		if g.holdN--; g.holdN <= 0 {
			return g.release()
		}
	}
	return nil
}

// release emits the records held back.
func (g *storm) release() error {
	for _, h := range g.held {
		if err := g.emit(h); err != nil {
			return err
		}
	}
	g.held = g.held[:0]
	return nil
}

func (g *storm) sec(lo, hi float64) int64 { return int64((lo + (hi-lo)*g.r.Float64()) * 1000) }

func (g *storm) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

// conversation plans conversation c, starting at t0.
func (g *storm) conversation(c int, t0 int64) {
	shop := c % g.o.Shops
	shopID := "shop-" + pad2(shop+1)
	agent := shopID + "-a" + strconv.Itoa(1+(c/g.o.Shops)%g.o.Agents)
	buyer := "sb" + strconv.Itoa(100000+c)
	base := Record{Topic: event.Chat, Key: shopID + "/" + buyer, Event: event.Event{
		Type: event.TypeMessage, ShopID: shopID, Platform: g.platforms[shop], BuyerID: buyer, AgentID: agent,
	}}
	id := "st" + strconv.Itoa(c) + "-"
	n := 0
	msg := func(at int64, sender, text string) {
		r := base
		n++
		r.Event.EventID = id + strconv.Itoa(n)
		r.Event.MsgID = r.Event.EventID
		r.Event.Sender, r.Event.Text = sender, text
		r.Event.TS = event.Time{Time: time.UnixMilli(at).In(g.loc)}
		g.seq++
		heap.Push(&g.pending, stormItem{at: at, seq: g.seq, rec: r})
	}
	first := presaleFirst
	switch u := g.r.IntN(100); {
	case u < 30:
		first = logisticsFirst
	case u < 45:
		first = aftersaleFirst
	case u < 50:
		first = complaintFirst
	}
	msg(t0, event.SenderBuyer, g.pick(first))
	msg(t0+g.sec(10, 25), event.SenderBuyer, g.pick(impatient))
	// Agents fall behind: the first human reply comes late.
	var wait int64
	switch u := g.r.IntN(100); {
	case u < 45:
		wait = g.sec(30, 110) // in time
	case u < 65:
		wait = g.sec(125, 175) // after the 3m warning
	case u < 87:
		wait = g.sec(185, 235) // 3m breached
	default:
		wait = g.sec(310, 420) // both thresholds breached
	}
	reply := agentReplies
	switch u := g.r.IntN(1000); {
	case u < 20:
		reply = agentAbusive
	case u < 30:
		reply = agentOffPlatform
	case u < 60:
		reply = agentPerfunctory
	}
	t := t0 + wait
	msg(t, event.SenderAgent, g.pick(reply))
	t += g.sec(20, 40)
	msg(t, event.SenderBuyer, g.pick(stormFollowUps))
	msg(t+g.sec(5, 15), event.SenderAgent, g.pick(agentThanks))
}
