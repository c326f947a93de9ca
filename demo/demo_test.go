package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
)

// syncBuffer is the demo's stdout in tests: written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// demoRuns run the whole demo once with each Redis it can use. One stops
// when its Duration ends, the other when its context is cancelled, as
// Ctrl-C does.
var demoRuns = []struct {
	name     string
	embedded bool
	cancelAt time.Duration // 0: stop by Duration
}{
	{name: "redis-server", embedded: false, cancelAt: 22 * time.Second},
	{name: "miniredis", embedded: true},
}

// alertDeadline is how soon after the start a user sees the first warnings
// and breaches.
const alertDeadline = 15 * time.Second

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo for about 25 s")
	}
	for _, c := range demoRuns {
		t.Run(c.name, func(t *testing.T) {
			if !c.embedded {
				if _, err := exec.LookPath("redis-server"); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatal("redis-server not found: install it with apt-get install redis-server")
					}
					t.Skip("redis-server not found: install it with apt-get install redis-server")
				}
			}
			o := DefaultOptions()
			o.KafkaPort = 0
			o.Listen = "127.0.0.1:0"
			o.EmbeddedRedis = c.embedded
			o.Duration = 25 * time.Second
			if raceRate > 0 {
				o.Rate = raceRate
			}
			ready := make(chan Info, 1)
			o.OnReady = func(i Info) { ready <- i }
			var out syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, o, &out) }()

			var info Info
			select {
			case info = <-ready:
			case err := <-done:
				t.Fatalf("demo ended before it was ready: %v\n%s", err, out.String())
			case <-time.After(20 * time.Second):
				t.Fatalf("demo not ready after 20 s\n%s", out.String())
			}
			if c.embedded != (info.RedisPID == 0) {
				t.Errorf("redis %q has pid %d; want a child process only with redis-server", info.RedisDesc, info.RedisPID)
			}
			if c.embedded && !strings.Contains(info.RedisDesc, "miniredis") {
				t.Errorf("embedded Redis described as %q", info.RedisDesc)
			}

			seen := urgentAlerts(t, info.Brokers[0], start.Add(alertDeadline))
			for _, kind := range []string{alerting.KindReplyWarning, alerting.KindReplyBreach} {
				if seen[kind] == 0 {
					t.Errorf("no firing %s for a buyer left waiting on cs.alerts within %s of the start", kind, alertDeadline)
				}
			}

			pagesOpen(t, info)

			gauges := scrape(t, info.HTTPAddr)
			for _, s := range info.Shops {
				if gauges["replywatch_consulting_buyers"][s.ID] <= 0 {
					t.Errorf("replywatch_consulting_buyers{shop=%q} = %v, want > 0", s.ID, gauges["replywatch_consulting_buyers"][s.ID])
				}
				if gauges["replywatch_waiting_buyers"][s.ID] <= 0 {
					t.Errorf("replywatch_waiting_buyers{shop=%q} = %v, want > 0 (the urgent buyers are never answered)", s.ID, gauges["replywatch_waiting_buyers"][s.ID])
				}
			}

			if !c.embedded {
				t.Run("kcat", func(t *testing.T) { kcatReads(t, info.Brokers[0]) })
			}

			if c.cancelAt > 0 {
				time.Sleep(time.Until(start.Add(c.cancelAt)))
				cancel()
			}
			stopAsked := time.Now()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("demo ended with %v", err)
				}
			case <-time.After(o.Duration + 20*time.Second):
				t.Fatalf("demo did not stop\n%s", out.String())
			}
			if c.cancelAt > 0 {
				if d := time.Since(stopAsked); d > 10*time.Second {
					t.Errorf("demo took %s to stop after cancel, want a few seconds", d)
				}
			}

			if info.RedisPID != 0 {
				// Reaped children are gone from the process table: signal 0 fails.
				if err := syscall.Kill(info.RedisPID, 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("redis-server pid %d still exists after the demo (kill -0: %v)", info.RedisPID, err)
				}
			}
			if _, err := os.Stat(info.TempDir); !os.IsNotExist(err) {
				t.Errorf("temporary directory %s left behind (stat: %v)", info.TempDir, err)
			}
			text := out.String()
			for _, want := range []string{"kcat -b " + info.Brokers[0] + " -L", "http://" + info.HTTPAddr + "/metrics",
				"job_name: replywatch-demo", info.WallURL, info.AgentURL, "alert reply_breach firing", "alert reply_warning firing", " figures shop=shop-01 ", "stopped after"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("demo output:\n%s", text)
			}
		})
	}
}

