package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/event"
)

// JoinStage is the repartition stage that writes the buyers topic, as the
// buyers partitions' clocks need to know it. A buyers partition's records
// come from every partition of chat and orders through the stage, so
// having read its own partition to the end says nothing of a reply the stage
// has not passed on yet: its clock never passes how far the stage has got
// (as Kafka Streams carries stream time through a repartition topic).
type JoinStage struct {
	// GroupID is the stage's consumer group.
	GroupID string
	// Inputs are the topics the stage reads (chat and orders) and their
	// streams.
	Inputs map[string]event.Stream
	// Latest says the stage starts at the end of an input partition its
	// group has no offset for (start_offset: latest).
	Latest bool
}

// stageTime measures how far the repartition stage has got, for every
// buyers partition of the processor: in the background, one measure at a
// time, at most once per every; the clocks share the last one.
type stageTime struct {
	cfg    JoinStage
	buyers string
	client *kafka.Client
	grace  time.Duration
	allow  time.Duration
	every  time.Duration
	log    *zap.Logger
	// stall is how long the stage may leave an input partition's
	// committed offset short of its end without moving it before the
	// partition no longer holds the clock back.
	stall time.Duration
	mu    sync.Mutex
	at    time.Time // monotonic time the last measure ended
	busy  bool      // a measure is under way
	last  stageMeasure
	seq   uint64 // measures taken
	// warned is when a warning was last logged (the measuring goroutine's).
	warned time.Time
	// moved is, per input partition, the committed offset last seen and
	// when it was first seen (monotonic clock).
	moved map[inputPartition]movedAt
}

type inputPartition struct {
	topic string
	id    int
}

type movedAt struct {
	offset int64
	since  time.Time
}

// stageMeasure is one measure: the stage has passed on every record of its
// inputs stamped up to t (less the allowance for records out of order, or
// up to the wall clock less the grace where it has read all), and the
// buyers partitions' high-water marks read after that.
type stageMeasure struct {
	t    time.Time
	ends map[int]int64
}

func newStageTime(p *Processor) *stageTime {
	s := p.cfg.JoinStage
	if s == nil || p.cfg.Topics[event.Buyers] == "" {
		return nil
	}
	return &stageTime{cfg: *s, buyers: p.cfg.Topics[event.Buyers], client: p.client, grace: p.cfg.Grace,
		allow: p.cfg.Allowance, every: max(p.cfg.Tick, 250*time.Millisecond), stall: 3 * p.cfg.IdleAfter, log: p.log,
		moved: map[inputPartition]movedAt{}}
}

// limitByStage gives the clock of buyers partition w the stage's latest
// progress once the clock's pending limit (if any) took effect. Until the
// stage's progress is known the clock stands. It never waits: the
// measures are taken in the background.
func (w *worker) limitByStage(wall time.Time) {
	s := w.p.stage
	if s == nil || w.stream != event.Buyers {
		return
	}
	w.clock.Bound()
	// The batch in hand is applied before the timers fire.
	read := max(w.applied, w.cur.last) + 1
	w.clock.Read(read)
	if w.clock.Pending() {
		return
	}
	m, seq := s.latest(wall)
	if seq == w.stageSeen {
		return
	}
	w.stageSeen = seq
	if end, ok := m.ends[w.partition]; ok {
		w.clock.Limit(m.t, end)
		w.clock.Read(read)
	}
}

// latest returns the last measure and its number (0: none yet), and starts
// the next one in the background once every has passed since the last.
func (s *stageTime) latest(wall time.Time) (stageMeasure, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.busy && time.Since(s.at) >= s.every {
		s.busy = true
		go s.refresh(wall)
	}
	return s.last, s.seq
}

// refresh takes a measure; a failed one leaves the last in place (what the
// stage had passed on then it still has).
func (s *stageTime) refresh(wall time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := s.take(ctx, wall)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at, s.busy = time.Now(), false
	if err == nil {
		s.last = m
		s.seq++
		return
	}
	if time.Since(s.warned) >= 30*time.Second {
		s.warned = time.Now()
		s.log.Warn("cannot tell how far the repartition stage has got; the buyer join's clocks wait",
			zap.String("group", s.cfg.GroupID), zap.Error(err))
	}
}

