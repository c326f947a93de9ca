//go:build faults || soak

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/sim"
)

// startReplica starts `replywatch run --config cfgPath`, one replica of
// the fault suite.
func startReplica(t *testing.T, bin, cfgPath string) *testenv.Process {
	t.Helper()
	return testenv.StartProcess(t, "replywatch", exec.Command(bin, "run", "--config", cfgPath))
}

// readAlerts reads every record of the alerts topic.
func readAlerts(broker string) ([]alerting.Alert, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "cs.alerts", Partition: 0, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []alerting.Alert
	for {
		// The first record may take a while on a busy machine (the reader
		// connects first); the end of the topic is where none comes for
		// half a second.
		wait := 500 * time.Millisecond
		if len(out) == 0 {
			wait = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return out, nil
		}
		var a alerting.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil {
			return nil, fmt.Errorf("alert record %q: %w", m.Value, err)
		}
		out = append(out, a)
	}
}

// replayOf is the offline replay of recs (replywatch replay's code) with
// its clock stopped at end.
func replayOf(t *testing.T, cfg *config.Config, recs []sim.Record, end time.Time) *app.ReplayResult {
	t.Helper()
	res, err := app.Replay(context.Background(), cfg, func(fn func(event.Stream, string, []byte) error) error {
		return sim.Each(recs, fn)
	}, end, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// shopGauges are the shop-level figures of reports, as scraped names.
func shopGauges(reports []metrics.ShopReport) map[string]float64 {
	out := map[string]float64{}
	for _, s := range reports {
		out["replywatch_consulting_buyers{shop="+s.Shop+"}"] = float64(s.Consulting)
		out["replywatch_buyer_messages{shop="+s.Shop+"}"] = float64(s.Messages)
		out["replywatch_waiting_buyers{shop="+s.Shop+"}"] = float64(s.Waiting)
		if s.Response30sRate != nil { // absent while no buyer message was answered
			out["replywatch_response_30s_rate{shop="+s.Shop+"}"] = *s.Response30sRate
		}
		for _, th := range s.Thresholds {
			out["replywatch_reply_breached_buyers{shop="+s.Shop+",threshold="+th+"}"] = float64(s.Breached[th])
		}
	}
	return out
}

func sameFigures(got, want map[string]float64) error {
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g-v > 1e-9 || v-g > 1e-9 {
			diffs = append(diffs, fmt.Sprintf("%s=%v want %v", k, got[k], v))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%d figures differ: %s", len(diffs), strings.Join(diffs, "; "))
	}
	return nil
}

// backlogFaults strike the built binary's backlog a third of the way in:
// the replica itself killed or stopped and started again, or the Redis
// master it writes to killed outright, its replica promoted without the
// master's last writes.
var backlogFaults = []struct {
	name string
	// redis starts the Redis the replica writes to and returns the redis
	// section of its config and, for a killed master, the kill: it runs
	// meanwhile while the replica that is to be promoted cannot follow.
	redis func(t *testing.T) (yaml string, kill func(meanwhile func()) string)
	// signal, when not 0, goes to the replica, which is started again.
	signal syscall.Signal
}{
	{name: "SIGKILL", redis: standaloneRedis, signal: syscall.SIGKILL},
	{name: "SIGTERM", redis: standaloneRedis, signal: syscall.SIGTERM},
	{name: "cluster_master_killed", redis: func(t *testing.T) (string, func(func()) string) {
		c := testenv.Cluster(t)
		return fmt.Sprintf("redis:\n  url: %q\n  mode: cluster\n  addrs: [%s]\n", c.URL, quoted(c.Addrs)),
			func(meanwhile func()) string {
				from, to := c.KillMaster(meanwhile)
				return "master " + from + " killed, replica " + to + " promoted"
			}
	}},
	{name: "sentinel_primary_killed", redis: func(t *testing.T) (string, func(func()) string) {
		s := testenv.Sentinel(t)
		return fmt.Sprintf("redis:\n  url: %q\n  mode: sentinel\n  master_name: %s\n  addrs: [%s]\n", s.URL, s.MasterName, quoted(s.Addrs)),
			func(meanwhile func()) string {
				from, to := s.KillPrimary(meanwhile)
				return "primary " + from + " killed, replica " + to + " promoted"
			}
	}},
}

func standaloneRedis(t *testing.T) (string, func(func()) string) {
	return fmt.Sprintf("redis:\n  url: %q\n", testenv.Redis(t)), nil
}

// The built binary under a backlog: killed with SIGKILL a third of the way
// in, or stopped with SIGTERM, then started again; or, on a Redis Cluster
// and on a Sentinel-watched primary, the master it writes to killed with
// SIGKILL while writes go on without WAIT, as in production, and its
// replica promoted lacking the last of them. Afterwards the figures are
// the offline replay's exactly, every alert of the replay is on cs.alerts
// with its outcome, and no alert id stands for two conditions; SIGTERM
// ends the process with exit 0 within the contract's 10 s; a killed master
// is noticed (the apply script finds Redis older than what was applied,
// or the partition's state gone) and the gap read again from Kafka, each
// such partition counted in replywatch_state_rebuilds_total.
func TestBinaryFaults(t *testing.T) {
	bin := buildBinary(t)
	for _, c := range backlogFaults {
		t.Run(c.name, func(t *testing.T) {
			broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1})
			redisYAML, kill := c.redis(t)
			loc := testenv.NoonZone(time.Now())
			y, m, d := time.Now().In(loc).Date()
			var recs []sim.Record
			err := sim.Generate(sim.Options{Seed: 31, Shops: 4, Agents: 4, Rate: 6,
				Start: time.Date(y, m, d, 9, 0, 0, 0, loc), End: time.Date(y, m, d, 11, 0, 0, 0, loc), Location: loc},
				func(r sim.Record) error { recs = append(recs, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			httpAddr := freePort(t)
			cfgPath := filepath.Join(t.TempDir(), "replywatch.yml")
			cfgText := fmt.Sprintf("kafka:\n  brokers: [%q]\n  group_id: faults\n  session_timeout: 2s\n  rebalance_timeout: 2s\n"+
				"%shttp:\n  addr: %q\ntimezone: %s\nmetrics:\n  report_interval: 200ms\n  reporter_lease: 2s\n"+
				"clock:\n  tick: 20ms\nlog:\n  format: json\n", broker, redisYAML, httpAddr, loc.String())
			if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			res := replayOf(t, cfg, recs, time.Now().Add(time.Minute))
			want := shopGauges(res.Shops)

			w := sim.NewWriter(broker)
			p := sim.NewProducer(context.Background(), w, sim.DefaultTopics)
			chat := 0
			for _, r := range recs {
				if r.Topic == event.Chat {
					chat++
				}
				if err := p.Emit(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			w.Close()

			metrics := func() map[string]float64 {
				got, err := testenv.Scrape("http://" + httpAddr + "/metrics")
				if err != nil {
					return map[string]float64{}
				}
				return got
			}
			applied := func() float64 { return metrics()["replywatch_events_total{result=applied,topic=cs.chat}"] }
			first := startReplica(t, bin, cfgPath)
			testenv.Eventually(t, 60*time.Second, "backlog under way", func() error {
				if v := applied(); v < float64(chat/3) {
					return fmt.Errorf("%v of %d chat events applied", v, chat/3)
				}
				return nil
			})
			struck := time.Now()
			var stopped time.Duration
			what := "replica " + c.name
			if kill != nil {
				// While the replica to be promoted cannot follow, the
				// processor applies more batches to the master: they are
				// what the promoted replica lacks.
				what = kill(func() {
					before := applied()
					testenv.Eventually(t, 30*time.Second, "batches applied that the replica does not have", func() error {
						if v := applied(); v < before+200 && v < float64(chat) {
							return fmt.Errorf("%v chat events applied, %v when the replica stopped following", v, before)
						}
						return nil
					})
				})
				stopped = time.Since(struck)
			} else {
				err := first.Stop(t, c.signal, 15*time.Second)
				if c.signal == syscall.SIGTERM && err != nil {
					t.Errorf("exit after SIGTERM under load: %v", err)
				}
				stopped = time.Since(struck)
				if c.signal == syscall.SIGTERM && stopped > 10*time.Second {
					t.Errorf("SIGTERM under load took %s, the contract says 10 s", stopped)
				}
				startReplica(t, bin, cfgPath)
			}

			testenv.Eventually(t, 120*time.Second, "figures exact after the fault", func() error {
				return sameFigures(metrics(), want)
			})
			exact := time.Since(struck)
			// Alerts fired and retracted that the replay never raised are
			// counted, not compared (see checkAlerts): on a busy machine a
			// backlog may fire a few warnings that a later record withdraws,
			// as its partitions and the buyer join happen to progress.
			// Orders' deadlines fall due at wall-clock times near the run's,
			// so the alerts are compared with a replay up to the replica's
			// clock (the wall clock less clock.grace) at each look.
			var last *app.ReplayResult
			alerts, expected, seen, withdrawn := checkAlerts(t, broker, func() []alerting.Alert {
				last = replayOf(t, cfg, recs, time.Now().Add(-cfg.Clock.Grace))
				return last.Alerts
			}, true)
			final := metrics()
			rebuilds := sumPrefix(final, "replywatch_state_rebuilds_total{")
			if kill != nil {
				if rebuilds < 1 {
					t.Errorf("the promoted replica lacked applied batches, yet no partition was read again (replywatch_state_rebuilds_total %v)", rebuilds)
				}
				if out := first.Output(); !strings.Contains(out, "Redis holds an older state of this partition") && !strings.Contains(out, "Redis lost this partition's state") {
					t.Error("no log line says Redis went back to an older state or lost the partition's state")
				}
				testenv.AwaitHTTP(t, 30*time.Second, "http://"+httpAddr+"/readyz")
			}
			t.Logf("FAULT %s under a backlog: %d events, the fault over (process exited, or replica promoted) in %.2f s, figures exact %.1f s after it struck, breaches expected %d seen %d, alert records %d (replay %d), %d alerts fired and retracted that the replay never raised, state rebuilds %v, redis errors %v",
				what, len(recs), stopped.Seconds(), exact.Seconds(), expected, seen, len(alerts), len(last.Alerts),
				withdrawn, rebuilds, sumPrefix(final, "replywatch_redis_errors_total{"))
		})
	}
}
