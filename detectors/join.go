package detectors

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/text"
)

// The buyer join (DESIGN.md §3) meets a buyer's chat and orders by key: it
// sees the buyer's messages, the human replies to them and the order events
// that make the buyer a priority or convert their inquiry, whatever topic
// and partition each came from. It derives two things from them:
//
//   - inquiry conversion: a buyer's first in-window message of a day
//     (consulting) followed by a payment within the conversion window,
//     credited to the agent who last sent them a human reply at or before
//     the payment;
//   - priority escalations: while the buyer has an open refund, dispute or
//     complaint, or wrote with complaint intent earlier that day, a wait for
//     a human reply warns PriorityWarnBefore ahead of the first threshold,
//     at severity critical.
//
// Both are derived again from the remembered facts on every event, so the
// result does not depend on the order the facts arrive in: an order read an
// hour before or after the chat gives the same figures and alerts.

// Figure fields of the join, daily, counted on the consulting day.
const (
	// FieldConverted is the consulting buyers of the day who paid within
	// the conversion window; its per-agent form counts those credited to
	// the agent.
	FieldConverted = "converted"
)

// Bounds of what one buyer's join state remembers.
const (
	// maxJoinFacts is how many chat facts (buyer messages, human replies)
	// are kept, the newest by event time. Waits that start before the
	// oldest kept fact are no longer re-derived.
	maxJoinFacts = 64
	// maxJoinCases is how many priority cases (open refunds, disputes,
	// complaints, complaint-intent days) are kept.
	maxJoinCases = 16
	// maxJoinPays is how many payments are kept.
	maxJoinPays = 16
	joinSeenIDs = 64
)

// JoinEngine applies the join rules to buyers' join states. It keeps no
// state of its own.
type JoinEngine struct {
	Rules  RulesFunc
	Orders OrderRulesFunc
	// PerAgent also emits the per-agent conversion field.
	PerAgent bool
}

// Fact kinds.
const (
	factBuyer uint8 = iota // a buyer message
	factReply              // a human reply
)

// Fact flags.
const (
	factInWindow  = 1 << iota // a buyer message inside service hours
	factComplaint             // a buyer message with complaint intent
)

// Case kinds. A case makes the buyer a priority from opened until closed.
const (
	caseRefund uint8 = iota
	caseDispute
	caseComplaint
	caseIntent // a complaint-intent message: until the end of its day
	numJoinCaseKinds
)

// BuyerJoin is the join state of one buyer in one shop (key
// shop_id/buyer_id). Shop and Buyer come from the key and are not encoded.
// Times are Unix ms.
type BuyerJoin struct {
	Shop, Buyer string

	platform string
	lastTS   int64
	seen     recentIDs
	facts    []joinFact // event-time order, at most maxJoinFacts
	cases    []joinCase
	pays     []int64    // payment times, ascending
	days     []convDay  // ascending by day, at most maxDays
	esc      []escalate // escalations fired and not retracted, by wait start
	// reviewed are the orders (hashes of their ids) whose first rated
	// review was seen, at most maxJoinCases; orderAgent is the agent the
	// latest order fact named.
	reviewed   []uint64
	orderAgent string
}

type joinFact struct {
	at    int64
	kind  uint8
	flags uint8
	agent string // the replying agent, or the agent assigned to the buyer
}

// before orders facts by time; at the same time a buyer message comes
// before the reply that answers it.
func (a *joinFact) before(b *joinFact) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.kind < b.kind
}

type joinCase struct {
	key            uint64 // order id and kind (event id for intent)
	kind           uint8
	opened, closed int64 // closed 0 while open
}

// open reports whether the case holds at t.
func (c *joinCase) open(t int64) bool {
	return c.opened != 0 && c.opened <= t && (c.closed <= c.opened || t < c.closed)
}

// convDay is a consulting day of the buyer and what it contributed.
type convDay struct {
	day   int32
	first int64  // first in-window buyer message that day
	conv  bool   // counted as converted
	agent string // the agent credited ("" none)
}

// escalate is a fired priority escalation of the wait that started at start.
type escalate struct {
	start    int64
	agent    string
	resolved bool
}

// wait is a wait derived from the facts.
type wait struct {
	start, end int64 // end 0 while open
	agent      string
}

