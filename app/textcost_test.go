package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
)

// textCostTarget is what the text rules may cost at most, in CPU per event
// end to end.
const textCostTarget = 0.10

// TestTextRulesCost measures what the text rules cost end to end: the same
// simulated chat backlog in kfake is processed into redis-server by the
// pipeline without the text rules and with them, interleaved (off, on,
// off, on, …, off: every on round between two off rounds), each run by a
// new group into keys of its own. Per round it records this process's CPU
// per event (the pipeline, and the in-process broker serving it, which
// does the same work either way), redis-server's CPU per event (from
// /proc/<pid>/stat), the bytes and commands sent to Redis per event, the
// alert records per event and events/s.
//
// A round's cost is its on round against the mean of the off rounds on
// either side; the noise floor is what an off round differs from the one
// before it. A round that applied batches again after a Redis error or
// wrote other than its arm's usual bytes to Redis (work redone) is left
// out. The test fails when so
// many rounds cost 10 % or more that chance does not explain it (sign
// test, p < 0.05) and the median cost is further above 10 % than the
// noise floor; it says the cost is conclusively under 10 % in the mirror
// case, and that the measurement is inconclusive otherwise.
//
// A measurement, not a test of behaviour: run it with REPLYWATCH_TEXT_COST=1
// (make bench-text); it is skipped otherwise. REPLYWATCH_TEXT_COST_EVENTS
// sizes the backlog (300,000 by default), REPLYWATCH_TEXT_COST_ROUNDS the
// number of on rounds (5 by default); REPLYWATCH_TEXT_COST_PROFILES names a
// directory for a CPU profile of each round.
func TestTextRulesCost(t *testing.T) {
	if os.Getenv("REPLYWATCH_TEXT_COST") == "" {
		t.Skip("a measurement: set REPLYWATCH_TEXT_COST=1 to run it")
	}
	rounds := max(1, envInt("REPLYWATCH_TEXT_COST_ROUNDS", 5))
	want := max(1000, envInt("REPLYWATCH_TEXT_COST_EVENTS", 300000))
	e := newEnv(t)
	loc := sim.Shanghai()
	day := time.Date(2026, 11, 11, 0, 0, 0, 0, loc)
	// 30 shops of 6 agents over six hours are about 100,000 chat events.
	opts := sim.Options{Seed: 7, Shops: max(1, (30*want+99999)/100000), Agents: 6, Rate: 2,
		Start: day.Add(9 * time.Hour), End: day.Add(15 * time.Hour)}
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
	t.Logf("backlog: %d chat events (%d shops), %d messages with text; %d on rounds between %d off rounds",
		len(msgs), opts.Shops, texts, rounds, rounds+1)

	rc, err := state.Dial(e.redis, "standalone", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	redisPID := redisInfo(t, rc, "server")["process_id"]

	var off, on []costRound
	for i := range 2*rounds + 1 {
		text := i%2 == 1
		r := runBacklog(t, e, rc, redisPID, fmt.Sprintf("cost%d", i), text, int64(len(msgs)))
		t.Logf("round %2d, text rules %-5v: %s", i, text, r)
		if text {
			on = append(on, r)
		} else {
			off = append(off, r)
		}
	}

	// A round that applied batches again after a Redis error, or sent
	// Redis other than its arm's usual bytes per event (a partition
	// rebuilt), did other work than the rest: it is left out.
	disturbed := func(rs []costRound) []bool {
		bytes := make([]float64, len(rs))
		for i, r := range rs {
			bytes[i] = r.redisIn
		}
		usual := median(bytes)
		out := make([]bool, len(rs))
		for i, r := range rs {
			out[i] = r.errors > 0 || math.Abs(r.redisIn/usual-1) > 0.03
		}
		return out
	}
	offBad, onBad := disturbed(off), disturbed(on)
	for i := range 2*rounds + 1 {
		if i%2 == 1 && onBad[i/2] || i%2 == 0 && offBad[i/2] {
			t.Logf("round %d left out: it redid batches or wrote other than its arm's usual bytes", i)
		}
	}
	// Per on round: its figure against the mean of the off rounds either
	// side; the noise floor: each off round against the one before.
	costs := func(f func(costRound) float64) (cost, noise []float64) {
		for i, r := range on {
			if !onBad[i] && !offBad[i] && !offBad[i+1] {
				cost = append(cost, f(r)/((f(off[i])+f(off[i+1]))/2)-1)
			}
		}
		for i := 1; i < len(off); i++ {
			if !offBad[i] && !offBad[i-1] {
				noise = append(noise, f(off[i])/f(off[i-1])-1)
			}
		}
		return cost, noise
	}
	figures := []struct {
		name string
		f    func(costRound) float64
	}{
		{"this process's CPU per event", func(r costRound) float64 { return r.cpu }},
		{"Redis CPU per event", func(r costRound) float64 { return r.redisCPU }},
		{"process + Redis CPU per event", func(r costRound) float64 { return r.cpu + r.redisCPU }},
		{"bytes to Redis per event", func(r costRound) float64 { return r.redisIn }},
		{"Redis commands per event", func(r costRound) float64 { return r.redisCmds }},
		{"alert records per event", func(r costRound) float64 { return r.alerts }},
		{"events/s", func(r costRound) float64 { return r.eps }},
	}
	var cpuCost, cpuNoise []float64
	for i, fig := range figures {
		cost, noise := costs(fig.f)
		if i == 0 {
			cpuCost, cpuNoise = cost, noise
		}
		if len(cost) == 0 || len(noise) == 0 {
			t.Logf("%s: too many rounds left out to compare", fig.name)
			continue
		}
		t.Logf("%-30s off %s | on %s | on vs off median %+5.1f %% (rounds %s) | off vs off: median |Δ| %4.1f %% (%s)",
			fig.name, spread(off, fig.f), spread(on, fig.f), 100*median(cost), pcts(cost), 100*medianAbs(noise), pcts(noise))
	}

	// The verdict, on this process's CPU per event: conclusive when the
	// rounds fall on one side of the target too often for chance (sign
	// test) and their median is further from it than the noise floor.
	if len(cpuCost) == 0 || len(cpuNoise) == 0 {
		t.Log("inconclusive: too many rounds left out; run more rounds")
		return
	}
	above := 0
	for _, c := range cpuCost {
		if c >= textCostTarget {
			above++
		}
	}
	n := len(cpuCost)
	pAbove, pBelow := signP(n, above), signP(n, n-above)
	cost, floor := median(cpuCost), medianAbs(cpuNoise)
	clear := math.Abs(cost-textCostTarget) > floor
	switch {
	case pAbove < 0.05 && clear:
		t.Errorf("the text rules cost %.1f %% more CPU per event (median of %d rounds, %d of them at 10 %% or more: p = %.3f; noise floor %.1f %%), want under 10 %%",
			100*cost, n, above, pAbove, 100*floor)
	case pBelow < 0.05 && clear:
		t.Logf("conclusive: the text rules cost under 10 %% CPU per event (median %+.1f %%; %d of %d rounds under 10 %%: p = %.3f; noise floor %.1f %%)",
			100*cost, n-above, n, pBelow, 100*floor)
	default:
		t.Logf("inconclusive: median %+.1f %%, %d of %d rounds at 10 %% or more (p = %.3f either way at best), noise floor %.1f %%: run on a quieter machine or more rounds",
			100*cost, above, n, math.Min(pAbove, pBelow), 100*floor)
	}
}

// signP is the chance of k or more of n fair coin tosses coming up heads:
// how likely k of n rounds fall on one side of the target if the true
// cost were the target itself.
func signP(n, k int) float64 {
	p := 0.0
	for i := k; i <= n; i++ {
		c := 1.0
		for j := range i {
			c = c * float64(n-j) / float64(j+1)
		}
		p += c
	}
	return p / math.Pow(2, float64(n))
}

// costRound is one run over the backlog, per event where it says so.
type costRound struct {
	eps       float64 // events/s
	cpu       float64 // µs of this process's CPU
	redisCPU  float64 // µs of redis-server's CPU
	redisIn   float64 // bytes sent to Redis
	redisCmds float64 // commands Redis ran (those of scripts included)
	alerts    float64 // alert records
	errors    float64 // batches applied again after a Redis error, and state rebuilds (a count)
}

func (r costRound) String() string {
	return fmt.Sprintf("%6.0f events/s, CPU per event %5.1f µs here + %5.1f µs Redis, %5.1f bytes and %4.2f commands to Redis, %5.3f alerts; %.0f batches redone",
		r.eps, r.cpu, r.redisCPU, r.redisIn, r.redisCmds, r.alerts, r.errors)
}

// spread is the median and range of f over rs.
func spread(rs []costRound, f func(costRound) float64) string {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return fmt.Sprintf("%.4g [%.4g–%.4g]", median(v), slices.Min(v), slices.Max(v))
}

func pcts(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%+.1f", 100*x)
	}
	return strings.Join(s, " ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianAbs(v []float64) float64 {
	a := make([]float64, len(v))
	for i, x := range v {
		a[i] = math.Abs(x)
	}
	return median(a)
}

// procCPU is the user plus system CPU a process has used, from
// /proc/<pid>/stat ("self" for this process).
func procCPU(t *testing.T, pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields start after the command name's ')'; utime and stime are the
	// 14th and 15th, in clock ticks of 10 ms.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("process %s: bad stat %q", pid, b)
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}

