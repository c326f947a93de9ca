package demo

import (
	"fmt"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ShopFigures are one shop's live figures as the processor exports them.
type ShopFigures struct {
	Shop     string
	Platform string
	InHours  bool
	Waiting  float64
	// Oldest is the longest current wait, in seconds.
	Oldest     float64
	Consulting float64
	// Rate and Breached are keyed by threshold ("3m"); a rate is missing
	// while no one consulted.
	Rate     map[string]float64
	Breached map[string]float64
	// Rate30 and AvgResp (the mean response time, in seconds) are nil while
	// their series is absent: no data is not a perfect score.
	Rate30  *float64
	AvgResp *float64
	// Target is the shop's target reply rate (0: none exported).
	Target float64
	// Seats counts agents per seat state; nil without presence figures.
	Seats map[string]float64
}

// Snapshot is what one read of the processor's registry shows.
type Snapshot struct {
	Shops []*ShopFigures
	// Events counts the input records read, whatever their result.
	Events float64
	// Lag sums the consumer lag of the partitions that report one; LagKnown
	// says whether any does.
	Lag      float64
	LagKnown bool
	Alerts   float64
}

// Shop returns the figures of one shop, or nil.
func (s *Snapshot) Shop(id string) *ShopFigures {
	for _, f := range s.Shops {
		if f.Shop == id {
			return f
		}
	}
	return nil
}

// ReadFigures reads the figures from the processor's own registry, the
// source /metrics serves, so the demo shows nothing Prometheus would not.
func ReadFigures(g prometheus.Gatherer) (*Snapshot, error) {
	fams, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("reading the processor's metrics: %w", err)
	}
	snap := &Snapshot{}
	shops := map[string]*ShopFigures{}
	shop := func(m *dto.Metric) *ShopFigures {
		id := label(m, "shop")
		f := shops[id]
		if f == nil {
			f = &ShopFigures{Shop: id, Rate: map[string]float64{}, Breached: map[string]float64{}}
			shops[id] = f
		}
		return f
	}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			v := m.GetGauge().GetValue()
			switch fam.GetName() {
			case "replywatch_events_total":
				snap.Events += m.GetCounter().GetValue()
			case "replywatch_alerts_total":
				snap.Alerts += m.GetCounter().GetValue()
			case "replywatch_consumer_lag_messages":
				snap.Lag += v
				snap.LagKnown = true
			case "replywatch_shop_info":
				shop(m).Platform = label(m, "platform")
			case "replywatch_service_window_open":
				shop(m).InHours = v == 1
			case "replywatch_waiting_buyers":
				shop(m).Waiting = v
			case "replywatch_oldest_wait_seconds":
				shop(m).Oldest = v
			case "replywatch_consulting_buyers":
				shop(m).Consulting = v
			case "replywatch_reply_rate":
				shop(m).Rate[label(m, "threshold")] = v
			case "replywatch_reply_rate_target":
				shop(m).Target = v
			case "replywatch_reply_breached_buyers":
				shop(m).Breached[label(m, "threshold")] = v
			case "replywatch_response_30s_rate":
				shop(m).Rate30 = &v
			case "replywatch_avg_response_seconds":
				shop(m).AvgResp = &v
			case "replywatch_seats":
				f := shop(m)
				if f.Seats == nil {
					f.Seats = map[string]float64{}
				}
				f.Seats[label(m, "state")] = v
			}
		}
	}
	for _, f := range shops {
		snap.Shops = append(snap.Shops, f)
	}
	sort.Slice(snap.Shops, func(i, j int) bool { return snap.Shops[i].Shop < snap.Shops[j].Shop })
	return snap, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
