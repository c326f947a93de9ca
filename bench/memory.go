package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

// produceConversations starts conversations [from, to) of new buyers
// spread over the shops: one unanswered buyer message each, or, when
// finished, a buyer message answered by an agent five seconds later. Event
// times are the wall clock.
func produceConversations(ctx context.Context, broker string, shops []sim.Shop, tag string, from, to int, finished bool) error {
	w := sim.NewWriter(broker)
	defer w.Close()
	now := time.Now()
	msgs := make([]kafka.Message, 0, 10_000)
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("producing conversations: %w", err)
		}
		msgs = msgs[:0]
		return nil
	}
	add := func(ev *event.Event) error {
		msgs = append(msgs, kafka.Message{Topic: TopicChat, Key: []byte(ev.Key(event.Chat)), Value: sim.AppendEvent(nil, ev)})
		if len(msgs) == cap(msgs) {
			return flush()
		}
		return nil
	}
	for i := from; i < to; i++ {
		s := shops[i%len(shops)]
		agent := s.Agents[i%len(s.Agents)]
		buyer := tag + strconv.Itoa(i)
		id := "m-" + tag + strconv.Itoa(i)
		start := now
		if finished {
			start = now.Add(-10 * time.Second)
		}
		ev := event.Event{EventID: id + "-q", Type: event.TypeMessage, TS: event.Time{Time: start}, ShopID: s.ID,
			Platform: s.Platform, BuyerID: buyer, Sender: event.SenderBuyer, AgentID: agent, Text: "你好，请问有货吗"}
		if err := add(&ev); err != nil {
			return err
		}
		if finished {
			ev.EventID, ev.TS, ev.Sender, ev.Text = id+"-a", event.Time{Time: start.Add(5 * time.Second)}, event.SenderAgent, "亲，有货的，今天下单明天发"
			if err := add(&ev); err != nil {
				return err
			}
		}
	}
	return flush()
}

// memSample is the processor's and Redis's memory with n conversations.
type memSample struct {
	n         int
	rss, heap int64
	redisUsed int64
}

