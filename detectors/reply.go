package detectors

import (
	"strconv"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
)

// Bounds of what one conversation remembers, so that its state stays small.
const (
	// maxThresholds is how many reply thresholds are watched; further ones
	// in the rules are ignored.
	maxThresholds = 8
	// maxPending is how many unanswered buyer message times are kept for the
	// 30-second rate. When a buyer sends more before any human reply, the
	// oldest is forgotten: it has been waiting longest and is the least likely
	// to be answered within 30 s.
	maxPending = 16
	// answer30 is the 30-second rate's limit (R10), in ms.
	answer30 = 30_000
	day24h   = 24 * 60 * 60 * 1000
)

// Timer bits of a wait: warning i, breach i, long no-reply at midnight and
// after 24 h. A set bit in a wait's fired mask is an alert that fired and
// was not retracted.
const (
	bitWarn     = 0
	bitBreach   = maxThresholds
	bitMidnight = 2 * maxThresholds
	bit24h      = bitMidnight + 1
	numBits     = bit24h + 1
	breachMask  = (1<<maxThresholds - 1) << bitBreach
	// firedMask bounds a valid fired mask.
	firedMask = 1<<numBits - 1
)

// Engine applies the reply rules (DESIGN.md §1, R1–R13) to conversations.
// It keeps no state of its own: one Engine may serve every partition.
type Engine struct {
	Rules RulesFunc
	// PerAgent also emits per-agent figure fields (AgentField).
	PerAgent bool
	// Lateness is how late an event may be, after the latest event time of
	// its conversation, and still be applied in its place (config
	// clock.allowed_lateness); 0 means DefaultLateness.
	Lateness time.Duration
}

// Conversation is the state of one (shop_id, buyer_id) conversation (R1).
// The zero value is a new conversation; Shop and Buyer come from the Kafka
// key and are not part of the encoding. All times are Unix ms.
//
// Its current state is what its events say in ts order (DESIGN.md §5): the
// state before its recent events (base), and those events (log), in order,
// with the conversation's timers fired up to the latest partition clock. A
// late event is put in its place and the current state derived again.
type Conversation struct {
	Shop, Buyer string

	convState // current: base, then log, then the timers up to clock

	base  convState  // the state before the events of log
	log   []logEvent // recent events, in ts order (see logEvent.before)
	clock int64      // latest partition clock Advance was given
	seen  idSet      // fingerprints of every applied event id
	// stale says convState has yet to be derived from base and log (a
	// decoded state: deriving needs the rules, which decoding has not).
	stale bool
}

// convState is what the rules derive from a conversation's events.
type convState struct {
	platform  string // last platform an event named; "" means the shop's
	agent     string // assigned agent
	lastTS    int64  // latest applied event time
	lastHuman int64  // latest human reply time, 0 if none
	wait      openWait
	// carry is a wait still open from an earlier day than wait's, kept only
	// for its long no-reply timers (R3, R12) and its end (R11, R13).
	carry   carriedWait
	pending []int64 // unanswered buyer message times of the open wait, ascending
	prev    endedWait
	days    []tally // at most maxDays, oldest first
}

// waitCore is what an open and an ended wait share.
type waitCore struct {
	// start is when the clock starts; anchor is the buyer message that
	// started it. They differ only with start_at_open, where a message sent
	// while closed starts the clock at the next opening.
	start, anchor int64
	fired         uint32
	// credit is, per threshold, the per-agent breach credit of that breach:
	// 1 + the agent's index in the wait day's tally, 0 for none.
	credit [maxThresholds]uint8
}

// openWait is the wait in progress (R3).
type openWait struct {
	waitCore
	open bool
	// added says the wait clock has started and the buyer is in the shop's
	// waiting set (and the assigned agent's waiting figure).
	added bool
}

// carriedWait is a wait open from an earlier day (R3).
type carriedWait struct {
	waitCore
	ok bool
}

// endedWait is the last wait a human reply ended, kept so that a late reply
// stamped inside it can retract its breaches and fix its response time.
type endedWait struct {
	waitCore
	ok      bool
	end     int64
	replier uint8 // 1 + index of the replying agent in the start day's tally, 0 none
	resp    bool  // its response time is counted (the reply came at or after start)
}

