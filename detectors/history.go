package detectors

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// Bounds of a conversation's recent events (DESIGN.md §5: event time
// decides, for events up to clock.allowed_lateness late).
const (
	// DefaultLateness is how long after the latest event time a
	// conversation keeps its events, when Engine.Lateness is not set.
	DefaultLateness = time.Hour
	// maxLog caps the events kept whatever their age: a conversation busier
	// than 64 events an hour keeps its last 64, and an event older than all
	// of them is applied as far as makes sense instead of in its place.
	// Each kept event takes 2 to 6 bytes of encoded state.
	maxLog = 64
)

// Kinds of a logged event. Their order is the order of events with the same
// ts: a buyer message comes before a human reply of the same millisecond,
// which answers it (DESIGN.md §5, R4, R10).
const (
	kindBuyer uint8 = iota
	kindAgent
	kindBot
	kindSystem
	kindTransfer
	kindExclude // buyer_blocked or buyer_reported
	numKinds
)

// logEvent is what the rules use of a chat event.
type logEvent struct {
	ts       int64
	kind     uint8
	agent    string
	platform string
}

func logEventOf(ev *event.Event) logEvent {
	le := logEvent{ts: ev.Ms(), agent: ev.AgentID, platform: ev.Platform}
	switch ev.Type {
	case event.TypeMessage:
		switch ev.Sender {
		case event.SenderBuyer:
			le.kind = kindBuyer
		case event.SenderAgent:
			le.kind = kindAgent
		case event.SenderBot:
			le.kind = kindBot
		default:
			le.kind = kindSystem
		}
	case event.TypeTransfer:
		le.kind = kindTransfer
	default:
		le.kind = kindExclude
	}
	return le
}

// before orders events: by ts, then kind, agent and platform, so that
// every arrival order gives one order. Events equal in all of these have
// the same effect in either order.
func (a *logEvent) before(b *logEvent) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.agent != b.agent {
		return a.agent < b.agent
	}
	return a.platform < b.platform
}

// lateness is the engine's allowed lateness in ms.
func (e *Engine) lateness() int64 {
	if e.Lateness > 0 {
		return e.Lateness.Milliseconds()
	}
	return DefaultLateness.Milliseconds()
}

// inOrder reports whether le comes after every event applied so far.
func (c *Conversation) inOrder(le logEvent) bool {
	if n := len(c.log); n > 0 {
		return c.log[n-1].before(&le)
	}
	return le.ts >= c.base.lastTS
}

// scratch holds Effects that derivations write and then compare.
var scratch = sync.Pool{New: func() any { return new(Effects) }}

func getScratch() *Effects   { fx := scratch.Get().(*Effects); fx.Reset(); return fx }
func putScratch(fx *Effects) { scratch.Put(fx) }

// derive computes the current state of a decoded conversation.
func (e *Engine) derive(c *Conversation) {
	if !c.stale {
		return
	}
	c.convState = e.run(c, c.base.clone(), c.log, c.clock, nil)
	c.stale = false
}

// run applies evs to st (which it changes), then fires the timers due
// before clock, writing the effects to fx (nil: discarding them).
func (e *Engine) run(c *Conversation, st convState, evs []logEvent, clock int64, fx *Effects) convState {
	t := Conversation{Shop: c.Shop, Buyer: c.Buyer, convState: st}
	s := e.step(&t, fx)
	for _, le := range evs {
		s.apply(le)
	}
	s.fire(clock)
	return t.convState
}

// late applies an event that belongs before events already applied: the
// conversation is derived again with it in its place, and what changed is
// emitted to fx. The two derivations, without and with the event, share
// the state before its place; only what follows is compared.
func (e *Engine) late(c *Conversation, le logEvent, fx *Effects) {
	old := waitingOf(c)
	fa, fb := getScratch(), getScratch()
	defer putScratch(fa)
	defer putScratch(fb)
	if le.ts < c.base.lastTS {
		// Older than every kept event: applied to the state before them.
		e.run(c, c.base.clone(), c.log, c.clock, fa)
		c.base = e.run(c, c.base, []logEvent{le}, 0, fb)
		c.convState = e.run(c, c.base.clone(), c.log, c.clock, fb)
	} else {
		i, _ := slices.BinarySearchFunc(c.log, le, func(x, y logEvent) int {
			if x.before(&y) {
				return -1
			}
			return 1
		})
		shared := e.run(c, c.base.clone(), c.log[:i], 0, nil)
		e.run(c, shared.clone(), c.log[i:], c.clock, fa)
		c.log = slices.Insert(c.log, i, le)
		c.convState = e.run(c, shared, c.log[i:], c.clock, fb)
	}
	s := e.step(c, fx)
	s.correct(fa, fb, old, waitingOf(c), le)
}