// memory measures Redis bytes per waiting and per finished conversation
// and the processor's RSS as active conversations grow. The processor is
// a child process, so its RSS is its own.
func (h *harness) memory(ctx context.Context) error {
	if err := h.freshBroker(ctx); err != nil {
		return err
	}
	// Long thresholds: nothing fires while memory is measured, so the
	// outbox stays empty and only conversations are counted.
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: "memory", allDay: true,
		thresholds: []time.Duration{30 * time.Minute, 60 * time.Minute}, session: h.s.Session})
	if err != nil {
		return err
	}
	rep, err := StartChild("memory", cfg, h.dir, "")
	if err != nil {
		return err
	}
	defer func() { _ = rep.Stop(15 * time.Second) }()
	if err := waitOwned(ctx, 60*time.Second, rep); err != nil {
		return err
	}
	shops, err := sim.Shops(sim.Options{Seed: DefaultMix.Seed, Shops: DefaultMix.Shops, Agents: DefaultMix.Agents})
	if err != nil {
		return err
	}
	sample := func(n int) (memSample, error) {
		s := memSample{n: n}
		if !sleepCtx(ctx, time.Second) { // let the batch in hand finish and the heap settle
			return s, ctx.Err()
		}
		m, err := ProcMemory(rep.PID())
		if err != nil {
			return s, err
		}
		s.rss = m.RSS
		if fams, err := rep.Metrics(ctx); err == nil {
			s.heap = int64(sumCounter(fams, "go_memstats_heap_inuse_bytes", nil))
		}
		s.redisUsed, err = UsedMemory(ctx, h.redis.Client)
		return s, err
	}
	base, err := sample(0)
	if err != nil {
		return err
	}
	stages := append([]int{h.s.Waiting}, h.s.Active...)
	slices.Sort(stages)
	stages = slices.Compact(stages)
	samples := map[int]memSample{}
	done := 0
	for _, n := range stages {
		if err := produceConversations(ctx, h.broker.Addr, shops, "w", done, n, false); err != nil {
			return err
		}
		if err := h.applyAll(ctx, 120*time.Second); err != nil {
			return err
		}
		done = n
		s, err := sample(n)
		if err != nil {
			return err
		}
		samples[n] = s
		h.logf("memory: %d waiting conversations: processor RSS %.1f MiB (heap %.1f MiB), Redis used %.1f MiB",
			n, mib(s.rss), mib(s.heap), mib(s.redisUsed))
	}
	waiting, err := h.waitingCount(ctx)
	if err != nil {
		return err
	}
	if waiting != int64(done) {
		return fmt.Errorf("Redis holds %d waiting buyers, %d were started", waiting, done)
	}
	before, err := sample(done)
	if err != nil {
		return err
	}
	if err := produceConversations(ctx, h.broker.Addr, shops, "f", 0, h.s.Finished, true); err != nil {
		return err
	}
	if err := h.applyAll(ctx, 120*time.Second); err != nil {
		return err
	}
	after, err := sample(done)
	if err != nil {
		return err
	}

	const part = PartMemory
	r := h.report
	w := samples[h.s.Waiting]
	r.atMost(part, fmt.Sprintf("Redis bytes per waiting conversation (%s waiting)", thousands(int64(h.s.Waiting))),
		float64(w.redisUsed-base.redisUsed)/float64(h.s.Waiting), "bytes", 300,
		"INFO used_memory delta: state, timer and waiting-set entries")
	if top := samples[stages[len(stages)-1]]; top.n != h.s.Waiting {
		r.add(part, fmt.Sprintf("Redis bytes per waiting conversation (%s waiting)", thousands(int64(top.n))),
			float64(top.redisUsed-base.redisUsed)/float64(top.n), "bytes", "")
	}
	r.add(part, fmt.Sprintf("Redis bytes per finished conversation-day (%s finished)", thousands(int64(h.s.Finished))),
		float64(after.redisUsed-before.redisUsed)/float64(h.s.Finished), "bytes", "state kept for state_ttl (72h); no timer, not waiting")
	first := samples[h.s.Active[0]]
	spread := 0.0
	for _, n := range h.s.Active {
		s := samples[n]
		r.add(part, fmt.Sprintf("processor RSS at %s active conversations", thousands(int64(n))), mib(s.rss), "MiB",
			fmt.Sprintf("Go heap in use %.1f MiB", mib(s.heap)))
		if d := 100 * (float64(s.rss)/float64(first.rss) - 1); d > spread || -d > spread {
			spread = max(d, -d)
		}
	}
	r.atMost(part, fmt.Sprintf("processor RSS change from %s to %s active conversations", thousands(int64(h.s.Active[0])),
		thousands(int64(h.s.Active[len(h.s.Active)-1]))), spread, "%", 10, "largest |RSS / RSS at the first point − 1|")
	if m, err := ProcMemory(rep.PID()); err == nil {
		r.add(part, "processor peak RSS (VmHWM)", mib(m.Peak), "MiB", "")
	}
	return nil
}

// applyAll waits until every chat partition has applied what the broker holds.
func (h *harness) applyAll(ctx context.Context, timeout time.Duration) error {
	ws, err := watchList(ctx, h.broker.Addr, "chat")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = waitApplied(wctx, h.redis.Client, ws, 20*time.Millisecond, nil)
	return err
}

// waitingCount sums the waiting sets of every chat partition and shop.
func (h *harness) waitingCount(ctx context.Context) (int64, error) {
	var total int64
	for p := range Topics[TopicChat] {
		keys, err := h.redis.Client.Keys(ctx, keyPrefix+":{chat."+strconv.Itoa(p)+"}:w:*").Result()
		if err != nil {
			return 0, fmt.Errorf("listing waiting sets: %w", err)
		}
		for _, k := range keys {
			n, err := h.redis.Client.ZCard(ctx, k).Result()
			if err != nil {
				return 0, fmt.Errorf("counting %s: %w", k, err)
			}
			total += n
		}
	}
	return total, nil
}
