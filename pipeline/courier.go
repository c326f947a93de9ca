package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/state"
)

// delivery is a batch's outbox records on their way to the alert sink, or
// records of the outbox sent again (alerts nil).
type delivery struct {
	ds []state.Delivery
	// entries are the outbox entries that hold ds, acknowledged once the
	// sink has accepted all of ds.
	entries []string
	alerts  []alerting.Alert
	// liveFrom is the worker's, when the batch was written.
	liveFrom time.Time
}

// courierQueue bounds the batches of alerts waiting for the sink: a
// partition whose sink falls this far behind waits for it.
const courierQueue = 8

// courierDrain bounds how long a stopping partition waits for the alerts
// still queued: what is not delivered by then stays in the outbox, and the
// partition's next owner sends it with the same ids.
const courierDrain = 5 * time.Second

// courier delivers a partition's alerts off the worker's path: the
// worker writes a batch (its alerts in the outbox with it) and goes on to
// the next while the courier hands the alerts to the sink, in the order
// they were written. A batch's alerts are one outbox entry: once the sink
// accepted them all, the worker's next write acks it; what the sink refused
// stays leased in the outbox and is sent again by the sweep, with the same
// ids. Without start, send delivers at once (the
// replay does).
type courier struct {
	deliver func(ctx context.Context, d delivery) bool
	jobs    chan delivery
	done    chan struct{}
	cancel  context.CancelFunc

	mu   sync.Mutex
	acks []string
}

// start runs the courier until stop, delivering with ctx.
func (c *courier) start(ctx context.Context) {
	c.jobs = make(chan delivery, courierQueue)
	c.done = make(chan struct{})
	ctx, c.cancel = context.WithCancel(ctx)
	go func() {
		defer close(c.done)
		for d := range c.jobs {
			c.run(ctx, d)
		}
	}()
}

// stop waits for the deliveries already sent, at most courierDrain.
func (c *courier) stop() {
	if c.jobs == nil {
		return
	}
	close(c.jobs)
	t := time.NewTimer(courierDrain)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.cancel()
		<-c.done
	}
	c.cancel()
	c.jobs = nil
}

// send queues d, waiting while the queue is full; without start it
// delivers d at once.
func (c *courier) send(ctx context.Context, d delivery) {
	if c.jobs == nil {
		c.run(ctx, d)
		return
	}
	select {
	case c.jobs <- d:
	case <-ctx.Done():
	}
}

func (c *courier) run(ctx context.Context, d delivery) {
	if !c.deliver(ctx, d) {
		return
	}
	c.mu.Lock()
	c.acks = append(c.acks, d.entries...)
	c.mu.Unlock()
}

// take returns the outbox entries delivered since the last take.
func (c *courier) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	acks := c.acks
	c.acks = nil
	return acks
}

// deliver hands d's records to the sink and reports whether it accepted
// them all; for a batch's alerts it counts them, measures how late their
// timers fired, and shows them to OnAlert.
func (w *worker) deliver(ctx context.Context, d delivery) bool {
	p := w.p
	if err := p.alerts.Deliver(ctx, d.ds); err != nil {
		p.metrics.AlertDeliveries.WithLabelValues("kafka", "error").Add(float64(len(d.ds)))
		if !errors.Is(err, context.Canceled) {
			w.log.Warn("alerts not delivered; they stay in the outbox and are sent again", zap.Error(err), zap.Int("alerts", len(d.ds)))
		}
		return false
	}
	p.metrics.AlertDeliveries.WithLabelValues("kafka", "ok").Add(float64(len(d.ds)))
	emitted := p.now()
	for i := range d.alerts {
		a := &d.alerts[i]
		p.metrics.Alerts.WithLabelValues(a.Kind, a.Status).Inc()
		// A firing alert's At is when its timer was due (a warning's Due
		// is the deadline it warns of).
		if a.Status == alerting.Firing && !a.At.IsZero() {
			mode := metrics.FireCatchup
			if !d.liveFrom.IsZero() && !a.At.Before(d.liveFrom) {
				mode = metrics.FireLive
			}
			p.metrics.TimerFireDelay.WithLabelValues(mode).Observe(emitted.Sub(a.At).Seconds())
		}
		if p.onAlert != nil {
			p.onAlert(*a)
		}
	}
	return true
}

// sweepEntries bounds the outbox entries (batches of alerts) one sweep
// read hands out.
const sweepEntries = 64

// sweep sends again the outbox entries whose lease ended by upTo (Unix ms),
// through the courier, their records with the ids they had.
func (w *worker) sweep(ctx context.Context, upTo int64) {
	w.lastSweep = time.Now()
	for ctx.Err() == nil {
		w.p.metrics.RedisRoundTrips.WithLabelValues("outbox", w.topic).Inc()
		es, err := w.p.store.Outbox(ctx, w.scope, w.token, upTo, w.p.cfg.OutboxLease, sweepEntries)
		if errors.Is(err, state.ErrLost) {
			w.lost = true
			return
		}
		if errors.Is(err, state.ErrOutboxEntry) {
			// The others are delivered; the unreadable ones stay leased
			// and are reported again when their lease ends.
			w.p.metrics.RedisErrors.WithLabelValues("outbox").Inc()
			w.log.Error("alert outbox entries cannot be read; they stay in the outbox", zap.Error(err))
		} else if err != nil {
			if !errors.Is(err, context.Canceled) {
				w.p.metrics.RedisErrors.WithLabelValues("outbox").Inc()
				w.log.Warn("reading the alert outbox failed", zap.Error(err))
			}
			return
		}
		if len(es) == 0 {
			return
		}
		d := delivery{entries: make([]string, len(es))}
		for i, e := range es {
			d.entries[i] = e.Key
			d.ds = append(d.ds, e.Records...)
		}
		w.p.metrics.OutboxRedelivery.Add(float64(len(d.ds)))
		w.courier.send(ctx, d)
		if len(es) < sweepEntries {
			return
		}
	}
}

func (w *worker) maybeSweep(ctx context.Context) {
	if time.Since(w.lastSweep) >= w.p.cfg.OutboxLease/2 {
		w.sweep(ctx, w.p.now().UnixMilli())
	}
}
