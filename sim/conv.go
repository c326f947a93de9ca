package sim

import (
	"math"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/event"
)

// conv is the conversation being planned.
type conv struct {
	s     *shop
	buyer string
	key   string
	agent *agent // the responsible agent, nil while nobody holds the chat
	order string // the order the buyer writes about, if any
}

// Kinds of conversation, in per-mille shares.
const (
	kindPresale   = iota // questions before buying; some convert to an order
	kindLogistics        // "where is my parcel", about an earlier order
	kindAftersale        // a problem with an earlier order; often a refund
	kindComplaint        // an angry buyer threatening a complaint
	kindSpam             // ads or abuse; the agent blocks or reports the buyer
)

var kindShares = [...]int{kindPresale: 655, kindLogistics: 150, kindAftersale: 130, kindComplaint: 53, kindSpam: 12}

const (
	second = int64(1000)
	minute = 60 * second
	hour   = 60 * minute
)

// conversation plans one buyer's conversation starting at t0: the first
// message, the bot's greeting, rounds of buyer messages and human replies
// (with realistic delays, breaks, transfers and now and then no reply at
// all), a closing thank-you, and the orders that follow from it.
func (g *gen) conversation(s *shop, t0 int64) {
	c := conv{s: s}
	kind := g.kind()
	c.buyer = g.buyer(s, t0)
	c.key = s.id + "/" + c.buyer
	c.agent = g.assign(s, t0, nil)
	if kind == kindLogistics || kind == kindAftersale || kind == kindComplaint {
		c.order = g.priorOrder(s)
	}
	var first []string
	switch kind {
	case kindPresale:
		first = presaleFirst
	case kindLogistics:
		first = logisticsFirst
	case kindAftersale:
		first = aftersaleFirst
	case kindComplaint:
		first = complaintFirst
	default:
		first = spamFirst
	}
	g.chat(&c, t0, event.SenderBuyer, c.agent, g.pick(first))
	if g.r.IntN(100) < 88 {
		text := g.pick(botGreeting)
		if c.agent == nil {
			text = botAfterHours[0]
		}
		g.chat(&c, t0+g.ms(1, 5), event.SenderBot, c.agent, text)
	}
	if kind == kindSpam {
		g.spam(&c, t0)
		return
	}
	if kind == kindAftersale && g.r.IntN(100) < 60 {
		g.refund(s, c.buyer, c.key, c.order, t0+g.ms(30, 600), g.amount())
	}
	last := g.rounds(&c, t0, kind)
	if c.agent != nil {
		c.agent.active = append(c.agent.active, last)
	}
	switch {
	case kind == kindPresale && g.r.IntN(100) < 32:
		g.order(&c, last+g.ms(20, 1800))
	case kind == kindLogistics && g.r.IntN(100) < 40:
		g.orderEvent(s, c.key, c.buyer, c.order, last+g.ms(600, 5400), event.TypeOrderShipped, 0)
	case kind == kindComplaint && g.r.IntN(100) < 35:
		rec := g.orderRecord(s, c.key, c.buyer, c.order, event.TypeComplaintOpened, 0)
		at := last + g.ms(300, 3600)
		rec.Event.RespondBy = g.respondBy(at)
		g.push(at, rec)
	}
	g.remember(s, c.buyer, last)
}

// rounds plans the rounds of buyer messages and replies from t0 and returns
// the time of the conversation's last message.
func (g *gen) rounds(c *conv, t0 int64, kind int) int64 {
	n := 1
	for n < 5 && g.r.IntN(100) < 55 {
		n++
	}
	// Overlooked in the queue: answered only when the agent works through
	// it, a quarter of an hour or more later (a breach at every threshold).
	overlooked := g.r.IntN(1000) < 20
	t, last := t0, t0
	for i := 0; i < n; i++ {
		if i > 0 {
			t = last + g.ms(15, 150)
			g.chat(c, t, event.SenderBuyer, c.agent, g.more(kind))
		}
		if overlooked {
			holder := c.agent
			tr, ok := g.lateReply(c, t)
			if !ok {
				return g.followUps(c, holder, t, t+15*minute, kind)
			}
			g.followUps(c, holder, t, tr, kind)
			g.agentMsg(c, tr, agentReplies)
			return tr
		}
		holder := c.agent // who holds the chat while the buyer waits
		tr, ok := g.reply(c, t)
		if !ok {
			return g.followUps(c, holder, t, t+15*minute, kind)
		}
		g.followUps(c, holder, t, tr, kind)
		if i == 0 && tr-t > 20*second && g.r.IntN(100) < 4 {
			// Handed to a colleague while waiting (售前 → 售后, say); the
			// clock keeps running and the new agent answers.
			mid := t + (tr-t)/2
			if b := g.assign(c.s, mid, c.agent); b != nil {
				g.transfer(c, mid, b)
			}
		}
		g.agentMsg(c, tr, agentReplies)
		if g.r.IntN(100) < 30 {
			g.agentMsg(c, tr+g.ms(3, 25), agentReplies)
		}
		last = tr
		if tr-t > hour {
			// Answered hours later (the night's backlog): the buyer has
			// long gone and reads it later, if at all.
			return last
		}
	}
	if g.r.IntN(100) < 40 {
		t = last + g.ms(10, 120)
		g.chat(c, t, event.SenderBuyer, c.agent, g.pick(thanks))
		last = t
		// A thank-you is a buyer message like any other: agents answer it,
		// some only when they work through their queue later.
		reply := g.reply
		if g.r.IntN(100) >= 92 {
			reply = g.lateReply
		}
		if tr, ok := reply(c, t); ok {
			g.agentMsg(c, tr, agentThanks)
			last = tr
		}
	}
	return last
}

