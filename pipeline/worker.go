package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/state"
)

// worker owns one input partition for one consumer group generation: it
// fetches batches and reads the next one ahead, runs the batch step over
// each, writes the step's changes to the store in one atomic step, hands
// the batch's alerts to its courier and commits offsets.
type worker struct {
	p         *Processor
	gen       *kafka.Generation
	topic     string
	stream    event.Stream
	partition int
	scope     string
	token     int64
	handler   Handler
	step      *Step
	courier   *courier
	log       *zap.Logger
	partLabel string

	reader     *kafka.Reader
	applied    int64 // last offset whose effects are in the store
	committed  int64 // last offset committed to Kafka (+1 semantics handled at commit)
	lastCommit time.Time
	clock      Clock
	behind     bool
	// liveFrom is the partition time at which the clock first followed the
	// wall clock after the claim (zero until then): timers due before it
	// fire in catch-up, the rest live.
	liveFrom time.Time
	nextDue  int64
	// lastRecord is when records last arrived and lastAsked when the broker
	// was last asked for the high-water mark (monotonic clock).
	lastRecord time.Time
	lastAsked  time.Time
	// lastWrite is when the store last took a write of this partition
	// (monotonic clock).
	lastWrite time.Time
	// replayUntil is the last offset read before the partition's state was
	// found lost (-1 when not rebuilding): alerts up to it are a replay.
	replayUntil int64
	// lost says the outbox sweep found the partition's state lost.
	lost bool
	// read says records were fetched since the partition was claimed.
	read bool
	// acks are outbox records the sink accepted, removed by the next write.
	acks      []string
	lastSweep time.Time

	// cur is the batch in hand; next the one read ahead while cur was
	// written, and ahead what that write read for it.
	cur   records
	next  records
	ahead *readAhead
	// decoding is closed once next is decoded (nil when it is).
	decoding chan struct{}
}

// records is a fetched batch and, once decoded, its records and dead
// letters.
type records struct {
	msgs []kafka.Message
	recs []Record
	dead []DeadLetter
	// events hold the records' events, kept from batch to batch (nothing
	// holds an event past its batch's step).
	events  []event.Event
	last    int64 // last offset past the applied one, -1 if none
	decoded bool
}

func (r *records) reset() {
	r.msgs, r.recs, r.dead = r.msgs[:0], r.recs[:0], r.dead[:0]
	r.last, r.decoded = -1, false
}

func (w *worker) run(ctx context.Context, assigned int64, done func()) {
	doneOnce := sync.OnceFunc(done)
	defer doneOnce()
	defer w.observeOwned()()

	// Stop fetching when the processor shuts down, but finish the batch in
	// hand with the generation's context.
	fetchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.p.stopping:
			cancel()
		case <-fetchCtx.Done():
		}
	}()

	w.courier.start(ctx)
	if err := w.start(fetchCtx, assigned); err != nil {
		w.courier.stop()
		if !errors.Is(err, context.Canceled) && !errors.Is(err, kafka.ErrGenerationEnded) {
			w.log.Warn("partition not started", zap.Error(err))
		}
		doneOnce()
		<-ctx.Done() // returning would end the generation for every worker
		return
	}
	defer w.reader.Close()

	for fetchCtx.Err() == nil {
		w.fetch(fetchCtx)
		if !w.recover(ctx, fetchCtx, w.process(ctx)) {
			break
		}
		w.maybeCommit(ctx, false)
		w.maybeSweep(ctx)
	}
	// The alerts in flight are sent before the partition is let go.
	w.courier.stop()
	if ctx.Err() == nil {
		w.maybeCommit(ctx, true)
	}
	doneOnce()
	<-ctx.Done() // returning would end the generation for every worker
}

// observeOwned counts the partition as owned and behind until start knows
// better; the returned func undoes it all.
func (w *worker) observeOwned() func() {
	m := w.p.metrics
	m.OwnedPartitions.WithLabelValues(w.topic).Inc()
	w.p.setBehind(w.scope, true, false)
	return func() {
		m.ConsumerLag.DeleteLabelValues(w.topic, w.partLabel)
		m.WatermarkLag.DeleteLabelValues(w.topic, w.partLabel)
		m.TimersFired.DeleteLabelValues(w.topic, w.partLabel)
		w.p.setBehind(w.scope, false, true)
		m.OwnedPartitions.WithLabelValues(w.topic).Dec()
	}
}

