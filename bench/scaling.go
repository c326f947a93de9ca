package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// scaling replays the chat backlog with 1, 2 and 4 replicas in one group
// (child processes, so each one's CPU is its own), then measures the
// rebalance pause when a replica joins or leaves under live load.
func (h *harness) scaling(ctx context.Context) error {
	for _, n := range h.s.Replicas {
		if err := h.scaleRun(ctx, n); err != nil {
			return fmt.Errorf("%d replicas: %w", n, err)
		}
	}
	return h.rebalance(ctx)
}

func (h *harness) scaleRun(ctx context.Context, n int) error {
	if err := h.chatBacklog(ctx); err != nil {
		return err
	}
	if err := h.redis.Reset(ctx); err != nil {
		return err
	}
	ws, err := watchList(ctx, h.broker.Addr, "chat")
	if err != nil {
		return err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: "scale-" + strconv.Itoa(n), session: h.s.Session})
	if err != nil {
		return err
	}
	m, err := h.startMeter(ctx, "")
	if err != nil {
		return err
	}
	start := time.Now()
	var reps []*Replica
	defer func() {
		for _, r := range reps {
			h.stop(r)
		}
	}()
	for i := range n {
		r, err := StartChild(fmt.Sprintf("scale%d-%d", n, i+1), cfg, h.dir, "", h.s.ReplicaEnv...)
		if err != nil {
			return err
		}
		reps = append(reps, r)
		m.childPIDs = append(m.childPIDs, r.PID())
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(h.s.Events)*100*time.Microsecond)
	prog, err := waitApplied(wctx, h.redis.Client, ws, 20*time.Millisecond, nil)
	cancel()
	if err != nil {
		return err
	}
	per := make([]time.Duration, len(reps))
	for i, r := range reps {
		if per[i], err = CPUTime(r.PID()); err != nil {
			return err
		}
	}
	c, err := m.end(ctx, prog.Applied)
	if err != nil {
		return err
	}
	elapsed := prog.Done.Sub(start)
	rate := float64(prog.Applied) / elapsed.Seconds()
	var each []string
	var sum time.Duration
	for _, d := range per {
		each = append(each, strconv.FormatFloat(d.Seconds(), 'f', 1, 64)+" s")
		sum += d
	}
	h.logf("scaling: %d replicas applied %d events in %s (%.0f/s); replica CPU %s", n, prog.Applied,
		elapsed.Round(time.Millisecond), rate, strings.Join(each, ", "))
	part := PartScaling + " " + strconv.Itoa(n)
	r := h.report
	r.add(part, "chat events/s, start of the first replica to last offset applied", rate, "events/s",
		fmt.Sprintf("%s events, group joins included", thousands(prog.Applied)))
	r.add(part, "CPU per replica (mean)", (sum / time.Duration(n)).Seconds(), "s", "each: "+strings.Join(each, ", "))
	r.add(part, "processor CPU per event, all replicas", c.perEvent(c.child), "µs", "")
	r.add(part, "Redis CPU per event", c.perEvent(c.redis), "µs", "")
	return nil
}

// offsetTracker polls the applied offsets of the chat partitions and
// notes when each one moved.
type offsetTracker struct {
	ws    []watched
	mu    sync.Mutex
	moves [][]time.Time
	stop  context.CancelFunc
	done  chan struct{}
}

func (h *harness) trackOffsets(ctx context.Context, every time.Duration) *offsetTracker {
	ws := make([]watched, Topics[TopicChat])
	for p := range ws {
		ws[p] = watched{stream: "chat", partition: p}
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &offsetTracker{ws: ws, moves: make([][]time.Time, len(ws)), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		last := make([]int64, len(ws))
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			offs, err := readApplied(ctx, h.redis.Client, ws)
			now := time.Now()
			if err == nil {
				t.mu.Lock()
				for i, o := range offs {
					if o != last[i] {
						last[i] = o
						t.moves[i] = append(t.moves[i], now)
					}
				}
				t.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return t
}

func (t *offsetTracker) finish() { t.stop(); <-t.done }

// pause is, over every partition, the longest time the partition stood
// still with some of it inside (from, to]: between two applied batches,
// or from the last applied batch to end when none followed.
func (t *offsetTracker) pause(from, to, end time.Time) (time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var worst time.Duration
	part := -1
	for p, ms := range t.moves {
		var points []time.Time
		for _, m := range ms {
			if !m.After(end) {
				points = append(points, m)
			}
		}
		points = append(points, end)
		for i := 1; i < len(points); i++ {
			a, b := points[i-1], points[i]
			if b.After(from) && a.Before(to) && b.Sub(a) > worst {
				worst, part = b.Sub(a), p
			}
		}
	}
	return worst, part
}

// rebalance runs two replicas under live load, starts a third (join) and
// stops it (leave), and measures how long partitions stood still.
func (h *harness) rebalance(ctx context.Context) error {
	if err := h.freshBroker(ctx); err != nil {
		return err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: "rebalance", allDay: true, session: h.s.Session})
	if err != nil {
		return err
	}
	var reps []*Replica
	defer func() {
		for _, r := range reps {
			h.stop(r)
		}
	}()
	for i := range 2 {
		r, err := StartChild(fmt.Sprintf("rebalance-%d", i+1), cfg, h.dir, "", h.s.ReplicaEnv...)
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	if err := waitOwned(ctx, 60*time.Second, reps...); err != nil {
		return err
	}
	pacer := &Pacer{Broker: h.broker.Addr, Mix: DefaultMix, Rate: h.s.LiveRate}
	pctx, stopPacer := context.WithCancel(ctx)
	defer stopPacer()
	perr := make(chan error, 1)
	go func() { perr <- pacer.Run(pctx) }()
	tr := h.trackOffsets(ctx, 10*time.Millisecond)
	settle := h.s.RebalanceSettle
	quietFrom := time.Now().Add(settle / 3)
	if !sleepCtx(ctx, settle) {
		return ctx.Err()
	}
	quietTo := time.Now()
	joinAt := time.Now()
	joiner, err := StartChild("rebalance-3", cfg, h.dir, "", h.s.ReplicaEnv...)
	if err != nil {
		return err
	}
	reps = append(reps, joiner)
	if !sleepCtx(ctx, settle) {
		return ctx.Err()
	}
	leaveAt := time.Now()
	h.stop(joiner)
	reps = reps[:2]
	if !sleepCtx(ctx, settle) {
		return ctx.Err()
	}
	end := time.Now()
	stopPacer()
	if err := <-perr; err != nil {
		return err
	}
	tr.finish()
	// A stall belongs to the change it follows: the leave stall begins
	// with the last batch before the SIGTERM, just before leaveAt, so the
	// join window ends a little earlier.
	margin := min(time.Second, settle/4)
	quiet, _ := tr.pause(quietFrom, quietTo.Add(-margin), end)
	join, jp := tr.pause(joinAt, leaveAt.Add(-margin), end)
	leave, lp := tr.pause(leaveAt, end, end)
	h.logf("rebalance: quiet %s, join %s (partition %d), leave %s (partition %d)", quiet, join, jp, leave, lp)
	const part = "rebalance"
	r := h.report
	r.add(part, "longest pause without a rebalance", quiet.Seconds()*1000, "ms", fmt.Sprintf("2 replicas, %d events/s live", h.s.LiveRate))
	r.atMost(part, "pause when a third replica joins (max over partitions)", join.Seconds(), "s", 10,
		"last applied batch before the rebalance to the first after, polled every 10 ms")
	r.atMost(part, "pause when it leaves (SIGTERM, max over partitions)", leave.Seconds(), "s", 10, "")
	return nil
}
