package app

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
)

func chatEv(id, shop, buyer, sender, agent, at, text string) event.Event {
	return event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: orderAt(at)}, ShopID: shop,
		BuyerID: buyer, Sender: sender, AgentID: agent, Text: text}
}

// joinDay is the chat of the order day (orderDay) and a few more orders,
// hand-counted on 2026-11-24 at 23:00:
//
//	s1 b1 asks 09:00, a2 replies: consulted, no payment today (o1, o2 earlier).
//	s1 b3 (refund o4 open 09:00–10:30, dispute o5 open 08:00–13:45) asks
//	      10:00: priority, escalated 10:01:30, a1 replies 10:01:50: resolved.
//	      Asks again 15:00, a1 replies 15:04: no longer a priority.
//	s1 b4 (complaint o6 open) asks 12:00, never answered: escalated 12:01:30.
//	s1 b5 asks 10:00, a1 and a2 reply, pays o20 10:30: converted, credited a2.
//	s1 b6 writes 16:00 "我要投诉" (complaint intent), unanswered: escalated.
//	s2 b1 asks 09:30, a3 replies, pays o8 10:00: converted, a3.
//	s2 b2 asks 08:30, a4 replies, pays o9 20:00: converted, a4.
//	s2 b7 asks 11:00, a3 replies, never pays.
//
// Consulting: s1 5 (b1 b3 b4 b5 b6), converted 1; s2 3, converted 2.
func joinDay() (chat, orders []event.Event) {
	chat = []event.Event{
		chatEv("c1", "s1", "b1", "buyer", "a2", "2026-11-24 09:00", "在吗"),
		chatEv("c2", "s1", "b1", "agent", "a2", "2026-11-24 09:01", "在的亲"),
		chatEv("c3", "s1", "b3", "buyer", "a1", "2026-11-24 10:00", "退款什么时候到"),
		chatEv("c4", "s1", "b5", "buyer", "", "2026-11-24 10:00", "有货吗"),
		chatEv("c5", "s1", "b5", "agent", "a1", "2026-11-24 10:01", "有的"),
		chatEv("c6", "s1", "b5", "agent", "a2", "2026-11-24 10:10", "今天下单明天发"),
		chatEv("c7", "s1", "b4", "buyer", "a1", "2026-11-24 12:00", "怎么还没处理"),
		chatEv("c8", "s1", "b3", "buyer", "a1", "2026-11-24 15:00", "收到了谢谢"),
		chatEv("c9", "s1", "b3", "agent", "a1", "2026-11-24 15:04", "不客气"),
		chatEv("c10", "s1", "b6", "buyer", "", "2026-11-24 16:00", "再不处理我要投诉"),
		chatEv("c11", "s2", "b2", "buyer", "", "2026-11-24 08:30", "能便宜点吗"),
		chatEv("c12", "s2", "b2", "agent", "a4", "2026-11-24 08:31", "已经是最低价了"),
		chatEv("c13", "s2", "b1", "buyer", "", "2026-11-24 09:30", "发什么快递"),
		chatEv("c14", "s2", "b1", "agent", "a3", "2026-11-24 09:31", "中通"),
		chatEv("c15", "s2", "b7", "buyer", "", "2026-11-24 11:00", "尺码准吗"),
		chatEv("c16", "s2", "b7", "agent", "a3", "2026-11-24 11:01", "标准码"),
	}
	// b3's reply at 10:01:50, inside the minute the sheet's times allow.
	reply := chatEv("c17", "s1", "b3", "agent", "a1", "2026-11-24 10:01", "马上处理")
	reply.TS.Time = reply.TS.Add(50 * time.Second)
	chat = append(chat, reply)
	orders = append(orderDay(), orderEv("s1-o20-p", event.TypeOrderPaid, "s1", "b5", "o20", "2026-11-24 10:30"))
	return chat, orders
}