// recover handles what a batch's processing returned: a lost or older
// state is read again from Kafka, other failures are logged and the batch
// tried again. It returns false when the worker must stop.
func (w *worker) recover(ctx, fetchCtx context.Context, err error) bool {
	var behind *state.BehindError
	switch {
	case errors.Is(err, state.ErrLost) || w.lost:
		err = w.rebuild(fetchCtx)
	case errors.As(err, &behind):
		err = w.readGap(behind.Stored)
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, state.ErrFenced):
		w.log.Warn("partition taken over by a newer consumer; this replica stops writing it")
		return false
	case ctx.Err() != nil:
		return false
	}
	w.log.Error("batch failed; retrying", zap.Error(err))
	return true
}

// start claims the partition in the store and positions the reader.
func (w *worker) start(ctx context.Context, assigned int64) error {
	claimed, err := w.claim(ctx)
	if err != nil {
		return err
	}
	w.applied = claimed.Offset
	w.nextDue = claimed.NextDue
	w.replayUntil = -1
	start, lost := w.startOffset(assigned, claimed.Offset)
	w.committed = start
	w.behind = w.startsBehind(ctx, start, assigned)
	w.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers:       w.p.cfg.Brokers,
		Dialer:        w.p.cfg.Dialer,
		Topic:         w.topic,
		Partition:     w.partition,
		MinBytes:      1,
		MaxBytes:      16 << 20,
		MaxWait:       250 * time.Millisecond,
		QueueCapacity: 2 * w.p.cfg.BatchSize,
		Logger:        kafkaLogger(w.log.Debug),
		ErrorLogger:   kafkaLogger(w.log.Warn),
	})
	if err := w.reader.SetOffset(start); err != nil {
		return err
	}
	if lost {
		if err := w.seekRebuild(ctx, assigned-1); err != nil {
			return err
		}
	}
	w.p.setBehind(w.scope, w.behind, false)
	w.log.Info("partition claimed", zap.Int64("token", w.token), zap.Int64("offset", start),
		zap.Int64("applied", claimed.Offset), zap.Bool("behind", w.behind))
	// Alerts the previous owner produced but did not see accepted: every
	// lease it could hold ends before now + lease, and each page read is
	// leased past that, so pages do not come back.
	w.sweep(ctx, w.p.now().Add(w.p.cfg.OutboxLease).UnixMilli())
	return nil
}

// claim makes this generation the partition's owner in the store,
// retrying until it can.
func (w *worker) claim(ctx context.Context) (state.Claimed, error) {
	var claimed state.Claimed
	var fencedSince time.Time
	err := retry(ctx, w.log, "claim", func() error {
		var err error
		w.p.metrics.RedisRoundTrips.WithLabelValues("claim", w.topic).Inc()
		claimed, err = w.p.store.Claim(ctx, w.scope, w.token)
		if !errors.Is(err, state.ErrFenced) {
			return err
		}
		// A newer generation owns the partition. If it is this group's, our
		// own generation ends within a heartbeat and ctx with it. If ours
		// lives on well past any rebalance, the stored token is from before
		// the group was recreated (generations restart at 1): take over.
		// Elapsed time is measured on the monotonic clock, not the
		// processing wall clock (which tests and replays set).
		if fencedSince.IsZero() {
			fencedSince = time.Now()
		}
		if time.Since(fencedSince) < w.p.takeoverAfter() {
			return err
		}
		w.log.Warn("partition owned by a higher generation that no member of this group holds: the group was recreated; taking the partition over",
			zap.Int64("token", w.token), zap.Error(err))
		claimed, err = w.p.store.Takeover(ctx, w.scope, w.token)
		return err
	})
	return claimed, err
}

