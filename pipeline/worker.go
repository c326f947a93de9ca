package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/state"
)

// worker owns one input partition for one consumer group generation: it
// reads batches, runs the handler, writes each batch's changes to the store in
// one atomic step, delivers the batch's alerts and commits offsets.
type worker struct {
	p         *Processor
	gen       *kafka.Generation
	topic     string
	stream    event.Stream
	partition int
	scope     string
	token     int64
	handler   Handler
	log       *zap.Logger
	partLabel string

	reader     *kafka.Reader
	cache      *lru.Cache[string, Entity]
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
	// replayUntil is the last offset read before the partition's state was
	// found lost (-1 when not rebuilding): alerts up to it are a replay.
	replayUntil int64
	// lost says the outbox sweep found the partition's state lost.
	lost bool
	// read says records were fetched since the partition was claimed.
	read      bool
	acks      []string
	lastSweep time.Time

	fx    detectors.Effects
	items []item
	dead  []DeadLetter
	msgs  []kafka.Message
	// decoded says items and dead already hold msgs, read ahead, and
	// decodedLast their last offset.
	decoded     bool
	decodedLast int64

	// following is the next batch when the reader already held it while
	// this one was applied; ahead is what that apply read for it.
	following records
	ahead     *readAhead
}

// records is a fetched batch, decoded.
type records struct {
	msgs  []kafka.Message
	items []item
	dead  []DeadLetter
	last  int64 // last offset past the applied one, -1 if none
}

