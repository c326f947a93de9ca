package detectors

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/text"
)

// TextRules are the text rules in force for one shop (DESIGN.md §4).
type TextRules struct {
	// Matcher holds the shop's lexicons: the defaults and its own.
	Matcher *text.Matcher
	// PerfunctoryAlertAfter is how many perfunctory replies an agent may
	// send in a shop-local day, to all their buyers, before the day
	// alerts, once (0: every one alerts).
	PerfunctoryAlertAfter int
}

// TextRulesFunc resolves a shop's text rules; nil turns them off.
type TextRulesFunc func(shopID string) *TextRules

// Text rule bounds.
const (
	// repeatTimes replies with the same normalised text to one buyer
	// within repeatWindow are perfunctory.
	repeatTimes  = 3
	repeatWindow = 10 * 60 * 1000
	// repeatKeep is how many recent agent replies a conversation keeps at
	// most to recognise repeats: those that a reply up to the allowed
	// lateness before the newest could repeat (within repeatWindow before
	// it). Like the event log, it bounds the state, not the rule: a
	// count bound by arrival would forget, for a late reply, same replies
	// that the newer ones pushed out.
	repeatKeep = maxLog
)

// FlagField is the daily figure of messages flagged in a text category
// (its per-agent form is AgentField(agent, FlagField(c))).
func FlagField(c text.Category) string { return "flag:" + string(c) }

// Categories a message of each sender is judged for. Buyers' messages are
// never judged for abuse: a buyer quoting an agent's abuse is the agent's
// problem, not the buyer's.
var (
	agentCategories = []text.Category{text.Threat, text.Abuse, text.Sarcasm, text.OffPlatform, text.Perfunctory}
	buyerCategories = []text.Category{text.ComplaintIntent}
)

// TextEngine applies the text rules to chat messages: abuse, threats,
// sarcasm, perfunctory replies and leading off the platform in agents'
// messages, complaint intent in buyers'. Like Engine, it keeps no state of
// its own and does no I/O; what it remembers of a conversation is in
// TextState.
type TextEngine struct {
	Text TextRulesFunc
	// Rules give the shop's platform and its local day.
	Rules RulesFunc
	// PerAgent also emits per-agent figure fields.
	PerAgent bool
	// Lateness is how late a reply may arrive and still be judged with
	// the replies before it in event time (DefaultLateness when not set),
	// as Engine.Lateness.
	Lateness time.Duration
}

func (e *TextEngine) lateness() int64 {
	if e.Lateness > 0 {
		return e.Lateness.Milliseconds()
	}
	return DefaultLateness.Milliseconds()
}

// TextState is what the text rules remember of one conversation: the
// agents' recent replies, to recognise the same reply sent again and
// again. All times are Unix ms.
type TextState struct {
	recent []sentReply // oldest first, at most repeatKeep
}

type sentReply struct {
	at     int64
	hash   uint32 // of the normalised text
	repeat bool   // counted as a perfunctory repeat already
}

// recentCap is the room a conversation's recent replies start with: most
// conversations see fewer agent replies, so the list is allocated once.
const recentCap = 8

// normPool keeps normalisation buffers between messages.
var normPool = sync.Pool{New: func() any { return new(text.Normalized) }}