// redisInfo is a section of INFO as name: value.
func redisInfo(t *testing.T, c redis.UniversalClient, section string) map[string]string {
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// redisCounters are redis-server's CPU, the bytes it received and the
// commands it ran so far.
func redisCounters(t *testing.T, c redis.UniversalClient, pid string) (cpu time.Duration, in, cmds float64) {
	st := redisInfo(t, c, "stats")
	in, _ = strconv.ParseFloat(st["total_net_input_bytes"], 64)
	cmds, _ = strconv.ParseFloat(st["total_commands_processed"], 64)
	return procCPU(t, pid), in, cmds
}

// runBacklog processes the whole chat backlog with a new group and key
// prefix, and returns events/s from the start until every event was
// applied, and per event meanwhile the CPU of this process and of Redis,
// what was sent to Redis and the alert records. The pipeline's goroutines
// carry the profiler label text=on or text=off.
func runBacklog(t *testing.T, e env, rc redis.UniversalClient, redisPID, name string, text bool, events int64) costRound {
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
	// The clock is read per batch and per alert: a time zone loaded once,
	// not from disk at every reading.
	now := time.Date(2026, 11, 11, 15, 0, 0, 0, sim.Shanghai())
	sinks := kafkasink.New(cfg.Kafka.Brokers, cfg.Kafka.Topics.Alerts)
	defer sinks.Close()
	proc := pipeline.New(pipeline.Options{
		Config: pipelineConfig(cfg), Store: state.NewRedis(client, cfg.Redis.Prefix, cfg.Redis.StateTTL),
		Handlers: hs, Alerts: sinks, DLT: sinks, Metrics: pm, Log: zap.NewNop(),
		Now: func() time.Time { return now }, Location: cfg.Location,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	runtime.GC()
	if dir := os.Getenv("REPLYWATCH_TEXT_COST_PROFILES"); dir != "" {
		// A CPU profile of the round, the broker's and the runtime's
		// work included (not compatible with go test -cpuprofile).
		f, err := os.Create(filepath.Join(dir, name+"-text-"+map[bool]string{false: "off", true: "on"}[text]+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0 := time.Now(), procCPU(t, "self")
	rcpu0, rin0, rcmds0 := redisCounters(t, rc, redisPID)
	label := map[bool]string{false: "off", true: "on"}[text]
	go pprof.Do(ctx, pprof.Labels("text", label), func(ctx context.Context) { done <- proc.Run(ctx) })
	var r costRound
	eventually(t, 10*time.Minute, "backlog processed", func() error {
		n := int64(0)
		for _, res := range []string{"applied", "duplicate"} {
			n += int64(testutil.ToFloat64(pm.Events.WithLabelValues("cs.chat", res)))
		}
		if n < events {
			return fmt.Errorf("%d of %d events", n, events)
		}
		took, cpu := time.Since(start), procCPU(t, "self")-cpu0
		rcpu, rin, rcmds := redisCounters(t, rc, redisPID)
		per := func(v float64) float64 { return v / float64(events) }
		r = costRound{
			eps: float64(events) / took.Seconds(), cpu: per(float64(cpu.Microseconds())),
			redisCPU: per(float64((rcpu - rcpu0).Microseconds())), redisIn: per(rin - rin0), redisCmds: per(rcmds - rcmds0),
			// Batches applied again after a Redis error, partitions
			// rebuilt: work the other rounds did not do. (Errors while
			// the pipeline stops, after the backlog, do not count.)
			errors: testutil.ToFloat64(pm.RedisErrors.WithLabelValues("apply")) + sumCounter(t, pm.StateRebuilds),
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil && !slices.Contains([]error{context.Canceled}, err) {
		t.Fatal(err)
	}
	// Alert records made while the backlog was processed (the courier
	// may still be delivering them).
	r.alerts = sumCounter(t, pm.Alerts) / float64(events)
	return r
}

// sumCounter is the sum of a counter vector's series.
func sumCounter(t *testing.T, c *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	sum := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}
