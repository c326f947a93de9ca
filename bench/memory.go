package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
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

// steadyTraffic sends follow-up buyer messages to random conversations of
// [0, n) at rate a second until ctx ends: live traffic that touches every
// conversation alike, so the processor is in the same steady state
// whatever n is. A follow-up in a wait changes no figure the memory part
// reads.
func steadyTraffic(ctx context.Context, broker string, shops []sim.Shop, tag string, n, rate int) error {
	w := sim.NewWriter(broker)
	defer w.Close()
	const tick = 20 * time.Millisecond
	per := max(rate*int(tick/time.Millisecond)/1000, 1)
	rnd := rand.New(rand.NewPCG(uint64(n), 7))
	t := time.NewTicker(tick)
	defer t.Stop()
	msgs := make([]kafka.Message, 0, per)
	for seq := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		msgs = msgs[:0]
		now := time.Now()
		for range per {
			i := rnd.IntN(n)
			s := shops[i%len(shops)]
			seq++
			ev := event.Event{EventID: "f-" + tag + strconv.Itoa(n) + "-" + strconv.Itoa(seq), Type: event.TypeMessage,
				TS: event.Time{Time: now}, ShopID: s.ID, Platform: s.Platform, BuyerID: tag + strconv.Itoa(i),
				Sender: event.SenderBuyer, AgentID: s.Agents[i%len(s.Agents)], Text: "还在吗？"}
			msgs = append(msgs, kafka.Message{Topic: TopicChat, Key: []byte(ev.Key(event.Chat)), Value: sim.AppendEvent(nil, &ev)})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil && ctx.Err() == nil {
			return fmt.Errorf("producing follow-up messages: %w", err)
		}
	}
}

// memSample is the processor's and Redis's memory with n conversations.
type memSample struct {
	n int
	// burst is the RSS right after the conversations were ingested, before
	// any steady traffic; rss the median while sampling.
	burst     int64
	rss, heap int64
	// unreturned is heap the runtime has freed but not given back to the
	// OS (idle minus released): part of RSS that is not live data.
	unreturned int64
	// rssLive and heapLive are read after a forced collection.
	rssLive, heapLive int64
	redisUsed         int64
}

// memory measures Redis bytes per waiting and per finished conversation
// and the processor's RSS as active conversations grow. The processor is
// a child process, so its RSS is its own.
func (h *harness) memory(ctx context.Context) error {
	shops, err := sim.Shops(sim.Options{Seed: DefaultMix.Seed, Shops: DefaultMix.Shops, Agents: DefaultMix.Agents})
	if err != nil {
		return err
	}
	// Finished conversations first, on an empty Redis of their own, so that
	// neither the waiting ones nor a hash table growing past them count.
	if err := h.memoryFinished(ctx, shops); err != nil {
		return err
	}
	return h.memoryWaiting(ctx, shops)
}

// memoryReplica starts a child replica on an empty broker and Redis. Long
// thresholds: nothing fires while memory is measured, so the outbox stays
// empty and only conversations are counted.
func (h *harness) memoryReplica(ctx context.Context, name string) (*Replica, error) {
	if err := h.freshBroker(ctx); err != nil {
		return nil, err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: name, allDay: true,
		thresholds: []time.Duration{30 * time.Minute, 60 * time.Minute}, session: h.s.Session})
	if err != nil {
		return nil, err
	}
	rep, err := startChild(name, cfg, h.dir, "", filepath.Join(h.s.ProfileDir, name+".heap"), h.s.ReplicaEnv...)
	if err != nil {
		return nil, err
	}
	if err := waitOwned(ctx, 60*time.Second, rep); err != nil {
		h.stop(rep)
		return nil, err
	}
	return rep, nil
}

