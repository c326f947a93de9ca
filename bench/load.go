package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

// Mix is the simulated population: many shops with large teams, as on a
// sales peak. Rate is derived from how many events a part needs.
type Mix struct {
	Seed   uint64
	Shops  int
	Agents int
}

// DefaultMix is the population every part simulates.
var DefaultMix = Mix{Seed: 11, Shops: 40, Agents: 30}

// simDay is the simulated day of the backlogs: the last 双11 (shop-local)
// at least two days ago, so that no event is stamped in the future.
var simDay = func() time.Time {
	now := time.Now().In(sim.Shanghai())
	d := time.Date(now.Year(), 11, 11, 0, 0, 0, 0, sim.Shanghai())
	if now.Sub(d) < 48*time.Hour {
		d = d.AddDate(-1, 0, 0)
	}
	return d
}()

// options returns the simulator options for rate and the day starting at start.
func (m Mix) options(rate float64, start time.Time) sim.Options {
	return sim.Options{Seed: m.Seed, Shops: m.Shops, Agents: m.Agents, Rate: rate, Start: start}
}

// perDay estimates the events of one simulated day at rate 1 that keep
// returns true for, from a day at a tenth of the rate (traffic scales with
// the rate): the unit from which a part's rate is derived.
func (m Mix) perDay(keep func(*sim.Record) bool) (int, error) {
	const probe = 0.1
	n := 0
	err := sim.Generate(m.options(probe, simDay), func(r sim.Record) error {
		if keep(&r) {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sizing the simulated day: %w", err)
	}
	return int(float64(n) / probe), nil
}

func isChat(r *sim.Record) bool { return r.Topic == event.Chat }
func any_(*sim.Record) bool     { return true }

var errEnough = errors.New("enough events")

// topicMap is the contract's default topic of each stream.
var topicMap = map[event.Stream]string{event.Chat: TopicChat, event.Orders: TopicOrders, event.Presence: TopicPresence}

// ProduceChat produces n chat events of the simulated peak to cs.chat, as
// a backlog, from the day starting at simDay on (further days when one is
// not enough). It returns how many it produced and how long that took.
func ProduceChat(ctx context.Context, broker string, mix Mix, n int) (int, time.Duration, error) {
	perDay, err := mix.perDay(isChat)
	if err != nil {
		return 0, 0, err
	}
	// A little more than enough: the rest of the day is not produced.
	rate := float64(n) / float64(perDay) * 1.05
	return produce(ctx, broker, mix, rate, n, isChat, false)
}

// ProduceDay produces a whole simulated day of at least n events on every
// input topic (chat, orders, presence). Traffic does not grow quite in
// proportion to the rate (busier agents change the conversations), so the
// rate is corrected on whole simulated days until the day is big enough.
func ProduceDay(ctx context.Context, broker string, mix Mix, n int) (int, time.Duration, error) {
	perDay, err := mix.perDay(any_)
	if err != nil {
		return 0, 0, err
	}
	rate := float64(n) / float64(perDay) * 1.01
	for range 4 {
		got := 0
		if err := sim.Generate(mix.options(rate, simDay), func(sim.Record) error { got++; return nil }); err != nil {
			return 0, 0, fmt.Errorf("sizing the simulated day: %w", err)
		}
		if got >= n {
			break
		}
		rate *= float64(n) / float64(got) * 1.01
	}
	return produce(ctx, broker, mix, rate, 0, any_, true)
}

// produce writes the simulated events keep selects, at most limit (0: no
// limit), day after day until limit or, with oneDay, after the first day.
func produce(ctx context.Context, broker string, mix Mix, rate float64, limit int, keep func(*sim.Record) bool, oneDay bool) (int, time.Duration, error) {
	var (
		n     int
		err   error
		start = time.Now()
	)
	pprof.Do(ctx, pprof.Labels("role", "load"), func(ctx context.Context) {
		w := sim.NewWriter(broker)
		defer w.Close()
		p := sim.NewProducer(ctx, w, topicMap)
		emit := func(r sim.Record) error {
			if !keep(&r) {
				return nil
			}
			if err := p.Emit(r); err != nil {
				return err
			}
			n++
			if limit > 0 && n >= limit {
				return errEnough
			}
			return nil
		}
		for day := simDay; ; day = day.Add(24 * time.Hour) {
			err = sim.Generate(mix.options(rate, day), emit)
			if errors.Is(err, errEnough) {
				err = nil
				break
			}
			if err != nil || oneDay || ctx.Err() != nil {
				break
			}
		}
		if err == nil {
			err = p.Flush()
		}
	})
	if err != nil {
		return n, 0, fmt.Errorf("producing the simulated backlog: %w", err)
	}
	return n, time.Since(start), nil
}

// HighWaterMarks returns each partition's high-water mark of topic, one
// of the benchmark cluster's Topics.
func HighWaterMarks(ctx context.Context, broker, topic string) (map[int]int64, error) {
	return highWaterMarks(ctx, broker, topic, Topics[topic])
}

// highWaterMarks returns the high-water marks of a topic of partitions.
func highWaterMarks(ctx context.Context, broker, topic string, partitions int) (map[int]int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	var req []kafka.OffsetRequest
	for p := range partitions {
		req = append(req, kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	out := map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// Pacer produces live chat traffic at a fixed rate: simulated peak chat
// events stamped with the wall clock as they are sent, plus, when Probe is
// set, probe records it injects among them.
type Pacer struct {
	Broker string
	Mix    Mix
	// Rate is events per second, probes included.
	Rate int
	// Probe, when set, is asked at each send for extra records (a probe
	// wait) to send with the traffic; now is the send time.
	Probe func(now time.Time) []sim.Record
	// Topic is where the traffic goes (TopicChat when empty).
	Topic string
	// DayRate, when set, sends the simulated days from simDay on at this
	// simulator rate with their own timestamps: a day's traffic, alerts
	// and all, paced at Rate rather than stamped with the wall clock.
	DayRate float64
	// Restamp, with DayRate, moves each simulated day onto the wall clock:
	// every ts of the day shifted by the same amount, so that its first
	// event is stamped when it is sent, order and spacing kept. Without
	// it the day keeps its past timestamps, and every timer of a caught-up
	// partition is due when its first event arrives.
	Restamp bool

	sent atomic.Int64
}

// Sent is how many records the pacer produced.
func (p *Pacer) Sent() int64 { return p.sent.Load() }

// Run produces until ctx ends. It returns the first produce error.
func (p *Pacer) Run(ctx context.Context) error {
	var err error
	pprof.Do(ctx, pprof.Labels("role", "load"), func(ctx context.Context) { err = p.run(ctx) })
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

func (p *Pacer) run(ctx context.Context) error {
	// Each record with the simulated day it belongs to.
	type dayRecord struct {
		sim.Record
		day int
	}
	src := make(chan dayRecord, 4096)
	genCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(src)
		// Simulated events in their order, day after day; the pacer gives
		// them the send time, so days and hours of the simulation do not
		// matter, only the mix of senders and conversations.
		rate := 2.0
		if p.DayRate > 0 {
			rate = p.DayRate
		}
		n := 0
		for day := simDay; genCtx.Err() == nil; day, n = day.Add(24*time.Hour), n+1 {
			_ = sim.Generate(p.Mix.options(rate, day), func(r sim.Record) error {
				if r.Topic != event.Chat {
					return nil
				}
				select {
				case src <- dayRecord{r, n}:
					return nil
				case <-genCtx.Done():
					return genCtx.Err()
				}
			})
		}
	}()
	// A transport of its own: the shared one's metadata, cached for
	// seconds, may not know a topic created just before.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(p.Broker),
		Transport:    tr,
		Balancer:     &kafka.Hash{},
		BatchSize:    1000,
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireOne,
	}
	defer w.Close()
	// The transport's connection and the topic's metadata before the clock
	// starts: on a loaded machine the first write's dial and lookup can
	// take longer than a short run's window.
	topic := cmp.Or(p.Topic, TopicChat)
	c := &kafka.Client{Addr: kafka.TCP(p.Broker), Transport: tr, Timeout: 10 * time.Second}
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}}); err != nil {
		return fmt.Errorf("reading the metadata of %s: %w", topic, err)
	}
	const tick = 5 * time.Millisecond
	start := time.Now()
	var msgs []kafka.Message
	// The shift of the day being sent onto the wall clock (Restamp).
	shiftDay, shift := -1, time.Duration(0)
	for ctx.Err() == nil {
		now := time.Now()
		want := int64(now.Sub(start).Seconds()*float64(p.Rate)) - p.sent.Load()
		msgs = msgs[:0]
		if p.Probe != nil && want > 0 {
			for _, r := range p.Probe(now) {
				msgs = appendRecord(msgs, &r)
			}
		}
		for int64(len(msgs)) < want {
			r, ok := <-src
			if !ok {
				return ctx.Err()
			}
			switch {
			case p.DayRate == 0:
				r.Event.TS = event.Time{Time: now}
			case p.Restamp:
				if r.day != shiftDay {
					shiftDay, shift = r.day, now.Sub(r.Event.TS.Time)
				}
				r.Event.TS = event.Time{Time: r.Event.TS.Add(shift)}
			}
			msgs = appendRecord(msgs, &r.Record)
		}
		if p.Topic != "" {
			for i := range msgs {
				msgs[i].Topic = p.Topic
			}
		}
		if len(msgs) > 0 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				return fmt.Errorf("producing live traffic: %w", err)
			}
			p.sent.Add(int64(len(msgs)))
		}
		if d := tick - time.Since(now); d > 0 {
			time.Sleep(d)
		}
	}
	return nil
}

// appendRecord encodes r as a cs.chat message.
func appendRecord(msgs []kafka.Message, r *sim.Record) []kafka.Message {
	return append(msgs, kafka.Message{Topic: TopicChat, Key: []byte(r.Key), Value: sim.AppendEvent(nil, &r.Event)})
}

// probeBuyer names the buyer of probe wait i of a run.
func probeBuyer(run string, i int) string { return "probe-" + run + "-" + strconv.Itoa(i) }