// startOffset is where reading starts, given the group's committed offset
// (assigned, negative when none) and the store's applied one; lost says
// the store lost the partition's state.
func (w *worker) startOffset(assigned, applied int64) (start int64, lost bool) {
	switch {
	case assigned >= 0 && applied+1 > assigned:
		return applied + 1, false // the store is ahead of the last commit
	case assigned < 0 && applied >= 0:
		return applied + 1, false
	case assigned >= 0 && applied < 0:
		// The group committed offsets, so this partition's state was in
		// Redis once: Redis lost it (a restart without persistence).
		return assigned, true
	case assigned >= 0 && applied+1 < assigned:
		// Redis holds an older state (restored from an older snapshot): the
		// records since are read again.
		w.log.Warn("store is behind the committed offset: reading the gap again",
			zap.Int64("applied", applied), zap.Int64("committed", assigned))
		return applied + 1, false
	}
	return assigned, false
}

// startsBehind asks the broker whether records wait past start.
func (w *worker) startsBehind(ctx context.Context, start, assigned int64) bool {
	hwm, err := w.p.highWaterMark(ctx, w.topic, w.partition)
	w.lastRecord, w.lastAsked = time.Now(), time.Now()
	if err != nil {
		w.log.Warn("cannot read high-water mark; assuming behind until records arrive or the partition stays idle",
			zap.Error(err), zap.Duration("idle_after", w.p.cfg.IdleAfter))
		return true
	}
	return (start >= 0 && start < hwm) || (start < 0 && hwm > 0 && assigned == kafka.FirstOffset)
}

// fetch reads up to BatchSize records, waiting at most Tick for the first
// and BatchWait for the rest; a batch read ahead is taken as it is.
func (w *worker) fetch(ctx context.Context) {
	w.awaitNext()
	if len(w.next.msgs) > 0 {
		w.cur, w.next = w.next, w.cur
		w.next.reset()
		return
	}
	w.cur.reset()
	first, cancel := context.WithTimeout(ctx, w.p.cfg.Tick)
	msg, err := w.reader.FetchMessage(first)
	cancel()
	if err != nil {
		return
	}
	w.cur.msgs = append(w.cur.msgs, msg)
	rest, cancel := context.WithTimeout(ctx, w.p.cfg.BatchWait)
	defer cancel()
	for len(w.cur.msgs) < w.p.cfg.BatchSize {
		if msg.Offset+1 >= msg.HighWaterMark {
			break // caught up: don't sit on what we have
		}
		msg, err = w.reader.FetchMessage(rest)
		if err != nil {
			return
		}
		w.cur.msgs = append(w.cur.msgs, msg)
	}
}

// decode reads the records of r.msgs past offset applied into records and
// dead letters, and sets r.last.
func (w *worker) decode(r *records, applied int64, wall time.Time) {
	r.recs, r.dead, r.last, r.decoded = r.recs[:0], r.dead[:0], -1, true
	if len(r.events) < len(r.msgs) {
		r.events = make([]event.Event, len(r.msgs))
	}
	for i := range r.msgs {
		msg := &r.msgs[i]
		if msg.Offset <= applied {
			continue // delivered again from before a rebalance
		}
		r.last = msg.Offset
		ev := &r.events[i]
		err := w.decodeOne(ev, msg, wall)
		if err != nil {
			var de *event.Error
			errors.As(err, &de)
			r.dead = append(r.dead, DeadLetter{Topic: w.topic, Partition: w.partition, Offset: msg.Offset,
				Key: msg.Key, Value: msg.Value, Reason: de.Reason, Detail: de.Detail})
			continue
		}
		r.recs = append(r.recs, Record{Event: ev, Offset: msg.Offset, Key: ev.Key(w.stream)})
	}
}

// decodeOne decodes one record into ev; an error is an *event.Error.
func (w *worker) decodeOne(ev *event.Event, msg *kafka.Message, wall time.Time) error {
	ref := msg.Time
	if ref.IsZero() {
		ref = wall
	}
	if err := event.DecodeInto(ev, w.stream, msg.Value, ref); err != nil {
		return err
	}
	// Stale when older than the limit both before its record's time and
	// before the processing clock (a replayed day is judged by when it was
	// produced).
	if err := ev.CheckAge(minTime(ref, wall), w.p.cfg.MaxEventAge); err != nil {
		return err
	}
	return nil
}

