package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/internal/testenv"
)

// benchHook is a webhook endpoint answering after a delay, recording when
// it accepted each alert.
type benchHook struct {
	delay    time.Duration
	mu       sync.Mutex
	accepted map[string]time.Duration // alert id -> accepted - emitted_at
}

func (h *benchHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	time.Sleep(h.delay)
	var b WebhookBody
	_ = json.Unmarshal(body, &b)
	now := time.Now()
	h.mu.Lock()
	for _, a := range b.Data.Alerts {
		h.accepted[a.ID] = now.Sub(a.EmittedAt)
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *benchHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.accepted)
}

// benchWorld starts kfake (4 partitions), redis-server, a webhook answering
// after delay, and a notifier routing every alert to it grouped by shop
// and kind with no group_wait.
func benchWorld(b *testing.B, delay time.Duration) (*benchHook, func([]alerting.Alert), func()) {
	broker, _ := testenv.Kafka(b, map[string]int{alertsTopic: 4})
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisServer(b).Addr})
	b.Cleanup(func() { rdb.Close() })
	hook := &benchHook{delay: delay, accepted: map[string]time.Duration{}}
	srv := httptest.NewServer(hook)
	b.Cleanup(srv.Close)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := NewWebhook(srv.URL, secret, nil, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	wait, interval := time.Duration(0), 100*time.Millisecond
	n := New(Options{
		Brokers: []string{broker}, Topic: alertsTopic, GroupID: "bench-notify",
		SessionTimeout: time.Second, RebalanceTimeout: time.Second,
		Route:     NewRoute(config.Route{Receiver: "wb", GroupBy: []string{"shop_id", "kind"}, GroupWait: &wait, GroupInterval: &interval}),
		People:    people,
		Receivers: map[string]Receiver{"wb": wh},
		Marks:     &Marks{Client: rdb, Prefix: "rw", TTL: time.Hour},
		MaxAge:    10 * time.Minute,
		Metrics:   NewMetrics(prometheus.NewRegistry(), nil),
		Tick:      10 * time.Millisecond,
	})
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: alertsTopic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, BatchSize: 1000}
	b.Cleanup(func() { w.Close() })
	produce := func(as []alerting.Alert) {
		msgs := make([]kafka.Message, len(as))
		for i, a := range as {
			v, _ := json.Marshal(a)
			msgs[i] = kafka.Message{Key: []byte(a.ShopID), Value: v}
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(ctx) }()
	return hook, produce, func() { cancel(); <-done }
}

func benchAlerts(from, n, shops int, emitted time.Time) []alerting.Alert {
	out := make([]alerting.Alert, n)
	for i := range out {
		a := breach(0, fmt.Sprintf("b%d", from+i))
		a.ID = fmt.Sprintf("bench-%d", from+i)
		a.ShopID = fmt.Sprintf("shop-%03d", (from+i)%shops)
		a.Since = emitted.Add(-3 * time.Minute)
		a.Due, a.At, a.EmittedAt = emitted, emitted, emitted
		out[i] = a
	}
	return out
}

// BenchmarkNotifierThroughput measures alert records read, routed, sent
// to a receiver that answers at once, and marked, per second: a backlog of
// 50 000 breaches of 100 shops (within max_age).
//
//	go test ./alerting/notify -run '^$' -bench NotifierThroughput -benchtime 1x
func BenchmarkNotifierThroughput(b *testing.B) {
	const total = 50000
	for range b.N {
		hook, produce, stop := benchWorld(b, 0)
		now := time.Now()
		for i := 0; i < total; i += 5000 {
			produce(benchAlerts(i, 5000, 100, now))
		}
		b.ResetTimer()
		start := time.Now()
		for hook.count() < total {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		stop()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
	}
}

// BenchmarkNotifierDelay measures emitted_at to accepted with a receiver
// that answers in 50 ms: 200 breaches a second of 50 shops for 10 s,
// produced live.
//
//	go test ./alerting/notify -run '^$' -bench NotifierDelay -benchtime 1x
func BenchmarkNotifierDelay(b *testing.B) {
	const perTick, ticks = 20, 100 // every 100 ms for 10 s
	for range b.N {
		hook, produce, stop := benchWorld(b, 50*time.Millisecond)
		time.Sleep(2 * time.Second) // the group joins
		b.ResetTimer()
		t := time.NewTicker(100 * time.Millisecond)
		for i := range ticks {
			<-t.C
			produce(benchAlerts(i*perTick, perTick, 50, time.Now()))
		}
		t.Stop()
		for hook.count() < perTick*ticks {
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		stop()
		var ds []time.Duration
		for _, d := range hook.accepted {
			ds = append(ds, d)
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
	}
}