// waitingAs is a conversation's place in the shop's waiting set.
type waitingAs struct {
	in    bool
	start int64
}

func waitingOf(c *Conversation) waitingAs {
	if w := &c.wait; w.open && w.added {
		return waitingAs{in: true, start: w.start}
	}
	return waitingAs{}
}

// trim moves events out of the log into base once they are older than the
// allowed lateness before the latest event, or beyond maxLog.
func (e *Engine) trim(c *Conversation) {
	horizon := c.lastTS - e.lateness()
	n := 0
	for n < len(c.log) && (len(c.log)-n > maxLog || c.log[n].ts < horizon) {
		n++
	}
	if n == 0 {
		return
	}
	c.base = e.run(c, c.base, c.log[:n], 0, nil)
	c.log = append(c.log[:0], c.log[n:]...)
}

// figureKey identifies a counter.
type figureKey struct{ shop, day, field string }

// alertTrack is what one derivation said of one alert id.
type alertTrack struct {
	firing *alerting.Alert // its latest firing record, nil if none
	last   alerting.Alert  // its latest record
	recs   []alerting.Alert
}

// standing is an alert's status after its latest record: "firing", "" for
// retracted (it never held), or the resolved reason.
func (t *alertTrack) standing() string {
	if t.last.Status == alerting.Firing {
		return alerting.Firing
	}
	if t.last.Reason == alerting.ReasonRetracted {
		return ""
	}
	return t.last.Reason
}

func tracks(fx *Effects) (map[string]*alertTrack, []string) {
	m := map[string]*alertTrack{}
	var order []string
	for i := range fx.Alerts {
		a := fx.Alerts[i]
		t := m[a.ID]
		if t == nil {
			t = &alertTrack{}
			m[a.ID] = t
			order = append(order, a.ID)
		}
		t.last = a
		t.recs = append(t.recs, a)
		if a.Status == alerting.Firing {
			t.firing = &t.recs[len(t.recs)-1]
		}
	}
	return m, order
}

// correct emits the difference between two derivations of the
// conversation: fa before the late event le, fb with it. Figures move by
// the difference; the waiting set follows the wait; an alert now due fires
// (and is resolved when the derivation resolved it); one that no longer
// holds is resolved with reason retracted; one now resolved for another
// reason is resolved again with it. A resolved alert is not made to fire
// again.
func (s *step) correct(fa, fb *Effects, old, now waitingAs, le logEvent) {
	sums := map[figureKey]int64{}
	var keys []figureKey
	for _, f := range fb.Figures {
		k := figureKey{f.Shop, f.Day, f.Field}
		if _, ok := sums[k]; !ok {
			keys = append(keys, k)
		}
		sums[k] += f.Delta
	}
	for _, f := range fa.Figures {
		k := figureKey{f.Shop, f.Day, f.Field}
		if _, ok := sums[k]; !ok {
			keys = append(keys, k)
		}
		sums[k] -= f.Delta
	}
	for _, k := range keys {
		if d := sums[k]; d != 0 {
			s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: k.shop, Day: k.day, Field: k.field, Delta: d})
		}
	}
	if old != now {
		if old.in {
			s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: s.c.Shop, Buyer: s.c.Buyer, Start: old.start})
		}
		if now.in {
			s.fx.Waits = append(s.fx.Waits, WaitOp{Shop: s.c.Shop, Buyer: s.c.Buyer, Start: now.start, Add: true})
		}
	}
	if le.kind == kindAgent {
		s.fx.Activity = append(s.fx.Activity, Activity{Shop: s.c.Shop, Agent: le.agent, At: le.ts})
	}

	// Retractions first, then what is now due: a reader sees what no
	// longer holds go before what replaces it.
	ta, orderA := tracks(fa)
	tb, orderB := tracks(fb)
	var rest []alerting.Alert
	retract := func(t *alertTrack) {
		a := t.last
		a.Status, a.Reason, a.At = alerting.Resolved, alerting.ReasonRetracted, time.UnixMilli(le.ts)
		s.fx.Alerts = append(s.fx.Alerts, a)
	}
	for _, id := range orderA {
		// The late event took away the condition this alert fired on.
		if a := ta[id]; tb[id] == nil && a.firing != nil && a.standing() != "" {
			retract(a)
		}
	}
	for _, id := range orderB {
		b := tb[id]
		a, ok := ta[id]
		if !ok {
			// Only this derivation touched it.
			rest = append(rest, b.recs...)
			continue
		}
		sa, sb := a.standing(), b.standing()
		switch {
		case sa == sb:
		case sb == "":
			retract(a)
		case sb == alerting.Firing:
			if sa == "" {
				rest = append(rest, *b.firing)
			}
		case sa == "":
			if b.firing != nil {
				rest = append(rest, *b.firing)
			}
			rest = append(rest, b.last)
		case sa == alerting.Firing:
			rest = append(rest, b.last)
		case sb != alerting.Firing:
			// Resolved for another reason (a late reply before a block).
			rest = append(rest, b.last)
		}
	}
	// Firing records before resolved ones, each in the derivation's order.
	slices.SortStableFunc(rest, func(a, b alerting.Alert) int {
		return b2c(a.Status != alerting.Firing) - b2c(b.Status != alerting.Firing)
	})
	s.fx.Alerts = append(s.fx.Alerts, rest...)
}

