//go:build faults || soak

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
)

// redisTopology is where the replicas keep state: the redis section of
// their config, and the failover that strikes mid-run (none standalone).
type redisTopology struct {
	name  string
	start func(t *testing.T) (yaml string, failover func() string)
}

var topologies = []redisTopology{
	{name: "standalone", start: func(t *testing.T) (string, func() string) {
		return fmt.Sprintf("redis:\n  url: %q\n", testenv.Redis(t)), nil
	}},
	{name: "cluster", start: func(t *testing.T) (string, func() string) {
		c := testenv.Cluster(t)
		return fmt.Sprintf("redis:\n  url: %q\n  mode: cluster\n  addrs: [%s]\n", c.URL, quoted(c.Addrs)),
			func() string { from, to := c.Failover(); return "master " + from + " → replica " + to }
	}},
	{name: "sentinel", start: func(t *testing.T) (string, func() string) {
		s := testenv.Sentinel(t)
		return fmt.Sprintf("redis:\n  url: %q\n  mode: sentinel\n  master_name: %s\n  addrs: [%s]\n", s.URL, s.MasterName, quoted(s.Addrs)),
			func() string { from, to := s.Failover(); return "primary " + from + " → replica " + to }
	}},
}

func quoted(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, ", ")
}

// The built binary scaled 1→3→1 with a replica killed (SIGKILL) while it
// delivers alerts, on a standalone Redis, on a three-master Redis Cluster
// and on a Sentinel-watched primary; on the last two a master is failed
// over to its replica mid-run. A simulated morning is a backlog when the
// first replica starts; then live buyers write in waves (ts = the wall
// clock), some answered by the next wave, while the group grows to three,
// loses one to SIGKILL, sees the failover and shrinks to one. Reply
// thresholds are 30 s and 60 s so that live breaches fall due within the
// test. Afterwards the one replica left exports exactly the figures of the
// offline replay of every record produced, every alert of the replay is on
// cs.alerts with its outcome (every breach alerted), and no alert id
// stands for two conditions.
func TestBinaryScaleFaults(t *testing.T) {
	bin := buildBinary(t)
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			redisYAML, failover := topo.start(t)
			broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 6, "cs.orders": 3, "cs.presence": 3, "cs.alerts": 1})
			loc := testenv.NoonZone(time.Now())
			y, m, d := time.Now().In(loc).Date()
			var recs []sim.Record
			err := sim.Generate(sim.Options{Seed: 37, Shops: 6, Agents: 4, Rate: 6,
				Start: time.Date(y, m, d, 9, 0, 0, 0, loc), End: time.Date(y, m, d, 11, 0, 0, 0, loc), Location: loc},
				func(r sim.Record) error { recs = append(recs, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			// One config per replica: they differ in their HTTP address.
			configFor := func(httpAddr string) string {
				path := filepath.Join(dir, strings.ReplaceAll(httpAddr, ":", "_")+".yml")
				text := fmt.Sprintf("kafka:\n  brokers: [%q]\n  group_id: faults\n  session_timeout: 2s\n  rebalance_timeout: 2s\n"+
					"%shttp:\n  addr: %q\ntimezone: %s\nreply_sla:\n  thresholds: [30s, 60s]\n  warn_before: 10s\n"+
					"metrics:\n  report_interval: 200ms\n  reporter_lease: 2s\n"+
					"alerts:\n  lease: 2s\nclock:\n  tick: 20ms\nlog:\n  format: json\n", broker, redisYAML, httpAddr, loc.String())
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return path
			}
			addrs := []string{freePort(t), freePort(t), freePort(t)}
			cfg, err := config.Load(configFor(addrs[0]))
			if err != nil {
				t.Fatal(err)
			}

			w := sim.NewWriter(broker)
			defer w.Close()
			p := sim.NewProducer(context.Background(), w, sim.DefaultTopics)
			var produced []sim.Record
			produce := func(part []sim.Record) {
				t.Helper()
				for _, r := range part {
					if err := p.Emit(r); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.Flush(); err != nil {
					t.Fatal(err)
				}
				produced = append(produced, part...)
			}
			// wave i: four new buyers of every shop write now; the even
			// buyers of wave i-1 are answered now.
			var last time.Time
			wave := func(i int) {
				last = time.Now().In(loc).Truncate(time.Millisecond)
				var part []sim.Record
				for s := 1; s <= 6; s++ {
					shop := fmt.Sprintf("shop-%02d", s)
					for b := range 4 {
						if i > 0 && b%2 == 0 {
							buyer := fmt.Sprintf("live-%d-%d", i-1, b)
							part = append(part, chat(shop, buyer, event.SenderAgent, fmt.Sprintf("%s-a%d", shop, 1+b/2), last))
						}
						part = append(part, chat(shop, fmt.Sprintf("live-%d-%d", i, b), event.SenderBuyer, "", last))
					}
				}
				produce(part)
			}
			metricsOf := func(i int) map[string]float64 {
				got, err := testenv.Scrape("http://" + addrs[i] + "/metrics")
				if err != nil {
					return map[string]float64{}
				}
				return got
			}
			delivered := func(i int) float64 {
				return metricsOf(i)["replywatch_alert_deliveries_total{result=ok,sink=kafka}"]
			}
			owns := func(i int) error {
				if v := metricsOf(i)["replywatch_owned_partitions{topic=cs.chat}"]; v < 1 {
					return fmt.Errorf("replica %d owns %v chat partitions", i, v)
				}
				return nil
			}

			chat := 0
			for _, r := range recs {
				if r.Topic == event.Chat {
					chat++
				}
			}
			produce(recs)
			reps := []*testenv.Process{startReplica(t, bin, configFor(addrs[0]))}
			testenv.Eventually(t, 60*time.Second, "backlog under way on one replica", func() error {
				if v := metricsOf(0)["replywatch_events_total{result=applied,topic=cs.chat}"]; v < float64(chat/3) {
					return fmt.Errorf("%v of %d chat events applied", v, chat/3)
				}
				return nil
			})
			// 1 → 3.
			reps = append(reps, startReplica(t, bin, configFor(addrs[1])), startReplica(t, bin, configFor(addrs[2])))
			testenv.Eventually(t, 60*time.Second, "three replicas sharing the chat partitions", func() error {
				for i := range 3 {
					if err := owns(i); err != nil {
						return err
					}
				}
				return nil
			})
			before := delivered(1)
			wave(0)
			testenv.Eventually(t, 90*time.Second, "replica 1 delivering alerts", func() error {
				if v := delivered(1); v <= before {
					return fmt.Errorf("replica 1 delivered %v alerts, %v before", v, before)
				}
				return nil
			})
			struck := time.Now()
			reps[1].Stop(t, syscall.SIGKILL, 15*time.Second)
			wave(1)
			what := "none"
			if failover != nil {
				what = failover()
			}
			wave(2)
			// 3 → 1: the third replica stops as in a rollout.
			if err := reps[2].Stop(t, syscall.SIGTERM, 15*time.Second); err != nil {
				t.Errorf("replica 2 after SIGTERM: %v", err)
			}
			wave(3)

			// Every deadline of the live buyers has passed on the replica's
			// clock (the wall clock minus clock.grace) once the last wave is
			// 60 s and the grace old; the replay stops at the same instant.
			end := last.Add(60*time.Second + cfg.Clock.Grace + time.Second)
			res := replayOf(t, cfg, produced, end)
			want := shopGauges(res.Shops)
			waited := time.Until(end)
			time.Sleep(waited) // the replica's clock reaching the replay's end, not a wait for a condition
			testenv.Eventually(t, 180*time.Second, "figures exact on the replica left", func() error {
				if err := owns(0); err != nil {
					return err
				}
				return sameFigures(metricsOf(0), want)
			})
			exact := time.Since(struck)
			alerts, expected, seen, _ := checkAlerts(t, broker, func() []alerting.Alert { return res.Alerts }, false)
			final := metricsOf(0)
			t.Logf("FAULT scale 1→3→1 on Redis %s, replica killed while delivering, failover %s: %d events, breaches expected %d seen %d, alert records %d (replay %d), figures exact %.1f s after the kill (%.0f s of it waiting for the last deadlines), state rebuilds %v, redis errors %v",
				topo.name, what, len(produced), expected, seen, len(alerts), len(res.Alerts), exact.Seconds(), waited.Seconds(),
				final["replywatch_state_rebuilds_total{topic=cs.chat}"], sumPrefix(final, "replywatch_redis_errors_total{"))
		})
	}
}