// followUps plans the buyer's further messages while waiting in [from, to):
// a question or two, and impatience when the wait grows long. It returns the
// last message time (from if none).
func (g *gen) followUps(c *conv, holder *agent, from, to int64, kind int) int64 {
	last := from
	k := 0
	switch u := g.r.IntN(100); {
	case u < 40:
	case u < 75:
		k = 1
	case u < 93:
		k = 2
	default:
		k = 3
	}
	at := from
	for ; k > 0; k-- {
		at += g.ms(5, 60)
		if at >= to {
			break
		}
		g.chat(c, at, event.SenderBuyer, holder, g.more(kind))
		last = at
	}
	if to-from > 150*second && g.r.IntN(100) < 50 {
		at := from + 120*second + g.r.Int64N(to-from-120*second)
		if at > last {
			g.chat(c, at, event.SenderBuyer, holder, g.pick(impatient))
			last = at
		}
	}
	return last
}

// reply plans the human reply to a wait that starts at t: the assigned agent
// answers after a delay that grows with the agent's load; an agent who left
// the seat meanwhile answers on return or a colleague takes the chat; when
// nobody is on a seat (out of hours, an uncovered shop) the first agent back
// answers the backlog. It returns false when nobody answers within a day.
func (g *gen) reply(c *conv, t int64) (int64, bool) {
	s := c.s
	if c.agent == nil {
		c.agent = g.assign(s, t, nil)
	}
	if c.agent == nil {
		a, at := g.firstAvailable(s, t)
		if a == nil || at-t > 24*hour {
			return 0, false
		}
		c.agent = a
		return at + g.catchUp(s, a, t, at), true
	}
	a := c.agent
	tr := t + g.delay(s, a, t)
	st := g.schedule(s, a, tr).statusAt(tr)
	if available(st) {
		return tr, true
	}
	if st == stAway {
		back := g.schedule(s, a, tr).availableFrom(tr)
		if back > 0 && back-tr < 30*minute && g.r.IntN(100) < 40 {
			return back + g.ms(5, 60), true
		}
	}
	if b := g.assign(s, tr, a); b != nil {
		g.transfer(c, tr, b)
		return tr + g.ms(5, 45), true
	}
	b, at := g.firstAvailable(s, tr)
	if b == nil || at-t > 24*hour {
		return 0, false
	}
	if b != a {
		g.transfer(c, at, b)
	}
	return at + g.catchUp(s, b, t, at), true
}

// lateReply plans the reply to a wait that starts at t and is overlooked:
// the agent answers 15–40 minutes later, when clearing the queue, as
// agents do in real shops; false when nobody is on a seat within a day
// (those buyers stay unanswered, as they do in real shops).
func (g *gen) lateReply(c *conv, t int64) (int64, bool) {
	return g.reply(c, t+g.ms(900, 2400))
}

// catchUp is how long after coming to a seat at `at` an agent answers a
// buyer waiting since t: as usual after a short gap, slower after a long
// one (the night's backlog at opening).
func (g *gen) catchUp(s *shop, a *agent, t, at int64) int64 {
	if at-t > hour {
		return g.ms(20, 600)
	}
	return g.ms(5, 20) + g.delay(s, a, at)
}

