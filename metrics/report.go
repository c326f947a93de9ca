package metrics

import (
	"sort"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
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
	Seats              map[string]int64   `json:"seats,omitempty"`
	// Flagged are today's messages matched by a text rule, per category.
	Flagged map[string]int64 `json:"flagged_messages"`
	// EffectiveReplyRate is PDD's 有效回复率 so far today (absent while no
	// one consulted); the projection to the end of the day holds the rate
	// and scales the consulting buyers by the usual daily curve (absent
	// too early in the day).
	EffectiveReplyRate          *float64      `json:"effective_reply_rate,omitempty"`
	EffectiveReplyRateProjected *float64      `json:"effective_reply_rate_projected,omitempty"`
	ConsultingProjected         *float64      `json:"consulting_buyers_projected,omitempty"`
	Agents                      []AgentReport `json:"agents,omitempty"`
	Orders                      OrderFigures  `json:"orders"`
	// Thresholds in ascending order, as the keys of Breached and ReplyRate.
	Thresholds []string `json:"-"`
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
	r.Flagged = flagged(f.Day)
	if rate, proj, ok, projected := effectiveReply(rules.Hours, now, r.Consulting, f.Day[detectors.FieldEffective]); ok {
		r.EffectiveReplyRate = &rate
		if projected {
			r.EffectiveReplyRateProjected, r.ConsultingProjected = &rate, &proj
		}
	}
	for _, s := range SeatStates {
		if v, ok := f.Now[detectors.SeatField(s)]; ok {
			if r.Seats == nil {
				r.Seats = map[string]int64{}
			}
			r.Seats[s] = max(0, v)
		}
	}
	if idle, ok := idleSeats(f, info.IdleAfter, now, rules.Hours.Day); ok {
		if r.Seats == nil {
			r.Seats = map[string]int64{}
		}
		r.Seats["idle"] = idle
	}
	r.Orders = orderFigures(f)
	if perAgent {
		r.Agents, dropped = agentReports(rules, f, maxAgents)
	}
	return r, dropped
}

// idleSeats counts idle seats (DESIGN.md §2): agents who are online — or,
// in a shop without presence events, who sent a human message today — have
// buyers waiting, and have sent no human message for idleAfter. ok is false
// when the shop has neither presence nor agent activity to judge by.
func idleSeats(f *state.ShopFigures, idleAfter time.Duration, now time.Time, dayOf func(time.Time) string) (n int64, ok bool) {
	if idleAfter <= 0 {
		return 0, false
	}
	presence := false
	for _, s := range SeatStates {
		if _, found := f.Now[detectors.SeatField(s)]; found {
			presence = true
		}
	}
	ok = presence
	known := []string{detectors.FieldWaiting, detectors.FieldLastHuman}
	agents := map[string]bool{}
	for k := range f.Now {
		if a, _, found := splitAgentField(k, known); found {
			agents[a] = true
		}
	}
	today := dayOf(now)
	for a := range agents {
		last := f.Now[detectors.AgentField(a, detectors.FieldLastHuman)]
		if last > 0 {
			ok = true
		}
		working := f.Now[detectors.AgentField(a, detectors.SeatField("online"))] > 0
		if !presence {
			working = last > 0 && dayOf(time.UnixMilli(last)) == today
		}
		if working && f.Now[detectors.AgentField(a, detectors.FieldWaiting)] > 0 &&
			(last == 0 || now.Sub(time.UnixMilli(last)) > idleAfter) {
			n++
		}
	}
	return n, ok
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