// chat is a message of shop's buyer at ts, from the buyer or an agent.
func chat(shop, buyer, sender, agent string, ts time.Time) sim.Record {
	id := fmt.Sprintf("%s-%s-%s-%d", shop, buyer, sender, ts.UnixMilli())
	return sim.Record{Topic: event.Chat, Key: shop + "/" + buyer, Event: event.Event{EventID: id, Type: event.TypeMessage,
		TS: event.Time{Time: ts}, ShopID: shop, BuyerID: buyer, Sender: sender, AgentID: agent, Text: "在吗"}}
}

// checkAlerts waits until cs.alerts holds every alert of the replay with
// its outcome, checks that no alert id stands for two conditions and that
// every breach of the replay was alerted, and returns the records read
// and the breaches expected and seen.
//
// With withdrawn, alerts that fired and were retracted (their condition
// never held) while the replay never raised them are left out of the
// comparison and counted: where a backlog's batches are cut decides
// whether a late event is read before a deadline passes, so such
// retractions may differ from the replay's without anything lost.
//
// replay gives the replay's alerts at each look: a replay up to the
// replica's clock at that moment, where deadlines still fall due.
func checkAlerts(t *testing.T, broker string, replay func() []alerting.Alert, withdrawn bool) (alerts []alerting.Alert, expected, seen, retracted int) {
	t.Helper()
	var replayed []alerting.Alert
	testenv.Eventually(t, 60*time.Second, "every alert of the replay", func() error {
		var err error
		if alerts, err = readAlerts(broker); err != nil {
			return err
		}
		replayed = replay()
		compared := alerts
		if withdrawn {
			if compared, retracted, err = dropWithdrawn(alerts, replayed); err != nil {
				return err
			}
		}
		return sameAlerts(compared, replayed)
	})
	if err := scenario.OneConditionPerID(alerts); err != nil {
		// An id whose condition changes in the replay as well (an order's
		// shipping alert keeps its id, from the deadline, when the order's
		// start moves) is the rules' doing, not the fault's.
		if rerr := scenario.OneConditionPerID(replayed); rerr == nil || idOf(rerr) != idOf(err) {
			t.Error(err)
		} else {
			t.Logf("as in the replay: %v", err)
		}
	}
	expected, seen = scenario.Breaches(replayed), scenario.Breaches(alerts)
	if seen != expected {
		t.Errorf("breaches seen %d, expected %d", seen, expected)
	}
	return alerts, expected, seen, retracted
}

