package pipeline

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
)

// How far the repartition stage has got, as the buyers partitions' clocks
// see it over Kafka: nothing passed on yet holds them; where the stage lags
// on an input partition, the event time of the last record it passed on
// less the allowance; everywhere caught up, the wall clock less the grace;
// a partition whose committed offset stays short of its end for the stall
// no longer holds them. The buyers partitions' ends come with the measure.
func TestStageTime(t *testing.T) {
	if testing.Short() {
		t.Skip("Kafka")
	}
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 2, "cs.orders": 1, "cs.buyers": 3})
	w := &kafka.Writer{Addr: kafka.TCP(broker), BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	chat := func(partition int, id string, ts time.Time) kafka.Message {
		b, err := json.Marshal(event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: ts}, ShopID: "s1",
			BuyerID: id, Sender: event.SenderBuyer, Text: "在吗"})
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Topic: "cs.chat", Partition: partition, Value: b}
	}
	// Each record to the partition it names.
	w.Balancer = kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })
	ctx := context.Background()
	if err := w.WriteMessages(ctx, chat(0, "a", t0), chat(0, "b", t0.Add(5*time.Minute)), chat(1, "c", t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessages(ctx, kafka.Message{Topic: "cs.buyers", Partition: 2, Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	p := New(Options{Config: Config{Brokers: []string{broker}, Grace: 2 * time.Second, Allowance: 3 * time.Second,
		IdleAfter: time.Hour, Topics: map[event.Stream]string{event.Buyers: "cs.buyers"},
		JoinStage: &JoinStage{GroupID: "g-repartition", Inputs: map[string]event.Stream{"cs.chat": event.Chat, "cs.orders": event.Orders}}}})
	s := p.stage
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	commit := func(p0, p1 int64) {
		t.Helper()
		res, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: "g-repartition", GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{"cs.chat": {{Partition: 0, Offset: p0}, {Partition: 1, Offset: p1}}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range res.Topics {
			for _, r := range ps {
				if r.Error != nil {
					t.Fatal(r.Error)
				}
			}
		}
	}
	wall := t0.Add(time.Hour)
	measure := func(want time.Time) {
		t.Helper()
		m, err := s.take(ctx, wall)
		if err != nil {
			t.Fatal(err)
		}
		if !m.t.Equal(want) {
			t.Errorf("stage at %s, want %s", m.t, want)
		}
		if !want.IsZero() && (len(m.ends) != 3 || m.ends[2] != 1 || m.ends[0] != 0) {
			t.Errorf("buyers partitions' ends %v, want 0: 0, 1: 0, 2: 1", m.ends)
		}
	}
	measure(time.Time{}) // no offsets: nothing passed on
	commit(1, 1)
	measure(t0.Add(-3 * time.Second)) // cs.chat/0 passed on up to "a"
	commit(2, 1)
	measure(wall.Add(-2 * time.Second)) // all passed on
	commit(1, 1)
	s.stall = 0
	measure(t0.Add(-3 * time.Second))   // its offset moved: not stalled yet
	measure(wall.Add(-2 * time.Second)) // the same offset again: stalled
}