// sampleMemory reads Redis's used_memory and the replica's memory (as it
// is, then after a forced collection) once the batch in hand is done.
// With traffic set, the RSS is sampled under it, after a warm-up: the
// median of readings every 100 ms.
func (h *harness) sampleMemory(ctx context.Context, rep *Replica, n int, traffic func(context.Context) error) (memSample, string, error) {
	s := memSample{n: n}
	var err error
	if s.redisUsed, err = UsedMemory(ctx, h.redis.Client); err != nil {
		return s, "", err
	}
	m, err := ProcMemory(rep.PID())
	if err != nil {
		return s, "", err
	}
	s.burst = m.RSS
	if traffic != nil {
		tctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- traffic(tctx) }()
		defer func() { stop(); <-done }()
		if !sleepCtx(ctx, h.s.Warm) {
			return s, "", ctx.Err()
		}
	}
	var rss []int64
	for end := time.Now().Add(h.s.Settle); ; {
		m, err := ProcMemory(rep.PID())
		if err != nil {
			return s, "", err
		}
		rss = append(rss, m.RSS)
		if !time.Now().Before(end) {
			break
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return s, "", ctx.Err()
		}
	}
	slices.Sort(rss)
	s.rss = rss[len(rss)/2]
	if fams, err := rep.Metrics(ctx); err == nil {
		s.heap = int64(sumCounter(fams, "go_memstats_heap_inuse_bytes", nil))
		s.unreturned = int64(sumCounter(fams, "go_memstats_heap_idle_bytes", nil) - sumCounter(fams, "go_memstats_heap_released_bytes", nil))
	}
	heap, err := rep.HeapProfile(ctx)
	if err != nil {
		return s, "", err
	}
	m, err = ProcMemory(rep.PID())
	if err != nil {
		return s, "", err
	}
	s.rssLive = m.RSS
	if fams, err := rep.Metrics(ctx); err == nil {
		s.heapLive = int64(sumCounter(fams, "go_memstats_heap_alloc_bytes", nil))
	}
	return s, heap, nil
}

func (h *harness) memoryFinished(ctx context.Context, shops []sim.Shop) error {
	rep, err := h.memoryReplica(ctx, "memory-finished")
	if err != nil {
		return err
	}
	defer h.stop(rep)
	before, _, err := h.sampleMemory(ctx, rep, 0, nil)
	if err != nil {
		return err
	}
	if err := produceConversations(ctx, h.broker.Addr, shops, "f", 0, h.s.Finished, true); err != nil {
		return err
	}
	if err := h.applyAll(ctx, 120*time.Second); err != nil {
		return err
	}
	after, _, err := h.sampleMemory(ctx, rep, h.s.Finished, nil)
	if err != nil {
		return err
	}
	h.report.add(PartMemory, fmt.Sprintf("Redis bytes per finished conversation-day (%s finished)", thousands(int64(h.s.Finished))),
		float64(after.redisUsed-before.redisUsed)/float64(h.s.Finished), "bytes",
		"message + human reply; the state stays for state_ttl (72h), no timer, not waiting")
	return h.redisBreakdown(ctx, "f")
}