// joinStep is one call into the engine.
type joinStep struct {
	e  *JoinEngine
	b  *BuyerJoin
	r  *Rules
	or *OrderRules
	fx *Effects
}

func (e *JoinEngine) step(b *BuyerJoin, fx *Effects) joinStep {
	return joinStep{e: e, b: b, r: e.Rules(b.Shop), or: e.Orders(b.Shop), fx: fx}
}

// Event applies one fact of the buyer: a chat message or an order event.
// ev.Intent marks a buyer message with complaint intent.
func (e *JoinEngine) Event(b *BuyerJoin, ev *event.Event, fx *Effects) Result {
	if b.seen.seen(xxhash.Sum64String(ev.EventID), joinSeenIDs) {
		return Duplicate
	}
	s := e.step(b, fx)
	ts := ev.Ms()
	if ev.Platform != "" && ts >= b.lastTS {
		b.platform = ev.Platform
	}
	b.lastTS = max(b.lastTS, ts)
	if ev.Type != event.TypeMessage && ev.AgentID != "" {
		b.orderAgent = ev.AgentID
	}
	switch ev.Type {
	case event.TypeReviewPosted:
		s.review(ev, ts)
	case event.TypeMessage:
		s.message(ev, ts)
	case event.TypeOrderPaid, event.TypeOrderGrouped:
		s.pay(ts)
	case event.TypeRefundRequested:
		s.openCase(orderCaseKey(ev.OrderID, caseRefund), caseRefund, ts)
	case event.TypeRefundCompleted, event.TypeRefundRejected:
		s.closeCase(orderCaseKey(ev.OrderID, caseRefund), caseRefund, ts)
	case event.TypeDisputeOpened:
		s.openCase(orderCaseKey(ev.OrderID, caseDispute), caseDispute, ts)
	case event.TypeComplaintOpened:
		s.openCase(orderCaseKey(ev.OrderID, caseComplaint), caseComplaint, ts)
	case event.TypeDisputeClosed:
		// As in the order rules: dispute_closed closes both.
		s.closeCase(orderCaseKey(ev.OrderID, caseDispute), caseDispute, ts)
		s.closeCase(orderCaseKey(ev.OrderID, caseComplaint), caseComplaint, ts)
	}
	s.convert()
	// The buyer's latest chat fact is as far as their chat is known to
	// have been read: an order event from later says nothing about
	// replies still unread, so it fires nothing on its own.
	s.escalate(s.chatClock())
	return Applied
}

// Advance fires the escalations due strictly before now (the partition clock).
func (e *JoinEngine) Advance(b *BuyerJoin, now time.Time, fx *Effects) {
	s := e.step(b, fx)
	s.escalate(now.UnixMilli())
}

