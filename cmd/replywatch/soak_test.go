//go:build soak

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
)

var (
	soakFor  = flag.Duration("soak", 30*time.Minute, "how long the soak's live traffic runs")
	soakHeap = flag.String("soak-heap", "", "directory to keep the soaked replica's heap profiles in (a temporary one when empty)")
)

// soakSample is one scrape of the soaked replica.
type soakSample struct {
	at         time.Duration
	goroutines float64
	rss        float64
	heap       float64
}

// The soak (make soak): the built binary under live simulated traffic (six
// busy shops, ts = the wall clock) for -soak (30 min), while a second replica
// joins and leaves the group every fifth of the run, so partitions move
// to and from the soaked one again and again. Its goroutines and resident
// memory are sampled every 5 s: from the third fifth (alone again, after
// warming up and a first churn) to the end (alone) neither may keep
// growing (goroutines within 20 of the warm level, RSS within 25 % +
// 16 MiB), and at the end its figures are exactly the
// offline replay's of every record produced and every alert of the replay
// is on cs.alerts. Reply thresholds are 30 s and 60 s so that the last
// deadlines pass a minute after the traffic stops.
func TestSoak(t *testing.T) {
	bin := buildSoakBinary(t)
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 6, "cs.orders": 3, "cs.presence": 3, "cs.alerts": 1})
	redisURL := testenv.Redis(t)
	loc := testenv.NoonZone(time.Now())
	dir := t.TempDir()
	configFor := func(httpAddr string) string {
		path := filepath.Join(dir, strings.ReplaceAll(httpAddr, ":", "_")+".yml")
		text := fmt.Sprintf("kafka:\n  brokers: [%q]\n  group_id: soak\n  session_timeout: 2s\n  rebalance_timeout: 2s\n"+
			"redis:\n  url: %q\nhttp:\n  addr: %q\ntimezone: %s\nreply_sla:\n  thresholds: [30s, 60s]\n  warn_before: 10s\n"+
			"metrics:\n  report_interval: 1s\n  reporter_lease: 5s\nlog:\n  format: json\n  level: warn\n", broker, redisURL, httpAddr, loc.String())
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	soaked, churn := freePort(t), freePort(t)
	cfg, err := config.Load(configFor(soaked))
	if err != nil {
		t.Fatal(err)
	}

	// Live traffic, produced as its time comes.
	start := time.Now()
	stopAt := start.Add(*soakFor)
	w := sim.NewWriter(broker)
	defer w.Close()
	p := sim.NewProducer(context.Background(), w, sim.DefaultTopics)
	var mu sync.Mutex
	var produced []sim.Record
	trafficDone := make(chan error, 1)
	go func() {
		trafficDone <- sim.Live(context.Background(), sim.Options{Seed: 41, Shops: 6, Agents: 4, Rate: 150,
			Start: start.In(loc), End: stopAt.In(loc), Location: loc}, time.Now, func(r sim.Record) error {
			mu.Lock()
			produced = append(produced, r)
			mu.Unlock()
			if err := p.Emit(r); err != nil {
				return err
			}
			return p.Flush()
		})
	}()

	// The soaked replica writes a heap profile on SIGUSR1 (soakheap.go):
	// one when the warm level has been sampled, one at the end.
	heapDir := *soakHeap
	if heapDir == "" {
		heapDir = t.TempDir()
	} else if err := os.MkdirAll(heapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	heapBase := filepath.Join(heapDir, "soaked")
	t.Setenv(envSoakHeap, heapBase)
	r := startReplica(t, bin, configFor(soaked))
	heaps := 0
	heapProfile := func() string {
		heaps++
		path := heapBase + "." + strconv.Itoa(heaps)
		if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatalf("asking for a heap profile: %v", err)
		}
		testenv.Eventually(t, 60*time.Second, "heap profile "+path, func() error {
			_, err := os.Stat(path + ".done")
			return err
		})
		return path + ".pprof"
	}
	var warmHeap string
	scrapeOf := func(addr string) map[string]float64 {
		m, err := testenv.Scrape("http://" + addr + "/metrics")
		if err != nil {
			return nil
		}
		return m
	}
	var samples []soakSample
	var other *replica
	churns := 0
	phase := *soakFor / 5
	for now := time.Now(); now.Before(stopAt); now = time.Now() {
		// The second replica is in the group for odd fifths of the run.
		in := int(now.Sub(start)/phase)%2 == 1
		switch {
		case in && other == nil:
			other = startReplica(t, bin, configFor(churn))
			churns++
		case !in && other != nil:
			stopReplica(t, other)
			other = nil
		}
		if warmHeap == "" && now.Sub(start) >= 3*phase {
			warmHeap = heapProfile()
		}
		if m := scrapeOf(soaked); m != nil {
			samples = append(samples, soakSample{at: now.Sub(start), goroutines: m["go_goroutines{}"],
				rss: m["process_resident_memory_bytes{}"], heap: m["go_memstats_heap_inuse_bytes{}"]})
		}
		time.Sleep(5 * time.Second) // the sampling period
	}
	if other != nil {
		stopReplica(t, other)
	}
	if err := <-trafficDone; err != nil {
		t.Fatalf("live traffic: %v", err)
	}
	mu.Lock()
	recs := produced
	mu.Unlock()

	end := stopAt.Add(60*time.Second + cfg.Clock.Grace + time.Second)
	res, err := app.Replay(context.Background(), cfg, func(fn func(event.Stream, string, []byte) error) error {
		var buf []byte
		for _, r := range recs {
			buf = sim.AppendEvent(buf[:0], &r.Event)
			if err := fn(r.Topic, r.Key, buf); err != nil {
				return err
			}
		}
		return nil
	}, end, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(end)) // the replica's clock passing the last deadlines, not a wait for a condition
	testenv.Eventually(t, 120*time.Second, "figures exact at the end of the soak", func() error {
		return sameFigures(scrapeOf(soaked), shopGauges(res.Shops))
	})
	var alerts []alerting.Alert
	testenv.Eventually(t, 60*time.Second, "every alert of the replay", func() error {
		if alerts, err = readAlerts(broker); err != nil {
			return err
		}
		return sameAlerts(alerts, res.Alerts)
	})
	if err := scenario.OneConditionPerID(alerts); err != nil {
		t.Error(err)
	}
	// The warm level: the median of the samples of the third fifth, when
	// the soaked replica is alone again after the first churn (it then
	// owns every partition, as at the end).
	var warmG, warmR []float64
	for _, s := range samples {
		if s.at >= 2*phase && s.at < 3*phase {
			warmG, warmR = append(warmG, s.goroutines), append(warmR, s.rss)
		}
	}
	if len(warmG) == 0 {
		t.Fatalf("no sample in the third fifth of the run (%d samples)", len(samples))
	}
	g0, r0 := median(warmG), median(warmR)
	if g0 == 0 || r0 == 0 {
		t.Fatalf("no go_goroutines or process_resident_memory_bytes on /metrics (warm %v goroutines, %v bytes)", g0, r0)
	}
	maxG, maxR := 0.0, 0.0
	for _, s := range samples {
		maxG, maxR = max(maxG, s.goroutines), max(maxR, s.rss)
	}
	// Quiet now: the process settles back to the warm level once the
	// last rebalance's goroutines are gone.
	var final soakSample
	testenv.Eventually(t, 30*time.Second, "goroutines back to the warm level", func() error {
		m := scrapeOf(soaked)
		final = soakSample{at: time.Since(start), goroutines: m["go_goroutines{}"], rss: m["process_resident_memory_bytes{}"],
			heap: m["go_memstats_heap_inuse_bytes{}"]}
		if final.goroutines > g0+20 {
			return fmt.Errorf("goroutines grew: %v warm, %v now (max %v)", g0, final.goroutines, maxG)
		}
		return nil
	})
	endHeap := heapProfile()
	if warmHeap != "" {
		// What the live heap gained from the warm level to the end, by
		// where it was allocated.
		out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", "-sample_index=inuse_space",
			"-diff_base", warmHeap, endHeap).CombinedOutput()
		if err != nil {
			t.Errorf("go tool pprof: %v\n%s", err, out)
		}
		t.Logf("live heap, end minus warm (%s, %s):\n%s", warmHeap, endHeap, out)
	}
	if final.rss > r0*1.25+16<<20 {
		t.Errorf("resident memory grew: %.1f MiB warm, %.1f MiB at the end (max %.1f MiB)", r0/(1<<20), final.rss/(1<<20), maxR/(1<<20))
	}
	if code := stopReplica(t, r); code != nil {
		t.Errorf("soaked replica after SIGTERM: %v", code)
	}
	t.Logf("SOAK %s of live traffic: %d events, second replica joined and left %d times, %d alert records (replay %d, breaches %d); "+
		"goroutines warm %.0f, max %.0f, end %.0f; RSS warm %.1f MiB, max %.1f MiB, end %.1f MiB; heap in use at the end %.1f MiB",
		*soakFor, len(recs), churns, len(alerts), len(res.Alerts), scenario.Breaches(res.Alerts),
		g0, maxG, final.goroutines, r0/(1<<20), maxR/(1<<20), final.rss/(1<<20), final.heap/(1<<20))
}

// buildSoakBinary builds replywatch with the soak tag: the binary users
// run plus the heap profile hook of soakheap.go.
func buildSoakBinary(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "replywatch")
	out, err := exec.Command("go", "build", "-tags", "soak", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -tags soak: %v\n%s", err, out)
	}
	return bin
}

// stopReplica stops a replica with SIGTERM and returns how it exited.
func stopReplica(t *testing.T, r *replica) error {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.exited:
		r.exited <- err
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("replica did not exit within 15 s of SIGTERM")
		return nil
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