// urgentAlerts reads cs.alerts until the deadline or until it saw a firing
// warning and breach about buyers the demo left waiting (ids "u…", see
// sim.Urgent), and counts those by kind.
func urgentAlerts(t *testing.T, broker string, deadline time.Time) map[string]int {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: DefaultTopics.Alerts, Partition: 0,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	seen := map[string]int{}
	for seen[alerting.KindReplyWarning] == 0 || seen[alerting.KindReplyBreach] == 0 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return seen
		}
		var a alerting.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("alert record is not contract JSON: %v: %s", err, m.Value)
		}
		if a.Status == alerting.Firing && strings.HasPrefix(a.BuyerID, "u") {
			seen[a.Kind]++
		}
	}
	return seen
}

// scrape reads /metrics as name → shop → value.
func scrape(t *testing.T, addr string) map[string]map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping the demo: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string]map[string]float64{}
	for name, f := range fams {
		out[name] = map[string]float64{}
		for _, m := range f.GetMetric() {
			out[name][label(m, "shop")] += m.GetGauge().GetValue()
		}
	}
	return out
}

// kcatReads lists the demo broker's topics and reads its alerts with kcat
// (librdkafka), as the demo's start-up text tells users to.
func kcatReads(t *testing.T, broker string) {
	bin, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not on PATH (apt-get install kcat): skipping the kcat check")
	}
	list, err := exec.Command(bin, "-b", broker, "-L", "-m", "10").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -L: %v\n%s", err, list)
	}
	for _, want := range []string{`topic "cs.chat" with 4 partitions`, `topic "cs.orders" with 4 partitions`,
		`topic "cs.presence" with 4 partitions`, `topic "cs.alerts" with 1 partitions`, `topic "cs.chat.DLT"`} {
		if !bytes.Contains(list, []byte(want)) {
			t.Errorf("kcat -L lacks %q:\n%s", want, list)
		}
	}
	cmd := exec.Command(bin, "-b", broker, "-C", "-t", DefaultTopics.Alerts, "-o", "beginning", "-e", "-q", "-m", "10")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kcat -C: %v", err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n, breaches := 0, 0
	for sc.Scan() {
		var a alerting.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("kcat read a record that is not alert JSON: %v: %s", err, sc.Bytes())
		}
		n++
		if a.Kind == alerting.KindReplyBreach && a.Status == alerting.Firing {
			breaches++
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, stderr.String())
	}
	if n == 0 || breaches == 0 {
		t.Errorf("kcat read %d alerts, %d of them firing breaches; want some of each", n, breaches)
	}
}

// pagesOpen opens the wall and the agent page with the printed addresses,
// as a browser would: the token becomes a cookie that the API then takes.
func pagesOpen(t *testing.T, info Info) {
	t.Helper()
	for _, u := range []string{info.WallURL, info.AgentURL} {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(page), "/static/common.js") || strings.Contains(res.Request.URL.String(), "token=") {
			t.Errorf("GET %s = %d at %s", u, res.StatusCode, res.Request.URL)
		}
		api := "/api/v1/shops"
		if u == info.AgentURL {
			api = "/api/v1/alerts"
		}
		res, err = c.Get("http://" + info.HTTPAddr + api)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || api == "/api/v1/shops" && !strings.Contains(string(body), `"shop":"`+info.Shops[0].ID+`"`) {
			t.Errorf("GET %s with the page's cookie = %d %.200s", api, res.StatusCode, body)
		}
	}
}