// wantJoinFigures are the join's figures, and the order gauges with o20.
var wantJoinFigures = map[string]float64{
	"replywatch_consulting_buyers{shop=s1}":                     5,
	"replywatch_consulting_buyers{shop=s2}":                     3,
	"replywatch_inquiry_conversion_rate{shop=s1}":               0.2,
	"replywatch_inquiry_conversion_rate{shop=s2}":               2.0 / 3,
	"replywatch_agent_converted_buyers{agent=a2,shop=s1}":       1,
	"replywatch_agent_converted_buyers{agent=a1,shop=s1}":       0,
	"replywatch_agent_converted_buyers{agent=a3,shop=s2}":       1,
	"replywatch_agent_converted_buyers{agent=a4,shop=s2}":       1,
	"replywatch_orders_awaiting_shipment{shop=s1}":              2,
	"replywatch_orders_awaiting_shipment{shop=s2}":              1,
	"replywatch_shipping_breached_orders{shop=s1}":              1,
	"replywatch_shipping_breached_orders{shop=s2}":              1,
	"replywatch_open_disputes{kind=complaint,shop=s1}":          1,
	"replywatch_review_satisfaction{shop=s1}":                   0.5,
	"replywatch_avg_refund_seconds{shop=s1}":                    5400,
	"replywatch_events_total{result=applied,topic=cs.orders}":   18,
	"replywatch_events_total{result=duplicate,topic=cs.orders}": 1,
	"replywatch_events_total{result=applied,topic=cs.chat}":     17,
	"replywatch_open_disputes{kind=dispute,shop=s1}":            0,
	"replywatch_reply_breached_buyers{shop=s1,threshold=3m}":    3,
}

// wantEscalations are the priority escalations standing at the end of the
// day (retracted ones left out), by shop/buyer/wait start, with their last
// reason ("" still firing).
var wantEscalations = map[string]string{
	"s1/b3/10:00": "replied",
	"s1/b4/12:00": "",
	"s1/b6/16:00": "",
}

// escalations are the priority escalations of the alerts, as wantEscalations.
func escalations(alerts []alerting.Alert) (map[string]string, error) {
	keys := map[string]string{}
	out := map[string]string{}
	for _, a := range alerts {
		if a.Kind != alerting.KindReplyWarning {
			continue
		}
		k, ok := keys[a.ID]
		if a.Status == alerting.Firing && a.Reason == alerting.ReasonPriority {
			if a.Severity != alerting.Critical {
				return nil, fmt.Errorf("escalation %s is %s, want critical", a.ID, a.Severity)
			}
			k = a.ShopID + "/" + a.BuyerID + "/" + a.Since.In(shanghai).Format("15:04")
			keys[a.ID] = k
			out[k] = ""
			continue
		}
		if !ok {
			continue // an ordinary warning
		}
		out[k] = a.Reason
		if a.Reason == alerting.ReasonRetracted {
			delete(out, k)
		}
	}
	return out, nil
}

// orderAlertsOf keeps the order rules' alerts.
func orderAlertsOf(alerts []alerting.Alert) []alerting.Alert {
	var out []alerting.Alert
	for _, a := range alerts {
		switch a.Kind {
		case alerting.KindShippingWarning, alerting.KindShippingBreach, alerting.KindDisputeDeadline, alerting.KindBadReview:
			out = append(out, a)
		}
	}
	return out
}

func diffOutcome(got, want map[string]string) error {
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q (present %v), want %q", k, g, ok, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		return fmt.Errorf("%s", strings.Join(diffs, "; "))
	}
	return nil
}