// step is one call into the engine: the conversation, its shop's rules and
// where effects go.
type step struct {
	e  *Engine
	c  *Conversation
	r  *Rules
	h  *hours.Schedule
	fx *Effects // nil discards the effects (a derivation of what was emitted already)
	// thr is the rules' thresholds in ms, at most maxThresholds.
	thr  [maxThresholds]int64
	nThr int
	// The shop-local midnight after midStart, once asked for.
	midStart, midDue int64
	midOK            bool
}

// alwaysOpen serves rules without hours: open all day, days in UTC.
var alwaysOpen = hours.MustNew(time.UTC, hours.Range{Start: 0, End: 24 * 60})

func (e *Engine) step(c *Conversation, fx *Effects) step {
	s := step{e: e, c: c, r: e.Rules(c.Shop), fx: fx}
	s.h = s.r.Hours
	if s.h == nil {
		s.h = alwaysOpen
	}
	for _, t := range s.r.Thresholds {
		if s.nThr == maxThresholds {
			break
		}
		s.thr[s.nThr] = t.Milliseconds()
		s.nThr++
	}
	return s
}

// Chat applies one chat event (message, transfer, buyer_blocked,
// buyer_reported) at its event time. A duplicate is recognised before
// anything else and changes nothing, timers included.
//
// The outcome is what the conversation's events say in ts order, whatever
// their arrival order (DESIGN.md §5): an event older than the latest one
// is put in its place among the recent events and the conversation derived
// again from them; what changed is emitted as corrections (figure
// differences, alerts now due, retractions of alerts that no longer hold).
// Events are kept for Lateness after the latest event time, at most
// maxLog of them; an event older than every kept one is applied to the
// state before them as far as makes sense (see apply). Times count in
// whole milliseconds.
func (e *Engine) Chat(c *Conversation, ev *event.Event, fx *Effects) Result {
	if c.seen.seen(fingerprint(ev.EventID)) {
		return Duplicate
	}
	e.derive(c)
	le := logEventOf(ev)
	if c.inOrder(le) {
		s := e.step(c, fx)
		s.apply(le)
		// The timers stay fired up to the clock, as a derivation has them:
		// a wait this event started may be due already.
		s.fire(c.clock)
		c.log = append(c.log, le)
	} else {
		e.late(c, le, fx)
	}
	e.trim(c)
	return Applied
}

// apply applies one event to the conversation's state. It first fires the
// conversation's own timers due strictly before the event, so the outcome
// does not depend on how far the partition clock had advanced.
//
// Applied in ts order, each branch below does what the rules say. Applied
// out of order (an event older than every kept one), it does what makes
// sense: a late human reply ends or corrects the wait it falls in; a late
// buyer message counts for its day and joins the open wait without moving
// its start, or starts a wait when no human reply has been seen since it; a
// late agent_id does not override a newer assignment.
func (s *step) apply(le logEvent) {
	c := s.c
	ts := le.ts
	s.fire(ts)
	if le.platform != "" {
		c.platform = le.platform
	}
	// R8: once blocked or reported, the rest of that day is ignored.
	if !s.excluded(s.dayOf(ts)) {
		switch le.kind {
		case kindBuyer, kindBot, kindSystem:
			s.setAgent(le.agent, ts)
			if le.kind == kindBuyer {
				s.buyerMessage(ts)
			}
		case kindAgent:
			s.setAgent(le.agent, ts)
			s.humanReply(ts, le.agent)
		case kindTransfer:
			s.setAgent(le.agent, ts)
		case kindExclude:
			s.exclude(ts)
		}
	}
	if ts > c.lastTS {
		c.lastTS = ts
	}
}

// Advance fires every timer of the conversation due strictly before now (the
// partition clock).
func (e *Engine) Advance(c *Conversation, now time.Time, fx *Effects) {
	e.derive(c)
	s := e.step(c, fx)
	n := now.UnixMilli()
	s.fire(n)
	if n > c.clock {
		c.clock = n
	}
}