// delay draws a human reply delay: mostly 10–90 s, a share of 1–3 min and a
// tail beyond 3 and 5 minutes, slower for slow teams, busy seats and agents
// holding many chats.
func (g *gen) delay(s *shop, a *agent, t int64) int64 {
	var sec float64
	switch u := g.r.IntN(1000); {
	case u < 820:
		sec = min(90, max(5, 20*math.Exp(0.6*g.r.NormFloat64())))
	case u < 970:
		sec = 40 + 100*g.r.Float64()
	case u < 988:
		sec = 185 + 110*g.r.Float64()
	default:
		sec = 305 + min(1200, 150*g.r.ExpFloat64())
	}
	if g.o.Quiet > 0 && g.r.Float64() < g.o.Quiet {
		sec = 240 + 240*g.r.Float64() // the agent went quiet
	}
	f := s.slow * min(2.5, 1+0.08*float64(max(0, a.load(t)-4)))
	if g.schedule(s, a, t).statusAt(t) == stBusy {
		f *= 1.4
	}
	return int64(sec * f * 1000)
}

// load is the number of chats the agent still holds at t.
func (a *agent) load(t int64) int {
	k := 0
	for _, end := range a.active {
		if end > t {
			a.active[k] = end
			k++
		}
	}
	a.active = a.active[:k]
	return k
}

// assign picks the seat for a new chat at t: an online agent before a busy
// one, the least loaded first; nil when no seat is taken.
func (g *gen) assign(s *shop, t int64, not *agent) *agent {
	var best *agent
	bestRank, bestLoad := 0, 0
	for _, a := range s.agents {
		if a == not {
			continue
		}
		rank := 0
		switch g.schedule(s, a, t).statusAt(t) {
		case stOnline:
			rank = 2
		case stBusy:
			rank = 1
		default:
			continue
		}
		l := a.load(t)
		if best == nil || rank > bestRank || (rank == bestRank && l < bestLoad) {
			best, bestRank, bestLoad = a, rank, l
		}
	}
	return best
}

// firstAvailable is the agent who is first on a seat at or after t, within
// two days.
func (g *gen) firstAvailable(s *shop, t int64) (*agent, int64) {
	var best *agent
	bestAt := int64(math.MaxInt64)
	for _, a := range s.agents {
		from := t
		for day := 0; day < 3; day++ {
			d := g.schedule(s, a, from)
			if at := d.availableFrom(from); at >= 0 {
				if at < bestAt {
					best, bestAt = a, at
				}
				break
			}
			from = d.next
		}
	}
	return best, bestAt
}

func (g *gen) transfer(c *conv, at int64, to *agent) {
	from := ""
	if c.agent != nil {
		from = c.agent.id
	}
	g.push(at, Record{Topic: event.Chat, Key: c.key, Event: event.Event{
		Type: event.TypeTransfer, ShopID: c.s.id, Platform: c.s.platform, BuyerID: c.buyer,
		AgentID: to.id, FromAgentID: from,
	}})
	c.agent = to
	if g.r.IntN(2) == 0 {
		g.chat(c, at, event.SenderSystem, nil, systemTransfer)
	}
}

// agentMsg plans a human reply by the conversation's agent; a small share
// is what the text rules exist for.
func (g *gen) agentMsg(c *conv, at int64, texts []string) {
	switch u := g.r.IntN(1000); {
	case u < 3:
		texts = agentAbusive
	case u < 6:
		texts = agentOffPlatform
	case u < 16:
		texts = agentPerfunctory
	}
	g.chat(c, at, event.SenderAgent, c.agent, g.pick(texts))
}

// spam: an advertiser or an abusive buyer, whom the agent blocks or reports
// (a few a day per shop), sometimes after a polite answer. The buyer may
// write again after the block.
func (g *gen) spam(c *conv, t0 int64) {
	t := t0
	if g.r.IntN(2) == 0 {
		if tr, ok := g.reply(c, t); ok {
			g.agentMsg(c, tr, agentSpam)
			t = tr
		}
	}
	if c.agent == nil {
		a, at := g.firstAvailable(c.s, t)
		if a == nil {
			return
		}
		c.agent, t = a, max(t, at)
	}
	at := t + g.ms(10, 90)
	typ := event.TypeBuyerBlocked
	if g.r.IntN(100) < 40 {
		typ = event.TypeBuyerReported
	}
	g.push(at, Record{Topic: event.Chat, Key: c.key, Event: event.Event{
		Type: typ, ShopID: c.s.id, Platform: c.s.platform, BuyerID: c.buyer, AgentID: c.agent.id,
	}})
	if g.r.IntN(100) < 30 {
		g.chat(c, at+g.ms(20, 300), event.SenderBuyer, c.agent, g.pick(spamFirst))
	}
}