// readAhead is what the store read for the following batch in the step
// that applied the one before it: the states of its entities missing from
// the cache (absent when the store had none) and the due timers.
type readAhead struct {
	keys   map[string]bool   // asked for
	states map[string][]byte // found
	due    []string
	dueAt  []int64
	dueBy  int64
	limit  int
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

type item struct {
	ev     *event.Event
	offset int64
	key    string
}

func (w *worker) run(ctx context.Context, assigned int64, done func()) {
	doneOnce := sync.OnceFunc(done)
	defer doneOnce()
	m := w.p.metrics
	m.OwnedPartitions.WithLabelValues(w.topic).Inc()
	defer m.OwnedPartitions.WithLabelValues(w.topic).Dec()
	// Catching up until start knows better.
	w.p.setBehind(w.scope, true, false)
	defer w.p.setBehind(w.scope, false, true)
	defer func() {
		m.ConsumerLag.DeleteLabelValues(w.topic, w.partLabel)
		m.WatermarkLag.DeleteLabelValues(w.topic, w.partLabel)
	}()

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

	if err := w.start(fetchCtx, assigned); err != nil {
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
		err := w.step(ctx)
		var behind *state.BehindError
		switch {
		case errors.Is(err, state.ErrLost) || w.lost:
			err = w.rebuild(fetchCtx)
		case errors.As(err, &behind):
			err = w.readGap(behind.Stored)
		}
		if err != nil {
			if errors.Is(err, state.ErrFenced) {
				w.log.Warn("partition taken over by a newer consumer; this replica stops writing it")
				break
			}
			if ctx.Err() != nil {
				break
			}
			w.log.Error("batch failed; retrying", zap.Error(err))
		}
		w.maybeCommit(ctx, false)
		w.maybeSweep(ctx)
	}
	if ctx.Err() == nil {
		w.maybeCommit(ctx, true)
	}
	doneOnce()
	<-ctx.Done() // returning would end the generation for every worker
}

// start claims the partition in the store and positions the reader.
func (w *worker) start(ctx context.Context, assigned int64) error {
	var claimed state.Claimed
	var fencedSince time.Time
	err := retry(ctx, w.log, "claim", func() error {
		var err error
		w.p.metrics.RedisRoundTrips.WithLabelValues("claim").Inc()
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
	if err != nil {
		return err
	}
	w.applied = claimed.Offset
	w.nextDue = claimed.NextDue
	w.replayUntil = -1
	start := assigned
	lost := false
	switch {
	case assigned >= 0 && claimed.Offset+1 > assigned:
		start = claimed.Offset + 1 // the store is ahead of the last commit
	case assigned < 0 && claimed.Offset >= 0:
		start = claimed.Offset + 1
	case assigned >= 0 && claimed.Offset < 0:
		// The group committed offsets, so this partition's state was in
		// Redis once: Redis lost it (a restart without persistence).
		lost = true
	case assigned >= 0 && claimed.Offset+1 < assigned:
		// Redis holds an older state (restored from an older snapshot): the
		// records since are read again.
		w.log.Warn("store is behind the committed offset: reading the gap again",
			zap.Int64("applied", claimed.Offset), zap.Int64("committed", assigned))
		start = claimed.Offset + 1
	}
	w.committed = start
	hwm, err := w.p.highWaterMark(ctx, w.topic, w.partition)
	w.lastRecord, w.lastAsked = time.Now(), time.Now()
	if err != nil {
		w.log.Warn("cannot read high-water mark; assuming behind until records arrive or the partition stays idle",
			zap.Error(err), zap.Duration("idle_after", w.p.cfg.IdleAfter))
		w.behind = true
	} else {
		w.behind = (start >= 0 && start < hwm) || (start < 0 && hwm > 0 && assigned == kafka.FirstOffset)
	}
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

// fetch reads up to BatchSize records, waiting at most Tick for the first
// and BatchWait for the rest; a batch read ahead is taken as it is.
func (w *worker) fetch(ctx context.Context) {
	if f := &w.following; len(f.msgs) > 0 {
		w.msgs, f.msgs = f.msgs, w.msgs[:0]
		w.items, f.items = f.items, w.items[:0]
		w.dead, f.dead = f.dead, w.dead[:0]
		w.decoded, w.decodedLast = true, f.last
		return
	}
	w.msgs = w.msgs[:0]
	first, cancel := context.WithTimeout(ctx, w.p.cfg.Tick)
	msg, err := w.reader.FetchMessage(first)
	cancel()
	if err != nil {
		return
	}
	w.msgs = append(w.msgs, msg)
	rest, cancel := context.WithTimeout(ctx, w.p.cfg.BatchWait)
	defer cancel()
	for len(w.msgs) < w.p.cfg.BatchSize {
		if msg.Offset+1 >= msg.HighWaterMark {
			break // caught up: don't sit on what we have
		}
		msg, err = w.reader.FetchMessage(rest)
		if err != nil {
			return
		}
		w.msgs = append(w.msgs, msg)
	}
}

// decode reads the records of msgs past offset applied into events and dead
// letters, appended to r's, and sets r.last.
func (w *worker) decode(r *records, applied int64, wall time.Time) {
	r.last = -1
	for i := range r.msgs {
		msg := &r.msgs[i]
		if msg.Offset <= applied {
			continue // delivered again from before a rebalance
		}
		r.last = msg.Offset
		ref := msg.Time
		if ref.IsZero() {
			ref = wall
		}
		ev, err := event.Decode(w.stream, msg.Value, ref)
		if err == nil {
			// Stale when older than the limit both before its record's time
			// and before the processing clock (a replayed day is judged by
			// when it was produced).
			if e := ev.CheckAge(minTime(ref, wall), w.p.cfg.MaxEventAge); e != nil {
				ev, err = nil, e
			}
		}
		if err != nil {
			var de *event.Error
			errors.As(err, &de)
			r.dead = append(r.dead, DeadLetter{Topic: w.topic, Partition: w.partition, Offset: msg.Offset,
				Key: msg.Key, Value: msg.Value, Reason: de.Reason, Detail: de.Detail})
			continue
		}
		r.items = append(r.items, item{ev: ev, offset: msg.Offset, key: ev.Key(w.stream)})
	}
}

// step processes the fetched records (possibly none) and due timers.
func (w *worker) step(ctx context.Context) error {
	wall := w.p.now()
	last := w.decodedLast
	if !w.decoded {
		r := records{msgs: w.msgs, items: w.items[:0], dead: w.dead[:0]}
		w.decode(&r, w.applied, wall)
		w.items, w.dead, last = r.items, r.dead, r.last
	}
	w.decoded = false
	// What the last apply read for this batch serves its first attempt only.
	ahead := w.ahead
	w.ahead = nil
	for _, it := range w.items {
		w.clock.Observe(it.ev.TS.Time)
	}
	if n := len(w.msgs); n > 0 {
		lastMsg := w.msgs[n-1]
		w.lastRecord = time.Now()
		w.read = true
		w.behind = lastMsg.Offset+1 < lastMsg.HighWaterMark
		w.p.setBehind(w.scope, w.behind, false)
		lag := lastMsg.HighWaterMark - lastMsg.Offset - 1
		w.p.metrics.ConsumerLag.WithLabelValues(w.topic, w.partLabel).Set(float64(lag))
		w.p.metrics.BatchSize.Observe(float64(n))
	} else if !w.behind {
		w.p.metrics.ConsumerLag.WithLabelValues(w.topic, w.partLabel).Set(0)
	}
	if len(w.msgs) == 0 && w.behind {
		w.checkIdle(ctx)
	}
	now := w.clock.Advance(w.behind, wall)
	if now.IsZero() {
		// No event time read yet and not caught up: there is no clock to
		// measure, and a zero time would export a lag of 292 years.
		w.p.metrics.WatermarkLag.DeleteLabelValues(w.topic, w.partLabel)
	} else {
		if !w.behind && w.liveFrom.IsZero() {
			w.liveFrom = now
		}
		w.p.metrics.WatermarkLag.WithLabelValues(w.topic, w.partLabel).Set(wall.Sub(now).Seconds())
	}

	if len(w.dead) > 0 {
		if err := w.deadLetter(ctx); err != nil {
			return err
		}
	}

	due := w.nextDue != 0 && w.nextDue < now.UnixMilli()
	if len(w.items) == 0 && last < 0 && !due && len(w.acks) == 0 {
		return nil
	}
	if len(w.msgs) > 0 {
		// While behind, the next records are usually queued already; if the
		// reader has not fetched them yet, or once caught up, they arrive
		// within milliseconds. Waiting up to BatchWait for them lets this
		// apply read for them as well: one Redis round trip per batch
		// instead of a load and an apply.
		w.readAhead(ctx, max(w.applied, last), wall, w.p.cfg.BatchWait)
	}
	err := retry(ctx, w.log, "applying batch", func() error {
		err := w.apply(ctx, now, wall, last, due, ahead)
		if err == nil || errors.Is(err, state.ErrFenced) || errors.Is(err, state.ErrLost) || errors.Is(err, state.ErrBehind) {
			return backoff.Permanent(err)
		}
		// The cached entities may hold this attempt's changes: forget them
		// and start again from what the store has. What was read ahead may
		// predate this attempt's writes, if Redis applied it after all.
		w.cache.Purge()
		ahead = nil
		w.p.metrics.RedisErrors.WithLabelValues("apply").Inc()
		return err
	})
	if err != nil {
		return err
	}
	if last >= 0 {
		w.applied = last
		if w.replayUntil >= 0 && last >= w.replayUntil {
			w.replayUntil = -1
			w.log.Warn("partition rebuilt from Kafka after Redis lost its state", zap.Int64("offset", last))
		}
	}
	return nil
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
		err := w.p.dlt.DeadLetter(rctx, w.dead)
		if err != nil && permanentWrite(err) {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	for _, d := range w.dead {
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

// permanentWrite says whether a Kafka write failed for a reason that trying
// again does not cure: a record too large for the writer or the broker, or
// one the broker rejects as invalid.
func permanentWrite(err error) bool {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		n := 0
		for _, e := range we {
			if e == nil {
				continue
			}
			if !permanentWrite(e) {
				return false
			}
			n++
		}
		return n > 0
	}
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.InvalidMessage) ||
		errors.Is(err, kafka.RecordListTooLarge) || errors.Is(err, kafka.InvalidRecord)
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
		w.p.metrics.RedisRoundTrips.WithLabelValues("claim").Inc()
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
	w.cache.Purge()
	w.applied, w.nextDue = claimed.Offset, claimed.NextDue
	w.clock = Clock{Grace: w.p.cfg.Grace, Allowance: w.p.cfg.Allowance}
	w.behind = true
	w.p.setBehind(w.scope, w.behind, false)
	w.lastRecord, w.lastAsked = time.Now(), time.Now()
	w.following = records{msgs: w.following.msgs[:0], items: w.following.items[:0], dead: w.following.dead[:0]}
	w.ahead, w.decoded = nil, false
	w.msgs, w.items, w.dead = w.msgs[:0], w.items[:0], w.dead[:0]
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
	w.cache.Purge()
	w.applied = stored
	w.clock = Clock{Grace: w.p.cfg.Grace, Allowance: w.p.cfg.Allowance}
	w.behind = true
	w.p.setBehind(w.scope, w.behind, false)
	w.lastRecord, w.lastAsked = time.Now(), time.Now()
	w.following = records{msgs: w.following.msgs[:0], items: w.following.items[:0], dead: w.following.dead[:0]}
	w.ahead, w.decoded = nil, false
	w.msgs, w.items, w.dead = w.msgs[:0], w.items[:0], w.dead[:0]
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

// readAhead takes the records the reader already holds, up to a batch, as
// the following batch, decoded past offset applied; when it holds none, it
// waits up to wait for the first. Its clock observations wait until it is
// stepped.
func (w *worker) readAhead(ctx context.Context, applied int64, wall time.Time, wait time.Duration) {
	if w.reader == nil || w.handler == nil {
		return
	}
	n := min(int(w.reader.Stats().QueueLength), w.p.cfg.BatchSize)
	f := &w.following
	f.msgs, f.items, f.dead = f.msgs[:0], f.items[:0], f.dead[:0]
	if n == 0 && wait > 0 {
		first, cancel := context.WithTimeout(ctx, wait)
		msg, err := w.reader.FetchMessage(first)
		cancel()
		if err != nil {
			return
		}
		f.msgs = append(f.msgs, msg)
		n = 0
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
	w.decode(f, applied, wall)
}

// request is what the following batch will need from the store, given the
// cache after this batch's rules: its entities not cached and the timers
// that can be due when it is stepped (its clock cannot pass the largest
// event time it holds while it is behind; when it catches up, the wall
// clock a tick from now).
func (w *worker) request(wall time.Time) *state.LoadRequest {
	f := &w.following
	if len(f.msgs) == 0 {
		return nil
	}
	req := &state.LoadRequest{Limit: w.p.cfg.TimerBatch}
	seen := make(map[string]bool, len(f.items))
	for _, it := range f.items {
		if !seen[it.key] {
			seen[it.key] = true
			if !w.cache.Contains(it.key) {
				req.Keys = append(req.Keys, it.key)
			}
		}
	}
	c := w.clock
	for _, it := range f.items {
		c.Observe(it.ev.TS.Time)
	}
	lastMsg := f.msgs[len(f.msgs)-1]
	req.DueBy = c.Advance(lastMsg.Offset+1 < lastMsg.HighWaterMark, wall.Add(w.p.cfg.Tick)).UnixMilli() - 1
	return req
}

// apply runs the handler over the batch and the due timers and writes the
// result in one store step; ahead is what the previous step read for this
// batch, if it did. With a following batch in hand, the same step reads
// what that one needs.
func (w *worker) apply(ctx context.Context, now, wall time.Time, last int64, due bool, ahead *readAhead) error {
	p := w.p
	fx := &w.fx
	fx.Reset()
	b := &state.Batch{Token: w.token, Offset: last, Now: wall.UnixMilli(), Lease: p.cfg.OutboxLease, Acks: w.acks,
		Expect: w.applied + 1}
	var dirty map[string]Entity
	// Counted once per batch, after the store accepted it: a labelled
	// counter lookup per event is measurable at this rate, and a retried
	// batch must not count twice.
	duplicates := 0
	if w.handler != nil {
		// Stored states read for this batch, by this step or the last.
		var stored map[string][]byte
		var missing []string
		// The batch's cached entities, held: the cache may evict them
		// while the batch adds others.
		held := map[string]Entity{}
		for _, it := range w.items {
			if _, ok := held[it.key]; ok {
				continue
			}
			e, ok := w.cache.Get(it.key)
			held[it.key] = e
			if !ok && (ahead == nil || !ahead.keys[it.key]) {
				missing = append(missing, it.key)
			}
		}
		var dueKeys []string
		loadDue := due
		if ahead != nil {
			stored = ahead.states
			if due {
				var ok bool
				dueKeys, ok = ahead.dueFor(now.UnixMilli()-1, p.cfg.TimerBatch)
				loadDue = !ok
			}
		}
		if len(missing) > 0 || loadDue {
			dueBy := int64(0)
			if loadDue {
				dueBy = now.UnixMilli() - 1
			}
			p.metrics.RedisRoundTrips.WithLabelValues("load").Inc()
			loaded, err := p.store.Load(ctx, w.scope, missing, dueBy, p.cfg.TimerBatch)
			if err != nil {
				return err
			}
			if stored == nil {
				stored = loaded.States
			} else {
				stored = maps.Clone(stored)
				maps.Copy(stored, loaded.States)
			}
			if loadDue {
				dueKeys = loaded.Due
			}
			if !due {
				w.nextDue = loaded.NextDue
			}
		}
		dirty = make(map[string]Entity, len(w.items)+len(dueKeys))
		// Entities with a timer in the store before the batch: only theirs
		// are removed when they end with none (a ZREM per entity otherwise).
		hadTimer := make(map[string]bool, len(dueKeys))
		for _, k := range dueKeys {
			hadTimer[k] = true
		}
		// An entity already touched or held comes first: the cache may have
		// evicted it since. The cache holds what the store holds.
		entity := func(k string) Entity {
			if e, ok := dirty[k]; ok {
				return e
			}
			if e := held[k]; e != nil {
				return e
			}
			if e, ok := w.cache.Get(k); ok {
				return e
			}
			e := w.handler.New(k)
			if blob, ok := stored[k]; ok {
				if err := e.UnmarshalBinary(blob); err != nil {
					// A state we cannot read is replaced by a fresh one; say so.
					w.log.Error("stored state unreadable; starting it afresh", zap.String("key", k), zap.Error(err))
					e = w.handler.New(k)
					hadTimer[k] = true // it may have one in the store
				}
			}
			w.cache.Add(k, e)
			return e
		}

		touch := func(k string) Entity {
			e := entity(k)
			if _, ok := dirty[k]; !ok {
				if _, had := w.handler.NextDue(e); had {
					hadTimer[k] = true
				}
				dirty[k] = e
			}
			return e
		}
		for _, it := range w.items {
			if w.handler.Event(touch(it.key), it.ev, fx) == detectors.Duplicate {
				duplicates++
			}
		}
		for _, k := range dueKeys {
			w.handler.Advance(touch(k), now, fx)
		}
		b.States = make(map[string][]byte, len(dirty))
		b.Timers = make(map[string]int64, len(dirty))
		for k, e := range dirty {
			d, ok := w.handler.NextDue(e)
			if ok && d.Before(now) {
				// Touched by an event, with a timer already due.
				w.handler.Advance(e, now, fx)
				d, ok = w.handler.NextDue(e)
			}
			blob, err := e.MarshalBinary()
			if err != nil {
				return err
			}
			b.States[k] = blob
			if hadTimer[k] {
				b.Timers[k] = 0
			}
			if ok {
				b.Timers[k] = d.UnixMilli()
			}
		}
	}
	// The store sums deltas per shop, day and field.
	b.Figures = fx.Figures
	b.Waits = fx.Waits
	b.Activity = fx.Activity
	alerts := fx.Alerts
	// A rebuild's alerts were sent before the state was lost.
	replay := w.replayUntil >= 0 && (last < 0 || last <= w.replayUntil)
	for i := range alerts {
		a := &alerts[i]
		a.Replay = replay
		a.Stamp(wall, p.cfg.Language, p.location(a.ShopID))
		payload, err := json.Marshal(a)
		if err != nil {
			return err
		}
		b.Outbox = append(b.Outbox, state.Delivery{Key: a.Key(), Payload: payload})
	}
	// One round trip either way: the reads for the following batch ride on
	// this batch's apply.
	var req *state.LoadRequest
	if w.handler != nil {
		req = w.request(wall)
	}
	p.metrics.RedisRoundTrips.WithLabelValues("apply").Inc()
	var applied state.Applied
	var err error
	if req != nil {
		applied, err = p.store.ApplyLoad(ctx, w.scope, b, req)
	} else {
		applied.NextDue, err = p.store.Apply(ctx, w.scope, b)
	}
	if errors.Is(err, state.ErrStale) {
		// Another step of this owner already wrote it: nothing to do, and
		// nothing was read for the following batch.
		w.log.Warn("batch already applied", zap.Int64("offset", last))
		w.cache.Purge()
		w.acks = w.acks[:0]
		return nil
	}
	if err != nil {
		return err
	}
	w.nextDue = applied.NextDue
	if req != nil {
		keys := make(map[string]bool, len(req.Keys))
		for _, k := range req.Keys {
			keys[k] = true
		}
		w.ahead = &readAhead{keys: keys, states: applied.Loaded.States, due: applied.Loaded.Due,
			dueAt: applied.DueAt, dueBy: req.DueBy, limit: req.Limit}
	}
	w.acks = w.acks[:0]
	if len(w.items) > 0 {
		p.metrics.Events.WithLabelValues(w.topic, "duplicate").Add(float64(duplicates))
		p.metrics.Events.WithLabelValues(w.topic, "applied").Add(float64(len(w.items) - duplicates))
	}
	if len(b.Outbox) > 0 {
		w.deliver(ctx, b.Outbox, alerts, wall)
	}
	return nil
}

// deliver hands the batch's alerts to the sink; accepted ones are acked in
// the outbox with the next store step, the rest stay leased and are sent
// again by the sweep.
func (w *worker) deliver(ctx context.Context, ds []state.Delivery, alerts []alerting.Alert, wall time.Time) {
	p := w.p
	if err := p.alerts.Deliver(ctx, ds); err != nil {
		p.metrics.AlertDeliveries.WithLabelValues("kafka", "error").Add(float64(len(ds)))
		w.log.Warn("alerts not delivered; they stay in the outbox and are sent again", zap.Error(err), zap.Int("alerts", len(ds)))
		return
	}
	p.metrics.AlertDeliveries.WithLabelValues("kafka", "ok").Add(float64(len(ds)))
	emitted := p.now()
	for _, d := range ds {
		w.acks = append(w.acks, d.Key)
	}
	for i := range alerts {
		a := &alerts[i]
		p.metrics.Alerts.WithLabelValues(a.Kind, a.Status).Inc()
		// A firing alert's At is when its timer was due (a warning's Due
		// is the deadline it warns of).
		if a.Status == alerting.Firing && !a.At.IsZero() {
			mode := metrics.FireCatchup
			if !w.liveFrom.IsZero() && !a.At.Before(w.liveFrom) {
				mode = metrics.FireLive
			}
			p.metrics.TimerFireDelay.WithLabelValues(mode).Observe(emitted.Sub(a.At).Seconds())
		}
		if p.onAlert != nil {
			p.onAlert(*a)
		}
	}
}

// sweep re-sends outbox records whose lease ended by upTo (Unix ms).
func (w *worker) sweep(ctx context.Context, upTo int64) {
	w.lastSweep = time.Now()
	for ctx.Err() == nil {
		w.p.metrics.RedisRoundTrips.WithLabelValues("outbox").Inc()
		ds, err := w.p.store.Outbox(ctx, w.scope, w.token, upTo, w.p.cfg.OutboxLease, 500)
		if errors.Is(err, state.ErrLost) {
			w.lost = true
			return
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				w.p.metrics.RedisErrors.WithLabelValues("outbox").Inc()
				w.log.Warn("reading the alert outbox failed", zap.Error(err))
			}
			return
		}
		if len(ds) == 0 {
			return
		}
		w.p.metrics.OutboxRedelivery.Add(float64(len(ds)))
		if err := w.p.alerts.Deliver(ctx, ds); err != nil {
			w.p.metrics.AlertDeliveries.WithLabelValues("kafka", "error").Add(float64(len(ds)))
			w.log.Warn("re-sending alerts failed", zap.Error(err))
			return
		}
		w.p.metrics.AlertDeliveries.WithLabelValues("kafka", "ok").Add(float64(len(ds)))
		for _, d := range ds {
			w.acks = append(w.acks, d.Key)
		}
		if len(ds) < 500 {
			return
		}
	}
}

func (w *worker) maybeSweep(ctx context.Context) {
	if time.Since(w.lastSweep) >= w.p.cfg.OutboxLease/2 {
		w.sweep(ctx, w.p.now().UnixMilli())
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
	if err := w.gen.CommitOffsets(map[string]map[int]int64{w.topic: {w.partition: next}}); err != nil {
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
