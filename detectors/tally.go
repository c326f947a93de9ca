package detectors

import (
	"time"

	"github.com/replywatch/replywatch/hours"
)

// A conversation remembers what it contributed to each of its last maxDays
// shop-local days, so that a blocked or reported buyer can be taken out of a
// day's figures (R8), a buyer is counted once a day however often breached
// (R7), and a retraction knows whether it took the day's only breach.
// A contribution to an older day goes straight to the figures without being
// remembered; such a day can no longer be corrected from this conversation.
const (
	maxDays = 2
	// maxAgents bounds the per-agent table of a day (5 bits in the encoding);
	// contributions of further agents are emitted but not remembered.
	maxAgents = 31
)

// Field codes of a tally entry. Consulting has none: a buyer consulted on a
// day (for an agent) exactly when the day's messages entry is positive.
const (
	fieldMessages uint8 = iota
	fieldAnswered30
	fieldRespMs
	fieldRespN
	fieldBreached
	numFields
)

// tally is what one conversation contributed to one day.
type tally struct {
	day      int32 // days since 1970-01-01 of the shop-local date
	excluded bool  // the buyer was blocked or reported that day (R8)
	agents   []string
	entries  []entry
}

// entry is one counter of a tally. For breached, n is the number of breaches
// at thr counted that day, and the figure is 1 while n > 0.
type entry struct {
	agent uint8 // 0 shop-wide, else 1 + index in agents
	field uint8
	thr   int64 // threshold in ms, breached only
	n     int64
}

// agentIndex is 1 + agent's index in the tally, 0 when absent.
func (t *tally) agentIndex(agent string) uint8 {
	for i, a := range t.agents {
		if a == agent {
			return uint8(i + 1)
		}
	}
	return 0
}

func (t *tally) agentName(ai uint8) string {
	if ai == 0 || int(ai) > len(t.agents) {
		return ""
	}
	return t.agents[ai-1]
}

func (t *tally) find(ai, field uint8, thr int64) int {
	for i := range t.entries {
		if e := &t.entries[i]; e.agent == ai && e.field == field && e.thr == thr {
			return i
		}
	}
	return -1
}

// dayOf is the shop-local day of a time in ms.
func (s *step) dayOf(ms int64) int32 {
	y, m, d := time.UnixMilli(ms).In(s.h.Loc).Date()
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func dayString(d int32) string {
	return hours.Date(time.Unix(int64(d)*86400, 0).UTC().Date())
}

// tally returns the conversation's tally of day d, creating it when create
// is set and the day is not older than every remembered one; nil otherwise.
// The pointer is valid until the next call that creates a tally.
func (s *step) tally(d int32, create bool) *tally {
	c := s.c
	i := 0
	for ; i < len(c.days) && c.days[i].day <= d; i++ {
		if c.days[i].day == d {
			return &c.days[i]
		}
	}
	if !create || (len(c.days) >= maxDays && i == 0) {
		return nil
	}
	c.days = append(c.days, tally{})
	copy(c.days[i+1:], c.days[i:])
	c.days[i] = tally{day: d}
	if len(c.days) > maxDays {
		c.days = append(c.days[:0], c.days[1:]...)
		i--
	}
	return &c.days[i]
}

func (s *step) excluded(d int32) bool {
	t := s.tally(d, false)
	return t != nil && t.excluded
}

// agentIndex is agent's 1-based index in t for per-agent counting, adding
// it when new; 0 when per-agent figures are off, agent is unknown or the
// table is full.
func (s *step) agentIndex(t *tally, agent string) uint8 {
	if !s.e.PerAgent || agent == "" {
		return 0
	}
	if ai := t.agentIndex(agent); ai > 0 {
		return ai
	}
	if len(t.agents) == maxAgents {
		return 0
	}
	t.agents = append(t.agents, agent)
	return uint8(len(t.agents))
}

// add adds delta to a counter of day d, shop-wide when agent is "". A
// counter the tally cannot hold (a day no longer remembered, a full agent
// table) is emitted as is; consulting is then left alone, as nothing tells
// whether the buyer was counted already.
func (s *step) add(d int32, agent string, field uint8, thr, delta int64) {
	if delta == 0 {
		return
	}
	t := s.tally(d, true)
	if t != nil && t.excluded {
		return
	}
	var ai uint8
	if t != nil && agent != "" {
		ai = s.agentIndex(t, agent)
	}
	if t == nil || (agent != "" && ai == 0) {
		s.emit(d, agent, fieldName(field, thr), delta)
		return
	}
	s.count(t, ai, field, thr, delta)
}

// count changes an entry of t by delta and emits the change of its figures.
func (s *step) count(t *tally, ai, field uint8, thr, delta int64) {
	i := t.find(ai, field, thr)
	if i < 0 {
		t.entries = append(t.entries, entry{agent: ai, field: field, thr: thr})
		i = len(t.entries) - 1
	}
	e := &t.entries[i]
	old := e.n
	e.n = max(e.n+delta, 0)
	s.emitChange(t, e, old)
	if e.n == 0 {
		t.entries = append(t.entries[:i], t.entries[i+1:]...)
	}
}

// emitChange emits the figure changes of entry e going from old to e.n.
func (s *step) emitChange(t *tally, e *entry, old int64) {
	agent := t.agentName(e.agent)
	switch e.field {
	case fieldBreached:
		// R7: a buyer counts once a day per threshold.
		s.emit(t.day, agent, fieldName(e.field, e.thr), b2i(e.n > 0)-b2i(old > 0))
	case fieldMessages:
		s.emit(t.day, agent, FieldMessages, e.n-old)
		s.emit(t.day, agent, FieldConsulting, b2i(e.n > 0)-b2i(old > 0))
	default:
		s.emit(t.day, agent, fieldName(e.field, e.thr), e.n-old)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// wipe takes everything the conversation contributed to day d out of the
// figures and marks the day excluded (R8).
func (s *step) wipe(d int32) {
	t := s.tally(d, true)
	if t == nil || t.excluded {
		return
	}
	for i := range t.entries {
		e := &t.entries[i]
		old := e.n
		e.n = 0
		s.emitChange(t, e, old)
	}
	*t = tally{day: d, excluded: true}
}

func (s *step) emit(d int32, agent, field string, delta int64) {
	if delta == 0 || s.fx == nil {
		return
	}
	if agent != "" {
		field = AgentField(agent, field)
	}
	s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: s.c.Shop, Day: dayString(d), Field: field, Delta: delta})
}

func fieldName(field uint8, thr int64) string {
	switch field {
	case fieldMessages:
		return FieldMessages
	case fieldAnswered30:
		return FieldAnswered30
	case fieldRespMs:
		return FieldRespMs
	case fieldRespN:
		return FieldRespN
	default:
		return ThresholdField(FieldBreached, time.Duration(thr)*time.Millisecond)
	}
}
