package metrics

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/state"
)

var noon = time.Date(2026, 11, 24, 12, 0, 0, 0, shanghai)

func ms(d time.Duration) int64 { return noon.Add(-d).UnixMilli() }

// seat is an agent's presence counters as the seat detector leaves them.
func seat(agent, status string, since time.Duration) map[string]int64 {
	return map[string]int64{detectors.AgentField(agent, detectors.SeatField(status)): 1,
		detectors.AgentField(agent, detectors.FieldSeatSince): ms(since), detectors.AgentField(agent, detectors.FieldSeatAt): ms(since)}
}

func merge(ms ...map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

var seatReportCases = []struct {
	name     string
	fig      state.ShopFigures
	seats    map[string]int64 // nil: no seat figures
	idle     int64
	idleSecs map[string]float64
	// agentStates are the per-agent states when they differ from seats.
	agentStates map[string]int64
}{
	{name: "no agent known: no seat figures", fig: state.ShopFigures{Now: map[string]int64{}}},
	{name: "an agent online, one buyer waiting 3 s: no idle seat",
		fig: state.ShopFigures{Now: merge(seat("a1", "online", time.Hour), map[string]int64{"a:a1:waiting": 1}),
			Waiting: 1, OldestStart: ms(3 * time.Second), AgentOldest: map[string]int64{"a1": ms(3 * time.Second)}},
		seats: map[string]int64{"online": 1, "busy": 0, "away": 0, "offline": 0}},
	{name: "an agent online, one buyer waiting 4 m, silent: idle since the wait began",
		fig: state.ShopFigures{Now: merge(seat("a1", "online", time.Hour), map[string]int64{"a:a1:waiting": 1}),
			Waiting: 1, OldestStart: ms(4 * time.Minute), AgentOldest: map[string]int64{"a1": ms(4 * time.Minute)}},
		seats: map[string]int64{"online": 1, "busy": 0, "away": 0, "offline": 0}, idle: 1,
		idleSecs: map[string]float64{"a1": 240}},
	{name: "four agents in four states sum to four",
		fig: state.ShopFigures{Now: merge(seat("a1", "online", time.Hour), seat("a2", "busy", time.Hour),
			seat("a3", "away", time.Minute), seat("a4", "offline", time.Hour),
			// What an agent once counted in another state stays at 0.
			map[string]int64{"a:a1:seats:offline": 0, "a:a3:waiting": 2})},
		seats: map[string]int64{"online": 1, "busy": 1, "away": 1, "offline": 1}},
	{name: "no presence: an agent who wrote 10 m ago works, and is idle on a wait of 5 m; no presence figures",
		fig: state.ShopFigures{Now: map[string]int64{"a:a1:waiting": 1, "a:a1:last_human": ms(10 * time.Minute),
			"a:a2:last_human": ms(2 * time.Hour)},
			Waiting: 1, OldestStart: ms(5 * time.Minute), AgentOldest: map[string]int64{"a1": ms(5 * time.Minute)}},
		idle: 1, idleSecs: map[string]float64{"a1": 300},
		// Inferred seats show per agent, not in replywatch_seats.
		agentStates: map[string]int64{"online": 1, "offline": 1}},
}

func TestSeatReport(t *testing.T) {
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(shanghai, hours.Range{Start: 480, End: 1380}),
		Thresholds: []time.Duration{3 * time.Minute}, Seats: detectors.SeatRules{IdleAfter: 3 * time.Minute,
			UncoveredAfter: time.Minute, UncoveredAfterInferred: 5 * time.Minute, InferredOfflineAfter: 30 * time.Minute}}
	for _, c := range seatReportCases {
		f := c.fig
		f.Shop = "s1"
		r, _ := Report(&f, ShopInfo{Rules: rules}, noon, true, 0)
		if !maps.Equal(r.Seats, c.seats) {
			t.Errorf("%s: seats %v, want %v", c.name, r.Seats, c.seats)
		}
		if c.seats == nil && c.agentStates == nil {
			if r.IdleSeats != nil || r.AgentSeats != nil {
				t.Errorf("%s: idle seats %v, agent seats %v for a shop with no agent", c.name, r.IdleSeats, r.AgentSeats)
			}
			continue
		}
		if r.IdleSeats == nil || *r.IdleSeats != c.idle {
			t.Errorf("%s: idle seats %v, want %d", c.name, r.IdleSeats, c.idle)
		}
		idle := map[string]float64{}
		states := map[string]int64{}
		for _, a := range r.AgentSeats {
			if a.Idle {
				idle[a.Agent] = a.IdleSeconds
			}
			states[a.State]++
		}
		if c.idleSecs == nil {
			c.idleSecs = map[string]float64{}
		}
		if !maps.Equal(idle, c.idleSecs) {
			t.Errorf("%s: idle agents %v, want %v", c.name, idle, c.idleSecs)
		}
		want := c.agentStates
		if want == nil {
			want = c.seats
		}
		for st, n := range want {
			if states[st] != n {
				t.Errorf("%s: per-agent states %v, want %v", c.name, states, want)
			}
		}
	}
}

