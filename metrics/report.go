package metrics

import (
	"sort"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/shoprules"
	"github.com/replywatch/replywatch/state"
	"github.com/replywatch/replywatch/text"
)

// ShopReport is one shop's figures for its current day: what the gauges
// export and what replay prints. A ratio or mean whose denominator is 0 is
// absent (nil, or no key in ReplyRate): no data is not a perfect score.
type ShopReport struct {
	Shop               string             `json:"shop"`
	Platform           string             `json:"platform"`
	Timezone           string             `json:"timezone"`
	Day                string             `json:"day"`
	InServiceHours     bool               `json:"in_service_hours"`
	Waiting            int64              `json:"waiting_buyers"`
	OldestWaitSeconds  float64            `json:"oldest_wait_seconds"`
	Consulting         int64              `json:"consulting_buyers"`
	Breached           map[string]int64   `json:"reply_breached_buyers"`
	ReplyRate          map[string]float64 `json:"reply_rate"` // no key while no one consulted
	Target             float64            `json:"reply_rate_target,omitempty"`
	Messages           int64              `json:"buyer_messages"`
	Response30sRate    *float64           `json:"response_30s_rate,omitempty"`
	AvgResponseSeconds *float64           `json:"avg_response_seconds,omitempty"`
	// Seats counts agents per presence state (detectors.SeatStates; they
	// exclude each other), absent for a shop that sends no presence;
	// IdleSeats the seats idle now, absent for a shop with no agent known.
	Seats     map[string]int64 `json:"seats,omitempty"`
	IdleSeats *int64           `json:"idle_seats,omitempty"`
	// UncoveredSeconds is the day's uncovered time in service hours, known
	// only where the shop-level rules ran (the reporter-lease holder, replay).
	UncoveredSeconds *float64          `json:"uncovered_seconds,omitempty"`
	AgentSeats       []AgentSeatReport `json:"agent_seats,omitempty"`
	Agents           []AgentReport     `json:"agents,omitempty"`
	// Flagged are today's messages matched by a text rule, per category.
	Flagged map[string]int64 `json:"flagged_messages"`
	// EffectiveReplyRate is PDD's 有效回复率 so far today (absent while no
	// one consulted); the projection to the end of the day holds the rate
	// and scales the consulting buyers by the usual daily curve (absent
	// too early in the day).
	EffectiveReplyRate          *float64     `json:"effective_reply_rate,omitempty"`
	EffectiveReplyRateProjected *float64     `json:"effective_reply_rate_projected,omitempty"`
	ConsultingProjected         *float64     `json:"consulting_buyers_projected,omitempty"`
	Orders                      OrderFigures `json:"orders"`
	// Thresholds in ascending order, as the keys of Breached and ReplyRate.
	Thresholds []string `json:"-"`
}

// AgentSeatReport is one agent's seat now: their state, and whether and
// for how long they have been idle (counted from when the idle clock
// started, as idle_seat counts it).
type AgentSeatReport struct {
	Agent       string  `json:"agent"`
	State       string  `json:"state"`
	Idle        bool    `json:"idle,omitempty"`
	IdleSeconds float64 `json:"idle_seconds,omitempty"`
}

// AgentReport is one agent's figures for the shop's current day.
type AgentReport struct {
	Agent              string           `json:"agent"`
	Waiting            int64            `json:"waiting_buyers"`
	Consulting         int64            `json:"consulting_buyers"`
	Messages           int64            `json:"buyer_messages"`
	Breached           map[string]int64 `json:"reply_breached_buyers"`
	Response30sRate    *float64         `json:"response_30s_rate,omitempty"`
	AvgResponseSeconds *float64         `json:"avg_response_seconds,omitempty"`
	Flagged            map[string]int64 `json:"flagged_messages"`
}

// ratio is num/den, or nil while den is 0.
func ratio(num, den int64) *float64 {
	if den <= 0 {
		return nil
	}
	v := float64(num) / float64(den)
	return &v
}

// avgSeconds is the mean of n spans summing sumMs, or nil while n is 0.
func avgSeconds(sumMs, n int64) *float64 {
	if n <= 0 {
		return nil
	}
	v := float64(sumMs) / float64(n) / 1000
	return &v
}

// Report computes a shop's figures from its counters at now. Per-agent
// figures are included when perAgent is set, at most maxAgents (the busiest
// first; 0 = no cap); dropped is how many were left out.
func Report(f *state.ShopFigures, info ShopInfo, now time.Time, perAgent bool, maxAgents int) (r ShopReport, dropped int) {
	rules := info.Rules
	r = ShopReport{
		Shop: f.Shop, Platform: rules.Platform, Timezone: rules.Hours.Loc.String(), Day: rules.Hours.Day(now),
		InServiceHours: rules.Hours.Open(now), Waiting: f.Waiting, Target: info.Target,
		Breached: map[string]int64{}, ReplyRate: map[string]float64{},
	}
	if f.Waiting > 0 && f.OldestStart > 0 {
		r.OldestWaitSeconds = max(0, now.Sub(time.UnixMilli(f.OldestStart)).Seconds())
	}
	r.Consulting = f.Day[detectors.FieldConsulting]
	for _, t := range rules.Thresholds {
		th := alerting.FormatThreshold(t)
		b := f.Day[detectors.ThresholdField(detectors.FieldBreached, t)]
		r.Thresholds = append(r.Thresholds, th)
		r.Breached[th] = b
		if r.Consulting > 0 {
			r.ReplyRate[th] = 1 - float64(b)/float64(r.Consulting)
		}
	}
	r.Messages = f.Day[detectors.FieldMessages]
	r.Response30sRate = ratio(f.Day[detectors.FieldAnswered30], r.Messages)
	r.AvgResponseSeconds = avgSeconds(f.Day[detectors.FieldRespMs], f.Day[detectors.FieldRespN])
	r.seats(f, rules, now, perAgent, maxAgents)
	r.Flagged = flagged(f.Day)
	if p := detectors.ProjectEffective(rules.Hours, now, r.Consulting, f.Day[detectors.FieldEffective]); p.Consulting > 0 {
		r.EffectiveReplyRate = &p.Rate
		if p.Projected {
			r.EffectiveReplyRateProjected, r.ConsultingProjected = &p.Rate, &p.ProjectedConsulting
		}
	}
	r.Orders = orderFigures(f)
	if perAgent {
		r.Agents, dropped = agentReports(rules, f, maxAgents)
	}
	return r, dropped
}