// NextDue is the earliest partition clock at which Advance would do
// something (a timer due at d fires once the clock is past d, so this is
// d + 1 ms); ok is false when nothing is pending.
func (e *Engine) NextDue(c *Conversation) (due time.Time, ok bool) {
	e.derive(c)
	s := e.step(c, nil)
	d, ok := int64(0), false
	if w := &c.wait; w.open {
		d, ok = w.start, true
		if w.added {
			var bit int
			if bit, d = s.nextTimer(&w.waitCore, 0); bit < 0 {
				ok = false
			}
		}
	}
	if c.carry.ok {
		if bit, cd := s.nextTimer(&c.carry.waitCore, bitMidnight); bit >= 0 && (!ok || cd < d) {
			d, ok = cd, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(d + 1), true
}

// fire runs the open wait's timers, and the carried wait's, due strictly
// before now, earliest first.
func (s *step) fire(now int64) {
	c := s.c
	for {
		w := &c.wait
		if w.open && !w.added && w.start < now {
			s.addWaiting()
		}
		bit, due := -1, int64(0)
		if w.open && w.added {
			bit, due = s.nextTimer(&w.waitCore, 0)
		}
		cb, cd := -1, int64(0)
		if c.carry.ok {
			cb, cd = s.nextTimer(&c.carry.waitCore, bitMidnight)
		}
		switch {
		case cb >= 0 && cd < now && (bit < 0 || cd < due):
			c.carry.fired |= 1 << cb
			if s.fx != nil {
				s.fx.Alerts = append(s.fx.Alerts, s.alert(cb, &c.carry.waitCore))
			}
		case bit >= 0 && due < now:
			w.fired |= 1 << bit
			s.fireAlert(bit)
		default:
			return
		}
	}
}

// dueOf is when timer bit of a wait starting at start fires; ok is false
// when the rules give it no timer (no such threshold, or a warning that would
// come at or before the start).
func (s *step) dueOf(bit int, start int64) (int64, bool) {
	switch {
	case bit < bitBreach:
		if bit >= s.nThr {
			return 0, false
		}
		d := start + s.thr[bit] - s.r.WarnBefore.Milliseconds()
		return d, d > start
	case bit < bitMidnight:
		if bit-bitBreach >= s.nThr {
			return 0, false
		}
		return start + s.thr[bit-bitBreach], true
	case bit == bitMidnight:
		// Asked for again and again while timers are sought: remembered.
		if !s.midOK || s.midStart != start {
			s.midStart, s.midDue, s.midOK = start, s.h.NextMidnight(time.UnixMilli(start)).UnixMilli(), true
		}
		return s.midDue, true
	default:
		return start + day24h, true
	}
}

// nextTimer is wait w's earliest timer from bit from on that has not
// fired, -1 if none.
func (s *step) nextTimer(w *waitCore, from int) (bit int, due int64) {
	bit = -1
	for b := from; b < numBits; b++ {
		if w.fired&(1<<b) != 0 {
			continue
		}
		if d, ok := s.dueOf(b, w.start); ok && (bit < 0 || d < due) {
			bit, due = b, d
		}
	}
	return bit, due
}

// alert builds the firing record of timer bit of wait w. Its id derives from
// the condition: kind, threshold, shop, buyer and wait start, and the
// starting message's time when that differs (start_at_open waits share the
// opening as their start).
func (s *step) alert(bit int, w *waitCore) alerting.Alert {
	c := s.c
	start := w.start
	due, _ := s.dueOf(bit, start)
	a := alerting.Alert{
		Status:   alerting.Firing,
		Severity: alerting.Critical,
		Platform: c.platform,
		ShopID:   c.Shop,
		BuyerID:  c.Buyer,
		AgentID:  c.agent,
		Since:    time.UnixMilli(start),
		Due:      time.UnixMilli(due),
		At:       time.UnixMilli(due),
	}
	if a.Platform == "" {
		a.Platform = s.r.Platform
	}
	parts := []string{"", "", c.Shop, c.Buyer, strconv.FormatInt(start, 10), ""}
	switch {
	case bit < bitMidnight:
		i := bit % maxThresholds
		a.Kind, a.Threshold = alerting.KindReplyBreach, alerting.FormatThreshold(time.Duration(s.thr[i])*time.Millisecond)
		if bit < bitBreach {
			a.Kind, a.Severity = alerting.KindReplyWarning, alerting.Warning
			a.Due = time.UnixMilli(start + s.thr[i])
		}
		parts = parts[:5]
	case bit == bitMidnight:
		a.Kind, parts[5] = alerting.KindLongNoReply, "midnight"
	default:
		a.Kind, parts[5] = alerting.KindLongNoReply, "24h"
	}
	parts[0], parts[1] = a.Kind, a.Threshold
	if w.anchor != start {
		parts = append(parts, "from", strconv.FormatInt(w.anchor, 10))
	}
	a.ID = alerting.ID(parts...)
	return a
}

// fireAlert emits the open wait's timer bit and counts a breach for the
// wait-start day (R5, R7).
func (s *step) fireAlert(bit int) {
	w := &s.c.wait
	if s.fx != nil {
		s.fx.Alerts = append(s.fx.Alerts, s.alert(bit, &w.waitCore))
	}
	if bit < bitBreach || bit >= bitMidnight {
		return
	}
	i := bit - bitBreach
	t := s.tally(s.dayOf(w.start), true)
	if t == nil || t.excluded {
		return
	}
	s.count(t, 0, fieldBreached, s.thr[i], 1)
	if ai := s.agentIndex(t, s.c.agent); ai > 0 {
		s.count(t, ai, fieldBreached, s.thr[i], 1)
		w.credit[i] = ai
	}
}

// closeAlerts ends the fired alerts of a wait at event time x (R13, R8):
// an alert due at or after x never held (its condition needed the wait to
// last past x) and is retracted, with its breach count taken back; the others
// are resolved with reason, or left alone when reason is "".
func (s *step) closeAlerts(w *waitCore, x int64, reason string) {
	var order [numBits]struct {
		bit int
		due int64
	}
	n := 0
	for b := 0; b < numBits; b++ {
		if w.fired&(1<<b) == 0 {
			continue
		}
		d, ok := s.dueOf(b, w.start)
		if !ok {
			continue
		}
		j := n
		for ; j > 0 && order[j-1].due > d; j-- {
			order[j] = order[j-1]
		}
		order[j].bit, order[j].due = b, d
		n++
	}
	for _, o := range order[:n] {
		r := reason
		switch {
		case o.due >= x:
			r = alerting.ReasonRetracted
			w.fired &^= 1 << o.bit
			if o.bit >= bitBreach && o.bit < bitMidnight {
				s.uncountBreach(o.bit-bitBreach, w)
			}
		case reason == "":
			continue
		}
		if s.fx == nil {
			continue
		}
		a := s.alert(o.bit, w)
		a.Status, a.At, a.Reason = alerting.Resolved, time.UnixMilli(x), r
		s.fx.Alerts = append(s.fx.Alerts, a)
	}
}

// uncountBreach takes back the counts of a retracted breach at threshold i.
func (s *step) uncountBreach(i int, w *waitCore) {
	t := s.tally(s.dayOf(w.start), false)
	if t == nil || t.excluded {
		return
	}
	s.count(t, 0, fieldBreached, s.thr[i], -1)
	if w.credit[i] > 0 {
		s.count(t, w.credit[i], fieldBreached, s.thr[i], -1)
		w.credit[i] = 0
	}
}

// effective is when a buyer message at m counts (R3): m inside the window;
// with start_at_open, the next opening; otherwise ok is false.
func (s *step) effective(m int64) (int64, bool) {
	t := time.UnixMilli(m)
	if s.h.Open(t) {
		return m, true
	}
	if !s.r.StartAtOpen {
		return 0, false
	}
	o := s.h.NextOpen(t)
	if o.IsZero() {
		return 0, false
	}
	return o.UnixMilli(), true
}

// buyerMessage applies a buyer message at m (R3, R7).
func (s *step) buyerMessage(m int64) {
	c := s.c
	eff, ok := s.effective(m)
	if !ok {
		return
	}
	d := s.dayOf(eff)
	if s.excluded(d) {
		return
	}
	s.add(d, "", fieldMessages, 0, 1)
	if s.e.PerAgent && c.agent != "" {
		s.add(d, c.agent, fieldMessages, 0, 1)
	}
	if c.wait.open && d > s.dayOf(c.wait.start) && m >= c.wait.anchor {
		// R3: each day counts on its own. The wait from an earlier day goes
		// on only for R12; this message starts the day's wait.
		s.carryOver()
	}
	if c.wait.open {
		s.addPending(m)
		return
	}
	if m < c.lastHuman {
		// A late message a human reply already followed: it was answered,
		// so it starts nothing. It counts in the 30-second rate when that
		// is certain from what is remembered, for the assigned agent: which
		// agent replied is not remembered.
		p := &c.prev
		if c.lastHuman-eff <= answer30 || (p.ok && m >= p.anchor && m <= p.end && p.end-eff <= answer30) {
			s.add(d, "", fieldAnswered30, 0, 1)
			if s.e.PerAgent && c.agent != "" {
				s.add(d, c.agent, fieldAnswered30, 0, 1)
			}
		}
		return
	}
	c.pending = append(c.pending[:0], m)
	s.startWait(eff, m, m)
}

// carryOver moves the open wait to carry, out of the waiting set (the
// buyer enters it again with the day's new wait). A wait carried before is
// forgotten: its last timer, 24 h after its start, is due by then.
func (s *step) carryOver() {
	c := s.c
	s.removeWaiting()
	c.carry = carriedWait{waitCore: c.wait.waitCore, ok: true}
	c.wait = openWait{}
	c.pending = c.pending[:0]
}

// addPending records an unanswered buyer message of the open wait, keeping
// the list sorted and at most maxPending long.
func (s *step) addPending(m int64) {
	p := s.c.pending
	if len(p) == maxPending {
		if m < p[0] {
			return
		}
		p = append(p[:0], p[1:]...)
	}
	i := len(p)
	p = append(p, m)
	for ; i > 0 && p[i-1] > m; i-- {
		p[i] = p[i-1]
	}
	p[i] = m
	s.c.pending = p
}

// startWait opens a wait whose clock starts at start, for the buyer message
// at anchor, while applying an event at now. A clock that starts later is
// added to the waiting set by the timer loop once the clock passes it.
func (s *step) startWait(start, anchor, now int64) {
	c := s.c
	if s.excluded(s.dayOf(start)) {
		c.pending = c.pending[:0]
		return
	}
	c.wait = openWait{waitCore: waitCore{start: start, anchor: anchor}, open: true}
	if start <= now {
		s.addWaiting()
	}
}

func (s *step) addWaiting() {
	c := s.c
	c.wait.added = true
	if s.fx != nil {
		s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: c.Shop, Buyer: c.Buyer, Start: c.wait.start, Add: true})
	}
	s.waiting(c.agent, 1)
}

