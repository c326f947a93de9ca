package detectors

import (
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

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
	// seenIDs is how many recent event ids are kept to recognise duplicates.
	// The partition's stored offset already makes a redelivered batch
	// harmless; these catch a producer sending events again with new
	// offsets, from a retry to a whole conversation-day re-sent by a sync
	// job (conversations rarely have more events in a day). Each id is kept
	// as a 48-bit hash: a false duplicate among 64 ids has odds of ~2e-13.
	seenIDs  = 64
	seenBits = 48
	seenMask = 1<<seenBits - 1
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
}

// Conversation is the state of one (shop_id, buyer_id) conversation (R1).
// The zero value is a new conversation; Shop and Buyer come from the Kafka
// key and are not part of the encoding. All times are Unix ms.
type Conversation struct {
	Shop, Buyer string

	platform  string    // last platform an event named; "" means the shop's
	agent     string    // assigned agent
	lastTS    int64     // latest applied event time
	lastHuman int64     // latest human reply time, 0 if none
	seen      recentIDs // hashes of the latest applied event ids, at most seenIDs
	wait      openWait
	pending   []int64 // unanswered buyer message times of the open wait, ascending
	prev      endedWait
	days      []tally // at most maxDays, oldest first
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
	fx *Effects
	// thr is the rules' thresholds in ms, at most maxThresholds.
	thr  [maxThresholds]int64
	nThr int
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
// buyer_reported) at its event time. It first fires this conversation's own
// timers due strictly before the event, so the outcome does not depend on
// how far the partition clock had advanced.
//
// Events older than the latest applied one are applied as far as makes
// sense: a late human reply ends or corrects the wait it falls in; a late
// buyer message counts for its day and joins the open wait without moving
// its start, or starts a wait when no human reply has been seen since it;
// a late agent_id does not override a newer assignment. A duplicate is
// recognised before anything else and changes nothing, timers included.
// Times count in whole milliseconds.
func (e *Engine) Chat(c *Conversation, ev *event.Event, fx *Effects) Result {
	if c.seen.seen(xxhash.Sum64String(ev.EventID)&seenMask, seenIDs) {
		return Duplicate
	}

	s := e.step(c, fx)
	ts := ev.Ms()
	s.fire(ts)
	if ev.Platform != "" {
		c.platform = ev.Platform
	}
	// R8: once blocked or reported, the rest of that day is ignored.
	if !s.excluded(s.dayOf(ts)) {
		switch ev.Type {
		case event.TypeMessage:
			s.setAgent(ev.AgentID, ts)
			switch ev.Sender {
			case event.SenderBuyer:
				s.buyerMessage(ts)
			case event.SenderAgent:
				s.humanReply(ts, ev.AgentID)
			}
		case event.TypeTransfer:
			s.setAgent(ev.AgentID, ts)
		case event.TypeBuyerBlocked, event.TypeBuyerReported:
			s.exclude(ts)
		}
	}
	if ts > c.lastTS {
		c.lastTS = ts
	}
	return Applied
}

// Advance fires every timer of the conversation due strictly before now (the
// partition clock).
func (e *Engine) Advance(c *Conversation, now time.Time, fx *Effects) {
	s := e.step(c, fx)
	s.fire(now.UnixMilli())
}

// NextDue is the earliest partition clock at which Advance would do
// something (a timer due at d fires once the clock is past d, so this is
// d + 1 ms); ok is false when nothing is pending.
func (e *Engine) NextDue(c *Conversation) (due time.Time, ok bool) {
	if !c.wait.open {
		return time.Time{}, false
	}
	s := e.step(c, nil)
	d := c.wait.start
	if c.wait.added {
		var bit int
		if bit, d = s.nextTimer(); bit < 0 {
			return time.Time{}, false
		}
	}
	return time.UnixMilli(d + 1), true
}

// fire runs the open wait's timers due strictly before now, earliest first.
func (s *step) fire(now int64) {
	w := &s.c.wait
	for w.open {
		if !w.added {
			if w.start >= now {
				return // every other timer is after the start
			}
			s.addWaiting()
		}
		bit, due := s.nextTimer()
		if bit < 0 || due >= now {
			return
		}
		w.fired |= 1 << bit
		s.fireAlert(bit)
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
		return s.h.NextMidnight(time.UnixMilli(start)).UnixMilli(), true
	default:
		return start + day24h, true
	}
}

// nextTimer is the open wait's earliest timer that has not fired, -1 if none.
func (s *step) nextTimer() (bit int, due int64) {
	w := &s.c.wait
	bit = -1
	for b := 0; b < numBits; b++ {
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
	s.fx.Alerts = append(s.fx.Alerts, s.alert(bit, &w.waitCore))
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
		a := s.alert(o.bit, w)
		a.Status, a.At = alerting.Resolved, time.UnixMilli(x)
		switch {
		case o.due >= x:
			a.Reason = alerting.ReasonRetracted
			w.fired &^= 1 << o.bit
			if o.bit >= bitBreach && o.bit < bitMidnight {
				s.uncountBreach(o.bit-bitBreach, w)
			}
		case reason == "":
			continue
		default:
			a.Reason = reason
		}
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
	s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: c.Shop, Buyer: c.Buyer, Start: c.wait.start, Add: true})
	s.waiting(c.agent, 1)
}

func (s *step) removeWaiting() {
	c := s.c
	if !c.wait.added {
		return
	}
	s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: c.Shop, Buyer: c.Buyer, Start: c.wait.start})
	s.waiting(c.agent, -1)
}

// waiting changes an agent's count of buyers waiting now and their set of
// waiting buyers. Both are kept whether or not per-agent figures are on:
// idle-seat detection needs them.
func (s *step) waiting(agent string, delta int64) {
	if agent != "" {
		c := s.c
		s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: c.Shop, Field: AgentField(agent, FieldWaiting), Delta: delta})
		s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: c.Shop, Agent: agent, Buyer: c.Buyer, Start: c.wait.start, Add: delta > 0})
	}
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
	s.fx.Activity = append(s.fx.Activity, Activity{Shop: c.Shop, Agent: agent, At: l})
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
	if c.prev.ok && s.dayOf(c.prev.start) == d {
		c.prev = endedWait{}
	}
}
