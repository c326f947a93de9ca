// Package detectors owns the platform rules as pure code: an entity's state,
// an event or the clock in; the new state, figure changes, waiting-set changes
// and alerts out. No I/O and no wall clock here: the pipeline passes the
// partition clock, and the state store persists what comes out.
package detectors

import (
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/hours"
)

// Rules are the reply rules in force for one shop (the shop's profile after
// config defaults and overrides).
type Rules struct {
	Platform string
	Hours    *hours.Schedule
	// Thresholds are the reply SLAs, ascending (PDD: 3m, 5m).
	Thresholds []time.Duration
	// WarnBefore is how long before each threshold reply_warning fires.
	WarnBefore time.Duration
	// StartAtOpen starts the clock of an outside-hours buyer message at the
	// next opening instead of ignoring it (profile option outside_hours: start_at_open).
	StartAtOpen bool
	// PriorityWarnBefore is how long before the first threshold a priority
	// buyer's wait warns, at severity critical (DESIGN.md §3); 0 turns the
	// priority escalation off.
	PriorityWarnBefore time.Duration
	// Target is the reply rate the shop aims for (0 to 1); figures only.
	Target float64
	// Seats are the shop's seat rules (DESIGN.md §2).
	Seats SeatRules
}

// RulesFunc resolves the rules of a shop. It must always return non-nil
// rules (the defaults for shops without overrides).
type RulesFunc func(shopID string) *Rules

// FigureDelta changes one counter of a shop's figures. Day is the shop-local
// day ("2006-01-02") the change counts for; an empty Day means the shop's
// current (not daily) counters, such as per-agent waiting buyers.
type FigureDelta struct {
	Shop  string
	Day   string
	Field string
	Delta int64
}

// Figure fields. Threshold fields are suffixed with ":" and the threshold as
// alerting.FormatThreshold writes it, e.g. "breached:3m". Per-agent fields
// are prefixed with "a:<agent_id>:", e.g. "a:a7:breached:3m".
const (
	FieldConsulting = "consulting" // distinct buyers with an in-window buyer message that day
	FieldBreached   = "breached"   // distinct buyers breached that day, per threshold
	FieldMessages   = "msgs"       // in-window buyer messages that day
	FieldAnswered30 = "ans30"      // of those, human-answered within 30 s
	FieldRespMs     = "resp_ms"    // sum of (reply ts - wait start) of waits started that day and ended
	FieldRespN      = "resp_n"     // number of those waits
	FieldWaiting    = "waiting"    // per-agent buyers waiting now (Day == "")
	// FieldLastHuman is the per-agent time (Unix ms) of the agent's latest
	// human message (Day == ""). Stores combine it by maximum, not sum.
	FieldLastHuman = "last_human"
	// FieldSeatSince is the per-agent time (Unix ms) the agent last started
	// or stopped working by presence (Day == ""), and FieldSeatAt the time
	// of their latest presence event. Both are written as differences from
	// the previous value: one seat lives in one partition, so the sum over
	// partitions is the time itself.
	FieldSeatSince = "seat_since"
	FieldSeatAt    = "seat_at"
)

// IsMaxField reports whether a current-counter field is combined by
// maximum (a latest time) rather than summed.
func IsMaxField(field string) bool { return strings.HasSuffix(field, ":"+FieldLastHuman) }

// Activity is an agent's human message at At (Unix ms): the agent is at
// their seat. Stores keep the latest per shop and agent.
type Activity struct {
	Shop  string
	Agent string
	At    int64
}

// AgentField is the per-agent form of a field.
func AgentField(agent, field string) string { return "a:" + agent + ":" + field }

// ThresholdField is the per-threshold form of a field.
func ThresholdField(field string, t time.Duration) string {
	return field + ":" + alerting.FormatThreshold(t)
}

// WaitOp adds a buyer to, or removes one from, a shop's set of buyers
// waiting now (scored by wait start, Unix ms), which gives waiting_buyers and
// oldest_wait_seconds. With Agent set it is the set of buyers waiting on
// that agent, which gives the start of the oldest wait assigned to them
// (idle_seat).
type WaitOp struct {
	Shop  string
	Agent string
	Buyer string
	Start int64
	Add   bool
}

// Set names the waiting set the op changes: the shop's, or for an agent's
// set the shop and the agent joined by AgentSetSep.
func (w *WaitOp) Set() string {
	if w.Agent == "" {
		return w.Shop
	}
	return w.Shop + AgentSetSep + w.Agent
}

// AgentSetSep joins a shop and an agent in the name of the agent's waiting
// set. Stores list these sets with the shops; SplitAgentSet tells them apart.
const AgentSetSep = "\x00a\x00"

// SplitAgentSet splits a waiting-set name made by WaitOp.Set; ok is false
// for a shop's own set.
func SplitAgentSet(set string) (shop, agent string, ok bool) {
	return strings.Cut(set, AgentSetSep)
}

// Effects collects what one or more detector steps produced. The pipeline
// reuses one Effects per batch.
type Effects struct {
	Alerts  []alerting.Alert
	Figures []FigureDelta
	Waits   []WaitOp
	// Activity are agents' human messages, for idle-seat detection.
	Activity []Activity
}

// Reset empties the effects, keeping capacity.
func (fx *Effects) Reset() {
	fx.Alerts = fx.Alerts[:0]
	fx.Figures = fx.Figures[:0]
	fx.Waits = fx.Waits[:0]
	fx.Activity = fx.Activity[:0]
}

// Result says what an event did.
type Result int

const (
	Applied   Result = iota // the event was used (it may have changed nothing visible)
	Duplicate               // its event_id was already applied to this entity
)

// SeatField (and its per-agent form AgentField(agent, SeatField(state)),
// 1 for the agent's current state) is the current-counter field holding how many of a shop's agents
// are in a seat state ("online", "busy", "away", "offline", "idle").
func SeatField(state string) string { return "seats:" + state }
