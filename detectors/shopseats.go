package detectors

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
)

// SeatRules are a shop's seat rules (DESIGN.md §2, CONTRACT.md §5 seats).
type SeatRules struct {
	// IdleAfter is how long a working agent with buyers waiting on them may
	// go without a human message before idle_seat fires.
	IdleAfter time.Duration
	// AwayAfter is how long an agent may be away before seat_away fires.
	AwayAfter time.Duration
	// UncoveredAfter is how long a shop may have no working seat in service
	// hours before shop_uncovered fires.
	UncoveredAfter time.Duration
	// UncoveredAfterInferred is, for a shop that sends no presence, how long
	// buyers may wait with no human message from anyone before
	// shop_uncovered fires.
	UncoveredAfterInferred time.Duration
	// InferredOfflineAfter ends an agent's inferred working spell (shops
	// without presence) this long after their last human message.
	InferredOfflineAfter time.Duration
}

// Reasons a seat alert is resolved, besides alerting.ReasonReplied.
const (
	ReasonCleared  = "cleared"   // no buyer waits on the agent any more
	ReasonSeatAway = "seat_away" // the agent went away: seat_away takes over
	ReasonOffline  = "offline"   // the agent stopped working
	ReasonCovered  = "covered"   // a seat works again
	ReasonClosed   = "closed"    // the service window closed
)

// AgentSeat is what a shop's summed figures say of one agent now.
type AgentSeat struct {
	Agent string
	// Status is the latest presence status, "" when the agent sent none.
	Status string
	// SeatSince is when the agent last started or stopped working by
	// presence, SeatAt their latest presence event, LastHuman their latest
	// human message (Unix ms, 0 when none).
	SeatSince, SeatAt, LastHuman int64
	// Waiting buyers assigned to the agent, and the oldest wait's start.
	Waiting, OldestWait int64
}

// ShopSeats is a shop's seats as its summed figures show them.
type ShopSeats struct {
	Shop   string
	Agents []AgentSeat // sorted by agent
	// Waiting buyers of the whole shop and the oldest wait's start.
	Waiting, OldestWait int64
}

// SeatsFromCounters reads a shop's seats from its current counters (the
// per-agent fields this package writes) and waiting buyers. oldestWait
// gives the oldest wait start of each agent's waiting set.
func SeatsFromCounters(shop string, now map[string]int64, waiting, oldest int64, oldestWait map[string]int64) ShopSeats {
	agents := map[string]*AgentSeat{}
	get := func(a string) *AgentSeat {
		s := agents[a]
		if s == nil {
			s = &AgentSeat{Agent: a}
			agents[a] = s
		}
		return s
	}
	for k, v := range now {
		rest, ok := strings.CutPrefix(k, "a:")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			continue
		}
		a, field := rest[:i], rest[i+1:]
		if st, ok := strings.CutSuffix(a, ":seats"); ok {
			// a:<agent>:seats:<status>, 1 for the current status.
			if seatCode(field) > 0 && v > 0 && st != "" {
				get(st).Status = field
			}
			continue
		}
		switch field {
		case FieldSeatSince:
			get(a).SeatSince = v
		case FieldSeatAt:
			get(a).SeatAt = v
		case FieldLastHuman:
			get(a).LastHuman = v
		case FieldWaiting:
			get(a).Waiting = max(0, v)
		}
	}
	for a, start := range oldestWait {
		get(a).OldestWait = start
	}
	out := ShopSeats{Shop: shop, Waiting: waiting, OldestWait: oldest}
	for _, s := range agents {
		if s.Waiting == 0 {
			s.OldestWait = 0
		}
		out.Agents = append(out.Agents, *s)
	}
	slices.SortFunc(out.Agents, func(x, y AgentSeat) int { return strings.Compare(x.Agent, y.Agent) })
	return out
}

func seatCode(status string) int {
	for i, s := range seatStatuses {
		if s == status {
			return i
		}
	}
	return -1
}

// SeatStates are the states of replywatch_seats: exclusive, so a shop's
// series sum to its agents.
var SeatStates = []string{"online", "busy", "away", "offline"}

