package pipeline

import (
	"context"
	"encoding/json"
	"errors"
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
	liveFrom  time.Time
	nextDue   int64
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
		if err := w.step(ctx); err != nil {
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
	start := assigned
	switch {
	case assigned >= 0 && claimed.Offset+1 > assigned:
		start = claimed.Offset + 1 // the store is ahead of the last commit
	case assigned < 0 && claimed.Offset >= 0:
		start = claimed.Offset + 1
	case assigned >= 0 && claimed.Offset >= 0 && claimed.Offset+1 < assigned:
		w.log.Warn("store is behind the committed offset: state for the gap was lost",
			zap.Int64("applied", claimed.Offset), zap.Int64("committed", assigned))
	}
	w.committed = start
	hwm, err := w.p.highWaterMark(ctx, w.topic, w.partition)
	if err != nil {
		w.log.Warn("cannot read high-water mark; assuming behind until records arrive", zap.Error(err))
		w.behind = true
	} else {
		w.behind = (start >= 0 && start < hwm) || (start < 0 && hwm > 0 && assigned == kafka.FirstOffset)
	}
	w.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers:       w.p.cfg.Brokers,
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
		w.behind = lastMsg.Offset+1 < lastMsg.HighWaterMark
		w.p.setBehind(w.scope, w.behind, false)
		lag := lastMsg.HighWaterMark - lastMsg.Offset - 1
		w.p.metrics.ConsumerLag.WithLabelValues(w.topic, w.partLabel).Set(float64(lag))
		w.p.metrics.BatchSize.Observe(float64(n))
	} else if !w.behind {
		w.p.metrics.ConsumerLag.WithLabelValues(w.topic, w.partLabel).Set(0)
	}
	now := w.clock.Advance(w.behind, wall)
	if !w.behind && w.liveFrom.IsZero() {
		w.liveFrom = now
	}
	w.p.metrics.WatermarkLag.WithLabelValues(w.topic, w.partLabel).Set(wall.Sub(now).Seconds())

	if len(w.dead) > 0 {
		if err := retry(ctx, w.log, "dead-letter", func() error { return w.p.dlt.DeadLetter(ctx, w.dead) }); err != nil {
			return err
		}
		for _, d := range w.dead {
			w.p.metrics.DeadLetters.WithLabelValues(w.topic, d.Reason).Inc()
			w.p.metrics.Events.WithLabelValues(w.topic, "invalid").Inc()
			w.p.badInput(w.log, d)
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
		if err == nil || errors.Is(err, state.ErrFenced) {
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
	}
	return nil
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
	b := &state.Batch{Token: w.token, Offset: last, Now: wall.UnixMilli(), Lease: p.cfg.OutboxLease, Acks: w.acks}
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
	for i := range alerts {
		a := &alerts[i]
		a.EmittedAt = wall
		loc := p.location(a.ShopID)
		a.InZone(loc)
		a.Summary = alerting.Summary(a, p.cfg.Language, loc)
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

func partLabel(p int) string { return strconv.Itoa(p) }