// process runs the batch in hand (possibly empty) and the due timers
// through the step and writes the result.
func (w *worker) process(ctx context.Context) error {
	wall := w.p.now()
	cur := &w.cur
	if !cur.decoded {
		w.decode(cur, w.applied, wall)
	}
	// What the last write read for this batch serves its first attempt only.
	ahead := w.ahead
	w.ahead = nil
	now := w.observe(ctx, wall)
	if len(cur.dead) > 0 {
		if err := w.deadLetter(ctx); err != nil {
			return err
		}
	}
	w.acks = append(w.acks, w.courier.take()...)
	due := w.nextDue != 0 && w.nextDue < now.UnixMilli()
	// A partition with nothing to write still writes (nothing but the
	// script's checks) every IdleAfter once it has applied records: a
	// Redis that lost its last writes (a master killed before its replica
	// had them, a restart from an older snapshot) is found and the gap read
	// again without waiting for the partition's next record or timer.
	check := w.applied >= 0 && time.Since(w.lastWrite) >= w.p.cfg.IdleAfter
	if len(cur.recs) == 0 && cur.last < 0 && !due && len(w.acks) == 0 && !check {
		w.fired(now)
		return nil
	}
	if len(cur.msgs) > 0 {
		// While behind, the next records are usually queued already; if the
		// reader has not fetched them yet, or once caught up, they arrive
		// within milliseconds. Waiting up to BatchWait for them lets this
		// write read for them as well: one Redis round trip per batch
		// instead of a load and an apply.
		w.readAhead(ctx, max(w.applied, cur.last), wall, w.p.cfg.BatchWait)
	}
	err := retry(ctx, w.log, "applying batch", func() error {
		err := w.apply(ctx, now, wall, due, ahead)
		if err == nil || errors.Is(err, state.ErrFenced) || errors.Is(err, state.ErrLost) || errors.Is(err, state.ErrBehind) {
			return backoff.Permanent(err)
		}
		// The cached entities may hold this attempt's changes: forget them
		// and start again from what the store has. What was read ahead may
		// predate this attempt's writes, if Redis applied it after all.
		w.step.Cache.Purge()
		ahead = nil
		w.p.metrics.RedisErrors.WithLabelValues("apply").Inc()
		return err
	})
	if err != nil {
		return err
	}
	w.lastWrite = time.Now()
	w.advance(cur.last)
	w.fired(now)
	return nil
}

// fired exports the partition time before which every timer of the
// partition has fired with its changes in the store: the partition clock,
// or the earliest timer still due when one batch could not fire them all.
// Waiting on the watermark says the clock moved; this says its timers
// fired.
func (w *worker) fired(now time.Time) {
	if now.IsZero() {
		return
	}
	upTo := now.UnixMilli()
	if w.nextDue != 0 && w.nextDue < upTo {
		upTo = w.nextDue
	}
	w.p.metrics.TimersFired.WithLabelValues(w.topic, w.partLabel).Set(float64(upTo) / 1000)
}

// observe moves the partition clock over the batch in hand and exports
// where the partition stands; it returns the partition time.
func (w *worker) observe(ctx context.Context, wall time.Time) time.Time {
	for _, r := range w.cur.recs {
		w.clock.Observe(r.Event.TS.Time)
	}
	m := w.p.metrics
	if n := len(w.cur.msgs); n > 0 {
		lastMsg := w.cur.msgs[n-1]
		w.lastRecord = time.Now()
		w.read = true
		w.behind = lastMsg.Offset+1 < lastMsg.HighWaterMark
		w.p.setBehind(w.scope, w.behind, false)
		m.ConsumerLag.WithLabelValues(w.topic, w.partLabel).Set(float64(lastMsg.HighWaterMark - lastMsg.Offset - 1))
		m.BatchSize.Observe(float64(n))
	} else if !w.behind {
		m.ConsumerLag.WithLabelValues(w.topic, w.partLabel).Set(0)
	} else {
		w.checkIdle(ctx)
	}
	now := w.clock.Advance(w.behind, wall)
	if now.IsZero() {
		// No event time read yet and not caught up: there is no clock to
		// measure, and a zero time would export a lag of 292 years.
		m.WatermarkLag.DeleteLabelValues(w.topic, w.partLabel)
		return now
	}
	if !w.behind && w.liveFrom.IsZero() {
		w.liveFrom = now
	}
	m.WatermarkLag.WithLabelValues(w.topic, w.partLabel).Set(wall.Sub(now).Seconds())
	return now
}

