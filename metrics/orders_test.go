package metrics

import (
	"testing"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/state"
)

// orderFiguresCases: ratios and means are absent while their denominator
// is 0; current counters never go below 0 in what is exported.
var orderFiguresCases = []struct {
	name              string
	day, now          map[string]int64
	awaiting          int64
	satisfaction, avg float64 // -1: absent
}{
	{"nothing yet", nil, nil, 0, -1, -1},
	{"reviews and refunds",
		map[string]int64{detectors.FieldReviews: 4, detectors.FieldReviewsGood: 3, detectors.FieldRefundMs: 9000_000, detectors.FieldRefundN: 2},
		map[string]int64{detectors.FieldAwaitingShipment: 7}, 7, 0.75, 4500},
	{"a negative counter reads 0", nil, map[string]int64{detectors.FieldAwaitingShipment: -1}, 0, -1, -1},
}

func TestOrderFigures(t *testing.T) {
	for _, c := range orderFiguresCases {
		o := orderFigures(&state.ShopFigures{Day: c.day, Now: c.now})
		opt := func(p *float64) float64 {
			if p == nil {
				return -1
			}
			return *p
		}
		if o.AwaitingShipment != c.awaiting || opt(o.ReviewSatisfaction) != c.satisfaction || opt(o.AvgRefundSeconds) != c.avg ||
			len(o.OpenDisputes) != 2 {
			t.Errorf("%s: %+v", c.name, o)
		}
	}
}
