package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
)

// TestSSELoad measures the processor with and without 500 alert streams
// open, in one run: a phase of live traffic with no subscriber, then the
// same traffic with 500 Server-Sent Events clients reading every alert.
// It is a benchmark, not part of the default test run:
//
//	REPLYWATCH_BENCH_SSE=1 go test ./app -run TestSSELoad -v -timeout 10m
//
// REPLYWATCH_BENCH_SSE_RATE (events/s, default 30000),
// REPLYWATCH_BENCH_SSE_CLIENTS (default 500),
// REPLYWATCH_BENCH_SSE_UNANSWERED (one buyer in this many is left
// unanswered for 25 s: 4 alerts and their resolutions; default 1000) and
// REPLYWATCH_BENCH_SSE_PHASE (default 60s) tune it.
func TestSSELoad(t *testing.T) {
	if os.Getenv("REPLYWATCH_BENCH_SSE") == "" {
		t.Skip("a 2-minute benchmark: set REPLYWATCH_BENCH_SSE=1 (make bench-sse)")
	}
	rate := envInt("REPLYWATCH_BENCH_SSE_RATE", 30000)
	unanswered := envInt("REPLYWATCH_BENCH_SSE_UNANSWERED", 1000)
	clients := envInt("REPLYWATCH_BENCH_SSE_CLIENTS", 500)
	phase := 60 * time.Second
	if v := os.Getenv("REPLYWATCH_BENCH_SSE_PHASE"); v != "" {
		var err error
		if phase, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}

	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 12, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 4,
		"cs.chat.DLT": 1, "cs.orders.DLT": 1, "cs.presence.DLT": 1})
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.GroupID = "sse-bench"
	cfg.Redis.URL = testenv.Redis(t)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.ServiceHours = []config.TimeRange{{Start: "00:00", End: "24:00"}}
	// Short thresholds: the unanswered buyers' warnings and breaches fall
	// due within the phase.
	cfg.ReplySLA.Thresholds = []time.Duration{10 * time.Second, 20 * time.Second}
	cfg.ReplySLA.WarnBefore = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Log: zap.NewNop(), Holder: "sse-bench"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := a.Addr()
	eventually(t, 30*time.Second, "joined", func() error {
		if !a.Processor.Joined() {
			return fmt.Errorf("not joined")
		}
		return nil
	})

	// Live traffic at a steady rate: each buyer writes and is answered 2 s
	// later, except one in 1,000, who gets two warnings and two breaches
	// (and their resolutions when the reply comes 25 s later).
	pctx, stopProducing := context.WithCancel(context.Background())
	var produced atomic.Int64
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "cs.chat", Balancer: &kafka.Hash{}, BatchSize: 1000,
			BatchTimeout: 5 * time.Millisecond, Async: true, RequiredAcks: kafka.RequireOne}
		defer w.Close()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		// Replies in the order they fall due: most after 2 s, the late ones
		// (one buyer in 1,000) after 25 s, past both thresholds.
		var soon, late []event.Event
		n := 0
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			now := time.Now()
			var msgs []kafka.Message
			add := func(ev event.Event) {
				b, _ := json.Marshal(ev)
				msgs = append(msgs, kafka.Message{Key: []byte(ev.Key(event.Chat)), Value: b})
			}
			due := func(q []event.Event) []event.Event {
				k := 0
				for ; k < len(q) && !q[k].TS.After(now); k++ {
					add(q[k])
				}
				return q[k:]
			}
			soon, late = due(soon), due(late)
			for range rate / 200 {
				n++
				shop, buyer, agent := "s"+strconv.Itoa(n%20), "b"+strconv.Itoa(n), "a"+strconv.Itoa(n%200)
				add(event.Event{EventID: "m" + strconv.Itoa(n), Type: event.TypeMessage, TS: event.Time{Time: now}, ShopID: shop,
					BuyerID: buyer, Sender: "buyer", AgentID: agent, Text: "在吗"})
				reply := event.Event{EventID: "r" + strconv.Itoa(n), Type: event.TypeMessage,
					TS: event.Time{Time: now.Add(2 * time.Second)}, ShopID: shop, BuyerID: buyer, Sender: "agent", AgentID: agent, Text: "您好"}
				if n%unanswered == 0 {
					reply.TS = event.Time{Time: now.Add(25 * time.Second)}
					late = append(late, reply)
				} else {
					soon = append(soon, reply)
				}
			}
			if err := w.WriteMessages(pctx, msgs...); err != nil && pctx.Err() == nil {
				t.Errorf("producing: %v", err)
				return
			}
			produced.Add(int64(len(msgs)))
		}
	}()
	defer func() { stopProducing(); <-prodDone }()

	// Warm up until alerts flow steadily.
	time.Sleep(30 * time.Second)

	type result struct {
		name                  string
		applied, alerts       float64
		maxLag                float64
		received, minReceived int64
		p50, p99, max         time.Duration
		dropped               float64
	}
	measure := func(name string, during func() (stop func() (int64, int64, []time.Duration))) result {
		m0 := scrape(t, addr)
		start := time.Now()
		var stop func() (int64, int64, []time.Duration)
		if during != nil {
			stop = during()
		}
		var maxLag float64
		for time.Since(start) < phase {
			time.Sleep(time.Second)
			var lag float64
			for k, v := range scrape(t, addr) {
				if strings.HasPrefix(k, "replywatch_consumer_lag_messages{") && strings.Contains(k, "topic=cs.chat") {
					lag += v
				}
			}
			maxLag = max(maxLag, lag)
		}
		m1 := scrape(t, addr)
		secs := time.Since(start).Seconds()
		r := result{name: name, maxLag: maxLag,
			applied: (m1["replywatch_events_total{result=applied,topic=cs.chat}"] - m0["replywatch_events_total{result=applied,topic=cs.chat}"]) / secs,
			dropped: m1["replywatch_api_stream_dropped_total{}"] - m0["replywatch_api_stream_dropped_total{}"]}
		var alerts float64
		for k, v := range m1 {
			if strings.HasPrefix(k, "replywatch_alerts_total{") {
				alerts += v - m0[k]
			}
		}
		r.alerts = alerts / secs
		if stop != nil {
			var lat []time.Duration
			r.received, r.minReceived, lat = stop()
			slices.Sort(lat)
			if len(lat) > 0 {
				r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
			}
		}
		return r
	}

	without := measure("no subscribers", nil)
	t.Logf("no subscribers: %.0f chat events/s applied, %.1f alerts/s, max lag %.0f", without.applied, without.alerts, without.maxLag)

	with := measure(fmt.Sprintf("%d SSE subscribers", clients), func() func() (int64, int64, []time.Duration) {
		sctx, stopClients := context.WithCancel(context.Background())
		counts := make([]atomic.Int64, clients)
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients + 10}
		hc := &http.Client{Transport: tr}
		// The clients resume from the stream's current position, as clients
		// that were connected already: no snapshot of what is firing each.
		first := openStream(t, addr, "/api/v1/alerts/stream", "", "")
		var none []apiAlert
		var pos string
		first.collect(t, 30*time.Second, &none, &pos, func([]apiAlert) bool { return pos != "" })
		first.close()
		var reconnects, connected atomic.Int64
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := pos
				// As a browser's EventSource does: a dropped stream is opened
				// again from the last id read.
				for sctx.Err() == nil {
					req, _ := http.NewRequestWithContext(sctx, "GET", "http://"+addr+"/api/v1/alerts/stream", nil)
					req.Header.Set("Last-Event-ID", last)
					res, err := hc.Do(req)
					if err != nil {
						if sctx.Err() == nil {
							time.Sleep(100 * time.Millisecond)
							reconnects.Add(1)
						}
						continue
					}
					if last == pos {
						connected.Add(1)
					}
					sc := bufio.NewScanner(res.Body)
					sc.Buffer(make([]byte, 64<<10), 1<<20)
					for sc.Scan() {
						line := sc.Bytes()
						if len(line) > 4 && string(line[:4]) == "id: " {
							last = string(line[4:])
							continue
						}
						if len(line) < 6 || string(line[:6]) != "data: " {
							continue
						}
						counts[i].Add(1)
						// Every tenth client times each record: from when the
						// processor wrote it to when the client read it.
						if i%10 == 0 {
							var rec struct {
								Emitted string `json:"emitted_at"`
							}
							if json.Unmarshal(line[6:], &rec) == nil {
								if at, err := time.Parse(time.RFC3339Nano, rec.Emitted); err == nil {
									d := time.Since(at)
									mu.Lock()
									lat = append(lat, d)
									mu.Unlock()
								}
							}
						}
					}
					res.Body.Close()
					if sctx.Err() == nil {
						reconnects.Add(1)
					}
				}
			}()
		}
		eventually(t, 60*time.Second, "subscribers connected", func() error {
			if n := connected.Load(); n < int64(clients) {
				return fmt.Errorf("%d of %d connected", n, clients)
			}
			return nil
		})
		return func() (int64, int64, []time.Duration) {
			stopClients()
			wg.Wait()
			t.Logf("%d reconnections after a dropped stream", reconnects.Load())
			var total, least int64 = 0, -1
			for i := range counts {
				c := counts[i].Load()
				total += c
				if least < 0 || c < least {
					least = c
				}
			}
			return total, least, lat
		}
	})

	t.Logf("GOMAXPROCS %d, offered %d chat events/s (one buyer in %d unanswered), phases of %v (produced %d in all)",
		runtime.GOMAXPROCS(0), rate, unanswered, phase, produced.Load())
	t.Logf("| phase | chat events applied/s | alerts/s | max consumer lag | SSE records delivered | fewest to one client | delivery p50 / p99 / max | clients dropped |")
	t.Logf("|---|---:|---:|---:|---:|---:|---|---:|")
	for _, r := range []result{without, with} {
		t.Logf("| %s | %.0f | %.1f | %.0f | %d | %d | %v / %v / %v | %.0f |", r.name, r.applied, r.alerts, r.maxLag,
			r.received, r.minReceived, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond), r.dropped)
	}
	if with.applied < 0.95*without.applied {
		t.Errorf("with %d subscribers the processor applied %.0f events/s, without %.0f", clients, with.applied, without.applied)
	}
	if with.dropped > 0 {
		t.Errorf("%v subscribers dropped", with.dropped)
	}
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}
