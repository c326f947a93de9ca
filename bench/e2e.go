package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// costs is what a measured interval cost the processor and Redis.
type costs struct {
	events int64
	// self is this process's CPU, split by profiler role when profiled.
	self   time.Duration
	byRole map[string]time.Duration
	// child is the replica processes' CPU (when they are children).
	child time.Duration
	redis time.Duration
	cmds  CommandDelta
}

// meter takes the readings before an interval; end takes them after it.
type meter struct {
	h         *harness
	self      time.Duration
	redis     time.Duration
	cmds      map[string]CommandStat
	profile   *cpuProfile
	childPIDs []string
	child     time.Duration
}

func (h *harness) startMeter(ctx context.Context, profile string, children ...*Replica) (*meter, error) {
	m := &meter{h: h}
	var err error
	if m.cmds, err = CommandStats(ctx, h.redis.Client); err != nil {
		return nil, err
	}
	if profile != "" {
		if m.profile, err = startCPUProfile(profile); err != nil {
			return nil, err
		}
	}
	for _, c := range children {
		m.childPIDs = append(m.childPIDs, c.PID())
		t, err := CPUTime(c.PID())
		if err != nil {
			return nil, err
		}
		m.child += t
	}
	if m.self, err = CPUTime("self"); err != nil {
		return nil, err
	}
	if m.redis, err = CPUTime(strconv.Itoa(h.redis.PID)); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *meter) end(ctx context.Context, events int64) (costs, error) {
	c := costs{events: events}
	self, err := CPUTime("self")
	if err != nil {
		return c, err
	}
	red, err := CPUTime(strconv.Itoa(m.h.redis.PID))
	if err != nil {
		return c, err
	}
	var child time.Duration
	for _, pid := range m.childPIDs {
		t, err := CPUTime(pid)
		if err != nil {
			return c, err
		}
		child += t
	}
	c.self, c.redis, c.child = self-m.self, red-m.redis, child-m.child
	after, err := CommandStats(ctx, m.h.redis.Client)
	if err != nil {
		return c, err
	}
	c.cmds = diffCommands(m.cmds, after)
	if m.profile != nil {
		if err := m.profile.stop(); err != nil {
			return c, err
		}
		if c.byRole, err = CPUByLabel(m.profile.path, "role"); err != nil {
			return c, err
		}
	}
	return c, nil
}

// perEvent is d per event in µs.
func (c costs) perEvent(d time.Duration) float64 {
	if c.events == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(c.events)
}

// replayed is one in-process replica's replay of the chat topic.
type replayed struct {
	prog  Progress
	start time.Time
	costs costs
	fams  map[string]*dto.MetricFamily
}

// replay runs one in-process replica (group group) over the chat topic as
// it is until every partition's applied offset reaches its high-water
// mark, with a CPU profile named after part.
func (h *harness) replay(ctx context.Context, part, group string) (replayed, error) {
	var out replayed
	ws, err := watchList(ctx, h.broker.Addr, "chat")
	if err != nil {
		return out, err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: group, session: h.s.Session})
	if err != nil {
		return out, err
	}
	profile := h.profilePath(part)
	m, err := h.startMeter(ctx, profile)
	if err != nil {
		return out, err
	}
	out.start = time.Now()
	rep, err := StartInProcess(part, cfg, h.log)
	if err != nil {
		_, _ = m.end(ctx, 0)
		return out, err
	}
	defer h.stop(rep)
	var events int64
	for _, w := range ws {
		events += w.hwm
	}
	// Generous: a guard against a hang, not a target (a loaded machine
	// may run at a tenth of the usual rate).
	timeout := 2*time.Minute + time.Duration(events)*time.Millisecond
	wctx, cancel := context.WithTimeout(ctx, timeout)
	last := time.Now()
	prog, err := waitApplied(wctx, h.redis.Client, ws, 20*time.Millisecond, func(n int64) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			h.logf("%s: %d applied", part, n)
		}
	})
	cancel()
	c, cerr := m.end(ctx, prog.Applied)
	if err != nil {
		return out, err
	}
	if cerr != nil {
		return out, cerr
	}
	out.prog, out.costs = prog, c
	if out.fams, err = rep.Metrics(ctx); err != nil {
		return out, err
	}
	h.report.Profiles = append(h.report.Profiles, profile)
	if top, err := pprofTop(profile, "", ".processor", "-tagfocus=role=processor"); err == nil && top != "" {
		h.report.Profiles = append(h.report.Profiles, top)
	}
	return out, nil
}

// e2e replays the chat backlog through one in-process replica.
func (h *harness) e2e(ctx context.Context) error {
	if err := h.chatBacklog(ctx); err != nil {
		return err
	}
	if err := h.redis.Reset(ctx); err != nil {
		return err
	}
	usedBefore, err := UsedMemory(ctx, h.redis.Client)
	if err != nil {
		return err
	}
	rp, err := h.replay(ctx, PartE2E, "e2e")
	if err != nil {
		return err
	}
	prog, start, c, fams := rp.prog, rp.start, rp.costs, rp.fams

	total := prog.Done.Sub(start)
	rate := prog.Rate()
	h.logf("e2e: %d events applied in %s (first after %s): %.0f/s sustained", prog.Applied,
		total.Round(time.Millisecond), prog.First.Sub(start).Round(time.Millisecond), rate)
	const part = PartE2E
	r := h.report
	r.atLeast(part, "sustained chat events/s, backlog of "+thousands(prog.Applied), rate, "events/s", 150_000,
		"first applied batch to last, polled from the offsets in Redis")
	r.add(part, "events/s including group join and partition claims", float64(prog.Applied)/total.Seconds(), "events/s", "")
	if h.minimalRate > 0 {
		r.atLeast(part, "share of the minimal-pipeline ceiling", 100*rate/h.minimalRate, "%", 75, "")
	}
	if h.bareRate > 0 {
		r.add(part, "share of the bare-consumption ceiling", 100*rate/h.bareRate, "%", "")
	}
	h.roundTrips(part, tripsOf(fams))
	h.commands(part, c)
	h.cpu(part, c, "processor")
	alerts := sumCounter(fams, "replywatch_alerts_total", nil)
	r.add(part, "alerts emitted during the replay", alerts, "alerts", "warnings, breaches and long no-reply of the simulated day")
	if prog.Applied > 0 {
		r.add(part, "alert records per event", alerts/float64(prog.Applied), "", "replywatch_alerts_total / events applied")
	}
	return h.dayStates(ctx, usedBefore)
}

