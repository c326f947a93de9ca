package bench

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
)

// batchFunc handles one fetched batch of a partition.
type batchFunc func(ctx context.Context, gen *kafka.Generation, partition int, msgs []kafka.Message) error

// ConsumeResult is how fast a consumer read a topic to its end.
type ConsumeResult struct {
	Records int64
	// Elapsed runs from the first batch fetched to the last one handled,
	// so joining the group is not counted.
	Elapsed time.Duration
}

// Rate is records per second.
func (r ConsumeResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Records) / r.Elapsed.Seconds()
}

// consumeAll reads every partition of topic up to its high-water mark in
// hwms as the only member of a new consumer group, with one reader per
// assigned partition, exactly as the pipeline does (Generation API,
// per-partition kafka.Reader, batches of up to batch records cut at the
// high-water mark), and hands each batch to handle.
func consumeAll(ctx context.Context, broker, group, topic string, hwms map[int]int64, batch int, handle batchFunc) (ConsumeResult, error) {
	cg, gen, err := joinGroup(ctx, broker, group, topic)
	if err != nil {
		return ConsumeResult{}, err
	}
	defer cg.Close()
	read, err := readAssigned(ctx, gen, broker, topic, batch, hwms, handle)
	if err != nil {
		return ConsumeResult{}, err
	}
	return ConsumeResult{Records: read.records, Elapsed: read.last.Sub(read.first)}, nil
}

// joinGroup joins a new consumer group of topic as its only member.
func joinGroup(ctx context.Context, broker, group, topic string) (*kafka.ConsumerGroup, *kafka.Generation, error) {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                group,
		Brokers:           []string{broker},
		Topics:            []string{topic},
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: 2 * time.Second,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("creating consumer group %s: %w", group, err)
	}
	gen, err := cg.Next(ctx)
	if err != nil {
		cg.Close()
		return nil, nil, fmt.Errorf("joining consumer group %s: %w", group, err)
	}
	return cg, gen, nil
}

// groupRead is what readAssigned read: the records handled, from the first
// batch fetched to the last one handled, so joining is not counted.
type groupRead struct {
	records     int64
	first, last time.Time
}