// noDataCases: a ratio or mean is absent while its denominator is 0, per
// shop and per agent, and present (even when 0) once it is not.
var noDataCases = []struct {
	name string
	day  map[string]int64
	// want: the shop's 3m reply rate, 30 s rate and mean response, and agent
	// a1's 30 s rate and mean response; nil is absent.
	rate, rate30, avg, agRate30, agAvg *float64
}{
	{"nothing today", map[string]int64{}, nil, nil, nil, nil, nil},
	{"consulted, nobody answered yet", map[string]int64{
		"consulting": 2, "msgs": 3, "a:a1:msgs": 3, "a:a1:consulting": 2,
	}, ptr(1.0), ptr(0.0), nil, ptr(0.0), nil},
	{"every buyer breached", map[string]int64{
		"consulting": 2, "breached:3m": 2, "msgs": 2, "resp_ms": 400000, "resp_n": 2,
		"a:a1:msgs": 2, "a:a1:resp_ms": 400000, "a:a1:resp_n": 2,
	}, ptr(0.0), ptr(0.0), ptr(200.0), ptr(0.0), ptr(200.0)},
}

func ptr(v float64) *float64 { return &v }

func TestRatiosAbsentWithoutData(t *testing.T) {
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(shanghai, hours.Range{Start: 480, End: 1380}),
		Thresholds: []time.Duration{3 * time.Minute}}
	show := func(v *float64) string {
		if v == nil {
			return "absent"
		}
		return fmt.Sprint(*v)
	}
	for _, c := range noDataCases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := Report(&state.ShopFigures{Shop: "s1", Day: c.day}, ShopInfo{Rules: rules}, noon, true, 0)
			var rate *float64
			if v, ok := r.ReplyRate["3m"]; ok {
				rate = &v
			}
			var agRate30, agAvg *float64
			for _, a := range r.Agents {
				if a.Agent == "a1" {
					agRate30, agAvg = a.Response30sRate, a.AvgResponseSeconds
				}
			}
			for _, g := range []struct {
				what      string
				got, want *float64
			}{{"reply rate", rate, c.rate}, {"30s rate", r.Response30sRate, c.rate30}, {"avg response", r.AvgResponseSeconds, c.avg},
				{"agent 30s rate", agRate30, c.agRate30}, {"agent avg response", agAvg, c.agAvg}} {
				if show(g.got) != show(g.want) {
					t.Errorf("%s: %s, want %s", g.what, show(g.got), show(g.want))
				}
			}

			// The gauges follow: an absent figure exports no series.
			reg := prometheus.NewRegistry()
			rep := &Reporter{}
			rep.Register(reg)
			rep.export(r, 0)
			for _, g := range []struct {
				vec  *prometheus.GaugeVec
				want *float64
			}{{rep.rate, c.rate}, {rep.rate30, c.rate30}, {rep.avgResp, c.avg}, {rep.agRate30, c.agRate30}, {rep.agAvg, c.agAvg}} {
				n := testutil.CollectAndCount(g.vec)
				if (n == 1) != (g.want != nil) || n > 1 {
					t.Errorf("%d series exported, want the figure %s", n, show(g.want))
				} else if n == 1 && testutil.ToFloat64(g.vec) != *g.want {
					t.Errorf("exported %v, want %v", testutil.ToFloat64(g.vec), *g.want)
				}
			}
		})
	}
}
