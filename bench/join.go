package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

// PartJoin measures the whole pipeline with the buyer join: the chat
// backlog alone, then the same number of events with orders at 20 % of
// them, each until the repartition stage has written every fact to the
// buyers topic and the processor has applied it.
const PartJoin = "join"

// TopicBuyers is the buyers topic of the benchmark replicas.
const TopicBuyers = "cs.buyers"

// buyersPartitions is its partition count: the chat topic's, and the
// configuration's default, which every benchmark replica creates it with.
const buyersPartitions = 12

// orderShare is the share of orders in the mixed run.
const orderShare = 0.2

func isOrder(r *sim.Record) bool { return r.Topic == event.Orders }

// join runs the two measurements, each on a fresh broker and Redis.
func (h *harness) join(ctx context.Context) error {
	var rates [2]float64
	for i, share := range []float64{0, orderShare} {
		if err := h.freshBroker(ctx); err != nil {
			return err
		}
		h.chatReady = false
		chatN := int(float64(h.s.Events) * (1 - share))
		n, _, err := ProduceChat(ctx, h.broker.Addr, DefaultMix, chatN)
		if err != nil {
			return err
		}
		orders := 0
		if share > 0 {
			// The simulated day has fewer orders than a fifth of its
			// events: its orders come from a faster day of the same shops
			// (more orders per buyer than chat), enough to make the share.
			want := h.s.Events - n
			perDay, err := DefaultMix.perDay(isOrder)
			if err != nil {
				return err
			}
			orders, _, err = produce(ctx, h.broker.Addr, DefaultMix, float64(want)/float64(perDay)*1.05, want, isOrder, false)
			if err != nil {
				return err
			}
		}
		rate, err := h.joinRun(ctx, n, orders)
		if err != nil {
			return err
		}
		rates[i] = rate
	}
	r := h.report
	r.add(PartJoin, "events/s, chat only (repartition and join included)", rates[0], "events/s",
		"first applied batch to the last fact applied: inputs applied, every fact written to cs.buyers and applied; one in-process replica")
	r.add(PartJoin, "events/s, orders 20 % of events", rates[1], "events/s", "same count of input events, same run")
	if rates[0] > 0 {
		r.add(PartJoin, "orders at 20 % against chat only", 100*rates[1]/rates[0], "%", "")
	}
	return nil
}

// joinRun runs one replica over what the broker holds until every input
// event and every fact is applied, and returns input events per second.
func (h *harness) joinRun(ctx context.Context, chat, orders int) (float64, error) {
	if err := h.redis.Reset(ctx); err != nil {
		return 0, err
	}
	streams := []string{"chat"}
	if orders > 0 {
		streams = append(streams, "orders")
	}
	ws, err := watchList(ctx, h.broker.Addr, streams...)
	if err != nil {
		return 0, err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: "join", session: h.s.Session})
	if err != nil {
		return 0, err
	}
	cfg.Kafka.BuyersPartitions = buyersPartitions
	start := time.Now()
	rep, err := StartInProcess("join", cfg, h.log)
	if err != nil {
		return 0, err
	}
	defer h.stop(rep)
	timeout := 120*time.Second + time.Duration(chat+orders)*100*time.Microsecond
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prog, err := waitApplied(wctx, h.redis.Client, ws, 20*time.Millisecond, nil)
	if err != nil {
		return 0, fmt.Errorf("waiting for chat and orders: %w", err)
	}
	inputsDone := time.Since(start)
	// Then the facts: the repartition group has committed everything it
	// read, and the processor has applied every fact written.
	c := &kafka.Client{Addr: kafka.TCP(h.broker.Addr), Timeout: 10 * time.Second}
	inputs := map[string][]int{}
	for _, w := range ws {
		inputs["cs."+w.stream] = append(inputs["cs."+w.stream], w.partition)
	}
	hwm := map[string]int64{}
	for _, w := range ws {
		hwm[fmt.Sprintf("cs.%s/%d", w.stream, w.partition)] = w.hwm
	}
	for {
		if err := wctx.Err(); err != nil {
			return 0, fmt.Errorf("waiting for the buyers topic: %w", err)
		}
		done, err := repartitioned(wctx, c, cfg.Kafka.GroupID+"-repartition", inputs, hwm)
		if err == nil && done {
			h.logf("join: inputs applied after %s, repartitioned after %s", inputsDone.Round(time.Millisecond),
				time.Since(start).Round(time.Millisecond))
			bw, err := buyersWatch(wctx, c)
			if err != nil {
				return 0, err
			}
			if _, err := waitApplied(wctx, h.redis.Client, bw, 20*time.Millisecond, nil); err != nil {
				return 0, fmt.Errorf("waiting for the facts: %w", err)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// As the e2e part does: from the first applied batch (the group
	// joined, the partitions claimed) to the last fact applied.
	took := time.Since(prog.First)
	rate := float64(chat+orders) / took.Seconds()
	h.logf("join: %d chat + %d order events, facts applied, in %s after the first batch (%s after start): %.0f/s",
		chat, orders, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), rate)
	return rate, nil
}

// repartitioned reports whether the repartition group committed every
// input partition up to its high-water mark.
func repartitioned(ctx context.Context, c *kafka.Client, group string, inputs map[string][]int, hwm map[string]int64) (bool, error) {
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: inputs})
	if err != nil {
		return false, err
	}
	if resp.Error != nil {
		return false, resp.Error
	}
	for topic, ps := range resp.Topics {
		for _, p := range ps {
			if p.CommittedOffset < hwm[fmt.Sprintf("%s/%d", topic, p.Partition)] {
				return false, nil
			}
		}
	}
	return len(resp.Topics) == len(inputs), nil
}

// buyersWatch is the buyers topic's partitions with their high-water marks.
func buyersWatch(ctx context.Context, c *kafka.Client) ([]watched, error) {
	req := make([]kafka.OffsetRequest, buyersPartitions)
	for p := range req {
		req[p] = kafka.LastOffsetOf(p)
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{TopicBuyers: req}})
	if err != nil {
		return nil, fmt.Errorf("listing the buyers topic's offsets: %w", err)
	}
	var out []watched
	for _, po := range res.Topics[TopicBuyers] {
		if po.Error != nil {
			return nil, errors.Join(fmt.Errorf("buyers partition %d", po.Partition), po.Error)
		}
		out = append(out, watched{stream: "buyers", partition: po.Partition, hwm: po.LastOffset})
	}
	return out, nil
}
