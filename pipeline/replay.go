package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// Replayer runs the pipeline's own batch step over recorded events with no
// Kafka: one partition per stream, state in the given store (state.Memory
// for offline replay), alerts and dead letters kept in memory. The partition
// clock follows event time while records remain, then stands at the
// replay's wall clock, exactly as a live partition that caught up would.
type Replayer struct {
	p       *Processor
	at      time.Time
	workers map[event.Stream]*worker
	log     *replayLog
}

// replayLog collects what a replay delivers.
type replayLog struct {
	alerts []alerting.Alert
	dead   []DeadLetter
}

func (l *replayLog) Deliver(_ context.Context, ds []alerting.Delivery) error {
	for _, d := range ds {
		var a alerting.Alert
		if err := a.UnmarshalJSON(d.Payload); err != nil {
			return fmt.Errorf("decoding alert %s: %w", d.Key, err)
		}
		l.alerts = append(l.alerts, a)
	}
	return nil
}

func (l *replayLog) DeadLetter(_ context.Context, ds []DeadLetter) error {
	l.dead = append(l.dead, ds...)
	return nil
}

// NewReplayer prepares a replay whose wall clock is at. Options.Alerts,
// DLT and Now are set by the replayer.
func NewReplayer(ctx context.Context, o Options, at time.Time) (*Replayer, error) {
	l := &replayLog{}
	o.Alerts, o.DLT = l, l
	o.Now = func() time.Time { return at }
	p := New(o)
	// The buyers records follow their chat and order records at once.
	p.stage = nil
	r := &Replayer{p: p, at: at, workers: map[event.Stream]*worker{}, log: l}
	for stream, topic := range p.cfg.Topics {
		w := p.newWorker(nil, topic, stream, 0, 1)
		if _, err := p.store.Claim(ctx, w.scope, w.token); err != nil {
			return nil, fmt.Errorf("claiming %s: %w", w.scope, err)
		}
		w.behind = true
		r.workers[stream] = w
	}
	return r, nil
}

// Add queues one record of stream (value is copied: callers may reuse it);
// a full batch is processed at once.
func (r *Replayer) Add(ctx context.Context, stream event.Stream, key string, value []byte) error {
	w, ok := r.workers[stream]
	if !ok {
		return fmt.Errorf("no topic configured for stream %q", stream)
	}
	off := w.applied + 1 + int64(len(w.cur.msgs))
	// A high-water mark past the record: more is coming, the clock follows event time.
	w.cur.msgs = append(w.cur.msgs, kafka.Message{Topic: w.topic, Offset: off, HighWaterMark: off + 2, Key: []byte(key), Value: append([]byte(nil), value...), Time: r.at})
	if len(w.cur.msgs) >= r.p.cfg.BatchSize {
		return r.flush(ctx, w)
	}
	return nil
}

func (r *Replayer) flush(ctx context.Context, w *worker) error {
	err := w.process(ctx)
	w.cur.reset()
	return err
}

// Flush processes the records queued so far on every stream, so that the
// store's figures include every record added.
func (r *Replayer) Flush(ctx context.Context) error {
	for _, w := range r.workers {
		if len(w.cur.msgs) > 0 {
			if err := r.flush(ctx, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// Finish processes what is queued, then lets every partition catch up to the
// replay's wall clock and fire what is due by then.
func (r *Replayer) Finish(ctx context.Context) error {
	for _, w := range r.workers {
		if err := r.flush(ctx, w); err != nil {
			return err
		}
		w.behind = false
		for i := 0; ; i++ {
			if err := w.process(ctx); err != nil {
				return err
			}
			if w.nextDue == 0 || w.nextDue >= w.clock.Now().UnixMilli() || i > 1_000_000 {
				break
			}
		}
		// Acknowledge the last deliveries so the outbox is left empty.
		if w.acks = append(w.acks, w.courier.take()...); len(w.acks) > 0 {
			if err := w.process(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// Alerts are the alert records the replay produced, in order.
func (r *Replayer) Alerts() []alerting.Alert { return r.log.alerts }

// DeadLetters are the records the replay could not use.
func (r *Replayer) DeadLetters() []DeadLetter { return r.log.dead }
