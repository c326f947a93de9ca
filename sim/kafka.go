package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
)

// DefaultTopics are the contract's default input topic names.
var DefaultTopics = map[event.Stream]string{
	event.Chat:     "cs.chat",
	event.Orders:   "cs.orders",
	event.Presence: "cs.presence",
}

// NewWriter returns a kafka-go Writer set up for producing simulated events
// fast: keyed hashing (one key, one partition), batches of 1000, a few
// milliseconds of linger, synchronous writes acknowledged by the leader.
// The topic comes from each message.
func NewWriter(brokers ...string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Hash{},
		BatchSize:    1000,
		BatchBytes:   4 << 20,
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireOne,
		Async:        false,
	}
}

// Producer writes records to Kafka in large synchronous calls: one
// WriteMessages per FlushEvery records lets the Writer fill its batches on
// every partition at once. Call Flush at the end, and after each record when
// producing live.
type Producer struct {
	ctx    context.Context
	w      *kafka.Writer
	topics map[event.Stream]string
	// FlushEvery is the number of records buffered before writing, default 10000.
	FlushEvery int

	msgs  []kafka.Message
	arena []byte
	count int64
}

// NewProducer returns a Producer writing to the topics of each stream (see
// DefaultTopics) through w.
func NewProducer(ctx context.Context, w *kafka.Writer, topics map[event.Stream]string) *Producer {
	return &Producer{ctx: ctx, w: w, topics: topics, FlushEvery: 10000}
}

// Emit buffers one record and writes the buffer when it is full. Its method
// value is an emit function for Generate and Live.
func (p *Producer) Emit(r Record) error {
	topic, ok := p.topics[r.Topic]
	if !ok {
		return fmt.Errorf("producing a %s event: no topic configured for stream %q", r.Event.Type, r.Topic)
	}
	// Keys and values share one arena, reused after each synchronous write.
	k0 := len(p.arena)
	p.arena = append(p.arena, r.Key...)
	v0 := len(p.arena)
	p.arena = AppendEvent(p.arena, &r.Event)
	p.msgs = append(p.msgs, kafka.Message{Topic: topic, Key: p.arena[k0:v0:v0], Value: p.arena[v0:len(p.arena):len(p.arena)]})
	if len(p.msgs) >= max(1, p.FlushEvery) {
		return p.Flush()
	}
	return nil
}

// Flush writes the buffered records.
func (p *Producer) Flush() error {
	if len(p.msgs) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(p.ctx, p.msgs...); err != nil {
		return fmt.Errorf("producing %d events: %w", len(p.msgs), err)
	}
	p.count += int64(len(p.msgs))
	clear(p.msgs)
	p.msgs = p.msgs[:0]
	p.arena = p.arena[:0]
	return nil
}

// Produced is the number of records written so far.
func (p *Producer) Produced() int64 { return p.count }
