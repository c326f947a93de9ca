package metrics

import (
	"fmt"
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

var idleCases = []struct {
	name string
	now  map[string]int64
	idle int64
	ok   bool
}{
	{"no presence, no activity: not judged", map[string]int64{}, 0, false},
	{"online, buyers waiting, silent 4m: idle", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 2, "a:a1:last_human": ms(4 * time.Minute)}, 1, true},
	{"online, buyers waiting, replied 1m ago: working", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 2, "a:a1:last_human": ms(time.Minute)}, 0, true},
	{"online, nobody waiting: not idle", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 0, "a:a1:last_human": ms(time.Hour)}, 0, true},
	{"away with buyers waiting: away, not idle", map[string]int64{
		"seats:away": 1, "a:a1:seats:away": 1, "a:a1:waiting": 3, "a:a1:last_human": ms(time.Hour)}, 0, true},
	{"online, buyers waiting, never replied: idle", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 1}, 1, true},
	{"no presence: active today counts as working", map[string]int64{
		"a:a1:waiting": 1, "a:a1:last_human": ms(10 * time.Minute),
		"a:a2:waiting": 1, "a:a2:last_human": ms(25 * time.Hour)}, 1, true},
}

func TestIdleSeats(t *testing.T) {
	for _, c := range idleCases {
		f := &state.ShopFigures{Shop: "s1", Now: c.now}
		n, ok := idleSeats(f, 3*time.Minute, noon, func(t time.Time) string { return t.In(shanghai).Format(time.DateOnly) })
		if n != c.idle || ok != c.ok {
			t.Errorf("%s: idle %d (judged %v), want %d (%v)", c.name, n, ok, c.idle, c.ok)
		}
	}
	if _, ok := idleSeats(&state.ShopFigures{Now: idleCases[1].now}, 0, noon, nil); ok {
		t.Error("idle seats judged with detection off")
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
