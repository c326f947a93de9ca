package bench

import (
	"context"
	"fmt"
	"runtime/pprof"
	"time"

	"github.com/replywatch/replywatch/sim"
)

// stormMessages is the number of chat messages of a storm conversation.
const stormMessages = 5

// ProduceStorm produces the bad day (sim.Storm) of about n chat events to
// cs.chat as a backlog, in conversations of five messages starting on the
// afternoon of simDay. It returns the records produced, the
// conversations and how long producing took.
func ProduceStorm(ctx context.Context, broker string, mix Mix, n int) (records, conversations int, took time.Duration, err error) {
	conversations = max(1, n/stormMessages)
	start := time.Now()
	pprof.Do(ctx, pprof.Labels("role", "load"), func(ctx context.Context) {
		w := sim.NewWriter(broker)
		defer w.Close()
		p := sim.NewProducer(ctx, w, topicMap)
		err = sim.Storm(sim.StormOptions{Seed: mix.Seed, Conversations: conversations, Shops: mix.Shops, Agents: mix.Agents,
			Start: simDay.Add(14 * time.Hour)}, func(r sim.Record) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			records++
			return p.Emit(r)
		})
		if err == nil {
			err = p.Flush()
		}
	})
	if err != nil {
		return records, conversations, 0, fmt.Errorf("producing the storm backlog: %w", err)
	}
	return records, conversations, time.Since(start), nil
}

// stormBacklog makes sure the broker holds the bad day of
// Settings.StormEvents on cs.chat: a fresh broker, unless the last part
// produced it already.
func (h *harness) stormBacklog(ctx context.Context) error {
	if h.stormReady > 0 {
		return nil
	}
	if err := h.freshBroker(ctx); err != nil {
		return err
	}
	h.logf("producing a bad day of %d chat events to %s", h.s.StormEvents, TopicChat)
	n, convs, took, err := ProduceStorm(ctx, h.broker.Addr, DefaultMix, h.s.StormEvents)
	if err != nil {
		return err
	}
	h.logf("produced %d chat events in %d conversations in %s", n, convs, took.Round(time.Millisecond))
	h.stormReady, h.stormConvs = n, convs
	return nil
}

// storm replays the bad day: the bare kafka-go reader with decode over it,
// then one in-process replica, in the same run.
func (h *harness) storm(ctx context.Context) error {
	if err := h.stormBacklog(ctx); err != nil {
		return err
	}
	const part = PartStorm
	r := h.report
	n, convs := h.stormReady, h.stormConvs
	r.add(part, "bad-day backlog produced", float64(n), "events", fmt.Sprintf("%s conversations of %d messages with text, "+
		"1 %% sent late, 0.5 %% twice; first replies after 30 s to 7 min", thousands(int64(convs)), stormMessages))
	r.atLeast(part, "distinct conversations per million events", float64(convs)/float64(n)*1e6, "", 150_000, "")

	_, bare, bareCost, err := h.bareChat(ctx, "storm-bare")
	if err != nil {
		return err
	}
	h.logf("storm: bare kafka-go consumption + decode %.0f/s", bare.Rate())
	r.add(part, "bare kafka-go consumption + event.Decode of the bad day", bare.Rate(), "events/s",
		fmt.Sprintf("as the ceiling part; %.1f µs CPU per event (consumer + broker)", bareCost.perEvent(bareCost.self)))

	if err := h.redis.Reset(ctx); err != nil {
		return err
	}
	rp, err := h.replay(ctx, part, "storm")
	if err != nil {
		return err
	}
	prog, c := rp.prog, rp.costs
	rate := prog.Rate()
	h.logf("storm: %d events applied, %.0f/s sustained", prog.Applied, rate)
	r.atLeast(part, "sustained chat events/s on the bad day", rate, "events/s", 100_000,
		"first applied batch to last, polled from the offsets in Redis")
	if bare.Rate() > 0 {
		r.atLeast(part, "share of bare consumption + decode (same run)", 100*rate/bare.Rate(), "%", 30, "")
	}
	alerts := sumCounter(rp.fams, "replywatch_alerts_total", nil)
	if prog.Applied > 0 {
		r.atLeast(part, "alert records per event", alerts/float64(prog.Applied), "", 0.3,
			fmt.Sprintf("%s alert records (replywatch_alerts_total: warnings, breaches, their resolutions, text rules)", thousands(int64(alerts))))
	}
	h.roundTrips(part, tripsOf(rp.fams))
	h.commands(part, c)
	h.cpu(part, c, "processor")
	return nil
}