// Message applies the text rules to one chat event already applied to the
// conversation (not a duplicate). Only messages with text are judged.
func (e *TextEngine) Message(st *TextState, shop, buyer string, ev *event.Event, fx *Effects) {
	if ev.Type != event.TypeMessage || ev.Text == "" || e.Text == nil {
		return
	}
	tr := e.Text(shop)
	if tr == nil || tr.Matcher == nil {
		return
	}
	var cats []text.Category
	switch ev.Sender {
	case event.SenderAgent:
		cats = agentCategories
	case event.SenderBuyer:
		cats = buyerCategories
	default:
		return // bots and the system speak for the platform, not a person
	}
	r := e.Rules(shop)
	day := ""
	dayOf := func() string {
		if day == "" {
			day = ev.TS.UTC().Format(time.DateOnly)
			if r.Hours != nil {
				day = r.Hours.Day(ev.TS.Time)
			}
		}
		return day
	}
	platform := ev.Platform
	if platform == "" {
		platform = r.Platform
	}
	n := normPool.Get().(*text.Normalized)
	defer normPool.Put(n)
	n.Reset(ev.Text)
	found := tr.Matcher.ScanNormalized(n, cats...)
	at := ev.TS.Time
	base := alerting.Alert{
		Status: alerting.Firing, Platform: platform, ShopID: shop, BuyerID: buyer, AgentID: ev.AgentID, At: at,
	}
	count := func(c text.Category) {
		fx.Figures = append(fx.Figures, FigureDelta{Shop: shop, Day: dayOf(), Field: FlagField(c), Delta: 1})
		if e.PerAgent && ev.AgentID != "" {
			fx.Figures = append(fx.Figures, FigureDelta{Shop: shop, Day: dayOf(), Field: AgentField(ev.AgentID, FlagField(c)), Delta: 1})
		}
	}
	alert := func(kind, severity, reason string, m text.Match) {
		a := base
		a.Kind, a.Severity, a.Reason = kind, severity, reason
		a.Category, a.Term, a.Excerpt = string(m.Category), m.Term, m.Excerpt
		// One alert per message and kind (per reason for abusive_reply):
		// the event id makes it stable across replays and replicas.
		a.ID = alerting.ID(kind, shop, buyer, ev.EventID, reason)
		fx.Alerts = append(fx.Alerts, a)
	}

	if ev.Sender == event.SenderBuyer {
		for _, m := range found {
			count(m.Category)
			alert(alerting.KindComplaintRisk, alerting.Critical, "", m)
		}
		return
	}

	var abusive, perfunctory *text.Match
	for i := range found {
		m := &found[i]
		switch m.Category {
		case text.Perfunctory:
			continue // counted below, with repeats
		case text.OffPlatform:
			alert(alerting.KindOffPlatformTrade, alerting.Critical, "", *m)
		default: // threat, abuse, sarcasm, most serious first
			if abusive == nil {
				abusive = m
			}
		}
		count(m.Category)
	}
	if abusive != nil {
		alert(alerting.KindAbusiveReply, alerting.Critical, "", *abusive)
	}
	for i := range found {
		if found[i].Category == text.Perfunctory {
			perfunctory = &found[i]
		}
	}
	// perfunct counts (and past the allowance alerts) one perfunctory
	// message: this one, or for a repeat the message sent at ms.
	perfunct := func(m text.Match, id string, ms int64) {
		d, at := dayOf(), ev.TS.Time
		if ms != ev.Ms() {
			at = time.UnixMilli(ms).In(ev.TS.Location())
			d = at.UTC().Format(time.DateOnly)
			if r.Hours != nil {
				d = r.Hours.Day(at)
			}
		}
		fx.Figures = append(fx.Figures, FigureDelta{Shop: shop, Day: d, Field: FlagField(text.Perfunctory), Delta: 1})
		// The agent's count is what an allowance is judged on (by the
		// shop-level rules, over every partition the agent's buyers are
		// on), so it is kept whether per-agent figures are or not.
		if (e.PerAgent || tr.PerfunctoryAlertAfter > 0) && ev.AgentID != "" {
			fx.Figures = append(fx.Figures, FigureDelta{Shop: shop, Day: d, Field: AgentField(ev.AgentID, FlagField(text.Perfunctory)), Delta: 1})
		}
		// An abusive reply alerted already; with an allowance, the
		// shop-level rules alert the agent's day once past it.
		if abusive != nil || tr.PerfunctoryAlertAfter > 0 {
			return
		}
		a := base
		a.Kind, a.Severity, a.Reason, a.At = alerting.KindAbusiveReply, alerting.Warning, alerting.ReasonPerfunctory, at
		a.Category, a.Term, a.Excerpt = string(m.Category), m.Term, m.Excerpt
		a.ID = id
		fx.Alerts = append(fx.Alerts, a)
	}
	if perfunctory != nil {
		perfunct(*perfunctory, alerting.ID(alerting.KindAbusiveReply, shop, buyer, ev.EventID, alerting.ReasonPerfunctory), ev.Ms())
		return
	}
	// Repeats are judged by event time, whatever the arrival order: the
	// message with two same replies in the 10 minutes before it is the
	// perfunctory one, and a late reply may make an earlier-arrived one so.
	// Its id comes from the text and the time, which any order shares.
	if n.Text == "" {
		return // white space only: nothing to repeat
	}
	h := uint32(xxhash.Sum64String(n.Text))
	for _, ms := range st.sent(h, ev.Ms(), e.lateness()) {
		m := text.Match{Category: text.Perfunctory, Term: fmt.Sprintf("(same reply %d times in 10 min)", repeatTimes),
			Excerpt: text.Excerpt(ev.Text, 0, len(ev.Text), text.ExcerptRunes)}
		perfunct(m, alerting.ID(alerting.KindAbusiveReply, shop, buyer, "repeat", strconv.FormatUint(uint64(h), 16),
			strconv.FormatInt(ms, 10), alerting.ReasonPerfunctory), ms)
	}
}

