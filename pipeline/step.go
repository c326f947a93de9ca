package pipeline

import (
	"fmt"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/state"
)

// Record is one decoded input record of a batch.
type Record struct {
	Event  *event.Event
	Offset int64
	// Key is the entity the event belongs to (event.Event.Key).
	Key string
}

// Input is what one batch step works on: the batch's records in offset
// order, what the store holds for them, and the partition's clocks.
type Input struct {
	Records []Record
	// Stored holds the stored states of the batch's entities that the
	// cache does not hold, and of the due entities (absent: none stored).
	Stored map[string][]byte
	// Due are the entities whose timers are due by Now, earliest first.
	Due []string
	// Now is the partition clock: timers due before it fire.
	Now time.Time
	// Wall is the processing wall clock, which stamps alerts.
	Wall time.Time
	// Replay marks the batch's alerts as sent before (a rebuild's).
	Replay bool
}

// Output is what one batch step produced.
type Output struct {
	// Batch holds the entity states, timers, figures, waiting-set changes,
	// agent activity and outbox records of the step; the writer adds its
	// token, offsets, lease and acks.
	Batch state.Batch
	// Alerts are the batch's alerts, in the order of Batch.Outbox.
	Alerts []alerting.Alert
	// Duplicates counts the records whose event an entity had applied.
	Duplicates int
}

// Step runs a stream's handler over batches: records, the stored states
// they need and the partition clock in, the state batch and alerts out. It
// does no I/O. It keeps the partition's entities in its cache, which holds
// what the store holds once the batch is written; when a write fails the
// caller purges it.
type Step struct {
	Handler  Handler // nil: records are validated and counted only
	Cache    *lru.Cache[string, Entity]
	Language string
	// Location gives a shop's time zone, for alert summaries.
	Location func(shop string) *time.Location
	Log      *zap.Logger

	fx detectors.Effects
	// The batch's entities: those it changed, those the cache held when the
	// batch began (it may evict them while the batch adds others), and
	// those with a timer in the store before the batch (only their timers
	// are removed when they end with none: a ZREM per entity otherwise).
	dirty    map[string]Entity
	held     map[string]Entity
	hadTimer map[string]bool
	// seen is Uncached's, kept from call to call.
	seen map[string]struct{}
}

