package app

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// PDD's effective reply rate over Kafka and Redis: of four buyers who
// consulted at 10:00, two got a human reply within the hour (one at
// 10:10, one at 10:59), one only at 11:30 and one none; a bot's reply
// counts for nothing. At 12:00 the rate is 0.5, projected as it is, with
// more consulting buyers projected than have come.
func TestEffectiveReplyOverKafkaAndRedis(t *testing.T) {
	e := newEnv(t)
	msg := func(id, buyer, sender, at string) event.Event {
		ev := event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: sh(at)}, ShopID: "s1", BuyerID: buyer, Sender: sender, Text: "亲，在的"}
		if sender == event.SenderAgent {
			ev.AgentID = "a1"
		}
		return ev
	}
	evs := []event.Event{
		msg("e1", "b1", event.SenderBuyer, "10:00:00"), msg("e2", "b2", event.SenderBuyer, "10:00:00"),
		msg("e3", "b3", event.SenderBuyer, "10:00:00"), msg("e4", "b4", event.SenderBuyer, "10:00:00"),
		msg("e5", "b4", event.SenderBot, "10:00:02"),
		msg("e6", "b1", event.SenderAgent, "10:10:00"), msg("e7", "b2", event.SenderAgent, "10:59:00"),
		msg("e8", "b3", event.SenderAgent, "11:30:00"),
	}
	produce(t, e.broker, "cs.chat", evs...)
	r := start(t, testConfig(t, e.broker, e.redis, "eff"), &fakeClock{t: sh("12:00:00")}, "r1")
	eventually(t, 30*time.Second, "effective reply figures", func() error {
		m := scrape(t, r.app.Addr())
		if err := expectFigures(m, map[string]float64{
			"replywatch_consulting_buyers{shop=s1}":              4,
			"replywatch_effective_reply_rate{shop=s1}":           0.5,
			"replywatch_effective_reply_rate_projected{shop=s1}": 0.5,
		}); err != nil {
			return err
		}
		if p := m["replywatch_consulting_buyers_projected{shop=s1}"]; p <= 4 {
			return fmt.Errorf("projected consulting buyers %v, want more than the 4 so far", p)
		}
		if _, ok := m["replywatch_effective_reply_rate{shop=s2}"]; ok {
			return errors.New("an effective reply rate for s2, where no one consulted")
		}
		return nil
	})
}

// effective_reply_risk over Kafka and Redis: 120 buyers consult at 10:00
// and no one answers, so at 12:00 the day projects to well over 100
// consulting buyers at a rate of 0: the shop's risk alert fires, once.
// Replies stamped 10:30 then reach 100 of them (a late producer), the rate
// goes to 0.83 and the alert is resolved (recovered), with the same id.
func TestEffectiveReplyRiskOverKafkaAndRedis(t *testing.T) {
	e := newEnv(t)
	var buyers, replies []event.Event
	for i := range 120 {
		b := fmt.Sprintf("rb%d", i)
		buyers = append(buyers, event.Event{EventID: "q" + b, Type: event.TypeMessage, TS: event.Time{Time: sh("10:00:00")},
			ShopID: "s1", BuyerID: b, Sender: event.SenderBuyer, Text: "在吗"})
		if i < 100 {
			replies = append(replies, event.Event{EventID: "r" + b, Type: event.TypeMessage, TS: event.Time{Time: sh("10:30:00")},
				ShopID: "s1", BuyerID: b, Sender: event.SenderAgent, AgentID: "a1", Text: "亲，在的"})
		}
	}
	produce(t, e.broker, "cs.chat", buyers...)
	clock := &fakeClock{t: sh("12:00:00")}
	r := start(t, testConfig(t, e.broker, e.redis, "risk"), clock, "r1")
	id := alerting.ID(alerting.KindEffectiveReplyRisk, "s1", "2026-11-24")
	risk := func() []alerting.Alert {
		var out []alerting.Alert
		for _, a := range readAlerts(t, e.broker) {
			if a.Kind == alerting.KindEffectiveReplyRisk {
				out = append(out, a)
			}
		}
		return out
	}
	eventually(t, 30*time.Second, "effective_reply_risk firing", func() error {
		got := risk()
		if len(got) != 1 || got[0].ID != id || got[0].Status != alerting.Firing || got[0].AgentID != "" {
			return fmt.Errorf("risk alerts %+v", got)
		}
		return nil
	})
	// Later evaluations do not raise it again.
	evaluatedAt(t, r, clock, sh("12:00:10"))
	evaluatedAt(t, r, clock, sh("12:00:20"))
	if got := risk(); len(got) != 1 {
		t.Fatalf("risk alerts after more reports: %+v", got)
	}
	produce(t, e.broker, "cs.chat", replies...)
	eventually(t, 30*time.Second, "effective_reply_risk resolved", func() error {
		got := risk()
		if len(got) != 2 || got[1].ID != id || got[1].Status != alerting.Resolved || got[1].Reason != alerting.ReasonRecovered {
			return fmt.Errorf("risk alerts %+v", got)
		}
		return expectFigures(scrape(t, r.app.Addr()), map[string]float64{"replywatch_effective_reply_rate{shop=s1}": 100.0 / 120})
	})
}