// dayStates reports what the backlog's conversations left in Redis: every
// conversation of a busy day, with the event ids and recent events it keeps.
func (h *harness) dayStates(ctx context.Context, usedBefore int64) error {
	c := h.redis.Client
	used, err := UsedMemory(ctx, c)
	if err != nil {
		return err
	}
	st, err := ReadStates(ctx, c, "*", 2000)
	if err != nil {
		return err
	}
	states := st.Count
	if states == 0 || st.Sampled == 0 {
		return fmt.Errorf("the backlog left no conversation states")
	}
	r := h.report
	r.add(PartE2E, "Redis bytes per conversation after the backlog", float64(used-usedBefore)/float64(states), "bytes",
		fmt.Sprintf("INFO used_memory delta over %s conversations: states, timers, waiting sets, counters, outbox", thousands(states)))
	r.add(PartE2E, "state of a conversation after the backlog (MEMORY USAGE of the state hashes / states)", float64(st.Bytes)/float64(states), "bytes",
		fmt.Sprintf("encoded state %.0f bytes of it (mean of %d)", float64(st.Len)/float64(st.Sampled), st.Sampled))
	return nil
}

// trips are a replica's batch and Redis round-trip counters.
type trips struct {
	batches, records           float64
	load, apply, outbox, claim float64
}

func tripsOf(fams map[string]*dto.MetricFamily) trips {
	sum, n := histogramSum(fams, "replywatch_batch_records")
	op := func(name string) float64 {
		return sumCounter(fams, "replywatch_redis_round_trips_total", map[string]string{"op": name})
	}
	return trips{batches: float64(n), records: sum, load: op("load"), apply: op("apply"), outbox: op("outbox"), claim: op("claim")}
}

func (t trips) minus(u trips) trips {
	return trips{t.batches - u.batches, t.records - u.records, t.load - u.load, t.apply - u.apply,
		t.outbox - u.outbox, t.claim - u.claim}
}

// roundTrips reports Redis round trips per batch.
func (h *harness) roundTrips(part string, t trips) {
	r := h.report
	if t.batches == 0 {
		r.Errors = append(r.Errors, part+": no batches counted in replywatch_batch_records")
		return
	}
	nb := t.batches
	r.add(part, "records per batch (mean)", t.records/nb, "", "")
	// Each claim reads the partition's outbox once; later outbox reads are
	// the periodic sweeps, which belong to the steady state.
	steady := t.load + t.apply + max(0, t.outbox-t.claim)
	r.atMost(part, "Redis round trips per batch in steady state", steady/nb, "", 1.05,
		fmt.Sprintf("%.0f batches with records: %.0f apply, %.0f load, %.0f outbox, %.0f claim (claims and their first outbox read left out)",
			nb, t.apply, t.load, t.outbox, t.claim))
	r.add(part, "batches that needed a load round trip before apply", 100*t.load/nb, "%",
		"cache misses or due timers")
}

// commands reports Redis commands per event from INFO commandstats.
func (h *harness) commands(part string, c costs) {
	if c.events == 0 {
		return
	}
	r := h.report
	top := ""
	for i, s := range c.cmds.Top {
		if i == 4 {
			break
		}
		if top != "" {
			top += ", "
		}
		top += fmt.Sprintf("%s %.2f/event %.1f µs/event", s.Name, float64(s.Calls)/float64(c.events), float64(s.Usec)/float64(c.events))
	}
	if r.Commands == nil {
		r.Commands = map[string][]PerEvent{}
	}
	for _, s := range c.cmds.All {
		r.Commands[part] = append(r.Commands[part], PerEvent{Command: s.Name,
			Calls: float64(s.Calls) / float64(c.events), Usec: float64(s.Usec) / float64(c.events)})
	}
	r.atMost(part, "Redis commands per event (EVALSHA + commands run by scripts)", float64(c.cmds.Total())/float64(c.events), "", 4,
		"most Redis time: "+top)
}

// cpu reports CPU per event of the processor, the broker and Redis.
func (h *harness) cpu(part string, c costs, role string) {
	r := h.report
	if c.byRole != nil {
		r.add(part, "processor CPU per event", c.perEvent(c.byRole[role]), "µs",
			"profile samples labelled role="+role)
		r.add(part, "kfake broker CPU per event (same process)", c.perEvent(c.byRole["broker"]), "µs", "")
		r.add(part, "whole benchmark process CPU per event", c.perEvent(c.self), "µs", "/proc/self/stat: processor + broker + harness")
	} else {
		r.add(part, "processor CPU per event", c.perEvent(c.child), "µs", "/proc/<replica pid>/stat")
		r.add(part, "benchmark process CPU per event (broker + harness)", c.perEvent(c.self), "µs", "/proc/self/stat")
	}
	r.add(part, "Redis CPU per event", c.perEvent(c.redis), "µs", "/proc/<redis pid>/stat")
}