func (s *step) removeWaiting() {
	c := s.c
	if !c.wait.added {
		return
	}
	if s.fx != nil {
		s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: c.Shop, Buyer: c.Buyer, Start: c.wait.start})
	}
	s.waiting(c.agent, -1)
}

// waiting changes an agent's count of buyers waiting now and their set of
// waiting buyers. Both are kept whether or not per-agent figures are on:
// idle-seat detection needs them.
func (s *step) waiting(agent string, delta int64) {
	if agent == "" || s.fx == nil {
		return
	}
	c := s.c
	s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: c.Shop, Field: AgentField(agent, FieldWaiting), Delta: delta})
	s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: c.Shop, Agent: agent, Buyer: c.Buyer, Start: c.wait.start, Add: delta > 0})
}

// setAgent makes agent the assigned one from event time ts on (R9). An
// event older than the latest applied one does not override a newer
// assignment. Breaches already fired that were due at or after ts belong to
// the new agent: the partition clock ran ahead of this event.
func (s *step) setAgent(agent string, ts int64) {
	c := s.c
	if agent == "" || agent == c.agent || ts < c.lastTS {
		return
	}
	w := &c.wait
	if w.open && w.added {
		s.waiting(c.agent, -1)
		s.waiting(agent, 1)
	}
	if w.open && s.e.PerAgent && w.fired&breachMask != 0 {
		if t := s.tally(s.dayOf(w.start), false); t != nil && !t.excluded {
			for i := 0; i < s.nThr; i++ {
				if w.fired&(1<<(bitBreach+i)) == 0 || w.start+s.thr[i] < ts {
					continue
				}
				if w.credit[i] > 0 {
					s.count(t, w.credit[i], fieldBreached, s.thr[i], -1)
				}
				w.credit[i] = s.agentIndex(t, agent)
				if w.credit[i] > 0 {
					s.count(t, w.credit[i], fieldBreached, s.thr[i], 1)
				}
			}
		}
	}
	c.agent = agent
}