func (g *gen) chat(c *conv, at int64, sender string, a *agent, text string) {
	rec := Record{Topic: event.Chat, Key: c.key, Event: event.Event{
		Type: event.TypeMessage, ShopID: c.s.id, Platform: c.s.platform, BuyerID: c.buyer,
		Sender: sender, Text: text, OrderID: c.order,
	}}
	if a != nil {
		rec.Event.AgentID = a.id
	}
	g.push(at, rec)
}

// order plans an order placed after a conversation: created, mostly paid,
// grouped on PDD, shipped mostly within the promise and some late, now and
// then refunded before shipping, and reviewed days later.
func (g *gen) order(c *conv, t int64) {
	s := c.s
	id := g.newOrder(s)
	amount := g.amount()
	rec := g.orderRecord(s, c.key, c.buyer, id, event.TypeOrderCreated, amount)
	if c.agent != nil {
		rec.Event.AgentID = c.agent.id
	}
	g.push(t, rec)
	if g.r.IntN(100) >= 88 {
		return
	}
	paid := t + g.ms(20, 900)
	rec = g.orderRecord(s, c.key, c.buyer, id, event.TypeOrderPaid, amount)
	deadline := int64(-1)
	switch {
	case s.flash:
		deadline = paid + 24*hour // 闪电发货
	case g.r.IntN(100) < 10:
		deadline = paid + g.ms(3*3600, 6*3600) // promised same-day shipping
	}
	if deadline > 0 {
		rec.Event.ShipBy = g.timeAt(deadline)
	}
	g.push(paid, rec)
	clock := paid
	if s.platform == "pdd" && g.r.IntN(100) < 97 {
		clock = paid + g.ms(0, 1200)
		g.orderEvent(s, c.key, c.buyer, id, clock, event.TypeOrderGrouped, amount)
	}
	if deadline < 0 {
		deadline = clock + s.promise.Milliseconds()
	}
	window := deadline - clock
	var ship int64
	switch u := g.r.IntN(100); {
	case u < 80:
		ship = clock + int64(float64(window)*(0.05+0.65*g.r.Float64()))
	case u < 93:
		ship = clock + int64(float64(window)*(0.7+0.28*g.r.Float64()))
	default:
		ship = deadline + g.ms(600, 12*3600) // late
	}
	if g.r.IntN(100) < 6 {
		if at := paid + g.ms(60, 3*3600); at < ship {
			if done, ok := g.refund(s, c.buyer, c.key, id, at, amount); ok && done < ship {
				return // refunded before shipping: nothing ships
			}
		}
	}
	g.orderEvent(s, c.key, c.buyer, id, ship, event.TypeOrderShipped, 0)
	if g.r.IntN(100) < 45 {
		g.review(s, c.key, c.buyer, id, ship+g.ms(2*86400, 6*86400))
	}
}

// refund plans a refund request and its outcome: mostly completed, else
// rejected, and a rejected one sometimes ends with the platform stepping in
// (纠纷) with a deadline to respond. It returns when the refund completed.
func (g *gen) refund(s *shop, buyer, key, order string, t, amount int64) (int64, bool) {
	g.orderEvent(s, key, buyer, order, t, event.TypeRefundRequested, amount)
	if g.r.IntN(100) < 65 {
		done := t + g.ms(600, 8*3600)
		g.orderEvent(s, key, buyer, order, done, event.TypeRefundCompleted, amount)
		return done, true
	}
	rej := t + g.ms(1200, 6*3600)
	g.orderEvent(s, key, buyer, order, rej, event.TypeRefundRejected, amount)
	if g.r.IntN(100) < 45 {
		g.dispute(s, key, buyer, order, rej+g.ms(600, 10*3600), amount)
	}
	return 0, false
}

func (g *gen) dispute(s *shop, key, buyer, order string, at, amount int64) {
	rec := g.orderRecord(s, key, buyer, order, event.TypeDisputeOpened, amount)
	rec.Event.RespondBy = g.respondBy(at)
	g.push(at, rec)
	g.orderEvent(s, key, buyer, order, at+g.ms(3600, 40*3600), event.TypeDisputeClosed, amount)
}