// idOf is the alert id OneConditionPerID's error names.
func idOf(err error) string {
	f := strings.Fields(err.Error())
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// dropWithdrawn leaves out of live the records of the alerts whose outcome
// is a retraction and that replayed never raised, and says how many.
func dropWithdrawn(live, replayed []alerting.Alert) ([]alerting.Alert, int, error) {
	l, err := scenario.Outcome(live)
	if err != nil {
		return nil, 0, err
	}
	r, err := scenario.Outcome(replayed)
	if err != nil {
		return nil, 0, err
	}
	drop := scenario.Withdrawn(l, r)
	var kept []alerting.Alert
	for _, a := range live {
		if !drop[a.ID] {
			kept = append(kept, a)
		}
	}
	return kept, len(drop), nil
}

// sameAlerts compares the outcomes of the live and the replayed alerts,
// saying by kind what differs.
func sameAlerts(live, replayed []alerting.Alert) error {
	l, err := scenario.Outcome(live)
	if err != nil {
		return err
	}
	r, err := scenario.Outcome(replayed)
	if err != nil {
		return err
	}
	if err := scenario.SameOutcome(l, r); err == nil {
		return nil
	}
	kinds := map[string]string{}
	for _, a := range append(append([]alerting.Alert(nil), live...), replayed...) {
		kinds[a.ID] = a.Kind + "/" + a.Threshold
	}
	diff := map[string]int{}
	for id, o := range r {
		if g, ok := l[id]; !ok {
			diff["missing "+kinds[id]]++
		} else if g != o {
			diff["ended differently "+kinds[id]]++
		}
	}
	for id := range l {
		if _, ok := r[id]; !ok {
			diff["unexpected "+kinds[id]]++
		}
	}
	// The records of a few ids that differ, for the log.
	var shown []string
	for _, a := range live {
		lo, counted := l[a.ID]
		if o, ok := r[a.ID]; counted && (!ok || o != lo) && len(shown) < 12 {
			shown = append(shown, fmt.Sprintf("%s %s/%s %s %s/%s since %s at %s emitted %s replay %v",
				a.ID[:8], a.Kind, a.Threshold, a.Status+" "+a.Reason, a.ShopID, a.BuyerID,
				a.Since.Format("15:04:05.000"), a.At.Format("15:04:05.000"), a.EmittedAt.Format("15:04:05.000"), a.Replay))
		}
	}
	return fmt.Errorf("%d live ids, %d replayed: %v; live records of ids that differ:\n%s", len(l), len(r), diff, strings.Join(shown, "\n"))
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	s := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}