// seats fills the seat figures: agents per presence state (exclusive
// states, so they sum to the agents that report presence), and from the
// seat rules' view of the shop at now the idle seats and, per agent, their
// state (inferred for agents without presence) and idle time. A shop with
// no agent known has no seat figures.
func (r *ShopReport) seats(f *state.ShopFigures, rules *detectors.Rules, now time.Time, perAgent bool, maxAgents int) {
	sh := detectors.SeatsFromCounters(f.Shop, f.Now, f.Waiting, f.OldestStart, f.AgentOldest)
	if len(sh.Agents) == 0 {
		return
	}
	v := rules.View(&sh, now)
	// replywatch_seats counts presence as cs.presence reports it: agents of
	// a shop that sends none are judged by inference for the rules, and show
	// in the per-agent series only.
	for _, a := range sh.Agents {
		if a.Status == "" {
			continue
		}
		if r.Seats == nil {
			r.Seats = make(map[string]int64, len(detectors.SeatStates))
			for _, st := range detectors.SeatStates {
				r.Seats[st] = 0
			}
		}
		r.Seats[a.Status]++
	}
	idle := v.Idle
	r.IdleSeats = &idle
	if !perAgent {
		return
	}
	for i, a := range v.Agents {
		if maxAgents > 0 && i >= maxAgents {
			break
		}
		ar := AgentSeatReport{Agent: a.Agent, State: a.State, Idle: a.Idle}
		if a.Idle {
			ar.IdleSeconds = max(0, now.Sub(time.UnixMilli(a.IdleFrom)).Seconds())
		}
		r.AgentSeats = append(r.AgentSeats, ar)
	}
}

// WithSeats adds what only the shop-level rules' evaluation knows: the
// day's uncovered time.
func (r *ShopReport) WithSeats(s shoprules.Seats) {
	u := s.Uncovered.Seconds()
	r.UncoveredSeconds = &u
}

// flagged reads the text rule counters of a day, one per category.
func flagged(day map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(text.Categories))
	for _, c := range text.Categories {
		out[string(c)] = day[detectors.FlagField(c)]
	}
	return out
}

// splitAgentField splits "a:<agent>:<field>" where field is one of known.
func splitAgentField(k string, known []string) (agent, field string, ok bool) {
	rest, found := strings.CutPrefix(k, "a:")
	if !found {
		return "", "", false
	}
	for _, f := range known {
		if a, cut := strings.CutSuffix(rest, ":"+f); cut && a != "" {
			return a, f, true
		}
	}
	return "", "", false
}

func agentReports(rules *detectors.Rules, f *state.ShopFigures, maxAgents int) ([]AgentReport, int) {
	known := []string{detectors.FieldConsulting, detectors.FieldMessages, detectors.FieldAnswered30,
		detectors.FieldRespMs, detectors.FieldRespN, detectors.FieldWaiting}
	for _, t := range rules.Thresholds {
		known = append(known, detectors.ThresholdField(detectors.FieldBreached, t))
	}
	for _, c := range text.Categories {
		known = append(known, detectors.FlagField(c))
	}
	day := map[string]map[string]int64{}
	now := map[string]map[string]int64{}
	collect := func(src map[string]int64, dst map[string]map[string]int64) {
		for k, v := range src {
			if a, field, ok := splitAgentField(k, known); ok {
				if dst[a] == nil {
					dst[a] = map[string]int64{}
				}
				dst[a][field] = v
				if day[a] == nil {
					day[a] = map[string]int64{}
				}
			}
		}
	}
	collect(f.Day, day)
	collect(f.Now, now)
	names := make([]string, 0, len(day))
	for a := range day {
		names = append(names, a)
	}
	// Keep the busiest agents when there are more than the cap.
	sort.Slice(names, func(i, j int) bool {
		mi, mj := day[names[i]][detectors.FieldMessages], day[names[j]][detectors.FieldMessages]
		if mi != mj {
			return mi > mj
		}
		return names[i] < names[j]
	})
	dropped := 0
	if maxAgents > 0 && len(names) > maxAgents {
		dropped = len(names) - maxAgents
		names = names[:maxAgents]
	}
	out := make([]AgentReport, 0, len(names))
	for _, a := range names {
		d := day[a]
		ar := AgentReport{
			Agent: a, Waiting: max(0, now[a][detectors.FieldWaiting]), Consulting: d[detectors.FieldConsulting],
			Messages: d[detectors.FieldMessages], Breached: map[string]int64{},
			Response30sRate:    ratio(d[detectors.FieldAnswered30], d[detectors.FieldMessages]),
			AvgResponseSeconds: avgSeconds(d[detectors.FieldRespMs], d[detectors.FieldRespN]),
			Flagged:            flagged(d),
		}
		for _, t := range rules.Thresholds {
			ar.Breached[alerting.FormatThreshold(t)] = d[detectors.ThresholdField(detectors.FieldBreached, t)]
		}
		out = append(out, ar)
	}
	return out, dropped
}