func b2c(b bool) int {
	if b {
		return 1
	}
	return 0
}

// clone copies a state so that changing one does not change the other.
func (st convState) clone() convState {
	st.pending = slices.Clone(st.pending)
	if st.days != nil {
		days := make([]tally, len(st.days))
		for i, t := range st.days {
			t.agents = slices.Clone(t.agents)
			t.entries = slices.Clone(t.entries)
			days[i] = t
		}
		st.days = days
	}
	return st
}

// Duplicates: a conversation remembers a fingerprint of every event id it
// applied, for its whole life in Redis (redis.state_ttl). The fingerprint is
// 48 bits of the id's xxhash: with n ids remembered, a new id is taken for a
// duplicate with odds n/2^48 (3.6e-12 at 1,000 ids; a billion events with
// conversations of 100 events would lose one in about 2,800 days). 6 bytes
// per id keeps a typical day's conversation (10 to 40 events) at 60 to
// 240 bytes of ids. A conversation beyond maxSeen ids forgets its oldest.
const (
	idBytes = 6
	maxSeen = 1024
)

// fingerprint is an event id's 48-bit hash.
func fingerprint(id string) uint64 { return xxhash.Sum64String(id) & (1<<(8*idBytes) - 1) }

// idSet is the fingerprints, idBytes each, big-endian, in ascending
// order: a lookup is a binary search.
type idSet []byte

func (r idSet) len() int { return len(r) / idBytes }

func (r idSet) at(i int) uint64 {
	var h uint64
	for _, x := range r[i*idBytes : (i+1)*idBytes] {
		h = h<<8 | uint64(x)
	}
	return h
}

// seen reports whether the fingerprint h is in the set, adding it if not.
// Beyond maxSeen the smallest fingerprint is forgotten: as fingerprints are
// hashes, that is an id taken at random.
func (r *idSet) seen(h uint64) bool {
	b := *r
	n := b.len()
	i := sort.Search(n, func(j int) bool { return b.at(j) >= h })
	if i < n && b.at(i) == h {
		return true
	}
	if n >= maxSeen {
		copy(b, b[idBytes:])
		b = b[:len(b)-idBytes]
		i = max(i-1, 0)
	}
	var w [idBytes]byte
	for k := range w {
		w[k] = byte(h >> (8 * (idBytes - 1 - k)))
	}
	*r = slices.Insert(b, i*idBytes, w[:]...)
	return false
}

// sorted reports whether the set is in ascending order without repeats.
func (r idSet) sorted() bool {
	for i := 1; i < r.len(); i++ {
		if r.at(i-1) >= r.at(i) {
			return false
		}
	}
	return true
}
