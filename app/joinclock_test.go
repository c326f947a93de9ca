package app

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
)

// sameBuyersPartition is a buyer of shop whose join state lives in the
// same buyers partition as buyer's (kafka-go's Hash: FNV-1a of the key).
func sameBuyersPartition(shop, buyer string, partitions int) string {
	part := func(b string) uint32 {
		h := fnv.New32a()
		h.Write([]byte(shop + "/" + b))
		return h.Sum32() % uint32(partitions)
	}
	for i := 0; ; i++ {
		if b := fmt.Sprintf("p%d", i); part(b) == part(buyer) {
			return b
		}
	}
}

// Over Kafka and Redis, the buyer join's clock waits for the repartition
// stage: a buyers partition that has read all it holds does not fire a
// priority escalation while the reply that answers the wait is read from
// cs.chat but not yet passed on to cs.buyers (invariant 3: backlog = live).
//
// Two priority buyers of s1 share a buyers partition: pw waits from 09:57
// (escalation due 09:58:30) and is never answered; b3 waits from 10:00
// (due 10:01:30) and is answered at 10:01, in time. The stage passes on
// everything but b3's reply, then stops; the reply is produced and the wall
// clock jumps to 12:00. pw's escalation fires (the stage has passed on
// cs.chat up to 10:00), b3's must not: in the same step it would have, had
// the partition's clock followed the wall clock. Once the stage runs again,
// the reply is joined, nothing about b3 is ever raised, and the stage being
// caught up lets the clock follow the wall again.
func TestJoinClockWaitsForRepartition(t *testing.T) {
	if testing.Short() {
		t.Skip("Kafka and Redis")
	}
	topics := maps.Clone(testTopics)
	broker, _ := testenv.Kafka(t, topics)
	cfg := orderConfig(t, broker, testenv.Redis(t), "g1")
	cfg.Kafka.BuyersPartitions = 4
	pw := sameBuyersPartition("s1", "b3", cfg.Kafka.BuyersPartitions)
	produce(t, broker, "cs.orders",
		orderEv("r3", event.TypeRefundRequested, "s1", "b3", "o3", "2026-11-24 09:00"),
		orderEv("d9", event.TypeDisputeOpened, "s1", pw, "o9", "2026-11-24 09:00"))
	produce(t, broker, "cs.chat",
		chatEv("m1", "s1", pw, "buyer", "", "2026-11-24 09:57", "怎么还没退"),
		chatEv("m2", "s1", "b3", "buyer", "", "2026-11-24 10:00", "退款呢"))

	// Before either wait is due, the processor and the stage read it all.
	clock := &fakeClock{t: orderAt("2026-11-24 09:58")}
	a, err := New(cfg, Options{Log: zaptest.NewLogger(t), Now: clock.Now, Holder: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	stage := a.Repartition
	a.Repartition = nil // run below, stopped and started by the test
	runApp(t, a)
	runStage := func() (stop func()) {
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- stage.Run(sctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("repartition stage: %v", err)
			}
		}
	}
	joined := func(n int) {
		t.Helper()
		eventually(t, 20*time.Second, fmt.Sprintf("%d facts joined", n), func() error {
			if v := scrape(t, a.Addr())["replywatch_events_total{result=applied,topic=cs.buyers}"]; v < float64(n) {
				return fmt.Errorf("%v facts joined", v)
			}
			return nil
		})
	}
	stop := runStage()
	joined(4)
	stop()

	reply := chatEv("m3", "s1", "b3", "agent", "a1", "2026-11-24 10:01", "马上处理")
	produce(t, broker, "cs.chat", reply)
	clock.Set(orderAt("2026-11-24 12:00"))
	escalated := func(want map[string]string) {
		t.Helper()
		eventually(t, 20*time.Second, "escalations", func() error {
			all := readAlerts(t, broker)
			for _, al := range all {
				if al.BuyerID == "b3" && al.Reason == alerting.ReasonPriority {
					t.Fatalf("b3 escalated at %s although its reply at 10:01 was not yet joined: %+v", clock.Now().Format(time.TimeOnly), al)
				}
			}
			esc, err := escalations(all)
			if err != nil {
				return err
			}
			return diffOutcome(esc, want)
		})
	}
	escalated(map[string]string{"s1/" + pw + "/09:57": ""})

	// The stage catches up: the reply is joined, and what stands is the
	// replay's.
	stop = runStage()
	defer stop()
	joined(5)
	pw2 := chatEv("m4", "s1", pw, "agent", "a1", "2026-11-24 12:10", "处理好了")
	produce(t, broker, "cs.chat", pw2)
	clock.Set(orderAt("2026-11-24 12:20"))
	escalated(map[string]string{"s1/" + pw + "/09:57": alerting.ReasonReplied})
	res, err := Replay(context.Background(), cfg, func(fn func(event.Stream, string, []byte) error) error {
		for _, r := range []struct {
			s  event.Stream
			ev event.Event
		}{
			{event.Orders, orderEv("r3", event.TypeRefundRequested, "s1", "b3", "o3", "2026-11-24 09:00")},
			{event.Orders, orderEv("d9", event.TypeDisputeOpened, "s1", pw, "o9", "2026-11-24 09:00")},
			{event.Chat, chatEv("m1", "s1", pw, "buyer", "", "2026-11-24 09:57", "怎么还没退")},
			{event.Chat, chatEv("m2", "s1", "b3", "buyer", "", "2026-11-24 10:00", "退款呢")},
			{event.Chat, reply},
			{event.Chat, pw2},
		} {
			b, err := json.Marshal(r.ev)
			if err != nil {
				return err
			}
			if err := fn(r.s, r.ev.Key(r.s), b); err != nil {
				return err
			}
		}
		return nil
	}, orderAt("2026-11-24 12:20"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := escalations(res.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	if err := diffOutcome(want, map[string]string{"s1/" + pw + "/09:57": alerting.ReasonReplied}); err != nil {
		t.Errorf("the replay's escalations: %v", err)
	}
}
