package app

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
)

// orderAt is a Shanghai time "2006-01-02 15:04".
func orderAt(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

func orderEv(id, typ, shop, buyer, order, at string) event.Event {
	return event.Event{EventID: id, Type: typ, TS: event.Time{Time: orderAt(at)}, ShopID: shop, BuyerID: buyer, OrderID: order}
}

// orderDay is a hand-counted set of order events for two shops, checked on
// 2026-11-24 at 23:00. s1 has the defaults (48 h to ship, warning 4 h
// ahead; disputes warned 2 h and 30 min ahead); s2 ships within 6 h.
//
//	s1 o1 paid 11-22 09:00, never shipped: warning 05:00, breach 09:00 today.
//	s1 o2 paid and shipped 11-23; reviewed 5 today.
//	s1 o3 paid 11-22 20:00 (and again, a duplicate), shipped today 17:00
//	      after its 16:00 warning: resolved, shipped.
//	s1 o4 refund requested 09:00, completed 10:30: 5400 s.
//	s1 o5 dispute opened 08:00, respond_by 14:00: warning 12:00, critical
//	      13:30, closed 13:45.
//	s1 o6 complaint opened 09:00, respond_by tomorrow 09:00: open, not due.
//	s1 o7 reviewed 1 at 11:00: bad_review.
//	s2 o8 paid 10:00, shipped 15:00 after its 12:00 warning.
//	s2 o9 paid 20:00: warning 22:00, deadline 02:00 tomorrow.
//	s2 o10 shipped 12:00, its payment at 05:00 produced after it: the
//	      shipment was late (deadline 11:00): warning and breach, shipped.
func orderDay() []event.Event {
	dispute := orderEv("s1-o5-d", event.TypeDisputeOpened, "s1", "b3", "o5", "2026-11-24 08:00")
	dispute.RespondBy = &event.Time{Time: orderAt("2026-11-24 14:00")}
	complaint := orderEv("s1-o6-c", event.TypeComplaintOpened, "s1", "b4", "o6", "2026-11-24 09:00")
	complaint.RespondBy = &event.Time{Time: orderAt("2026-11-25 09:00")}
	good := orderEv("s1-o2-r", event.TypeReviewPosted, "s1", "b1", "o2", "2026-11-24 10:00")
	good.Rating = 5
	bad := orderEv("s1-o7-r", event.TypeReviewPosted, "s1", "b4", "o7", "2026-11-24 11:00")
	bad.Rating, bad.AgentID = 1, "a1"
	return []event.Event{
		orderEv("s1-o1-p", event.TypeOrderPaid, "s1", "b1", "o1", "2026-11-22 09:00"),
		orderEv("s1-o2-p", event.TypeOrderPaid, "s1", "b1", "o2", "2026-11-23 10:00"),
		orderEv("s1-o2-s", event.TypeOrderShipped, "s1", "b1", "o2", "2026-11-23 18:00"),
		good,
		orderEv("s1-o3-p", event.TypeOrderPaid, "s1", "b2", "o3", "2026-11-22 20:00"),
		orderEv("s1-o3-p2", event.TypeOrderPaid, "s1", "b2", "o3", "2026-11-22 20:01"), // a repeated payment
		orderEv("s1-o3-s", event.TypeOrderShipped, "s1", "b2", "o3", "2026-11-24 17:00"),
		orderEv("s1-o4-rq", event.TypeRefundRequested, "s1", "b3", "o4", "2026-11-24 09:00"),
		orderEv("s1-o4-rc", event.TypeRefundCompleted, "s1", "b3", "o4", "2026-11-24 10:30"),
		dispute,
		orderEv("s1-o5-dc", event.TypeDisputeClosed, "s1", "b3", "o5", "2026-11-24 13:45"),
		complaint,
		bad,
		orderEv("s2-o8-p", event.TypeOrderPaid, "s2", "b1", "o8", "2026-11-24 10:00"),
		orderEv("s2-o8-s", event.TypeOrderShipped, "s2", "b1", "o8", "2026-11-24 15:00"),
		orderEv("s2-o9-p", event.TypeOrderPaid, "s2", "b2", "o9", "2026-11-24 20:00"),
		orderEv("s2-o10-s", event.TypeOrderShipped, "s2", "b3", "o10", "2026-11-24 12:00"),
		orderEv("s2-o10-p", event.TypeOrderPaid, "s2", "b3", "o10", "2026-11-24 05:00"),
	}
}

var orderDayEnd = orderAt("2026-11-24 23:00")

// wantOrderAlerts is each alert's final reason ("" still firing), by
// kind[:threshold]/shop/order.
var wantOrderAlerts = map[string]string{
	"shipping_warning/s1/o1":     "",
	"shipping_breach/s1/o1":      "",
	"shipping_warning/s1/o3":     "shipped",
	"dispute_deadline:2h/s1/o5":  "closed",
	"dispute_deadline:30m/s1/o5": "closed",
	"bad_review/s1/o7":           "",
	"shipping_warning/s2/o8":     "shipped",
	"shipping_warning/s2/o9":     "",
	"shipping_warning/s2/o10":    "shipped",
	"shipping_breach/s2/o10":     "shipped",
}

var wantOrderFigures = map[string]float64{
	"replywatch_orders_awaiting_shipment{shop=s1}":              1,
	"replywatch_orders_awaiting_shipment{shop=s2}":              1,
	"replywatch_shipping_breached_orders{shop=s1}":              1,
	"replywatch_shipping_breached_orders{shop=s2}":              1,
	"replywatch_open_disputes{kind=dispute,shop=s1}":            0,
	"replywatch_open_disputes{kind=complaint,shop=s1}":          1,
	"replywatch_open_disputes{kind=complaint,shop=s2}":          0,
	"replywatch_review_satisfaction{shop=s1}":                   0.5,
	"replywatch_avg_refund_seconds{shop=s1}":                    5400,
	"replywatch_events_total{result=applied,topic=cs.orders}":   17,
	"replywatch_events_total{result=duplicate,topic=cs.orders}": 1,
}

// orderOutcome is each order alert's final reason by kind/shop/order; an
// id seen under two keys, or a resolution without its firing, is an error.
func orderOutcome(alerts []alerting.Alert) (map[string]string, error) {
	out := map[string]string{}
	ids := map[string]string{}
	for _, a := range alerts {
		k := a.Kind
		if a.Kind == alerting.KindDisputeDeadline {
			k += ":" + a.Threshold
		}
		k += "/" + a.ShopID + "/" + a.OrderID
		if prev, ok := ids[a.ID]; ok && prev != k {
			return nil, fmt.Errorf("alert id %s for both %s and %s", a.ID, prev, k)
		}
		ids[a.ID] = k
		switch a.Status {
		case alerting.Firing:
			if _, ok := out[k]; !ok {
				out[k] = ""
			}
		case alerting.Resolved:
			if _, ok := out[k]; !ok {
				return nil, fmt.Errorf("%s resolved before or without firing", k)
			}
			out[k] = a.Reason
		}
	}
	return out, nil
}

func orderConfig(t *testing.T, broker, redisURL, group string) *config.Config {
	cfg := testConfig(t, broker, redisURL, group)
	within := 6 * time.Hour
	cfg.Shops["s2"] = config.ShopOverride{Orders: config.ShopOrders{ShipWithin: &within}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Over Kafka and Redis, the hand-counted order events of two shops give
// exactly the expected shipping, dispute and review alerts and the order
// gauges; bad order events before them are dead-lettered without stopping
// their partition (invariant 5); the same events delivered again give no
// new alert record and change no figure (invariant 1).
func TestOrderDay(t *testing.T) {
	e := newEnv(t)
	evs := orderDay()
	bad := [][]byte{
		[]byte(`{"event_id":"x1","type":"order_paid","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1"}`),
		[]byte(`{"event_id":"x2","type":"review_posted","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","order_id":"o1","rating":9}`),
	}
	produceRaw(t, e.broker, "cs.orders", "s1/b1", bad...)
	produce(t, e.broker, "cs.orders", evs...)
	r := start(t, orderConfig(t, e.broker, e.redis, "g1"), &fakeClock{t: orderDayEnd}, "r1")
	waitForOrders := func(wantFigures map[string]float64) {
		t.Helper()
		eventually(t, 20*time.Second, "order figures", func() error {
			m := scrape(t, r.app.Addr())
			if err := expectFigures(m, wantFigures); err != nil {
				return err
			}
			for _, absent := range []string{"replywatch_review_satisfaction{shop=s2}", "replywatch_avg_refund_seconds{shop=s2}"} {
				if _, ok := m[absent]; ok {
					return fmt.Errorf("%s exported while its denominator is 0", absent)
				}
			}
			return nil
		})
		eventually(t, 10*time.Second, "order alerts", func() error {
			got, err := orderOutcome(readAlerts(t, e.broker))
			if err != nil {
				return err
			}
			var diffs []string
			for k, v := range wantOrderAlerts {
				if g, ok := got[k]; !ok || g != v {
					diffs = append(diffs, fmt.Sprintf("%s: %q (present %v), want %q", k, g, ok, v))
				}
			}
			for k := range got {
				if _, ok := wantOrderAlerts[k]; !ok {
					diffs = append(diffs, "unexpected "+k)
				}
			}
			if len(diffs) > 0 {
				return fmt.Errorf("%s", strings.Join(diffs, "; "))
			}
			return nil
		})
	}
	waitForOrders(wantOrderFigures)
	m := scrape(t, r.app.Addr())
	for _, reason := range []string{"missing_field", "bad_field"} {
		if got := m["replywatch_dead_letters_total{reason="+reason+",topic=cs.orders}"]; got != 1 {
			t.Errorf("dead_letters_total{reason=%s,topic=cs.orders} = %v, want 1", reason, got)
		}
	}
	if dl := readTopic(t, e.broker, "cs.orders.DLT", 500*time.Millisecond); len(dl) != len(bad) {
		t.Errorf("%d order dead letters, want %d", len(dl), len(bad))
	}
	before := len(readAlerts(t, e.broker))

	produce(t, e.broker, "cs.orders", evs...) // the same event ids again
	eventually(t, 20*time.Second, "duplicates counted", func() error {
		if got := scrape(t, r.app.Addr())["replywatch_events_total{result=duplicate,topic=cs.orders}"]; got != float64(len(evs)+1) {
			return fmt.Errorf("duplicates = %v, want %d", got, len(evs)+1)
		}
		return nil
	})
	again := maps.Clone(wantOrderFigures)
	again["replywatch_events_total{result=duplicate,topic=cs.orders}"] = float64(len(evs) + 1)
	waitForOrders(again)
	if after := len(readAlerts(t, e.broker)); after != before {
		t.Errorf("alert records went from %d to %d after redelivery", before, after)
	}
}
