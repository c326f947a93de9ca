package sim

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replywatch/replywatch/event"
)

// Records produced to a Kafka-protocol broker come back whole: every value
// is the event's JSON, on the stream's topic, and one key always lands on
// one partition.
func TestProduceToKafka(t *testing.T) {
	const partitions = 4
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "cs.chat", "cs.orders", "cs.presence"))
	if err != nil {
		t.Fatalf("starting the broker: %v", err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := generate(t, Options{Seed: 6, Start: day.Add(9 * time.Hour), End: day.Add(12 * time.Hour)})
	w := NewWriter(addr)
	defer w.Close()
	p := NewProducer(ctx, w, DefaultTopics)
	p.FlushEvery = 700 // several writes, the last one partial
	for _, r := range recs {
		if err := p.Emit(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if p.Produced() != int64(len(recs)) {
		t.Fatalf("produced %d of %d records", p.Produced(), len(recs))
	}

	want := map[string]string{} // event_id → value
	for i := range recs {
		want[recs[i].Event.EventID] = string(AppendEvent(nil, &recs[i].Event))
	}
	partitionOf := map[string]int{} // topic/key → partition
	got := 0
	for _, stream := range []event.Stream{event.Chat, event.Orders, event.Presence} {
		topic := DefaultTopics[stream]
		for part := 0; part < partitions; part++ {
			for _, m := range readPartition(ctx, t, addr, topic, part) {
				ev, err := event.Decode(stream, m.Value, time.Time{})
				if err != nil {
					t.Fatalf("%s/%d offset %d: %v", topic, part, m.Offset, err)
				}
				if want[ev.EventID] != string(m.Value) {
					t.Fatalf("%s/%d offset %d: value %s is not the produced one", topic, part, m.Offset, m.Value)
				}
				if string(m.Key) != ev.Key(stream) {
					t.Fatalf("%s/%d offset %d: key %q, want %q", topic, part, m.Offset, m.Key, ev.Key(stream))
				}
				k := topic + "/" + string(m.Key)
				if p, ok := partitionOf[k]; ok && p != part {
					t.Fatalf("key %s on partitions %d and %d", k, p, part)
				}
				partitionOf[k] = part
				delete(want, ev.EventID)
				got++
			}
		}
	}
	if got != len(recs) || len(want) != 0 {
		t.Fatalf("read back %d of %d records, %d missing", got, len(recs), len(want))
	}
}

func readPartition(ctx context.Context, t *testing.T, addr, topic string, part int) []kafka.Message {
	t.Helper()
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, part)
	if err != nil {
		t.Fatalf("dialling %s/%d: %v", topic, part, err)
	}
	defer conn.Close()
	last, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatalf("reading the end of %s/%d: %v", topic, part, err)
	}
	var out []kafka.Message
	for offset := int64(0); offset < last; {
		if _, err := conn.Seek(offset, kafka.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		batch := conn.ReadBatch(1, 10<<20)
		from := offset
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("reading %s/%d at %d: %v", topic, part, offset, err)
				}
				break
			}
			out = append(out, m)
			offset = m.Offset + 1
		}
		batch.Close()
		if offset == from {
			t.Fatalf("reading %s/%d: no progress at offset %d of %d", topic, part, offset, last)
		}
	}
	return out
}

func TestProduceUnknownStream(t *testing.T) {
	p := NewProducer(context.Background(), NewWriter("127.0.0.1:1"), map[event.Stream]string{event.Chat: "cs.chat"})
	err := p.Emit(Record{Topic: event.Presence, Event: event.Event{Type: event.TypeAgentStatus}})
	if err == nil {
		t.Fatal("a record of a stream without a topic was accepted")
	}
}