// advance records that the records up to offset last (-1: none) are in the
// store.
func (w *worker) advance(last int64) {
	if last < 0 {
		return
	}
	w.applied = last
	if w.replayUntil >= 0 && last >= w.replayUntil {
		w.replayUntil = -1
		w.log.Warn("partition rebuilt from Kafka after Redis lost its state", zap.Int64("offset", last))
	}
}

// apply runs the step over the batch in hand and the due timers and writes
// the result in one store step; ahead is what the previous write read for
// this batch, if it did. With a following batch in hand, the same write
// reads what that one needs. The batch's alerts go to the courier once
// the store has them.
func (w *worker) apply(ctx context.Context, now, wall time.Time, due bool, ahead *readAhead) error {
	in, err := w.load(ctx, now, wall, due, ahead)
	if err != nil {
		return err
	}
	out, err := w.step.Run(in)
	if err != nil {
		return err
	}
	b := &out.Batch
	b.Token, b.Offset, b.Expect = w.token, w.cur.last, w.applied+1
	b.Now, b.Lease, b.Acks = wall.UnixMilli(), w.p.cfg.OutboxLease, w.acks
	written, err := w.write(ctx, b, w.request(wall))
	if err != nil || !written {
		return err
	}
	w.acks = w.acks[:0]
	if len(w.cur.recs) > 0 {
		w.p.metrics.Events.WithLabelValues(w.topic, "duplicate").Add(float64(out.Duplicates))
		w.p.metrics.Events.WithLabelValues(w.topic, "applied").Add(float64(len(w.cur.recs) - out.Duplicates))
	}
	if len(b.Outbox) > 0 {
		w.courier.send(ctx, delivery{ds: b.Outbox, entries: []string{state.OutboxKey(b)}, alerts: out.Alerts, liveFrom: w.liveFrom})
	}
	return nil
}

// load gathers what the step needs from the store for the batch in hand:
// the states of its entities the cache lacks and the due timers, from what
// the last write read ahead or, for what it did not, from one Load.
func (w *worker) load(ctx context.Context, now, wall time.Time, due bool, ahead *readAhead) (*Input, error) {
	last := w.cur.last
	in := &Input{Records: w.cur.recs, Now: now, Wall: wall,
		// A rebuild's alerts were sent before the state was lost.
		Replay: w.replayUntil >= 0 && (last < 0 || last <= w.replayUntil)}
	if w.handler == nil {
		return in, nil
	}
	var known func(string) bool
	loadDue := due
	if ahead != nil {
		known = func(k string) bool { return ahead.keys[k] }
		in.Stored = ahead.states
		if due {
			var ok bool
			in.Due, ok = ahead.dueFor(now.UnixMilli()-1, w.p.cfg.TimerBatch)
			loadDue = !ok
		}
	}
	missing := w.step.Uncached(in.Records, known)
	if len(missing) == 0 && !loadDue {
		return in, nil
	}
	dueBy := int64(0)
	if loadDue {
		dueBy = now.UnixMilli() - 1
	}
	w.p.metrics.RedisRoundTrips.WithLabelValues("load", w.topic).Inc()
	loaded, err := w.p.store.Load(ctx, w.scope, missing, dueBy, w.p.cfg.TimerBatch)
	if err != nil {
		return nil, err
	}
	if in.Stored == nil {
		in.Stored = loaded.States
	} else {
		in.Stored = maps.Clone(in.Stored)
		maps.Copy(in.Stored, loaded.States)
	}
	if loadDue {
		in.Due = loaded.Due
	}
	if !due {
		w.nextDue = loaded.NextDue
	}
	return in, nil
}

// write writes b, with the reads req asks for the following batch (one
// round trip either way), and keeps what was read for it. It returns false
// when the store had the batch already.
func (w *worker) write(ctx context.Context, b *state.Batch, req *state.LoadRequest) (bool, error) {
	w.p.metrics.RedisRoundTrips.WithLabelValues("apply", w.topic).Inc()
	applied, err := w.p.store.ApplyLoad(ctx, w.scope, b, req)
	if errors.Is(err, state.ErrStale) {
		// Another step of this owner already wrote it: nothing to do, and
		// nothing was read for the following batch.
		w.log.Warn("batch already applied", zap.Int64("offset", b.Offset))
		w.step.Cache.Purge()
		w.acks = w.acks[:0]
		return false, nil
	}
	if err != nil {
		return false, err
	}
	w.nextDue = applied.NextDue
	if req != nil {
		w.ahead = newReadAhead(req, applied)
	}
	return true, nil
}