func (h *harness) memoryWaiting(ctx context.Context, shops []sim.Shop) error {
	rep, err := h.memoryReplica(ctx, "memory-waiting")
	if err != nil {
		return err
	}
	defer h.stop(rep)
	base, err := UsedMemory(ctx, h.redis.Client)
	if err != nil {
		return err
	}
	stages := append([]int{h.s.Waiting}, h.s.Active...)
	slices.Sort(stages)
	stages = slices.Compact(stages)
	samples := map[int]memSample{}
	// Redis's memory before each stage's conversations: the follow-up
	// traffic of the stage before grew the states it touched, which the
	// bytes per waiting conversation must not count.
	before := map[int]int64{}
	done := 0
	var lastHeap string
	for _, n := range stages {
		if err := h.applyAll(ctx, 120*time.Second); err != nil {
			return err
		}
		if before[n], err = UsedMemory(ctx, h.redis.Client); err != nil {
			return err
		}
		if err := produceConversations(ctx, h.broker.Addr, shops, "w", done, n, false); err != nil {
			return err
		}
		if err := h.applyAll(ctx, 120*time.Second); err != nil {
			return err
		}
		done = n
		s, heap, err := h.sampleMemory(ctx, rep, n, func(ctx context.Context) error {
			return steadyTraffic(ctx, h.broker.Addr, shops, "w", n, h.s.SteadyRate)
		})
		if err != nil {
			return err
		}
		samples[n], lastHeap = s, heap
		h.logf("memory: %d waiting conversations: processor RSS %.1f MiB (heap %.1f MiB; after GC: RSS %.1f MiB, live heap %.1f MiB), Redis used %.1f MiB",
			n, mib(s.rss), mib(s.heap), mib(s.rssLive), mib(s.heapLive), mib(s.redisUsed))
		if n == h.s.Waiting {
			if err := h.redisBreakdown(ctx, "w"); err != nil {
				return err
			}
		}
	}
	waiting, err := h.waitingCount(ctx)
	if err != nil {
		return err
	}
	if waiting != int64(done) {
		return fmt.Errorf("Redis holds %d waiting buyers, %d were started", waiting, done)
	}
	if lastHeap != "" {
		h.report.Profiles = append(h.report.Profiles, lastHeap)
		if exe, err := os.Executable(); err == nil {
			if top, err := pprofTop(lastHeap, exe, "", "-sample_index=inuse_space"); err == nil && top != "" {
				h.report.Profiles = append(h.report.Profiles, top)
			}
		}
	}

	const part = PartMemory
	r := h.report
	// used is Redis's memory with n conversations as ingested: without what
	// the follow-up traffic of the stages before n added to the states it
	// touched (measured between one stage's end and the next one's start).
	used := func(n int) int64 {
		v := samples[n].redisUsed - base
		for i, m := range stages[:slices.Index(stages, n)] {
			v -= before[stages[i+1]] - samples[m].redisUsed
		}
		return v
	}
	r.atMost(part, fmt.Sprintf("Redis bytes per waiting conversation (%s waiting)", thousands(int64(h.s.Waiting))),
		float64(used(h.s.Waiting))/float64(h.s.Waiting), "bytes", 300,
		"INFO used_memory delta, one buyer message each, less what follow-up messages to earlier ones added: state, timer and waiting-set entries, key tables")
	if top := stages[len(stages)-1]; top != h.s.Waiting {
		r.add(part, fmt.Sprintf("Redis bytes per waiting conversation (%s waiting)", thousands(int64(top))),
			float64(used(top))/float64(top), "bytes", "")
	}
	first := samples[h.s.Active[0]]
	spread := 0.0
	for _, n := range h.s.Active {
		s := samples[n]
		r.add(part, fmt.Sprintf("processor RSS at %s active conversations (median under %s follow-up messages/s)", thousands(int64(n)), thousands(int64(h.s.SteadyRate))), mib(s.rss), "MiB",
			fmt.Sprintf("right after ingesting them %.1f MiB; Go heap in use %.1f MiB, freed but not returned %.1f MiB; after a forced GC: RSS %.1f MiB, live heap %.1f MiB",
				mib(s.burst), mib(s.heap), mib(s.unreturned), mib(s.rssLive), mib(s.heapLive)))
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

// waitingCount sums the waiting sets of every chat partition and shop. A
// buyer assigned to an agent is also in the agent's waiting set
// (detectors.WaitOp.Set), which lives under w: beside the shop's and is
// not counted again.
func (h *harness) waitingCount(ctx context.Context) (int64, error) {
	var total int64
	for p := range Topics[TopicChat] {
		base := keyPrefix + ":{" + state.Scope(string(event.Chat), p) + "}:w:"
		keys, err := h.redis.Client.Keys(ctx, base+"*").Result()
		if err != nil {
			return 0, fmt.Errorf("listing waiting sets: %w", err)
		}
		for _, k := range keys {
			if _, _, agent := detectors.SplitAgentSet(strings.TrimPrefix(k, base)); agent {
				continue
			}
			n, err := h.redis.Client.ZCard(ctx, k).Result()
			if err != nil {
				return 0, fmt.Errorf("counting %s: %w", k, err)
			}
			total += n
		}
	}
	return total, nil
}

// redisBreakdown reports what one conversation of the tagged kind holds
// in Redis, from MEMORY USAGE: its state, and its share of the timer and
// waiting sets.
func (h *harness) redisBreakdown(ctx context.Context, tag string) error {
	c := h.redis.Client
	st, err := ReadStates(ctx, c, "*/"+tag+"*", 200)
	if err != nil {
		return err
	}
	if st.Sampled == 0 {
		return fmt.Errorf("no %s states found", tag)
	}
	kind := map[string]string{"w": "waiting", "f": "finished"}[tag]
	r := h.report
	// The states of every kind share the partitions' generation hashes:
	// their bytes per state are the mean over all.
	r.add(PartMemory, "state of a "+kind+" conversation (MEMORY USAGE of the state hashes / states)", float64(st.Bytes)/float64(st.Count), "bytes",
		fmt.Sprintf("encoded %s state %d bytes of it", kind, st.Len/st.Sampled))
	if tag != "w" {
		return nil
	}
	// Timers and waiting sets are split into buckets (state/layout.go);
	// the timer index (timers:first) counts in the bytes, not the members.
	for _, set := range []struct{ pattern, name string }{{"timers:*", "timer"}, {"w:*", "waiting-set"}} {
		var bytes, members int64
		for p := range Topics[TopicChat] {
			keys, err := c.Keys(ctx, keyPrefix+":{chat."+strconv.Itoa(p)+"}:"+set.pattern).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				n, err := c.MemoryUsage(ctx, k, 0).Result()
				if err != nil {
					return fmt.Errorf("MEMORY USAGE %s: %w", k, err)
				}
				bytes += n
				if strings.HasSuffix(k, ":timers:first") {
					continue
				}
				m, err := c.ZCard(ctx, k).Result()
				if err != nil {
					return err
				}
				members += m
			}
		}
		if members > 0 {
			r.add(PartMemory, set.name+" entry of a waiting conversation (MEMORY USAGE / members)", float64(bytes)/float64(members), "bytes", "")
		}
	}
	return nil
}