// readAssigned reads the partitions of topic that gen assigns, one
// kafka.Reader each, in batches of up to batch records cut at the
// high-water mark, handing each to handle. With hwms, a partition ends at
// its mark (one whose mark is 0 is not read); without, every reader runs
// until ctx ends, which is then no error.
func readAssigned(ctx context.Context, gen *kafka.Generation, broker, topic string, batch int, hwms map[int]int64, handle batchFunc) (groupRead, error) {
	var (
		first, last atomic.Int64
		records     atomic.Int64
		wg          sync.WaitGroup
		errOnce     sync.Once
		firstErr    error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	for _, a := range gen.Assignments[topic] {
		hwm, bounded := hwms[a.ID], hwms != nil
		if bounded && hwm == 0 {
			continue
		}
		wg.Add(1)
		part, offset := a.ID, a.Offset
		gen.Start(func(gctx context.Context) {
			// Returning would end the generation for every reader: report
			// done, then wait for the group to close.
			defer func() { <-gctx.Done() }()
			defer wg.Done()
			rctx, cancel := context.WithCancel(gctx)
			defer cancel()
			defer context.AfterFunc(ctx, cancel)()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: []string{broker}, Topic: topic, Partition: part,
				MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 2 * batch,
			})
			defer r.Close()
			if offset < 0 {
				offset = kafka.FirstOffset
			}
			if err := r.SetOffset(offset); err != nil {
				fail(err)
				return
			}
			msgs := make([]kafka.Message, 0, batch)
			for {
				msgs = msgs[:0]
				for len(msgs) < batch {
					m, err := r.FetchMessage(rctx)
					if err != nil {
						if !bounded && ctx.Err() != nil {
							return
						}
						fail(fmt.Errorf("fetching %s/%d: %w", topic, part, err))
						return
					}
					msgs = append(msgs, m)
					if m.Offset+1 >= m.HighWaterMark || (bounded && m.Offset+1 >= hwm) {
						break
					}
				}
				first.CompareAndSwap(0, time.Now().UnixNano())
				if err := handle(rctx, gen, part, msgs); err != nil {
					fail(err)
					return
				}
				records.Add(int64(len(msgs)))
				storeMax(&last, time.Now().UnixNano())
				if bounded && msgs[len(msgs)-1].Offset+1 >= hwm {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return groupRead{}, firstErr
	}
	return groupRead{records: records.Load(), first: time.Unix(0, first.Load()), last: time.Unix(0, last.Load())}, nil
}

// BareCeiling is kafka-go consumption of topic with decoding only.
func BareCeiling(ctx context.Context, broker, group, topic string, hwms map[int]int64) (ConsumeResult, error) {
	var (
		res ConsumeResult
		err error
	)
	pprof.Do(ctx, pprof.Labels("role", "ceiling"), func(ctx context.Context) {
		res, err = consumeAll(ctx, broker, group, topic, hwms, 500, func(_ context.Context, _ *kafka.Generation, _ int, msgs []kafka.Message) error {
			for i := range msgs {
				if _, err := event.Decode(event.Chat, msgs[i].Value, msgs[i].Time); err != nil {
					return fmt.Errorf("decoding offset %d: %w", msgs[i].Offset, err)
				}
			}
			return nil
		})
	})
	return res, err
}

// minimalLua is the least state a per-event design keeps: the
// conversation's last event and the partition's offset, one call per event.
var minimalLua = redis.NewScript(`
redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'sender', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 1`)

// MinimalPipeline is the ceiling of DESIGN.md §7: decode, one pipelined
// Lua call per event (one round trip per batch), commit per batch.
func MinimalPipeline(ctx context.Context, broker, group, topic string, hwms map[int]int64, rdb *redis.Client, batch int) (ConsumeResult, error) {
	if err := minimalLua.Load(ctx, rdb).Err(); err != nil {
		return ConsumeResult{}, fmt.Errorf("loading the minimal script: %w", err)
	}
	var (
		res ConsumeResult
		err error
	)
	pprof.Do(ctx, pprof.Labels("role", "ceiling"), func(ctx context.Context) {
		res, err = consumeAll(ctx, broker, group, topic, hwms, batch, func(ctx context.Context, gen *kafka.Generation, part int, msgs []kafka.Message) error {
			tag := "min:{chat." + strconv.Itoa(part) + "}:"
			pipe := rdb.Pipeline()
			for i := range msgs {
				ev, err := event.Decode(event.Chat, msgs[i].Value, msgs[i].Time)
				if err != nil {
					return fmt.Errorf("decoding offset %d: %w", msgs[i].Offset, err)
				}
				minimalLua.EvalSha(ctx, pipe, []string{tag + "c:" + ev.Key(event.Chat), tag + "offset"},
					ev.Ms(), ev.Sender, msgs[i].Offset)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("writing the batch: %w", err)
			}
			last := msgs[len(msgs)-1].Offset
			return gen.CommitOffsets(map[string]map[int]int64{topic: {part: last + 1}})
		})
	})
	return res, err
}

// ceiling measures both ceilings over the chat backlog.
// bareChat reads the chat topic to its high-water marks with BareCeiling
// as consumer group group, metering the CPU it costs; it returns the marks
// too, for the runs that read the same backlog after it.
func (h *harness) bareChat(ctx context.Context, group string) (map[int]int64, ConsumeResult, costs, error) {
	hwms, err := HighWaterMarks(ctx, h.broker.Addr, TopicChat)
	if err != nil {
		return nil, ConsumeResult{}, costs{}, err
	}
	m, err := h.startMeter(ctx, "")
	if err != nil {
		return nil, ConsumeResult{}, costs{}, err
	}
	bare, err := BareCeiling(ctx, h.broker.Addr, group, TopicChat, hwms)
	if err != nil {
		return nil, ConsumeResult{}, costs{}, fmt.Errorf("bare consumption: %w", err)
	}
	cost, err := m.end(ctx, bare.Records)
	return hwms, bare, cost, err
}

func (h *harness) ceiling(ctx context.Context) error {
	if err := h.chatBacklog(ctx); err != nil {
		return err
	}
	hwms, bare, bareCost, err := h.bareChat(ctx, "ceiling-bare")
	if err != nil {
		return err
	}
	h.logf("bare kafka-go consumption + decode: %d records in %s, %.0f/s", bare.Records, bare.Elapsed.Round(time.Millisecond), bare.Rate())
	h.report.add(PartCeiling, "bare kafka-go consumption + event.Decode", bare.Rate(), "events/s",
		fmt.Sprintf("one group member, one reader per partition, no state; %.1f µs CPU per event (consumer + broker)", bareCost.perEvent(bareCost.self)))
	h.bareRate = bare.Rate()

	if err := h.redis.Reset(ctx); err != nil {
		return err
	}
	m, err := h.startMeter(ctx, h.profilePath("minimal"))
	if err != nil {
		return err
	}
	minimal, err := MinimalPipeline(ctx, h.broker.Addr, "ceiling-minimal", TopicChat, hwms, h.redis.Client, 500)
	if err != nil {
		_, _ = m.end(ctx, 0)
		return fmt.Errorf("minimal pipeline: %w", err)
	}
	minCost, err := m.end(ctx, minimal.Records)
	if err != nil {
		return err
	}
	h.logf("minimal pipeline: %d records in %s, %.0f/s", minimal.Records, minimal.Elapsed.Round(time.Millisecond), minimal.Rate())
	h.report.add(PartCeiling, "minimal pipeline (decode, 1 pipelined Lua call per event, commit per batch of 500)",
		minimal.Rate(), "events/s", fmt.Sprintf("%.1f µs CPU per event in the consumer, %.1f in the broker, %.1f in Redis",
			minCost.perEvent(minCost.byRole["ceiling"]), minCost.perEvent(minCost.byRole["broker"]), minCost.perEvent(minCost.redis)))
	h.minimalRate = minimal.Rate()
	return h.redis.Reset(ctx)
}

// storeMax raises v to n unless it holds more already.
func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if old >= n || v.CompareAndSwap(old, n) {
			return
		}
	}
}