// humanReply applies a human reply at l by agent (R4, R10, R11, R13).
func (s *step) humanReply(l int64, agent string) {
	c := s.c
	if s.fx != nil {
		s.fx.Activity = append(s.fx.Activity, Activity{Shop: c.Shop, Agent: agent, At: l})
	}
	if l > c.lastHuman {
		c.lastHuman = l
	}
	// R10: the reply answers every pending message at or before it.
	n := 0
	for _, m := range c.pending {
		if m > l {
			break
		}
		n++
		if eff, ok := s.effective(m); ok && l-eff <= answer30 {
			d := s.dayOf(eff)
			s.add(d, "", fieldAnswered30, 0, 1)
			if s.e.PerAgent {
				s.add(d, agent, fieldAnswered30, 0, 1)
			}
		}
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)

	if cw := &c.carry; cw.ok && l >= cw.anchor {
		// The wait carried from an earlier day ends too; its response time
		// counts for its own day (R11).
		s.closeAlerts(&cw.waitCore, l, alerting.ReasonReplied)
		if l >= cw.start {
			s.addResp(cw.start, agent, l-cw.start, 1)
		}
		c.carry = carriedWait{}
	}
	switch {
	case c.wait.open && l >= c.wait.anchor:
		s.endWait(l, agent)
		// A late reply leaves the later messages of the wait unanswered:
		// they start the next wait, as they would have in order.
		if len(c.pending) > 0 {
			m := c.pending[0]
			if eff, ok := s.effective(m); ok {
				s.startWait(eff, m, l)
			} else {
				c.pending = c.pending[:0]
			}
		}
	case c.prev.ok && l >= c.prev.anchor && l < c.prev.end:
		s.correctPrev(l, agent)
	}
}

