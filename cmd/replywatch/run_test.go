package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func needKcat(t *testing.T) string {
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat not found: install it with apt-get install kcat")
		}
		t.Skip("kcat not found (apt-get install kcat)")
	}
	return p
}

func buildBinary(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "replywatch")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Events for several shops produced with kcat into a broker reached over
// TCP, processed by `replywatch run`, give on cs.alerts the hand-counted
// alerts and on /metrics the hand-counted figures; SIGTERM stops it with
// exit 0 within 10 s.
func TestRunBinaryWithKcat(t *testing.T) {
	kcat := needKcat(t)
	bin := buildBinary(t)
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1, "cs.chat.DLT": 1})
	redisURL := testenv.Redis(t)
	loc := testenv.NoonZone(time.Now())
	d := scenario.Day{Loc: loc, Date: time.Now().In(loc).Format(time.DateOnly)}
	httpAddr := freePort(t)

	cfgPath := filepath.Join(t.TempDir(), "replywatch.yml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: kcat-test
  session_timeout: 2s
  rebalance_timeout: 2s
redis:
  url: %q
http:
  addr: %q
timezone: %s
metrics:
  report_interval: 200ms
  reporter_lease: 2s
clock:
  tick: 20ms
log:
  format: json
`, broker, redisURL, httpAddr, loc.String())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", "--config", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}

	// The day is produced before replywatch starts, so it reads it as a
	// backlog in event time. Produced while it runs, the day's past
	// timestamps meet a partition that follows the wall clock between
	// fetches: a breach can fire before the reply in the next fetch
	// arrives, and is then retracted (the alert ids differ from the hand
	// count, though the figures end the same).
	var in bytes.Buffer
	for _, ev := range d.Events() {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(&in, "%s\t%s\n", ev.Key(event.Chat), b)
	}
	prod := exec.Command(kcat, "-b", broker, "-P", "-t", "cs.chat", "-K", "\t")
	prod.Stdin = &in
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "run", "--config", cfgPath)
	// The host's zone differs from the shops': alert times must carry the
	// shop's offset, not the host's.
	offset := time.Now().In(loc).Format("Z07:00")
	hostTZ := "Etc/GMT+11"
	if offset == "-11:00" {
		hostTZ = "Etc/GMT-14"
	}
	cmd.Env = append(os.Environ(), "TZ="+hostTZ)
	rw := testenv.StartProcess(t, "replywatch", cmd)
	testenv.AwaitHTTP(t, 30*time.Second, "http://"+httpAddr+"/readyz")

	testenv.Eventually(t, 30*time.Second, "figures", func() error {
		got, err := testenv.Scrape("http://" + httpAddr + "/metrics")
		if err != nil {
			return err
		}
		var diffs []string
		for k, v := range scenario.Figures {
			if g, ok := got[k]; !ok || g-v > 1e-9 || v-g > 1e-9 {
				diffs = append(diffs, fmt.Sprintf("%s=%v want %v", k, got[k], v))
			}
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%s", strings.Join(diffs, "; "))
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, "alerts read with kcat", func() error {
		out, err := exec.Command(kcat, "-b", broker, "-C", "-t", "cs.alerts", "-o", "beginning", "-e", "-q").Output()
		if err != nil {
			return err
		}
		var alerts []alerting.Alert
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var a alerting.Alert
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				return fmt.Errorf("alert line %q: %w", sc.Text(), err)
			}
			if a.Summary == "" || a.EmittedAt.IsZero() {
				return fmt.Errorf("alert %s lacks summary or emitted_at", a.ID)
			}
			var times map[string]any
			_ = json.Unmarshal(sc.Bytes(), &times)
			for _, k := range []string{"since", "due", "at", "emitted_at"} {
				if v, ok := times[k].(string); ok && !strings.HasSuffix(v, offset) {
					t.Fatalf("alert %s: %s %q does not carry the shop's offset %s", a.ID, k, v, offset)
				}
			}
			alerts = append(alerts, a)
		}
		got, err := scenario.Outcome(alerts)
		if err != nil {
			return err
		}
		return scenario.SameOutcome(got, d.Firing())
	})

	start := time.Now()
	if err := rw.Stop(t, syscall.SIGTERM, 15*time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("SIGTERM took %s, the contract says 10 s", took)
	}
}
