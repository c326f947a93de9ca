package bench

import (
	"context"
	"os"
	"time"
)

// backlog produces a whole simulated day on every input topic before the
// processor starts, then measures how long one replica (a child process,
// so its RSS is its own) takes to catch up.
func (h *harness) backlog(ctx context.Context) error {
	if err := h.freshBroker(ctx); err != nil {
		return err
	}
	h.logf("producing a simulated day of at least %d events on every input topic", h.s.DayEvents)
	n, took, err := ProduceDay(ctx, h.broker.Addr, DefaultMix, h.s.DayEvents)
	if err != nil {
		return err
	}
	h.logf("produced %d events in %s (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	ws, err := watchList(ctx, h.broker.Addr, "chat", "orders", "presence")
	if err != nil {
		return err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: "backlog", session: h.s.Session})
	if err != nil {
		return err
	}
	profile := h.profilePath("backlog-replica")
	m, err := h.startMeter(ctx, "")
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := StartChild("backlog", cfg, h.dir, profile, h.s.ReplicaEnv...)
	if err != nil {
		return err
	}
	m.childPIDs = []string{rep.PID()} // the child started after the meter: its CPU counts from 0
	stopped := false
	defer func() {
		if !stopped {
			h.stop(rep)
		}
	}()
	var peak int64
	last := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	prog, err := waitApplied(wctx, h.redis.Client, ws, 50*time.Millisecond, func(applied int64) {
		if mem, err := ProcMemory(rep.PID()); err == nil {
			peak = max(peak, mem.RSS)
		}
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			h.logf("backlog: %d of %d applied", applied, n)
		}
	})
	cancel()
	if err != nil {
		return err
	}
	catchUp := prog.Done.Sub(start)
	c, err := m.end(ctx, prog.Applied)
	if err != nil {
		return err
	}
	if mem, err := ProcMemory(rep.PID()); err == nil {
		peak = max(peak, mem.Peak)
	}
	stopped = true
	h.stop(rep)
	h.report.Profiles = append(h.report.Profiles, profile)
	if exe, err := os.Executable(); err == nil {
		if top, err := pprofTop(profile, exe, ""); err == nil && top != "" {
			h.report.Profiles = append(h.report.Profiles, top)
		}
	}
	h.logf("backlog: %d events caught up in %s (%.0f/s), peak RSS %.1f MiB", prog.Applied, catchUp.Round(time.Millisecond),
		float64(prog.Applied)/catchUp.Seconds(), mib(peak))
	const part = PartBacklog
	r := h.report
	r.add(part, "simulated day produced before start", float64(n), "events", "chat, orders and presence")
	r.atMost(part, "time to catch up, replica start to last offset applied", catchUp.Seconds(), "s", 60,
		"one replica, group join included")
	r.add(part, "catch-up rate", float64(prog.Applied)/catchUp.Seconds(), "events/s", "")
	r.add(part, "processor peak RSS", mib(peak), "MiB", "child process, VmHWM")
	r.add(part, "processor CPU per event", c.perEvent(c.child), "µs", "/proc/<replica pid>/stat")
	r.add(part, "Redis CPU per event", c.perEvent(c.redis), "µs", "")
	h.commands(part, c)
	return nil
}