// respondBy is a platform deadline after at: mostly 24 or 48 hours, some
// only a few hours (举证 requests).
func (g *gen) respondBy(at int64) *event.Time {
	switch u := g.r.IntN(100); {
	case u < 50:
		return g.timeAt(at + 24*hour)
	case u < 75:
		return g.timeAt(at + 48*hour)
	default:
		return g.timeAt(at + g.ms(3600, 6*3600))
	}
}

var ratings = [...]int{1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4} // then 5

func (g *gen) review(s *shop, key, buyer, order string, at int64) {
	rec := g.orderRecord(s, key, buyer, order, event.TypeReviewPosted, 0)
	rec.Event.Rating = 5
	if u := g.r.IntN(100); u < len(ratings) {
		rec.Event.Rating = ratings[u]
	}
	g.push(at, rec)
}

// background plans one event about an order placed before the run: a
// shipment, a review, a late refund request, a dispute or complaint, so that
// even a single day carries the whole after-sales mix.
func (g *gen) background(s *shop, t int64) {
	buyer := "b" + strconv.Itoa(500000+g.r.IntN(100000))
	key := s.id + "/" + buyer
	order := g.priorOrder(s)
	switch u := g.r.IntN(100); {
	case u < 45:
		g.orderEvent(s, key, buyer, order, t, event.TypeOrderShipped, 0)
	case u < 78:
		g.review(s, key, buyer, order, t)
	case u < 86:
		g.refund(s, buyer, key, order, t, g.amount())
	case u < 92:
		g.orderEvent(s, key, buyer, order, t, event.TypeDisputeClosed, 0)
	case u < 96:
		g.dispute(s, key, buyer, order, t, g.amount())
	default:
		rec := g.orderRecord(s, key, buyer, order, event.TypeComplaintOpened, 0)
		rec.Event.RespondBy = g.respondBy(t)
		g.push(t, rec)
	}
}

func (g *gen) orderRecord(s *shop, key, buyer, order, typ string, amount int64) Record {
	return Record{Topic: event.Orders, Key: key, Event: event.Event{
		Type: typ, ShopID: s.id, Platform: s.platform, BuyerID: buyer, OrderID: order, AmountCents: amount,
	}}
}

func (g *gen) orderEvent(s *shop, key, buyer, order string, at int64, typ string, amount int64) {
	g.push(at, g.orderRecord(s, key, buyer, order, typ, amount))
}

func (g *gen) kind() int {
	u := g.r.IntN(1000)
	for k, share := range kindShares {
		if u < share {
			return k
		}
		u -= share
	}
	return kindPresale
}

func (g *gen) more(kind int) string {
	if kind == kindAftersale || kind == kindComplaint {
		return g.pick(aftersaleMore)
	}
	return g.pick(presaleMore)
}

// buyer picks a new buyer, or now and then one who wrote earlier and whose
// conversation is over.
func (g *gen) buyer(s *shop, t int64) string {
	if len(s.recent) > 0 && g.r.IntN(100) < 8 {
		i := g.r.IntN(len(s.recent))
		if rb := &s.recent[i]; rb.free < t {
			rb.free = math.MaxInt64 // taken; remembered again when this conversation ends
			return rb.id
		}
	}
	s.nextBuyer++
	return "b" + strconv.Itoa(s.nextBuyer)
}

func (g *gen) remember(s *shop, buyer string, free int64) {
	const keep = 64
	if len(s.recent) < keep {
		s.recent = append(s.recent, recentBuyer{buyer, free})
		return
	}
	s.recent[s.recentPos] = recentBuyer{buyer, free}
	s.recentPos = (s.recentPos + 1) % keep
}

func (g *gen) newOrder(s *shop) string {
	s.nextOrder++
	return "o" + pad2(s.idx+1) + "-" + strconv.Itoa(1000000+s.nextOrder)
}

// priorOrder names an order placed before the run.
func (g *gen) priorOrder(s *shop) string {
	s.nextPrior++
	return "o" + pad2(s.idx+1) + "-p" + strconv.Itoa(1000000+s.nextPrior)
}

// amount draws an order amount between 9.90 and 299 yuan, log-uniform,
// priced like "xx.90".
func (g *gen) amount() int64 {
	yuan := int64(math.Exp(math.Log(9) + g.r.Float64()*(math.Log(299)-math.Log(9))))
	return yuan*100 + 90
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

// ms draws a duration between lo and hi seconds, in milliseconds.
func (g *gen) ms(lo, hi float64) int64 { return int64((lo + (hi-lo)*g.r.Float64()) * 1000) }

func (g *gen) timeAt(ms int64) *event.Time {
	return &event.Time{Time: time.UnixMilli(ms).In(g.loc)}
}