// sent records an agent reply whose normalised text hashes to h, sent at
// at, and returns the times of the replies that became perfunctory
// repeats with it: those with repeatTimes-1 same replies in the
// repeatWindow before them, each returned once. It keeps the replies a
// reply up to lateness ms before the newest could repeat.
func (st *TextState) sent(h uint32, at, lateness int64) []int64 {
	if st.recent == nil {
		st.recent = make([]sentReply, 0, recentCap)
	}
	i := len(st.recent)
	for i > 0 && st.recent[i-1].at > at {
		i--
	}
	st.recent = append(st.recent, sentReply{})
	copy(st.recent[i+1:], st.recent[i:])
	st.recent[i] = sentReply{hash: h, at: at}
	var out []int64
	for k := range st.recent {
		r := &st.recent[k]
		if r.hash != h || r.repeat {
			continue
		}
		before := 0
		for _, o := range st.recent[:k] {
			if o.hash == h && r.at-o.at <= repeatWindow {
				before++
			}
		}
		if before >= repeatTimes-1 {
			r.repeat = true
			out = append(out, r.at)
		}
	}
	// Forget what can no longer be part of a repeat.
	newest := st.recent[len(st.recent)-1].at
	drop := max(0, len(st.recent)-repeatKeep)
	for drop < len(st.recent) && newest-st.recent[drop].at > lateness+repeatWindow {
		drop++
	}
	if drop > 0 {
		st.recent = append(st.recent[:0], st.recent[drop:]...)
	}
	return out
}

// Empty reports whether the state remembers nothing.
func (st *TextState) Empty() bool { return len(st.recent) == 0 }

// Encoding of a TextState, version 2:
//
//	version(1) n(1) n×{hash(4 LE) at(varint, the first absolute, then delta) repeat(1)}
//
// Version 1 ended with a per-conversation perfunctory count (day, agent,
// count) that the per-agent-day figure replaced: it is read and dropped.
const textCodecVersion = 2

// encodedLen is the length of the state's encoding.
func (st *TextState) encodedLen() int {
	n, prev := 2, int64(0)
	for _, r := range st.recent {
		n += 4 + varintLen(r.at-prev) + 1
		prev = r.at
	}
	return n
}

// varintLen is the length of binary.AppendVarint's encoding of v.
func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	n := 1
	for ; u >= 0x80; u >>= 7 {
		n++
	}
	return n
}

// AppendBinary appends the state's encoding to b.
func (st *TextState) AppendBinary(b []byte) []byte {
	b = append(b, textCodecVersion, byte(len(st.recent)))
	prev := int64(0)
	for _, r := range st.recent {
		b = binary.LittleEndian.AppendUint32(b, r.hash)
		b = binary.AppendVarint(b, r.at-prev)
		prev = r.at
		var f byte
		if r.repeat {
			f = 1
		}
		b = append(b, f)
	}
	return b
}

