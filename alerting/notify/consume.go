package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
)

// partition tracks the records read from one assigned partition until
// each is settled (every item sent and marked, a duplicate, or
// inhibited): the committed offset is the first record not settled.
type partition struct {
	topic   string
	id      int
	revoked atomic.Bool
	busy    atomic.Int64 // items taken by senders, not yet settled

	mu      sync.Mutex
	queue   []*record // unsettled records and settled ones behind them, in offset order
	next    int64     // offset after the last record read
	pending int
}

// record is one Kafka record and how many of its items are unsettled.
type record struct {
	part      *partition
	offset    int64
	remaining atomic.Int32
}

func (r *record) settle() {
	if r == nil {
		return
	}
	if r.remaining.Add(-1) == 0 {
		r.part.mu.Lock()
		r.part.pending--
		r.part.mu.Unlock()
	}
}

func (r *record) inflight(d int64) {
	if r != nil {
		r.part.busy.Add(d)
	}
}

// commitPoint is the offset to commit: the first record not settled.
func (p *partition) commitPoint() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := 0
	for i < len(p.queue) && p.queue[i].remaining.Load() <= 0 {
		i++
	}
	p.queue = p.queue[i:]
	if len(p.queue) > 0 {
		return p.queue[0].offset
	}
	return p.next
}

func (p *partition) push(r *record, items int) {
	r.remaining.Store(int32(items))
	p.mu.Lock()
	p.queue = append(p.queue, r)
	p.next = r.offset + 1
	if items > 0 {
		p.pending++
	}
	p.mu.Unlock()
}

func (p *partition) unsettled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

// consume joins the consumer group and reads each assigned partition
// until ctx ends.
func (n *Notifier) consume(ctx context.Context) error {
	start := kafka.FirstOffset
	if n.o.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                n.o.GroupID,
		Brokers:           n.o.Brokers,
		Dialer:            n.o.Dialer,
		Topics:            []string{n.o.Topic},
		StartOffset:       start,
		SessionTimeout:    n.o.SessionTimeout,
		RebalanceTimeout:  n.o.RebalanceTimeout,
		HeartbeatInterval: n.o.SessionTimeout / 5,
		JoinGroupBackoff:  time.Second,
		Logger:            kafkaLogger(n.o.Log.Debug),
		ErrorLogger:       kafkaLogger(n.o.Log.Warn),
	})
	if err != nil {
		return fmt.Errorf("creating consumer group %s: %w", n.o.GroupID, err)
	}
	defer group.Close()
	go func() {
		<-ctx.Done()
		_ = group.Close()
	}()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			n.joined.Store(false)
			if errors.Is(err, kafka.ErrGroupClosed) || ctx.Err() != nil {
				return nil
			}
			n.o.Log.Warn("joining the notify consumer group failed; retrying", zap.Error(err))
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		n.joined.Store(true)
		n.o.Log.Info("notifier joined group generation", zap.Int32("generation", gen.ID))
		for _, a := range gen.Assignments[n.o.Topic] {
			p := &partition{topic: n.o.Topic, id: a.ID}
			offset := a.Offset
			gen.Start(func(ctx context.Context) { n.read(ctx, gen, p, offset) })
		}
	}
}