// NextDue is the earliest partition clock at which Advance would fire an
// escalation.
func (e *JoinEngine) NextDue(b *BuyerJoin) (time.Time, bool) {
	s := e.step(b, nil)
	if !s.enabled() {
		return time.Time{}, false
	}
	next, ok := int64(0), false
	for _, w := range s.waits() {
		d := s.due(w.start)
		if w.end == 0 && s.priority(d) && s.fired(w.start) < 0 && (!ok || d < next) {
			next, ok = d, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(next + 1), true
}

func orderCaseKey(order string, kind uint8) uint64 {
	return xxhash.Sum64String(order) ^ uint64(kind)<<56
}

// message records a buyer message or a human reply; bots and the system
// answer no one.
func (s *joinStep) message(ev *event.Event, ts int64) {
	f := joinFact{at: ts, agent: ev.AgentID}
	switch ev.Sender {
	case event.SenderBuyer:
		f.kind = factBuyer
		if s.r.Hours == nil || s.r.Hours.Open(ev.TS.Time) {
			f.flags |= factInWindow
		}
		if ev.Intent == event.IntentComplaint {
			f.flags |= factComplaint
			end := ts + 1
			if s.r.Hours != nil {
				end = s.r.Hours.NextMidnight(ev.TS.Time).UnixMilli()
			}
			s.addCase(joinCase{key: xxhash.Sum64String(ev.EventID), kind: caseIntent, opened: ts, closed: end})
		}
		if f.flags&factInWindow != 0 {
			s.consulted(ts)
		}
	case event.SenderAgent:
		f.kind = factReply
	default:
		return
	}
	b := s.b
	i := len(b.facts)
	for i > 0 && f.before(&b.facts[i-1]) {
		i--
	}
	if i == 0 && len(b.facts) == maxJoinFacts {
		return // older than anything kept: its waits are no longer derived
	}
	b.facts = slices.Insert(b.facts, i, f)
	if len(b.facts) > maxJoinFacts {
		b.facts = b.facts[1:]
		// Escalations of waits that started before the oldest fact kept
		// can no longer be derived again: forget them as they stand.
		n := 0
		for n < len(b.esc) && b.esc[n].start < b.facts[0].at {
			n++
		}
		b.esc = b.esc[n:]
	}
}

// chatClock is the time of the latest chat fact, 0 without one.
func (s *joinStep) chatClock() int64 {
	if n := len(s.b.facts); n > 0 {
		return s.b.facts[n-1].at
	}
	return 0
}

// review raises bad_review for an order's first rated review at or under
// the shop's bad_review_at, to the agent the event names, else the agent
// who last sent the buyer a human reply before it (咨询差评挽回: the one
// who served them), else the agent of the buyer's latest order fact. Its
// id is the order rules' (kind, shop, buyer, order).
func (s *joinStep) review(ev *event.Event, ts int64) {
	b := s.b
	if ev.Rating == 0 || s.or == nil {
		return
	}
	h := xxhash.Sum64String(ev.OrderID)
	if slices.Contains(b.reviewed, h) {
		return
	}
	b.reviewed = append(b.reviewed, h)
	if len(b.reviewed) > maxJoinCases {
		b.reviewed = b.reviewed[1:]
	}
	if ev.Rating > s.or.BadReviewAt || s.fx == nil {
		return
	}
	agent := ev.AgentID
	if agent == "" {
		agent = s.lastReplier(ts)
	}
	if agent == "" {
		agent = b.orderAgent
	}
	at := time.UnixMilli(ts)
	a := alerting.Alert{ID: alerting.ID(alerting.KindBadReview, b.Shop, b.Buyer, ev.OrderID), Kind: alerting.KindBadReview,
		Status: alerting.Firing, Severity: alerting.Critical, Platform: b.platform, ShopID: b.Shop, BuyerID: b.Buyer,
		AgentID: agent, OrderID: ev.OrderID, Since: at, Due: at, At: at}
	if a.Platform == "" {
		a.Platform = s.or.Platform
	}
	s.fx.Alerts = append(s.fx.Alerts, a)
}

// consulted records an in-window buyer message at ts for its day.
func (s *joinStep) consulted(ts int64) {
	b := s.b
	d := s.dayOf(ts)
	i := 0
	for ; i < len(b.days) && b.days[i].day <= d; i++ {
		if b.days[i].day == d {
			b.days[i].first = min(b.days[i].first, ts)
			return
		}
	}
	if len(b.days) >= maxDays && i == 0 {
		return // a day older than every one remembered
	}
	b.days = slices.Insert(b.days, i, convDay{day: d, first: ts})
	if len(b.days) > maxDays {
		b.days = b.days[1:] // its contribution stands
	}
}

func (s *joinStep) pay(ts int64) {
	b := s.b
	i, found := slices.BinarySearch(b.pays, ts)
	if found {
		return
	}
	if i == 0 && len(b.pays) == maxJoinPays {
		return
	}
	b.pays = slices.Insert(b.pays, i, ts)
	if len(b.pays) > maxJoinPays {
		b.pays = b.pays[1:]
	}
}

func (s *joinStep) findCase(key uint64) *joinCase {
	for i := range s.b.cases {
		if s.b.cases[i].key == key {
			return &s.b.cases[i]
		}
	}
	return nil
}

// addCase keeps c, forgetting beyond maxJoinCases the case that closed
// earliest (or, when all are open, the one opened earliest).
func (s *joinStep) addCase(c joinCase) {
	b := s.b
	b.cases = append(b.cases, c)
	if len(b.cases) <= maxJoinCases {
		return
	}
	victim := 0
	for i := range b.cases {
		v, x := &b.cases[victim], &b.cases[i]
		switch {
		case (x.closed != 0) != (v.closed != 0):
			if x.closed != 0 {
				victim = i
			}
		case x.closed != 0 && x.closed < v.closed, x.closed == 0 && x.opened < v.opened:
			victim = i
		}
	}
	b.cases = slices.Delete(b.cases, victim, victim+1)
}

// openCase opens a case at ts; an earlier opening that arrives late wins.
func (s *joinStep) openCase(key uint64, kind uint8, ts int64) {
	if c := s.findCase(key); c != nil {
		c.opened = minSet(c.opened, ts)
		return
	}
	s.addCase(joinCase{key: key, kind: kind, opened: ts})
}

// closeCase closes a case at ts, also one whose opening has not arrived;
// the earliest closing wins.
func (s *joinStep) closeCase(key uint64, kind uint8, ts int64) {
	if c := s.findCase(key); c != nil {
		c.closed = minSet(c.closed, ts)
		return
	}
	s.addCase(joinCase{key: key, kind: kind, closed: ts})
}

// priority reports whether the buyer is a priority at t.
func (s *joinStep) priority(t int64) bool {
	for i := range s.b.cases {
		if s.b.cases[i].open(t) {
			return true
		}
	}
	return false
}

// convert derives each remembered day's conversion again and emits what
// changed.
func (s *joinStep) convert() {
	window := int64(0)
	if s.or != nil {
		window = s.or.ConversionWindow.Milliseconds()
	}
	for i := range s.b.days {
		d := &s.b.days[i]
		conv, agent := false, ""
		for _, p := range s.b.pays {
			if p >= d.first && p <= d.first+window {
				conv, agent = true, s.lastReplier(p)
				break
			}
		}
		if conv == d.conv && agent == d.agent {
			continue
		}
		s.count(d, -1)
		d.conv, d.agent = conv, agent
		s.count(d, 1)
	}
}

// count adds the day's conversion (sign 1) or takes it back (-1).
func (s *joinStep) count(d *convDay, sign int64) {
	if !d.conv || s.fx == nil {
		return
	}
	day := dayString(d.day)
	s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: s.b.Shop, Day: day, Field: FieldConverted, Delta: sign})
	if s.e.PerAgent && d.agent != "" {
		s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: s.b.Shop, Day: day, Field: AgentField(d.agent, FieldConverted), Delta: sign})
	}
}

