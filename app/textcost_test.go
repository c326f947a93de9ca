package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
)

// TestTextRulesCost measures what the text rules cost end to end: the same
// simulated chat backlog in kfake is processed into redis-server by the
// pipeline with the text rules and without, alternately, each run by a new
// group into keys of its own. It reports the median events/s of each and the
// CPU this process spent per event (the pipeline, and the in-process
// broker serving it, which does the same work either way), and fails when
// the text rules cost 10 % or more CPU per event: on a shared machine wall
// time varies far more than that between identical runs. A measurement,
// not a test of behaviour: run it with REPLYWATCH_TEXT_COST=1 (make
// bench-text); it is skipped otherwise.
func TestTextRulesCost(t *testing.T) {
	if os.Getenv("REPLYWATCH_TEXT_COST") == "" {
		t.Skip("a measurement: set REPLYWATCH_TEXT_COST=1 to run it")
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("REPLYWATCH_TEXT_COST_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	e := newEnv(t)
	loc := sim.Shanghai()
	day := time.Date(2026, 11, 11, 0, 0, 0, 0, loc)
	opts := sim.Options{Seed: 7, Shops: 30, Agents: 6, Rate: 2, Start: day.Add(9 * time.Hour), End: day.Add(15 * time.Hour)}
	var msgs []kafka.Message
	texts := 0
	err := sim.Generate(opts, func(r sim.Record) error {
		if r.Topic != event.Chat {
			return nil
		}
		if r.Event.Type == event.TypeMessage && r.Event.Text != "" {
			texts++
		}
		b, err := json.Marshal(r.Event)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: "cs.chat", Key: []byte(r.Key), Value: b})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(e.broker), Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	for i := 0; i < len(msgs); i += 10000 {
		if err := w.WriteMessages(context.Background(), msgs[i:min(i+10000, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	t.Logf("backlog: %d chat events, %d messages with text", len(msgs), texts)

	eps := map[bool][]float64{}
	cpu := map[bool][]float64{}
	for i := range 2 * rounds {
		on := i%2 == 1
		r, perEvent := runBacklog(t, e, fmt.Sprintf("cost%d", i), on, int64(len(msgs)))
		t.Logf("round %d, text rules %-5v: %6.0f events/s, %5.1f µs CPU per event", i/2+1, on, r, float64(perEvent)/1e3)
		eps[on] = append(eps[on], r)
		cpu[on] = append(cpu[on], float64(perEvent)/1e3)
	}
	// Medians: a round slowed by the other work on the machine moves them
	// least.
	cost := median(cpu[true])/median(cpu[false]) - 1
	t.Logf("median of %d: off %.0f events/s, %.1f µs CPU per event; on %.0f events/s, %.1f µs CPU per event; CPU cost %.1f %%, throughput cost %.1f %%",
		rounds, median(eps[false]), median(cpu[false]), median(eps[true]), median(cpu[true]), 100*cost, 100*(1-median(eps[true])/median(eps[false])))
	if cost >= 0.10 {
		t.Errorf("the text rules cost %.1f %% more CPU per event, want under 10 %%", 100*cost)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// processCPU is the CPU this process has used.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runBacklog processes the whole chat backlog with a new group and key
// prefix, and returns events/s from the start until every event was
// applied, and this process's CPU per event meanwhile.
func runBacklog(t *testing.T, e env, name string, text bool, events int64) (float64, time.Duration) {
	t.Helper()
	cfg := testConfig(t, e.broker, e.redis, name)
	cfg.Redis.Prefix = name
	client, err := state.Dial(cfg.Redis.URL, cfg.Redis.Mode, cfg.Redis.Addrs, cfg.Redis.MasterName)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	hs, err := handlers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !text {
		ch := hs[event.Chat].(pipeline.ChatHandler)
		ch.Text = nil
		hs[event.Chat] = ch
	}
	pm := pipeline.NewMetrics(prometheus.NewRegistry(), metrics.NewProcess(prometheus.NewRegistry()))
	sinks := kafkasink.New(cfg.Kafka.Brokers, cfg.Kafka.Topics.Alerts)
	defer sinks.Close()
	proc := pipeline.New(pipeline.Options{
		Config: pipelineConfig(cfg), Store: state.NewRedis(client, cfg.Redis.Prefix, cfg.Redis.StateTTL),
		Handlers: hs, Alerts: sinks, DLT: sinks, Metrics: pm, Log: zap.NewNop(),
		Now: func() time.Time { return time.Date(2026, 11, 11, 15, 0, 0, 0, sim.Shanghai()) }, Location: cfg.Location,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	runtime.GC()
	start, cpu0 := time.Now(), processCPU(t)
	go func() { done <- proc.Run(ctx) }()
	var took, cpu time.Duration
	eventually(t, 5*time.Minute, "backlog processed", func() error {
		n := int64(0)
		for _, r := range []string{"applied", "duplicate"} {
			n += int64(testutil.ToFloat64(pm.Events.WithLabelValues("cs.chat", r)))
		}
		if n < events {
			return fmt.Errorf("%d of %d events", n, events)
		}
		took, cpu = time.Since(start), processCPU(t)-cpu0
		return nil
	})
	cancel()
	if err := <-done; err != nil && !slices.Contains([]error{context.Canceled}, err) {
		t.Fatal(err)
	}
	return float64(events) / took.Seconds(), cpu / time.Duration(events)
}
