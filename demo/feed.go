package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

// feeder runs the simulator into Kafka: the day so far at once, then the
// urgent buyers, then live traffic as its time comes.
type feeder struct {
	opts   sim.Options
	topics map[event.Stream]string
	urgent int
	v      *view
}

func (f *feeder) run(ctx context.Context, w *kafka.Writer) error {
	p := sim.NewProducer(ctx, w, f.topics)
	t0 := time.Now()
	history := true
	err := LiveProduce(ctx, f.opts, p, nil, func() error {
		n := p.Produced()
		now := time.Now()
		urgent := sim.Urgent(f.opts, now, f.urgent)
		for _, r := range urgent {
			if err := p.Emit(r); err != nil {
				return err
			}
		}
		if err := p.Flush(); err != nil {
			return err
		}
		history = false
		f.v.historyWritten(n)
		f.v.say("simulator: wrote the day so far (%s–%s, %s events) in %s; %d buyers left unanswered fall due in the next 15 s; live traffic follows",
			f.opts.Start.In(f.opts.Location).Format("15:04"), now.In(f.opts.Location).Format("15:04"),
			count(float64(n)), time.Since(t0).Round(10*time.Millisecond), len(urgent))
		return nil
	})
	if err != nil && ctx.Err() == nil {
		what := "live traffic"
		if history {
			what = "the day so far"
		}
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("simulator writing %s: %w (on an external Kafka, create the topics first)", what, err)
		}
		return fmt.Errorf("simulator writing %s: %w", what, err)
	}
	return nil
}

// LiveProduce runs the simulator live into p from opts.Start: records
// whose time has passed go out at once in large batches, later ones one by
// one when their time comes (p writes whatever it holds whenever the
// simulation waits for the clock). onRecord, when not nil, sees each record
// handed to p; caughtUp, when not nil, runs once when the past is written,
// before the first wait. It returns nil when ctx ends, and at opts.End once
// everything is written.
func LiveProduce(ctx context.Context, opts sim.Options, p *sim.Producer, onRecord func(sim.Record), caughtUp func() error) error {
	var failed error
	sleep := func(ctx context.Context, d time.Duration) error {
		if err := p.Flush(); err != nil {
			failed = err
			return err
		}
		if caughtUp != nil {
			fn := caughtUp
			caughtUp = nil
			if err := fn(); err != nil {
				failed = err
				return err
			}
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	emit := p.Emit
	if onRecord != nil {
		emit = func(r sim.Record) error {
			onRecord(r)
			return p.Emit(r)
		}
	}
	err := sim.LiveClock(ctx, opts, time.Now, sleep, emit)
	if failed != nil {
		return failed
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	// The end was reached: write what is held.
	return p.Flush()
}