// lastReplier is the agent of the latest human reply at or before t.
func (s *joinStep) lastReplier(t int64) string {
	for i := len(s.b.facts) - 1; i >= 0; i-- {
		if f := &s.b.facts[i]; f.kind == factReply && f.at <= t {
			return f.agent
		}
	}
	return ""
}

// enabled reports whether the shop's rules give priority escalations.
func (s *joinStep) enabled() bool {
	return len(s.r.Thresholds) > 0 && s.r.PriorityWarnBefore > 0
}

// due is when the priority escalation of a wait that started at start
// fires: PriorityWarnBefore ahead of the first threshold, or at the start
// when the lead is as long as the threshold.
func (s *joinStep) due(start int64) int64 {
	return start + max(s.r.Thresholds[0]-s.r.PriorityWarnBefore, 0).Milliseconds()
}

// waits derives the buyer's waits from the facts (R3, R4): an in-window
// buyer message starts one when none is open, or when the open one
// started on an earlier day; a human reply at or after the start ends it.
func (s *joinStep) waits() []wait {
	var out []wait
	open := -1
	last := ""
	for i := range s.b.facts {
		f := &s.b.facts[i]
		switch f.kind {
		case factBuyer:
			if f.flags&factInWindow == 0 {
				continue
			}
			if open >= 0 && s.dayOf(out[open].start) == s.dayOf(f.at) {
				continue
			}
			agent := f.agent
			if agent == "" {
				agent = last
			}
			out = append(out, wait{start: f.at, agent: agent})
			open = len(out) - 1
		case factReply:
			last = f.agent
			if open >= 0 {
				out[open].end = f.at
				open = -1
			}
		}
	}
	return out
}

// fired is the index of the escalation of the wait started at start, -1.
func (s *joinStep) fired(start int64) int {
	for i := range s.b.esc {
		if s.b.esc[i].start == start {
			return i
		}
	}
	return -1
}