// AgentView is one agent's seat as the rules judge it at a given time.
type AgentView struct {
	Agent string
	// State is one of SeatStates: the presence status, or for an agent
	// judged by inference "online" while working and "offline" otherwise.
	State    string
	Working  bool
	Inferred bool
	// IdleFrom is when the idle clock started (the latest of the last human
	// message, becoming working and the oldest wait on the agent); Idle is
	// set once IdleAfter has passed since then with buyers still waiting.
	IdleFrom int64
	Idle     bool
	// Ended is when the agent stopped working (0 while working).
	Ended int64
}

// SeatsView is a shop's seats judged at a time.
type SeatsView struct {
	// Presence is set when the shop sent presence events today; otherwise
	// seats are inferred from human messages.
	Presence bool
	Agents   []AgentView
	Idle     int64
	InHours  bool
	// Uncovered is set when no seat covers the shop in service hours (with
	// presence: no seat working; without: buyers waiting and no human
	// message), since UncoveredFrom; UncoveredAfter is the rule's limit.
	Uncovered      bool
	UncoveredFrom  int64
	UncoveredAfter time.Duration
	// CoveredAt is when the earliest working seat began to work (presence)
	// or last sent a human message (inference); 0 when none works.
	CoveredAt int64
	// LastHuman is the shop's latest human message.
	LastHuman int64
}

// View judges a shop's seats at now (pure: the caller passes the time).
func (r *Rules) View(sh *ShopSeats, now time.Time) SeatsView {
	sr := r.Seats
	nowMs := now.UnixMilli()
	today := r.Hours.Day(now)
	v := SeatsView{InHours: r.Hours.Open(now)}
	for i := range sh.Agents {
		if a := &sh.Agents[i]; a.Status != "" && a.SeatAt > 0 && r.Hours.Day(time.UnixMilli(a.SeatAt)) == today {
			v.Presence = true
		}
	}
	opened, _, _ := r.Hours.Span(now)
	from := opened.UnixMilli()
	for i := range sh.Agents {
		a := &sh.Agents[i]
		v.LastHuman = max(v.LastHuman, a.LastHuman)
		av := AgentView{Agent: a.Agent}
		// cover is when the agent began to work (presence) or last showed
		// they were at their seat (inference).
		cover := a.LastHuman
		if v.Presence && a.Status != "" {
			av.State, av.Working = a.Status, Working(a.Status)
			if av.Working {
				cover = a.SeatSince
				av.IdleFrom = a.SeatSince
			} else {
				av.Ended = a.SeatSince
			}
		} else {
			av.Inferred = true
			off := sr.InferredOfflineAfter.Milliseconds()
			av.Working = a.LastHuman > 0 && (off <= 0 || nowMs-a.LastHuman <= off)
			av.State = "offline"
			if av.Working {
				av.State = "online"
			} else if a.LastHuman > 0 {
				av.Ended = a.LastHuman + off
			}
		}
		av.IdleFrom = max(av.IdleFrom, a.LastHuman, a.OldestWait)
		if av.Working && a.Waiting > 0 && sr.IdleAfter > 0 && nowMs > av.IdleFrom+sr.IdleAfter.Milliseconds() {
			av.Idle = true
			v.Idle++
		}
		if av.Working && (v.CoveredAt == 0 || cover < v.CoveredAt) {
			v.CoveredAt = cover
		}
		from = max(from, av.Ended)
		v.Agents = append(v.Agents, av)
	}
	if !v.InHours {
		return v
	}
	if v.Presence {
		v.UncoveredAfter = sr.UncoveredAfter
		v.Uncovered = v.CoveredAt == 0
	} else {
		v.UncoveredAfter = sr.UncoveredAfterInferred
		v.Uncovered = sh.Waiting > 0
		from = max(opened.UnixMilli(), v.LastHuman, sh.OldestWait)
	}
	if v.Uncovered {
		v.UncoveredFrom = from
	}
	return v
}

// Spell is one idle or uncovered spell the shop-level evaluation follows:
// pending until its limit passes, then fired.
type Spell struct {
	Start    int64 `json:"start"`
	Fired    bool  `json:"fired,omitempty"`
	Presence bool  `json:"presence,omitempty"` // an uncovered spell judged by presence
}

