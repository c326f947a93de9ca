package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/sim"
)

// simulatedDay is a few busy hours of two simulated shops, every stream.
func simulatedDay(t *testing.T) []sim.Record {
	t.Helper()
	var recs []sim.Record
	err := sim.Generate(sim.Options{Seed: 11, Shops: 2, Agents: 3, Rate: 2, Start: sh("09:00:00"), End: sh("11:00:00"),
		Location: shanghai}, func(r sim.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func gaugesOf(reports []metrics.ShopReport) map[string]float64 {
	out := map[string]float64{}
	for _, s := range reports {
		out["replywatch_consulting_buyers{shop="+s.Shop+"}"] = float64(s.Consulting)
		out["replywatch_buyer_messages{shop="+s.Shop+"}"] = float64(s.Messages)
		// Ratios and means without data are absent, as on /metrics.
		if s.Response30sRate != nil {
			out["replywatch_response_30s_rate{shop="+s.Shop+"}"] = *s.Response30sRate
		}
		if s.AvgResponseSeconds != nil {
			out["replywatch_avg_response_seconds{shop="+s.Shop+"}"] = *s.AvgResponseSeconds
		}
		out["replywatch_waiting_buyers{shop="+s.Shop+"}"] = float64(s.Waiting)
		for _, th := range s.Thresholds {
			out["replywatch_reply_breached_buyers{shop="+s.Shop+",threshold="+th+"}"] = float64(s.Breached[th])
			if v, ok := s.ReplyRate[th]; ok {
				out["replywatch_reply_rate{shop="+s.Shop+",threshold="+th+"}"] = v
			}
		}
		for st, v := range s.Seats {
			out["replywatch_seats{shop="+s.Shop+",state="+st+"}"] = float64(v)
		}
		o := s.Orders
		out["replywatch_orders_awaiting_shipment{shop="+s.Shop+"}"] = float64(o.AwaitingShipment)
		out["replywatch_shipping_breached_orders{shop="+s.Shop+"}"] = float64(o.ShippingBreached)
		for k, v := range o.OpenDisputes {
			out["replywatch_open_disputes{kind="+k+",shop="+s.Shop+"}"] = float64(v)
		}
		if o.ReviewSatisfaction != nil {
			out["replywatch_review_satisfaction{shop="+s.Shop+"}"] = *o.ReviewSatisfaction
		}
		if o.AvgRefundSeconds != nil {
			out["replywatch_avg_refund_seconds{shop="+s.Shop+"}"] = *o.AvgRefundSeconds
		}
		if o.InquiryConversionRate != nil {
			out["replywatch_inquiry_conversion_rate{shop="+s.Shop+"}"] = *o.InquiryConversionRate
		}
		for _, a := range s.Agents {
			out["replywatch_agent_consulting_buyers{agent="+a.Agent+",shop="+s.Shop+"}"] = float64(a.Consulting)
			out["replywatch_agent_converted_buyers{agent="+a.Agent+",shop="+s.Shop+"}"] = float64(a.Converted)
			if a.AvgResponseSeconds != nil {
				out["replywatch_agent_avg_response_seconds{agent="+a.Agent+",shop="+s.Shop+"}"] = *a.AvgResponseSeconds
			}
			for th, v := range a.Breached {
				out["replywatch_agent_reply_breached_buyers{agent="+a.Agent+",shop="+s.Shop+",threshold="+th+"}"] = float64(v)
			}
		}
	}
	return out
}

// `replywatch replay` over a simulated day gives the figures and alerts the
// live pipeline gives for the same events.
func TestReplayEqualsPipeline(t *testing.T) {
	recs := simulatedDay(t)
	chat := 0
	for _, r := range recs {
		if r.Topic == event.Chat {
			chat++
		}
	}
	at := sh("11:10:00")
	e := newEnv(t)
	cfg := testConfig(t, e.broker, e.redis, "g1")
	cfg.Shops = nil

	res := replayRecords(t, cfg, recs, at)
	if res.Events != len(recs) || len(res.Shops) != 2 || len(res.Alerts) == 0 {
		t.Fatalf("replay saw %d events (want %d), %d shops, %d alerts", res.Events, len(recs), len(res.Shops), len(res.Alerts))
	}
	want := gaugesOf(res.Shops)
	if want["replywatch_consulting_buyers{shop="+res.Shops[0].Shop+"}"] == 0 || len(res.Shops[0].Seats) == 0 {
		t.Fatal("simulated day has no consulting buyers or no seats")
	}
	orderAlerts := 0
	for _, a := range res.Alerts {
		if a.OrderID != "" {
			orderAlerts++
		}
	}
	if res.Shops[0].Orders.AwaitingShipment == 0 {
		t.Fatal("simulated day has no orders awaiting shipment")
	}
	escalated := 0
	for _, a := range res.Alerts {
		if a.Reason == alerting.ReasonPriority {
			escalated++
		}
	}
	if res.Shops[0].Orders.Converted+res.Shops[1].Orders.Converted == 0 || escalated == 0 {
		t.Fatalf("simulated day has %d converted buyers and %d priority escalations: the join is not exercised",
			res.Shops[0].Orders.Converted+res.Shops[1].Orders.Converted, escalated)
	}

	produceRecords(t, e.broker, recs)
	r := start(t, cfg, &fakeClock{t: at}, "live")
	liveEqualsReplay(t, e.broker, r.app, recs, res)
	t.Logf("%d events, %d alert records (%d about orders, %d priority escalations), shops %s: consulting %d, 3m rate %s, awaiting shipment %d, converted %d",
		len(recs), len(res.Alerts), orderAlerts, escalated, res.Shops[0].Shop, res.Shops[0].Consulting,
		strconv.FormatFloat(res.Shops[0].ReplyRate["3m"], 'f', 3, 64), res.Shops[0].Orders.AwaitingShipment, res.Shops[0].Orders.Converted)
}

// replayRecords runs the offline replay of recs at time at.
func replayRecords(t *testing.T, cfg *config.Config, recs []sim.Record, at time.Time) *ReplayResult {
	t.Helper()
	res, err := Replay(context.Background(), cfg, func(fn func(event.Stream, string, []byte) error) error {
		return sim.Each(recs, fn)
	}, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// produceRecords writes recs to their topics.
func produceRecords(t *testing.T, broker string, recs []sim.Record) {
	t.Helper()
	w := sim.NewWriter(broker)
	defer w.Close()
	p := sim.NewProducer(context.Background(), w, sim.DefaultTopics)
	for _, r := range recs {
		if err := p.Emit(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
}

// liveEqualsReplay waits until the replica a has read every chat and order record of
// recs, then requires its figures and alerts to be the replay's. It returns
// the replica's last scrape.
func liveEqualsReplay(t *testing.T, broker string, a *App, recs []sim.Record, res *ReplayResult) map[string]float64 {
	t.Helper()
	read := map[event.Stream]int{}
	for _, r := range recs {
		read[r.Topic]++
	}
	want := gaugesOf(res.Shops)
	var m map[string]float64
	eventually(t, 60*time.Second, "live figures equal replay", func() error {
		m = scrape(t, a.Addr())
		for stream, topic := range map[event.Stream]string{event.Chat: "cs.chat", event.Orders: "cs.orders"} {
			applied := m["replywatch_events_total{result=applied,topic="+topic+"}"] + m["replywatch_events_total{result=duplicate,topic="+topic+"}"]
			if applied != float64(read[stream]) {
				return fmt.Errorf("%v of %d %s events read", applied, read[stream], stream)
			}
		}
		return expectFigures(m, want)
	})
	// Alerts reach cs.alerts after their batch's state (the courier writes
	// them beside the next batches), and a write that failed is re-sent by
	// the outbox sweep: on a loaded machine that takes seconds.
	eventually(t, 60*time.Second, "alerts", func() error {
		live, err := outcome(readAlerts(t, broker))
		if err != nil {
			return err
		}
		replayed, err := outcome(res.Alerts)
		if err != nil {
			return err
		}
		if len(replayed) == 0 {
			return errors.New("no alerts replayed")
		}
		return sameOutcome(scenario.Standing(live), scenario.Standing(replayed))
	})
	return m
}