// escalate brings the fired escalations in line with the facts, the
// partition clock at now: an escalation that holds and is due before now
// (or before its wait ended) fires; one whose wait ended after it is
// resolved (replied); one that no longer holds is retracted.
func (s *joinStep) escalate(now int64) {
	if !s.enabled() {
		return
	}
	b := s.b
	horizon := int64(0)
	if len(b.facts) > 0 {
		horizon = b.facts[0].at
	}
	ws := s.waits()
	holds := make(map[int64]bool, len(ws))
	for _, w := range ws {
		d := s.due(w.start)
		if !s.priority(d) || (w.end != 0 && w.end <= d) {
			continue
		}
		i := s.fired(w.start)
		if i < 0 {
			if d >= now && w.end == 0 {
				continue // not due yet
			}
			b.esc = append(b.esc, escalate{start: w.start, agent: w.agent})
			slices.SortFunc(b.esc, func(x, y escalate) int { return cmp.Compare(x.start, y.start) })
			i = s.fired(w.start)
			s.alert(&b.esc[i], alerting.Firing, "", d)
		}
		holds[w.start] = true
		if e := &b.esc[i]; w.end != 0 && !e.resolved {
			e.resolved = true
			s.alert(e, alerting.Resolved, alerting.ReasonReplied, w.end)
		}
	}
	kept := b.esc[:0]
	for _, e := range b.esc {
		if holds[e.start] || e.start < horizon {
			kept = append(kept, e)
			continue
		}
		s.alert(&e, alerting.Resolved, alerting.ReasonRetracted, s.due(e.start))
	}
	b.esc = kept
}

// alert emits a record of escalation e. Its id derives from the shop,
// buyer and wait start, so the chat side's ordinary warning of the same
// wait (which has no "priority" part) is told apart, and the notifier
// can let the priority one supersede it.
func (s *joinStep) alert(e *escalate, status, reason string, at int64) {
	if s.fx == nil {
		return
	}
	thr := alerting.FormatThreshold(s.r.Thresholds[0])
	a := alerting.Alert{
		ID:        PriorityAlertID(s.b.Shop, s.b.Buyer, s.r.Thresholds[0], e.start),
		Kind:      alerting.KindReplyWarning,
		Status:    status,
		Severity:  alerting.Critical,
		Threshold: thr,
		Platform:  s.b.platform,
		ShopID:    s.b.Shop,
		BuyerID:   s.b.Buyer,
		AgentID:   e.agent,
		Since:     time.UnixMilli(e.start),
		Due:       time.UnixMilli(e.start + s.r.Thresholds[0].Milliseconds()),
		At:        time.UnixMilli(at),
		Reason:    reason,
	}
	if status == alerting.Firing {
		a.Reason = alerting.ReasonPriority
	}
	if a.Platform == "" {
		a.Platform = s.r.Platform
	}
	s.fx.Alerts = append(s.fx.Alerts, a)
}

// PriorityAlertID is the id of the priority escalation of a buyer's wait
// that started at start (Unix ms), at the first threshold thr.
func PriorityAlertID(shop, buyer string, thr time.Duration, start int64) string {
	return alerting.ID(alerting.KindReplyWarning, alerting.FormatThreshold(thr), shop, buyer,
		strconv.FormatInt(start, 10), alerting.ReasonPriority)
}

// dayOf is the shop-local day of a time in ms.
func (s *joinStep) dayOf(ms int64) int32 {
	loc := time.UTC
	if s.r.Hours != nil {
		loc = s.r.Hours.Loc
	}
	y, m, d := time.UnixMilli(ms).In(loc).Date()
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// ComplaintIntent reports whether a buyer's message shows complaint or
// bad-review intent by the shop's text rules (DESIGN.md §4), which makes
// the buyer a priority.
func ComplaintIntent(rules TextRulesFunc, shop, msg string) bool {
	if rules == nil || msg == "" {
		return false
	}
	tr := rules(shop)
	if tr == nil || tr.Matcher == nil {
		return false
	}
	n := normPool.Get().(*text.Normalized)
	defer normPool.Put(n)
	n.Reset(msg)
	return len(tr.Matcher.ScanNormalized(n, buyerCategories...)) > 0
}
