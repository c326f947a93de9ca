package pipeline

import (
	"context"
	"time"

	"github.com/replywatch/replywatch/state"
)

// readAhead is what the store read for the following batch in the write of
// the one before it: the states of its entities missing from the cache
// (absent when the store had none) and the due timers.
type readAhead struct {
	keys   map[string]bool   // asked for
	states map[string][]byte // found
	due    []string
	dueAt  []int64
	dueBy  int64
	limit  int
}

func newReadAhead(req *state.LoadRequest, applied state.Applied) *readAhead {
	keys := make(map[string]bool, len(req.Keys))
	for _, k := range req.Keys {
		keys[k] = true
	}
	return &readAhead{keys: keys, states: applied.Loaded.States, due: applied.Loaded.Due,
		dueAt: applied.DueAt, dueBy: req.DueBy, limit: req.Limit}
}

// dueFor returns the timers due at or before t, at most limit, as Load would
// return them now, if the read ahead tells; ok is false when it does not.
func (r *readAhead) dueFor(t int64, limit int) (keys []string, ok bool) {
	switch {
	case limit != r.limit:
		return nil, false
	case t <= r.dueBy:
		// Earliest first: the ones due by t are a prefix.
		n := 0
		for n < len(r.due) && r.dueAt[n] <= t {
			n++
		}
		return r.due[:n], true
	case len(r.due) >= limit:
		// The first limit timers, due before t as well.
		return r.due, true
	}
	return nil, false
}

// readAhead takes the records the reader already holds, up to a batch, as
// the following batch; when it holds none, it waits up to wait for the
// first. They are decoded past offset applied on another goroutine, on
// the other core while this batch's step runs: awaitNext waits for it.
// Their clock observations wait until the batch is processed.
func (w *worker) readAhead(ctx context.Context, applied int64, wall time.Time, wait time.Duration) {
	w.awaitNext()
	if w.reader == nil || w.handler == nil {
		return
	}
	f := &w.next
	f.reset()
	n := min(int(w.reader.Stats().QueueLength), w.p.cfg.BatchSize)
	if n == 0 && wait > 0 {
		first, cancel := context.WithTimeout(ctx, wait)
		msg, err := w.reader.FetchMessage(first)
		cancel()
		if err != nil {
			return
		}
		f.msgs = append(f.msgs, msg)
		if msg.Offset+1 < msg.HighWaterMark {
			n = min(int(w.reader.Stats().QueueLength), w.p.cfg.BatchSize-1)
		}
	}
	if n == 0 && len(f.msgs) == 0 {
		return
	}
	// Queued records come at once; the deadline only bounds the unexpected.
	ctx, cancel := context.WithTimeout(ctx, w.p.cfg.BatchWait)
	defer cancel()
	for range n {
		// An error ends the batch, as in fetch.
		msg, err := w.reader.FetchMessage(ctx)
		if err != nil {
			break
		}
		f.msgs = append(f.msgs, msg)
		if msg.Offset+1 >= msg.HighWaterMark {
			break // caught up: the batch ends here, as in fetch
		}
	}
	done := make(chan struct{})
	w.decoding = done
	go func() {
		defer close(done)
		w.decode(f, applied, wall)
	}()
}

// awaitNext waits until the following batch is decoded: nothing may touch
// w.next while it is.
func (w *worker) awaitNext() {
	if w.decoding != nil {
		<-w.decoding
		w.decoding = nil
	}
}

// request is what the following batch will need from the store, given the
// cache after this batch's step: its entities not cached and the timers
// that can be due when it is processed (its clock cannot pass the largest
// event time it holds while it is behind; when it catches up, the wall
// clock a tick from now). Nil without a following batch.
func (w *worker) request(wall time.Time) *state.LoadRequest {
	w.awaitNext()
	f := &w.next
	if w.handler == nil || len(f.msgs) == 0 {
		return nil
	}
	req := &state.LoadRequest{Limit: w.p.cfg.TimerBatch, Keys: w.step.Uncached(f.recs, nil)}
	c := w.clock
	for _, r := range f.recs {
		c.Observe(r.Event.TS.Time)
	}
	lastMsg := f.msgs[len(f.msgs)-1]
	req.DueBy = c.Advance(lastMsg.Offset+1 < lastMsg.HighWaterMark, wall.Add(w.p.cfg.Tick)).UnixMilli() - 1
	return req
}