// DecodeTextState reads a TextState from the front of b and returns the
// rest of b.
func DecodeTextState(st *TextState, b []byte) ([]byte, error) {
	bad := func(what string) error { return fmt.Errorf("%w: text state: %s", ErrCorrupt, what) }
	if len(b) < 2 || (b[0] != textCodecVersion && b[0] != 1) {
		return nil, bad("unknown version")
	}
	version, n := b[0], int(b[1])
	b = b[2:]
	if n > repeatKeep {
		return nil, bad("too many replies")
	}
	st.recent = slices.Grow(st.recent[:0], max(n+1, recentCap))
	prev := int64(0)
	for range n {
		if len(b) < 4 {
			return nil, bad("short reply")
		}
		h := binary.LittleEndian.Uint32(b)
		d, k := binary.Varint(b[4:])
		if k <= 0 {
			return nil, bad("bad time")
		}
		b = b[4+k:]
		if len(b) < 1 || b[0] > 1 {
			return nil, bad("bad repeat flag")
		}
		prev += d
		st.recent = append(st.recent, sentReply{hash: h, at: prev, repeat: b[0] == 1})
		b = b[1:]
	}
	if version == 1 {
		var err error
		if _, b, err = readTextStr(b); err != nil {
			return nil, bad("day")
		}
		if _, b, err = readTextStr(b); err != nil {
			return nil, bad("agent")
		}
		_, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, bad("count")
		}
		b = b[k:]
	}
	return b, nil
}

// appendTextStr and readTextStr write and read a string as a uvarint
// length and the bytes.
func appendTextStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readTextStr(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxStr || uint64(len(b)-k) < n {
		return "", nil, ErrCorrupt
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

// PerfunctorySpell is what the shop-level rules remember of a shop's
// perfunctory replies: the agents already alerted for on its current
// shop-local day. It is kept with the lease's fencing, so each agent-day
// alerts once whichever replica holds the lease.
type PerfunctorySpell struct {
	Day     string   `json:"day,omitempty"`
	Alerted []string `json:"alerted,omitempty"` // sorted
}

// EvaluatePerfunctory alerts, once per agent and shop-local day, an agent
// whose perfunctory replies that day (counts: the agent's figure summed
// over every partition, which their buyers span) passed the shop's
// allowance after (DESIGN.md §4). With an allowance of 0 every perfunctory
// message alerts on its own, from TextEngine, and this does nothing.
func EvaluatePerfunctory(shop, platform, day string, counts map[string]int64, after int, sp *PerfunctorySpell, now time.Time, fx *Effects) {
	if sp.Day != day {
		*sp = PerfunctorySpell{Day: day}
	}
	if after <= 0 {
		return
	}
	agents := make([]string, 0, len(counts))
	for a, n := range counts {
		if n > int64(after) {
			agents = append(agents, a)
		}
	}
	slices.Sort(agents)
	for _, a := range agents {
		i, found := slices.BinarySearch(sp.Alerted, a)
		if found {
			continue
		}
		sp.Alerted = slices.Insert(sp.Alerted, i, a)
		fx.Alerts = append(fx.Alerts, alerting.Alert{
			ID:   alerting.ID(alerting.KindAbusiveReply, shop, a, day, alerting.ReasonPerfunctory),
			Kind: alerting.KindAbusiveReply, Status: alerting.Firing, Severity: alerting.Warning,
			Reason: alerting.ReasonPerfunctory, Category: string(text.Perfunctory),
			Platform: platform, ShopID: shop, AgentID: a, At: now,
		})
	}
	if len(sp.Alerted) == 0 {
		sp.Day = "" // nothing to remember
	}
}

// PerfunctoryCounts picks the agents' perfunctory reply counts out of a
// shop's daily figures.
func PerfunctoryCounts(day map[string]int64) map[string]int64 {
	suffix := ":" + FlagField(text.Perfunctory)
	out := map[string]int64{}
	for k, v := range day {
		if rest, ok := strings.CutPrefix(k, "a:"); ok {
			if a, ok := strings.CutSuffix(rest, suffix); ok && a != "" && v > 0 {
				out[a] = v
			}
		}
	}
	return out
}
