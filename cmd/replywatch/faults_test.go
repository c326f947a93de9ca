//go:build faults || soak

package main

import (
	"bytes"
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
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/sim"
)

// replica is one `replywatch run` process of the fault suite.
type replica struct {
	cmd    *exec.Cmd
	logs   bytes.Buffer
	exited chan error
}

func startReplica(t *testing.T, bin, cfgPath string) *replica {
	t.Helper()
	r := &replica{cmd: exec.Command(bin, "run", "--config", cfgPath), exited: make(chan error, 1)}
	r.cmd.Stdout, r.cmd.Stderr = &r.logs, &r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("replywatch output:\n%s", r.logs.String())
		}
	})
	return r
}

// readAlerts reads every record of the alerts topic.
func readAlerts(broker string) ([]alerting.Alert, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "cs.alerts", Partition: 0, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []alerting.Alert
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
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

// The built binary killed with SIGKILL a third of the way into a backlog,
// and another stopped with SIGTERM under load, then started again: the
// figures are the offline replay's exactly, and SIGTERM ends the process
// with exit 0 within the contract's 10 s.
func TestBinaryFaults(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1})
			redisURL := testenv.Redis(t)
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
				"redis:\n  url: %q\nhttp:\n  addr: %q\ntimezone: %s\nmetrics:\n  report_interval: 200ms\n  reporter_lease: 2s\n"+
				"clock:\n  tick: 20ms\nlog:\n  format: json\n", broker, redisURL, httpAddr, loc.String())
			if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			res, err := app.Replay(context.Background(), cfg, func(fn func(event.Stream, string, []byte) error) error {
				var buf []byte
				for _, r := range recs {
					buf = sim.AppendEvent(buf[:0], &r.Event)
					if err := fn(r.Topic, r.Key, buf); err != nil {
						return err
					}
				}
				return nil
			}, time.Now().Add(time.Minute), nil)
			if err != nil {
				t.Fatal(err)
			}
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

			first := startReplica(t, bin, cfgPath)
			testenv.Eventually(t, 60*time.Second, "backlog under way", func() error {
				got, err := testenv.Scrape("http://" + httpAddr + "/metrics")
				if err != nil {
					return err
				}
				if v := got["replywatch_events_total{result=applied,topic=cs.chat}"]; v < float64(chat/3) {
					return fmt.Errorf("%v of %d chat events applied", v, chat/3)
				}
				return nil
			})
			struck := time.Now()
			if err := first.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-first.exited:
				first.exited <- err
				if sig == syscall.SIGTERM && err != nil {
					t.Errorf("exit after SIGTERM under load: %v", err)
				}
				if took := time.Since(struck); sig == syscall.SIGTERM && took > 10*time.Second {
					t.Errorf("SIGTERM under load took %s, the contract says 10 s", took)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("replywatch did not exit within 15 s of %s", sig)
			}
			stopped := time.Since(struck)

			startReplica(t, bin, cfgPath)
			testenv.Eventually(t, 120*time.Second, "figures exact after the restart", func() error {
				got, err := testenv.Scrape("http://" + httpAddr + "/metrics")
				if err != nil {
					return err
				}
				return sameFigures(got, want)
			})
			exact := time.Since(struck)
			breaches := 0
			testenv.Eventually(t, 60*time.Second, "every alert of the replay", func() error {
				alerts, err := readAlerts(broker)
				if err != nil {
					return err
				}
				live, err := scenario.Outcome(alerts)
				if err != nil {
					return err
				}
				replayed, err := scenario.Outcome(res.Alerts)
				if err != nil {
					return err
				}
				breaches = 0
				for _, a := range res.Alerts {
					if a.Kind == alerting.KindReplyBreach && a.Status == alerting.Firing {
						breaches++
					}
				}
				return scenario.SameOutcome(live, replayed)
			})
			t.Logf("FAULT replica %s under load: %d events, stopped in %.2f s, figures exact %.1f s after the signal, breaches expected %d, every alert on cs.alerts",
				sig, len(recs), stopped.Seconds(), exact.Seconds(), breaches)
		})
	}
}
