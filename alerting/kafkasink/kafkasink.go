// Package kafkasink owns the writes of alert records to the alerts topic
// and of unusable input records to their topics' dead-letter (.DLT) topics,
// with the contract's keys and headers, over one kafka-go writer shared by
// every partition. It knows alert records only as their key and JSON.
package kafkasink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/internal/jsonscan"
)

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

// Sinks writes alerts to the alerts topic (key shop_id) and dead letters
// to each input topic's .DLT topic, with the contract's headers.
type Sinks struct {
	AlertsTopic string
	w           *kafka.Writer
}

// New builds the writer shared by every partition worker. Writes
// from many workers are batched together; a write returns once the broker
// has acknowledged it.
func New(brokers []string, alertsTopic string) *Sinks {
	return &Sinks{
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
func (k *Sinks) UseTransport(t kafka.RoundTripper) { k.w.Transport = t }

// Close flushes and closes the writer.
func (k *Sinks) Close() error { return k.w.Close() }

type alertKey struct {
	ShopID string `json:"shop_id"`
}

// shopOf reads a record's shop_id, the alerts topic's key: the strict
// scanner for the records replywatch writes, encoding/json for anything
// it does not take (escapes, say).
func shopOf(payload []byte) ([]byte, error) {
	var shop []byte
	sc := jsonscan.New(payload)
	ok := sc.Object(func(name []byte) bool {
		if string(name) == "shop_id" {
			v, ok := sc.Raw()
			shop = v
			return ok
		}
		return sc.Skip()
	})
	if ok && shop != nil {
		return shop, nil
	}
	var a alertKey
	if err := json.Unmarshal(payload, &a); err != nil {
		return nil, err
	}
	return []byte(a.ShopID), nil
}

// Deliver writes the records to the alerts topic, keyed by shop_id.
func (k *Sinks) Deliver(ctx context.Context, ds []alerting.Delivery) error {
	msgs := make([]kafka.Message, len(ds))
	for i, d := range ds {
		shop, err := shopOf(d.Payload)
		if err != nil {
			return fmt.Errorf("decoding outbox record %s: %w", d.Key, err)
		}
		msgs[i] = kafka.Message{Topic: k.AlertsTopic, Key: shop, Value: d.Payload}
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
func (k *Sinks) DeadLetter(ctx context.Context, ds []DeadLetter) error {
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

// Permanent says whether a write failed for a reason that trying again does
// not cure: a record too large for the writer or the broker, or one the
// broker rejects as invalid.
func Permanent(err error) bool {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		n := 0
		for _, e := range we {
			if e == nil {
				continue
			}
			if !Permanent(e) {
				return false
			}
			n++
		}
		return n > 0
	}
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.InvalidMessage) ||
		errors.Is(err, kafka.RecordListTooLarge) || errors.Is(err, kafka.InvalidRecord)
}