// read consumes one partition: batches of records are decoded, routed,
// checked against the marks in one round trip and queued; the first
// unsettled offset is committed as records settle.
func (n *Notifier) read(ctx context.Context, gen *kafka.Generation, p *partition, offset int64) {
	log := n.o.Log.With(zap.String("topic", p.topic), zap.Int("partition", p.id))
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     n.o.Brokers,
		Dialer:      n.o.Dialer,
		Topic:       p.topic,
		Partition:   p.id,
		MinBytes:    1,
		MaxBytes:    16 << 20,
		MaxWait:     250 * time.Millisecond,
		Logger:      kafkaLogger(log.Debug),
		ErrorLogger: kafkaLogger(log.Warn),
	})
	defer r.Close()
	if offset < 0 && n.o.StartOffset == "latest" {
		offset = kafka.LastOffset
	} else if offset < 0 {
		offset = kafka.FirstOffset
	}
	if err := r.SetOffset(offset); err != nil {
		log.Error("cannot start reading the partition", zap.Error(err))
		return
	}
	committed := int64(-1)
	commit := func() {
		at := p.commitPoint()
		if at <= committed || at <= 0 {
			return
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{p.topic: {p.id: at}}); err != nil {
			if ctx.Err() == nil {
				log.Warn("offset commit failed; retried with the next", zap.Error(err))
			}
			return
		}
		committed = at
	}
	defer func() {
		// The partition is someone else's now: what is queued here is
		// dropped (it was not committed, the new owner reads it), and
		// sends under way finish and mark before this returns.
		p.revoked.Store(true)
		deadline := time.Now().Add(8 * time.Second) // within the 10 s a SIGTERM allows
		for p.busy.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		commit()
	}()
	lastCommit := time.Now()
	var msgs []kafka.Message
	for ctx.Err() == nil {
		if p.unsettled() >= n.o.MaxPending {
			sleep(ctx, n.o.Tick)
			commit()
			continue
		}
		msgs = n.fetch(ctx, r, msgs[:0])
		if len(msgs) > 0 {
			n.handle(ctx, p, msgs, log)
		}
		if time.Since(lastCommit) >= n.o.CommitInterval {
			commit()
			lastCommit = time.Now()
		}
	}
}

// fetch reads up to BatchSize records, waiting at most Tick for the first
// and a few milliseconds for each further one.
func (n *Notifier) fetch(ctx context.Context, r *kafka.Reader, msgs []kafka.Message) []kafka.Message {
	first, cancel := context.WithTimeout(ctx, n.o.Tick)
	m, err := r.FetchMessage(first)
	cancel()
	if err != nil {
		return msgs
	}
	msgs = append(msgs, m)
	for len(msgs) < n.o.BatchSize && m.Offset+1 < m.HighWaterMark {
		more, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		m, err = r.FetchMessage(more)
		cancel()
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// handle decodes, routes and deduplicates a batch and queues what is left.
func (n *Notifier) handle(ctx context.Context, p *partition, msgs []kafka.Message, log *zap.Logger) {
	var items []*Item
	for _, m := range msgs {
		rec := &record{part: p, offset: m.Offset}
		var a alerting.Alert
		// UnmarshalJSON itself: json.Unmarshal would scan the record once
		// more to validate it first, and the errors are the same.
		if err := a.UnmarshalJSON(m.Value); err != nil || a.ID == "" || (a.Status != alerting.Firing && a.Status != alerting.Resolved) {
			if err == nil {
				err = errors.New("not an alert record (alert_id or status missing)")
			}
			n.o.Metrics.Records.WithLabelValues("invalid").Inc()
			if n.badLog.Allow() {
				log.Warn("alert record cannot be read; skipped", zap.Int64("offset", m.Offset), zap.Error(err))
			}
			p.push(rec, 0)
			continue
		}
		its := n.route(a, rec)
		if len(its) == 0 {
			n.o.Metrics.Records.WithLabelValues("unrouted").Inc()
		} else {
			n.o.Metrics.Records.WithLabelValues("routed").Inc()
		}
		p.push(rec, len(its))
		items = append(items, its...)
	}
	if len(items) == 0 {
		return
	}
	var seen []bool
	for attempt := 0; ; attempt++ {
		var err error
		if seen, err = n.o.Marks.Seen(ctx, items); err == nil {
			break
		}
		if attempt%10 == 0 && ctx.Err() == nil {
			log.Warn("cannot read delivery marks; retrying", zap.Error(err))
		}
		if !sleep(ctx, time.Second) {
			return // not settled, not committed: read again by the next owner
		}
	}
	fresh := items[:0]
	for i, it := range items {
		if seen[i] {
			n.o.Metrics.Deliveries.WithLabelValues(it.Receiver, resultDuplicate).Inc()
			it.rec.settle()
			continue
		}
		fresh = append(fresh, it)
	}
	n.add(fresh)
}

func kafkaLogger(f func(string, ...zap.Field)) kafka.LoggerFunc {
	return func(msg string, args ...any) { f(fmt.Sprintf(msg, args...), zap.String("component", "kafka")) }
}