// counts reports whether an uncovered spell counts in the day's uncovered
// time: by presence every one does; by inference (buyers waiting, nobody
// writing) only one that lasted its limit, or every short wait before a
// reply would count as uncovered.
func (u *Spell) counts() bool { return u.Presence || u.Fired }

// SeatSpells is what the shop-level evaluation keeps of a shop between
// evaluations: the spells it follows and the day's uncovered time.
type SeatSpells struct {
	Idle      map[string]Spell `json:"idle,omitempty"`
	Uncovered *Spell           `json:"uncovered,omitempty"`
	// Day is the shop-local day UncoveredMs counts, the in-hours time of
	// that day's uncovered spells that have ended.
	Day         string `json:"day,omitempty"`
	UncoveredMs int64  `json:"uncovered_ms,omitempty"`
}

// EvaluateSeats is one shop-level evaluation of a shop's seats at now: it
// fires and resolves idle_seat and shop_uncovered into fx.Alerts, updates
// sp, and returns the shop's uncovered time today. The alert ids come from
// (kind, shop, agent, spell start), and spell starts from event times in the
// figures, so another evaluator (after a failover) gives the same ids.
func (r *Rules) EvaluateSeats(sh *ShopSeats, sp *SeatSpells, now time.Time, fx *Effects) (uncovered time.Duration) {
	v := r.View(sh, now)
	nowMs := now.UnixMilli()
	idleAfter := r.Seats.IdleAfter.Milliseconds()
	byAgent := map[string]int{}
	for i, a := range sh.Agents {
		byAgent[a.Agent] = i
	}
	names := make([]string, 0, len(sp.Idle))
	for a := range sp.Idle {
		names = append(names, a)
	}
	for _, a := range v.Agents {
		if _, ok := sp.Idle[a.Agent]; !ok {
			names = append(names, a.Agent)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		old, had := sp.Idle[name]
		i, known := byAgent[name]
		if !known {
			if had && old.Fired {
				fx.Alerts = append(fx.Alerts, r.idleAlert(sh.Shop, name, old.Start, alerting.Resolved, ReasonCleared, nowMs))
			}
			delete(sp.Idle, name)
			continue
		}
		a, av := &sh.Agents[i], &v.Agents[i]
		pending := av.Working && a.Waiting > 0 && idleAfter > 0
		if had && old.Fired {
			reason, at := "", nowMs
			switch {
			case !av.Working && av.State == "away":
				reason, at = ReasonSeatAway, av.Ended
			case !av.Working:
				reason, at = ReasonOffline, av.Ended
			case a.LastHuman > old.Start:
				reason, at = alerting.ReasonReplied, a.LastHuman
			case a.Waiting == 0 || !av.Idle:
				reason = ReasonCleared
			}
			if reason == "" {
				continue // the same idle spell goes on
			}
			fx.Alerts = append(fx.Alerts, r.idleAlert(sh.Shop, name, old.Start, alerting.Resolved, reason, max(at, old.Start)))
			had = false
		}
		if !pending {
			delete(sp.Idle, name)
			continue
		}
		s := Spell{Start: av.IdleFrom}
		if av.Idle {
			s.Fired = true
			fx.Alerts = append(fx.Alerts, r.idleAlert(sh.Shop, name, s.Start, alerting.Firing, "", s.Start+idleAfter))
		}
		if sp.Idle == nil {
			sp.Idle = map[string]Spell{}
		}
		sp.Idle[name] = s
	}

	// Uncovered time counts per shop-local day, in service hours.
	today := r.Hours.Day(now)
	if sp.Day != today {
		sp.Day, sp.UncoveredMs = today, 0
	}
	dayStart := r.Hours.NextMidnight(now).AddDate(0, 0, -1)
	openMs := func(from, to int64) int64 {
		f := time.UnixMilli(from)
		if f.Before(dayStart) {
			f = dayStart
		}
		return r.Hours.OpenBetween(f, time.UnixMilli(to)).Milliseconds()
	}
	if u := sp.Uncovered; u != nil {
		reason, at := "", nowMs
		switch {
		case !v.InHours:
			reason = ReasonClosed
			if _, end, ok := r.Hours.Span(time.UnixMilli(u.Start)); ok {
				at = min(end.UnixMilli(), nowMs)
			}
		case u.Presence != v.Presence:
			reason = ReasonCovered
		case !v.Uncovered && v.Presence:
			reason, at = ReasonCovered, max(v.CoveredAt, u.Start)
		case v.Presence && v.UncoveredFrom > u.Start:
			// A seat worked for a while between two evaluations: the spell
			// ended when it began to, at the latest when the new one began.
			reason, at = ReasonCovered, v.UncoveredFrom
		case !v.Presence && v.LastHuman > u.Start:
			// A human message came; buyers still waiting begin a new spell.
			reason, at = alerting.ReasonReplied, v.LastHuman
		case !v.Uncovered:
			reason = ReasonCleared
		}
		if reason != "" {
			at = max(at, u.Start)
			if u.counts() {
				sp.UncoveredMs += openMs(u.Start, at)
			}
			if u.Fired {
				fx.Alerts = append(fx.Alerts, r.uncoveredAlert(sh.Shop, u, alerting.Resolved, reason, at))
			}
			sp.Uncovered = nil
		}
	}
	if v.Uncovered && sp.Uncovered == nil {
		sp.Uncovered = &Spell{Start: v.UncoveredFrom, Presence: v.Presence}
	}
	uncovered = time.Duration(sp.UncoveredMs) * time.Millisecond
	if u := sp.Uncovered; u != nil {
		if lim := v.UncoveredAfter.Milliseconds(); !u.Fired && lim > 0 && nowMs > u.Start+lim {
			u.Fired = true
			fx.Alerts = append(fx.Alerts, r.uncoveredAlert(sh.Shop, u, alerting.Firing, "", u.Start+lim))
		}
		if u.counts() {
			uncovered += time.Duration(openMs(u.Start, nowMs)) * time.Millisecond
		}
	}
	return uncovered
}

func (r *Rules) idleAlert(shop, agent string, start int64, status, reason string, at int64) alerting.Alert {
	loc := r.Hours.Loc
	since := time.UnixMilli(start).In(loc)
	return alerting.Alert{
		ID:   alerting.ID(alerting.KindIdleSeat, shop, agent, strconv.FormatInt(start, 10)),
		Kind: alerting.KindIdleSeat, Status: status, Severity: alerting.Warning,
		Threshold: alerting.FormatThreshold(r.Seats.IdleAfter), Platform: r.Platform,
		ShopID: shop, AgentID: agent, Since: since, Due: since.Add(r.Seats.IdleAfter),
		At: time.UnixMilli(at).In(loc), Reason: reason,
	}
}

func (r *Rules) uncoveredAlert(shop string, u *Spell, status, reason string, at int64) alerting.Alert {
	loc := r.Hours.Loc
	lim := r.Seats.UncoveredAfterInferred
	if u.Presence {
		lim = r.Seats.UncoveredAfter
	}
	since := time.UnixMilli(u.Start).In(loc)
	return alerting.Alert{
		ID:   alerting.ID(alerting.KindShopUncovered, shop, "", strconv.FormatInt(u.Start, 10)),
		Kind: alerting.KindShopUncovered, Status: status, Severity: alerting.Critical,
		Threshold: alerting.FormatThreshold(lim), Platform: r.Platform,
		ShopID: shop, Since: since, Due: since.Add(lim),
		At: time.UnixMilli(at).In(loc), Reason: reason,
	}
}

// MarshalBinary encodes the spells for the store (JSON: one small record
// per shop, written once per evaluation that changes it).
func (sp *SeatSpells) MarshalBinary() ([]byte, error) { return json.Marshal(sp) }

// UnmarshalBinary decodes spells; on error sp is unchanged.
func (sp *SeatSpells) UnmarshalBinary(b []byte) error {
	var n SeatSpells
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%w: seat spells: %w", ErrCorrupt, err)
	}
	*sp = n
	return nil
}