// Over Kafka and Redis, a hand-counted day of chat and orders for two shops
// gives exactly the expected shipping and dispute alerts, the conversion
// per shop and per agent, and the priority escalations, whichever topic
// is read first and however far one lags: orders produced and processed
// an hour (of wall time: all of them) before the chat, after it, and both
// produced together; with the chat topic on 3 partitions and the orders
// topic on 6, so that a buyer's chat and orders sit in partitions of
// different numbers and meet only through the buyers topic.
func TestJoinDay(t *testing.T) {
	if testing.Short() {
		t.Skip("three replicas over Kafka and Redis")
	}
	topics := maps.Clone(testTopics)
	topics["cs.chat"], topics["cs.orders"] = 3, 6
	chat, orders := joinDay()
	for _, c := range []struct {
		name  string
		first []event.Event // produced before the replica starts
		later []event.Event // produced once the first topic is processed
		topic [2]string
	}{
		{"orders first", orders, chat, [2]string{"cs.orders", "cs.chat"}},
		{"chat first", chat, orders, [2]string{"cs.chat", "cs.orders"}},
		{"together", nil, nil, [2]string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			broker, _ := testenv.Kafka(t, topics)
			redis := testenv.Redis(t)
			cfg := orderConfig(t, broker, redis, "g1")
			cfg.Kafka.BuyersPartitions = 5
			if c.first == nil {
				// A bad chat record first: dead-lettered from cs.chat by
				// the processor, skipped by the repartition stage, and
				// nothing stalls (invariant 5).
				produceRaw(t, broker, "cs.chat", "s1/b1",
					[]byte(`{"event_id":"x1","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1"}`))
				produce(t, broker, "cs.orders", orders...)
				produce(t, broker, "cs.chat", chat...)
			} else {
				produce(t, broker, c.topic[0], c.first...)
			}
			r := start(t, cfg, &fakeClock{t: orderDayEnd}, "r1")
			if c.first != nil {
				applied := fmt.Sprintf("replywatch_events_total{result=applied,topic=%s}", c.topic[0])
				eventually(t, 20*time.Second, "the first topic processed", func() error {
					if v := scrape(t, r.app.Addr())[applied]; v < float64(len(c.first))-1 {
						return fmt.Errorf("%s = %v", applied, v)
					}
					return nil
				})
				produce(t, broker, c.topic[1], c.later...)
			}
			eventually(t, 30*time.Second, "join figures", func() error {
				return expectFigures(scrape(t, r.app.Addr()), wantJoinFigures)
			})
			eventually(t, 10*time.Second, "order alerts and escalations", func() error {
				all := readAlerts(t, broker)
				got, err := orderOutcome(orderAlertsOf(all))
				if err != nil {
					return err
				}
				if err := diffOutcome(got, wantOrderAlerts); err != nil {
					return fmt.Errorf("order alerts: %w", err)
				}
				esc, err := escalations(all)
				if err != nil {
					return err
				}
				if err := diffOutcome(esc, wantEscalations); err != nil {
					return fmt.Errorf("escalations: %w", err)
				}
				return nil
			})
			if c.first == nil {
				// Everything delivered again, as a producer retrying or a
				// repartition batch read again after a rebalance: no
				// figure moves and no alert record is added (invariant 1).
				before := len(readAlerts(t, broker))
				produce(t, broker, "cs.orders", orders...)
				produce(t, broker, "cs.chat", chat...)
				facts := 0
				for _, ev := range chat {
					facts += b2i(event.JoinFact(event.Chat, &ev))
				}
				for _, ev := range orders {
					facts += b2i(event.JoinFact(event.Orders, &ev))
				}
				dup := "replywatch_events_total{result=duplicate,topic=cs.buyers}"
				eventually(t, 20*time.Second, "the facts delivered again", func() error {
					if v := scrape(t, r.app.Addr())[dup]; v != float64(facts) {
						return fmt.Errorf("%s = %v", dup, v)
					}
					return nil
				})
				business := maps.Clone(wantJoinFigures)
				maps.DeleteFunc(business, func(k string, _ float64) bool { return strings.HasPrefix(k, "replywatch_events_total") })
				if err := expectFigures(scrape(t, r.app.Addr()), business); err != nil {
					t.Errorf("after redelivery: %v", err)
				}
				if after := len(readAlerts(t, broker)); after != before {
					t.Errorf("redelivery added %d alert records", after-before)
				}
				if dl := readTopic(t, broker, "cs.chat.DLT", 300*time.Millisecond); len(dl) != 1 {
					t.Errorf("%d records on cs.chat.DLT, want the bad one", len(dl))
				}
			}
			// The escalation supersedes nothing on cs.alerts: the ordinary
			// warning of b4's wait is there too, under its own id.
			var ordinary []string
			for _, a := range readAlerts(t, broker) {
				if a.Kind == alerting.KindReplyWarning && a.Reason == "" && a.Status == alerting.Firing && a.BuyerID == "b4" {
					ordinary = append(ordinary, a.ID)
				}
			}
			if len(ordinary) == 0 || slices.Contains(ordinary, "") {
				t.Errorf("b4's ordinary warning: %q", ordinary)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