// Uncached returns the keys of recs whose entities the cache lacks, each
// once, leaving out those known says were read already.
func (s *Step) Uncached(recs []Record, known func(key string) bool) []string {
	if s.Handler == nil {
		return nil
	}
	var keys []string
	if s.seen == nil {
		s.seen = make(map[string]struct{}, len(recs))
	}
	clear(s.seen)
	for _, r := range recs {
		if _, ok := s.seen[r.Key]; ok {
			continue
		}
		s.seen[r.Key] = struct{}{}
		// Keys read already are the common case on a busy day: asked first.
		if (known == nil || !known(r.Key)) && !s.Cache.Contains(r.Key) {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

// Run applies the records, then fires the due timers, and returns the
// changes. The output's slices are the caller's.
func (s *Step) Run(in *Input) (*Output, error) {
	s.fx.Reset()
	out := &Output{}
	if s.Handler != nil {
		s.begin(in)
		for _, r := range in.Records {
			if s.Handler.Event(s.touch(r.Key, in.Stored), r.Event, &s.fx) == detectors.Duplicate {
				out.Duplicates++
			}
		}
		for _, k := range in.Due {
			s.Handler.Advance(s.touch(k, in.Stored), in.Now, &s.fx)
		}
		if err := s.encode(&out.Batch, in.Now); err != nil {
			return nil, err
		}
	}
	// The store sums deltas per shop, day and field.
	out.Batch.Figures = s.fx.Figures
	out.Batch.Waits = s.fx.Waits
	out.Batch.Activity = s.fx.Activity
	s.stamp(out, in)
	return out, nil
}

// begin holds the batch's cached entities and notes the due ones as having
// a timer in the store.
func (s *Step) begin(in *Input) {
	// The maps keep their room from batch to batch.
	if s.dirty == nil {
		s.dirty = make(map[string]Entity, len(in.Records)+len(in.Due))
		s.held = make(map[string]Entity, len(in.Records))
		s.hadTimer = make(map[string]bool, len(in.Due))
	}
	clear(s.dirty)
	clear(s.held)
	clear(s.hadTimer)
	for _, r := range in.Records {
		if _, ok := s.held[r.Key]; !ok {
			e, _ := s.Cache.Get(r.Key)
			s.held[r.Key] = e
		}
	}
	for _, k := range in.Due {
		s.hadTimer[k] = true
	}
}

// entity returns the entity of k, which the batch has not touched yet: one
// held comes first (the cache may have evicted it since), then the
// cache's, then the stored state, then a fresh one.
func (s *Step) entity(k string, stored map[string][]byte) Entity {
	if e, ok := s.held[k]; ok {
		if e != nil {
			return e
		}
		// Not cached when the batch began, and only touching k adds it.
	} else if e, ok := s.Cache.Get(k); ok {
		return e
	}
	e := s.Handler.New(k)
	if blob, ok := stored[k]; ok {
		if err := e.UnmarshalBinary(blob); err != nil {
			// A state we cannot read is replaced by a fresh one; say so.
			s.Log.Error("stored state unreadable; starting it afresh", zap.String("key", k), zap.Error(err))
			e = s.Handler.New(k)
			s.hadTimer[k] = true // it may have one in the store
		}
	}
	s.Cache.Add(k, e)
	return e
}

// touch returns k's entity, marked as changed by the batch.
func (s *Step) touch(k string, stored map[string][]byte) Entity {
	if e, ok := s.dirty[k]; ok {
		return e
	}
	e := s.entity(k, stored)
	if _, had := s.Handler.NextDue(e); had {
		s.hadTimer[k] = true
	}
	s.dirty[k] = e
	return e
}

// encode writes the changed entities' states and timers into b, first
// firing what an event left already due.
func (s *Step) encode(b *state.Batch, now time.Time) error {
	b.States = make(map[string][]byte, len(s.dirty))
	b.Timers = make(map[string]int64, len(s.dirty))
	for k, e := range s.dirty {
		d, ok := s.Handler.NextDue(e)
		if ok && d.Before(now) {
			// Touched by an event, with a timer already due.
			s.Handler.Advance(e, now, &s.fx)
			d, ok = s.Handler.NextDue(e)
		}
		blob, err := e.MarshalBinary()
		if err != nil {
			return fmt.Errorf("encoding the state of %s: %w", k, err)
		}
		b.States[k] = blob
		if s.hadTimer[k] {
			b.Timers[k] = 0
		}
		if ok {
			b.Timers[k] = d.UnixMilli()
		}
	}
	clear(s.held)
	return nil
}

// stamp completes the batch's alerts (summary, emitted time, replay mark)
// and lays them out as outbox records.
func (s *Step) stamp(out *Output, in *Input) {
	if len(s.fx.Alerts) == 0 {
		return
	}
	// The alerts outlive the step (their delivery runs alongside the next
	// batch): they must not share the effects' reused array.
	out.Alerts = slices.Clone(s.fx.Alerts)
	out.Batch.Outbox = make([]state.Delivery, len(out.Alerts))
	// One buffer holds the batch's payloads: AppendJSON writes the
	// contract's compact JSON, which needs no second pass.
	buf := make([]byte, 0, 512*len(out.Alerts))
	for i := range out.Alerts {
		a := &out.Alerts[i]
		a.Replay = in.Replay
		a.Stamp(in.Wall, s.Language, s.Location(a.ShopID))
		start := len(buf)
		buf = a.AppendJSON(buf)
		out.Batch.Outbox[i] = state.Delivery{Key: a.Key(), Payload: buf[start:len(buf):len(buf)]}
	}
}
