package app

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/sim"
)

// TestSeatReplayEqualsLive: over a simulated late morning with a shop whose
// agents lunch together, a shop that sends no presence and agents who go
// quiet, `replywatch replay` reports the seat alerts and the uncovered time
// the live pipeline reports. The live replica runs the day as it happens:
// the test moves its clock a report interval at a time, produces what
// happened meanwhile, waits until the replica has read it, and then runs the
// reporter's report (lease holder, shop-level rules, gauges) as its ticker
// would; the replay evaluates at the same instants of event time.
func TestSeatReplayEqualsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated hour and a half, step by step")
	}
	const step = 30 * time.Second
	opts := sim.Options{Seed: 7, Shops: 3, Agents: 2, Rate: 1.5, Start: sh("11:00:00"), End: sh("12:30:00"),
		Location: shanghai, NoPresence: 1, LunchTogether: 1, Quiet: 0.2}
	var recs []sim.Record
	if err := sim.Generate(opts, func(r sim.Record) error {
		if r.Topic == event.Chat || r.Topic == event.Presence {
			recs = append(recs, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	at := opts.End
	e := newEnv(t)

	replayCfg := testConfig(t, e.broker, e.redis, "replay")
	replayCfg.Shops = nil
	replayCfg.Metrics.ReportInterval, replayCfg.Metrics.ReporterLease = step, 2*step
	res := replayRecords(t, replayCfg, recs, at)
	replayed, err := scenario.SeatOutcome(res.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, a := range res.Alerts {
		kinds[a.Kind]++
	}
	if kinds["idle_seat"] == 0 || kinds["shop_uncovered"] == 0 {
		t.Fatalf("the simulated morning raised no idle seat or no uncovered shop: %v", kinds)
	}

	// The live replica's own ticker reports once, at start; the test runs
	// every later report itself, at the replay's instants.
	liveCfg := testConfig(t, e.broker, e.redis, "live")
	liveCfg.Shops = nil
	liveCfg.Metrics.ReportInterval, liveCfg.Metrics.ReporterLease = time.Hour, 2*time.Hour
	first := recs[0].Event.TS.Truncate(step)
	clock := &fakeClock{t: first.Add(liveCfg.Clock.Grace)}
	r := start(t, liveCfg, clock, "live")
	eventually(t, 20*time.Second, "joined, holding the reporter lease", func() error {
		if m := scrape(t, r.app.Addr()); !r.app.Processor.Joined() || m["replywatch_reporter_leader{}"] != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	w := sim.NewWriter(e.broker)
	defer w.Close()
	p := sim.NewProducer(context.Background(), w, sim.DefaultTopics)
	produced := map[event.Stream]int{}
	i := 0
	for tick := first; ; tick = tick.Add(step) {
		if tick.After(at) {
			tick = at
		}
		for ; i < len(recs) && !recs[i].Event.TS.After(tick); i++ {
			if err := p.Emit(recs[i]); err != nil {
				t.Fatal(err)
			}
			produced[recs[i].Topic]++
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		clock.Set(tick.Add(liveCfg.Clock.Grace))
		eventually(t, 20*time.Second, "records read", func() error {
			m := scrape(t, r.app.Addr())
			for stream, topic := range map[event.Stream]string{event.Chat: "cs.chat", event.Presence: "cs.presence"} {
				read := m["replywatch_events_total{result=applied,topic="+topic+"}"] + m["replywatch_events_total{result=duplicate,topic="+topic+"}"]
				if read != float64(produced[stream]) {
					return fmt.Errorf("%s: %v of %d read", topic, read, produced[stream])
				}
			}
			if !r.app.Processor.CaughtUp() {
				return errors.New("partitions catching up")
			}
			return nil
		})
		if err := r.app.Reporter.Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !tick.Before(at) {
			break
		}
	}

	eventually(t, 10*time.Second, "seat alerts", func() error {
		live, err := scenario.SeatOutcome(readAlerts(t, e.broker))
		if err != nil {
			return err
		}
		return scenario.SameOutcome(live, replayed)
	})
	m := scrape(t, r.app.Addr())
	for _, s := range res.Shops {
		if s.UncoveredSeconds == nil {
			t.Fatalf("replay reports no uncovered time for %s", s.Shop)
		}
		if got := m["replywatch_uncovered_seconds{shop="+s.Shop+"}"]; got != *s.UncoveredSeconds {
			t.Errorf("%s: live uncovered %vs, replay %vs", s.Shop, got, *s.UncoveredSeconds)
		}
	}
	t.Logf("%d records; seat alerts replayed: %v; uncovered: %v", len(recs), kinds, func() map[string]float64 {
		u := map[string]float64{}
		for _, s := range res.Shops {
			u[s.Shop] = *s.UncoveredSeconds
		}
		return u
	}())
}