// Perfunctory replies with an allowance (text.perfunctory_alert_after: 3)
// over Kafka and Redis: a1 sends a filler reply to each of five buyers,
// whose conversations are spread over the chat partitions, a2 to three.
// a1's day alerts once, as abusive_reply with reason perfunctory and no
// buyer, once the summed count passes 3; a2's, at the allowance, does
// not; no message alerts on its own. Per-agent figures are off: the
// agents' counts are kept for the rule all the same.
func TestPerfunctoryAgentDayOverKafkaAndRedis(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig(t, e.broker, e.redis, "perf")
	cfg.Text.PerfunctoryAlertAfter = 3
	cfg.Metrics.PerAgent = false
	cfg = quietShopRules(t, cfg)
	var evs []event.Event
	partitions := map[int]bool{}
	for i, agent := range []string{"a1", "a1", "a1", "a1", "a1", "a2", "a2", "a2"} {
		b := fmt.Sprintf("pb%d", i)
		partitions[(&kafka.Hash{}).Balance(kafka.Message{Key: []byte("s1/" + b)}, 0, 1, 2, 3)] = true
		at := sh("10:00:00").Add(time.Duration(i) * time.Minute)
		evs = append(evs,
			event.Event{EventID: "q" + b, Type: event.TypeMessage, TS: event.Time{Time: at}, ShopID: "s1", BuyerID: b, Sender: event.SenderBuyer, Text: "在吗"},
			event.Event{EventID: "r" + b, Type: event.TypeMessage, TS: event.Time{Time: at.Add(10 * time.Second)}, ShopID: "s1", BuyerID: b,
				Sender: event.SenderAgent, AgentID: agent, Text: "嗯"})
	}
	if len(partitions) < 2 {
		t.Fatalf("the buyers' conversations are all on one partition: %v", partitions)
	}
	produce(t, e.broker, "cs.chat", evs...)
	clock := &fakeClock{t: sh("12:00:00")}
	r := start(t, cfg, clock, "r1")
	perf := func() []alerting.Alert {
		var out []alerting.Alert
		for _, a := range readAlerts(t, e.broker) {
			if a.Reason == alerting.ReasonPerfunctory {
				out = append(out, a)
			}
		}
		return out
	}
	id := alerting.ID(alerting.KindAbusiveReply, "s1", "a1", "2026-11-24", alerting.ReasonPerfunctory)
	eventually(t, 30*time.Second, "a1's perfunctory day alerted", func() error {
		if err := expectFigures(scrape(t, r.app.Addr()), map[string]float64{"replywatch_flagged_messages{category=perfunctory,shop=s1}": 8}); err != nil {
			return err
		}
		if got := perf(); len(got) != 1 || got[0].ID != id {
			return fmt.Errorf("perfunctory alerts %+v", got)
		}
		return nil
	})
	evaluatedAt(t, r, clock, sh("12:00:10"))
	got := perf()
	if len(got) != 1 {
		t.Fatalf("perfunctory alerts after more evaluations: %+v", got)
	}
	if a := got[0]; a.Kind != alerting.KindAbusiveReply || a.AgentID != "a1" || a.BuyerID != "" || a.Severity != alerting.Warning ||
		a.Category != "perfunctory" || a.Status != alerting.Firing {
		t.Errorf("perfunctory alert %+v", a)
	}
}