// deadLetter writes the batch's unusable records to the dead-letter topic,
// retrying for at most DeadLetterFor, and not at all when the broker or the
// writer refuses the records for good. Records it could not write are
// skipped, not held: each is logged with its offset and counted, and the
// partition goes on (invariant 5). It returns an error only when ctx ended.
func (w *worker) deadLetter(ctx context.Context) error {
	m := w.p.metrics
	rctx, cancel := context.WithTimeout(ctx, w.p.cfg.DeadLetterFor)
	defer cancel()
	err := retry(rctx, w.log, "dead-letter", func() error {
		err := w.p.dlt.DeadLetter(rctx, w.cur.dead)
		if err != nil && kafkasink.Permanent(err) {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	for _, d := range w.cur.dead {
		if err != nil {
			m.DeadLetterFailures.WithLabelValues(w.topic).Inc()
			w.log.Error("unusable record could not be dead-lettered; it is skipped",
				zap.Int64("offset", d.Offset), zap.String("reason", d.Reason), zap.String("detail", d.Detail),
				zap.Int("value_bytes", len(d.Value)), zap.Error(err))
		} else {
			w.p.badInput(w.log, d)
		}
		m.DeadLetters.WithLabelValues(w.topic, d.Reason).Inc()
		m.Events.WithLabelValues(w.topic, "invalid").Inc()
	}
	return nil
}

// rebuild starts the partition again after its state was found lost in
// Redis: it claims the partition afresh, forgets everything it held, and
// reads the partition again from RebuildFrom (the start of the oldest day
// still counted), so that states, timers and figures are what Kafka says.
// Alerts up to the last record read before are marked as a replay; their
// ids are the ones already sent.
func (w *worker) rebuild(ctx context.Context) error {
	w.lost = false
	var claimed state.Claimed
	err := retry(ctx, w.log, "claim", func() error {
		var err error
		w.p.metrics.RedisRoundTrips.WithLabelValues("claim", w.topic).Inc()
		claimed, err = w.p.store.Claim(ctx, w.scope, w.token)
		if errors.Is(err, state.ErrFenced) {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil {
		return err
	}
	if w.applied < 0 && w.replayUntil < 0 && !w.read {
		// Nothing of this partition was ever read or applied: Redis lost
		// only its owner key, and claiming it again is all there is to do.
		// (Records read but not yet applied are read again below.)
		w.log.Info("Redis lost the owner key of a partition with no state; claimed it again")
		w.nextDue = claimed.NextDue
		return nil
	}
	upTo := max(w.applied, w.replayUntil)
	if next := w.reader.Offset(); next > 0 {
		upTo = max(upTo, next-1)
	}
	w.step.Cache.Purge()
	w.applied, w.nextDue = claimed.Offset, claimed.NextDue
	w.clock = Clock{Grace: w.p.cfg.Grace, Allowance: w.p.cfg.Allowance}
	w.behind = true
	w.p.setBehind(w.scope, w.behind, false)
	w.lastRecord, w.lastAsked = time.Now(), time.Now()
	w.forget()
	w.acks = w.acks[:0]
	return w.seekRebuild(ctx, upTo)
}

// readGap goes back to the records after offset stored, the last one Redis
// holds, after Redis went back to an older state of the partition (it
// restarted from an older snapshot): the records since are read again and
// their alerts are a replay, with the same ids.
func (w *worker) readGap(stored int64) error {
	upTo := w.applied
	if next := w.reader.Offset(); next > 0 {
		upTo = max(upTo, next-1)
	}
	w.log.Error("Redis holds an older state of this partition than was applied (restarted from an older snapshot); reading the records since again",
		zap.Int64("stored", stored), zap.Int64("applied", w.applied))
	w.p.metrics.StateRebuilds.WithLabelValues(w.topic).Inc()
	w.step.Cache.Purge()
	w.applied = stored
	w.clock = Clock{Grace: w.p.cfg.Grace, Allowance: w.p.cfg.Allowance}
	w.behind = true
	w.p.setBehind(w.scope, w.behind, false)
	w.lastRecord, w.lastAsked = time.Now(), time.Now()
	w.forget()
	w.replayUntil = upTo
	return w.reader.SetOffset(stored + 1)
}

// seekRebuild counts and logs a rebuild of the partition and positions the
// reader at its start; alerts up to offset upTo are a replay.
func (w *worker) seekRebuild(ctx context.Context, upTo int64) error {
	w.p.metrics.StateRebuilds.WithLabelValues(w.topic).Inc()
	from := w.p.cfg.RebuildFrom(w.p.now())
	if err := w.reader.SetOffsetAt(ctx, from); err != nil {
		return fmt.Errorf("positioning the rebuild of %s/%d at %s: %w", w.topic, w.partition, from.Format(time.RFC3339), err)
	}
	w.replayUntil = upTo
	w.behind = true
	w.p.setBehind(w.scope, w.behind, false)
	w.log.Error("Redis lost this partition's state (its owner key is gone while the group has committed offsets); rebuilding it from Kafka: figures are incomplete until the rebuild has read up to the last offset",
		zap.Time("from", from), zap.Int64("from_offset", w.reader.Offset()), zap.Int64("last_offset", upTo))
	return nil
}

// forget drops the batches in hand and what was read ahead.
func (w *worker) forget() {
	w.awaitNext()
	w.cur.reset()
	w.next.reset()
	w.ahead = nil
}

// checkIdle runs when a partition that believes it is behind got no
// records: once none arrived for IdleAfter it asks the broker for the
// high-water mark again (at most once per IdleAfter). Caught up, or the
// broker unable to say, the partition is idle and its clock follows the wall
// clock; a broker that says records remain while none arrive for three
// times IdleAfter does not hold the clock either. Timers keep firing: a
// breach whose reply is still unread is retracted when the reply is read.
func (w *worker) checkIdle(ctx context.Context) {
	idle := time.Since(w.lastRecord)
	if idle < w.p.cfg.IdleAfter || time.Since(w.lastAsked) < w.p.cfg.IdleAfter {
		return
	}
	w.lastAsked = time.Now()
	hwm, err := w.p.highWaterMark(ctx, w.topic, w.partition)
	if ctx.Err() != nil {
		return
	}
	next := w.applied + 1
	if w.reader != nil {
		next = max(next, w.reader.Offset())
	}
	switch {
	case err != nil:
		w.log.Warn("no records and the high-water mark cannot be read; the partition clock follows the wall clock",
			zap.Duration("idle", idle), zap.Error(err))
		w.behind = false
		w.p.setBehind(w.scope, w.behind, false)
	case next >= hwm:
		w.behind = false
		w.p.setBehind(w.scope, w.behind, false)
	case idle >= 3*w.p.cfg.IdleAfter:
		w.log.Warn("the broker reports records past the last one read, but none arrived; the partition clock follows the wall clock",
			zap.Duration("idle", idle), zap.Int64("next", next), zap.Int64("high_water_mark", hwm))
		w.behind = false
		w.p.setBehind(w.scope, w.behind, false)
	}
}

// maybeCommit commits the applied offset to Kafka at most every
// CommitInterval (or now, when final). The store holds the applied offset,
// so a late commit only means re-reading records that are then skipped.
func (w *worker) maybeCommit(ctx context.Context, final bool) {
	next := w.applied + 1
	if w.gen == nil || w.applied < 0 || next <= w.committed {
		return
	}
	if !final && time.Since(w.lastCommit) < w.p.cfg.CommitInterval {
		return
	}
	// A partition that finds another one committing tries again after its
	// next batch; the last commit waits its turn.
	if final {
		w.p.commitMu.Lock()
	} else if !w.p.commitMu.TryLock() {
		return
	}
	err := w.gen.CommitOffsets(map[string]map[int]int64{w.topic: {w.partition: next}})
	w.p.commitMu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("offset commit failed; it is retried with the next batch", zap.Error(err))
		}
		return
	}
	w.committed = next
	w.lastCommit = time.Now()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func partLabel(p int) string { return strconv.Itoa(p) }