// take measures: the stage's committed offsets against its inputs' ends,
// the event time of the last record it passed on where it lags, then the
// buyers partitions' ends.
func (s *stageTime) take(ctx context.Context, wall time.Time) (stageMeasure, error) {
	topics := make([]string, 0, len(s.cfg.Inputs)+1)
	for t := range s.cfg.Inputs {
		topics = append(topics, t)
	}
	parts, err := s.partitions(ctx, append(topics, s.buyers))
	if err != nil {
		return stageMeasure{}, err
	}
	in := map[string][]int{}
	for _, t := range topics {
		in[t] = parts[t]
	}
	res, err := s.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: s.cfg.GroupID, Topics: in})
	if err == nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		// The stage has committed nothing yet (some brokers say so).
		res, err = &kafka.OffsetFetchResponse{}, nil
	}
	if err != nil {
		return stageMeasure{}, fmt.Errorf("reading the offsets of group %s: %w", s.cfg.GroupID, err)
	}
	committed := map[string]map[int]int64{}
	for t, ps := range res.Topics {
		committed[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return stageMeasure{}, fmt.Errorf("reading the offset of group %s on %s/%d: %w", s.cfg.GroupID, t, p.Partition, p.Error)
			}
			committed[t][p.Partition] = p.CommittedOffset
		}
	}
	bounds, err := s.ends(ctx, in)
	if err != nil {
		return stageMeasure{}, err
	}
	t := wall.Add(-s.grace)
	for topic, ps := range bounds {
		for _, b := range ps {
			c, ok := committed[topic][b.Partition]
			if !ok {
				c = -1
			}
			switch {
			case b.LastOffset <= b.FirstOffset, c >= b.LastOffset, c < 0 && s.cfg.Latest:
				delete(s.moved, inputPartition{topic, b.Partition})
				continue // nothing to pass on
			case s.stalled(topic, b.Partition, c, b.LastOffset):
				continue
			case c <= b.FirstOffset:
				return stageMeasure{}, nil // nothing passed on yet: no progress to give
			}
			ts, err := s.stamp(ctx, topic, b.Partition, c-1)
			if err != nil {
				return stageMeasure{}, err
			}
			if ts = ts.Add(-s.allow); ts.Before(t) {
				t = ts
			}
		}
	}
	// Read last: every record the stage passed on up to t is below them.
	bs, err := s.ends(ctx, map[string][]int{s.buyers: parts[s.buyers]})
	if err != nil {
		return stageMeasure{}, err
	}
	m := stageMeasure{t: t, ends: map[int]int64{}}
	for _, b := range bs[s.buyers] {
		m.ends[b.Partition] = b.LastOffset
	}
	return m, nil
}

// stalled reports whether the stage has left its committed offset c on an
// input partition short of the end for stall: as a partition of the
// processor's own that the broker says has records which never arrive
// (transaction markers at its end, or the stage down), it then no longer
// holds the clock back, and a warning says so.
func (s *stageTime) stalled(topic string, partition int, c, end int64) bool {
	k := inputPartition{topic, partition}
	m, ok := s.moved[k]
	if !ok || m.offset != c {
		s.moved[k] = movedAt{offset: c, since: time.Now()}
		return false
	}
	if time.Since(m.since) < s.stall {
		return false
	}
	if time.Since(s.warned) >= 30*time.Second {
		s.warned = time.Now()
		s.log.Warn("the repartition stage has not moved on an input partition with records left; the buyer join's clocks no longer wait for it",
			zap.String("group", s.cfg.GroupID), zap.String("topic", topic), zap.Int("partition", partition),
			zap.Int64("committed", c), zap.Int64("high_water_mark", end), zap.Duration("stalled", time.Since(m.since)))
	}
	return true
}

// partitions lists the partitions of topics.
func (s *stageTime) partitions(ctx context.Context, topics []string) (map[string][]int, error) {
	meta, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("reading the partitions of %v: %w", topics, err)
	}
	out := map[string][]int{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("reading the partitions of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			out[t.Name] = append(out[t.Name], p.ID)
		}
	}
	return out, nil
}

// ends lists the first and last offsets of the given partitions.
func (s *stageTime) ends(ctx context.Context, parts map[string][]int) (map[string][]kafka.PartitionOffsets, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for t, ps := range parts {
		for _, p := range ps {
			req.Topics[t] = append(req.Topics[t], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
		}
	}
	res, err := s.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("reading the offsets of %v: %w", parts, err)
	}
	for t, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("reading the offsets of %s/%d: %w", t, p.Partition, p.Error)
			}
		}
	}
	return res.Topics, nil
}

// stamp is the event time of the record at offset off, or, when it is not
// a usable event, the time Kafka has for it.
func (s *stageTime) stamp(ctx context.Context, topic string, partition int, off int64) (time.Time, error) {
	// The broker returns at least the record batch holding off, however
	// small MaxBytes is: no more is transferred.
	res, err := s.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: off,
		MinBytes: 1, MaxBytes: 1, MaxWait: 100 * time.Millisecond})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading %s/%d at %d: %w", topic, partition, off, err)
	}
	for {
		r, err := res.Records.ReadRecord()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return time.Time{}, fmt.Errorf("reading %s/%d at %d: %w", topic, partition, off, err)
		}
		if r.Offset < off {
			continue
		}
		var v []byte
		if r.Value != nil {
			if v, err = io.ReadAll(r.Value); err != nil {
				return time.Time{}, fmt.Errorf("reading %s/%d at %d: %w", topic, partition, off, err)
			}
		}
		if ev, err := event.Decode(s.cfg.Inputs[topic], v, r.Time); err == nil {
			return ev.TS.Time, nil
		}
		return r.Time, nil
	}
}