// endWait ends the open wait with a human reply at l (R11, R13).
func (s *step) endWait(l int64, agent string) {
	c := s.c
	w := &c.wait
	s.closeAlerts(&w.waitCore, l, alerting.ReasonReplied)
	p := endedWait{waitCore: w.waitCore, ok: true, end: l}
	if l >= w.start {
		p.resp = true
		p.replier = s.addResp(w.start, agent, l-w.start, 1)
	}
	s.removeWaiting()
	c.prev = p
	c.wait = openWait{}
}

// addResp adds a response time to the day of start, shop-wide and for
// agent, and returns the agent's tally index (1-based, 0 none).
func (s *step) addResp(start int64, agent string, ms, n int64) uint8 {
	d := s.dayOf(start)
	s.add(d, "", fieldRespMs, 0, ms)
	s.add(d, "", fieldRespN, 0, n)
	if !s.e.PerAgent || agent == "" {
		return 0
	}
	s.add(d, agent, fieldRespMs, 0, ms)
	s.add(d, agent, fieldRespN, 0, n)
	if t := s.tally(d, false); t != nil {
		return t.agentIndex(agent)
	}
	return 0
}

// correctPrev applies a late human reply at l that falls inside the last
// ended wait: it was the real end. Breaches due at or after l are retracted
// and the response time is taken from l. Buyer messages between l and the
// old end are not remembered, so the wait they would have started is not
// rebuilt, and the 30-second rate of the ended wait is not revisited.
func (s *step) correctPrev(l int64, agent string) {
	p := &s.c.prev
	s.closeAlerts(&p.waitCore, l, "")
	if p.resp {
		d := s.dayOf(p.start)
		s.add(d, "", fieldRespMs, 0, -(p.end - p.start))
		s.add(d, "", fieldRespN, 0, -1)
		if t := s.tally(d, false); t != nil && t.agentName(p.replier) != "" {
			name := t.agentName(p.replier)
			s.add(d, name, fieldRespMs, 0, -(p.end - p.start))
			s.add(d, name, fieldRespN, 0, -1)
		}
	}
	p.end, p.resp, p.replier = l, l >= p.start, 0
	if p.resp {
		p.replier = s.addResp(p.start, agent, l-p.start, 1)
	}
}

// exclude applies buyer_blocked / buyer_reported at x (R8): the buyer
// leaves the figures of x's day, and a wait of that day (or one still open
// from before it) is cancelled.
func (s *step) exclude(x int64) {
	c := s.c
	d := s.dayOf(x)
	s.wipe(d)
	if w := &c.wait; w.open && s.dayOf(w.start) <= d {
		s.closeAlerts(&w.waitCore, x, alerting.ReasonExcluded)
		s.removeWaiting()
		c.wait = openWait{}
		c.pending = c.pending[:0]
	}
	if cw := &c.carry; cw.ok && s.dayOf(cw.start) <= d {
		s.closeAlerts(&cw.waitCore, x, alerting.ReasonExcluded)
		c.carry = carriedWait{}
	}
	if c.prev.ok && s.dayOf(c.prev.start) == d {
		c.prev = endedWait{}
	}
}
