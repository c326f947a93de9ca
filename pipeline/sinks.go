package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/state"
)

// AlertSink durably accepts alert records taken from a partition's outbox.
// Deliver returns nil only when every record was accepted.
type AlertSink interface {
	Deliver(ctx context.Context, ds []state.Delivery) error
}

// DeadLetter is one input record that could not be used.
type DeadLetter struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Reason    string
	Detail    string
}

// DeadLetterSink writes unusable records to <topic>.DLT.
type DeadLetterSink interface {
	DeadLetter(ctx context.Context, ds []DeadLetter) error
}

// KafkaSinks writes alerts to the alerts topic (key shop_id) and dead letters
// to each input topic's .DLT topic, with the contract's headers.
type KafkaSinks struct {
	AlertsTopic string
	w           *kafka.Writer
}

// NewKafkaSinks builds the writer shared by every partition worker. Writes
// from many workers are batched together; a write returns once the broker
// has acknowledged it.
func NewKafkaSinks(brokers []string, alertsTopic string) *KafkaSinks {
	return &KafkaSinks{
		AlertsTopic: alertsTopic,
		w: &kafka.Writer{
			Addr:                   kafka.TCP(brokers...),
			Balancer:               &kafka.Hash{},
			BatchTimeout:           2 * time.Millisecond,
			BatchSize:              1000,
			RequiredAcks:           kafka.RequireAll,
			AllowAutoTopicCreation: true,
			WriteTimeout:           10 * time.Second,
			MaxAttempts:            5,
		},
	}
}

// UseTransport has the writer reach the brokers through t (TLS, SASL);
// call it before the first write.
func (k *KafkaSinks) UseTransport(t kafka.RoundTripper) { k.w.Transport = t }

// Close flushes and closes the writer.
func (k *KafkaSinks) Close() error { return k.w.Close() }

type alertKey struct {
	ShopID string `json:"shop_id"`
}

// Deliver writes the records to the alerts topic, keyed by shop_id.
func (k *KafkaSinks) Deliver(ctx context.Context, ds []state.Delivery) error {
	msgs := make([]kafka.Message, len(ds))
	for i, d := range ds {
		var a alertKey
		if err := json.Unmarshal(d.Payload, &a); err != nil {
			return fmt.Errorf("decoding outbox record %s: %w", d.Key, err)
		}
		msgs[i] = kafka.Message{Topic: k.AlertsTopic, Key: []byte(a.ShopID), Value: d.Payload}
	}
	if err := k.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("writing %d alerts to %s: %w", len(msgs), k.AlertsTopic, err)
	}
	return nil
}

// Bounds of a dead letter's key and value: well within the writer's batch
// limit and a broker's default max.message.bytes (1 MiB), so an oversize
// record can always be dead-lettered. What is longer is cut, and the
// dead letter says so.
const (
	MaxDeadLetterValue = 256 << 10
	MaxDeadLetterKey   = 4 << 10
)

// DeadLetter writes the records to their topics' .DLT topics, keeping the
// original key and value up to MaxDeadLetterKey and MaxDeadLetterValue. A
// record cut to fit carries rw-truncated (what was cut: key, value or
// key,value) and rw-original-size (the value's length in bytes).
func (k *KafkaSinks) DeadLetter(ctx context.Context, ds []DeadLetter) error {
	msgs := make([]kafka.Message, len(ds))
	for i, d := range ds {
		msgs[i] = deadLetterMessage(d)
	}
	if err := k.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("writing %d dead letters: %w", len(msgs), err)
	}
	return nil
}

// deadLetterMessage is the record written for d to its topic's .DLT topic.
func deadLetterMessage(d DeadLetter) kafka.Message {
	m := kafka.Message{
		Topic: d.Topic + ".DLT",
		Key:   d.Key,
		Value: d.Value,
		Headers: []kafka.Header{
			{Key: "rw-error", Value: []byte(d.Reason + ": " + d.Detail)},
			{Key: "rw-topic", Value: []byte(d.Topic)},
			{Key: "rw-partition", Value: []byte(strconv.Itoa(d.Partition))},
			{Key: "rw-offset", Value: []byte(strconv.FormatInt(d.Offset, 10))},
		},
	}
	var cut []string
	if len(m.Key) > MaxDeadLetterKey {
		m.Key = m.Key[:MaxDeadLetterKey]
		cut = append(cut, "key")
	}
	if len(m.Value) > MaxDeadLetterValue {
		m.Value = m.Value[:MaxDeadLetterValue]
		cut = append(cut, "value")
	}
	if len(cut) > 0 {
		m.Headers = append(m.Headers,
			kafka.Header{Key: "rw-truncated", Value: []byte(strings.Join(cut, ","))},
			kafka.Header{Key: "rw-original-size", Value: []byte(strconv.Itoa(len(d.Value)))})
	}
	return m
}
