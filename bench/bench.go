// Package bench measures replywatch on one machine with real parts: an
// in-process Kafka-protocol broker (kfake) on a loopback port, a
// redis-server child, and traffic from the simulator. It measures the
// consumption ceilings, end-to-end throughput and its cost per event,
// alert delay under live load, backlog catch-up, memory, and scaling with
// rebalances, and reports every figure against its target. rwbench
// (bench/cmd/rwbench) is its command line; BENCHMARKS.md holds a recorded
// run.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Parts of a run, in the order they run.
const (
	PartCeiling = "ceiling"
	PartE2E     = "e2e"
	PartScaling = "scaling"
	PartDelay   = "delay"
	PartMemory  = "memory"
	PartBacklog = "backlog"
	PartStorm   = "storm"
	// PartDelivery replays the chat backlog with and without the notifier
	// and SSE clients (delivery.go).
	PartDelivery = "delivery"
)

// AllParts lists every part in run order.
var AllParts = []string{PartCeiling, PartE2E, PartJoin, PartScaling, PartDelay, PartMemory, PartBacklog, PartStorm, PartFloor, PartDelivery}

// Settings size a run.
type Settings struct {
	Only []string `json:"only"`
	// Events is the chat backlog of the ceilings, e2e and scaling.
	Events int `json:"events"`
	// DayEvents is the least size of the simulated day of the backlog part.
	DayEvents int `json:"day_events"`
	// StormEvents is the size of the bad day of the storm part.
	StormEvents int `json:"storm_events"`
	// LiveRate is the live chat rate (events/s) of the delay and rebalance runs.
	LiveRate int `json:"live_rate"`
	// DelayFor is how long each delay run produces live traffic.
	DelayFor time.Duration `json:"delay_for"`
	// ProbesPerSecond is how many waits with a deadline inside the run are
	// started each second of a delay run.
	ProbesPerSecond int `json:"probes_per_second"`
	// Graces are the clock.grace values the delay part runs with.
	Graces []time.Duration `json:"graces"`
	// Waiting is the number of waiting conversations whose Redis memory is
	// measured, Finished the number of finished ones.
	Waiting  int `json:"waiting"`
	Finished int `json:"finished"`
	// Active are the numbers of active conversations at which the
	// processor's RSS is sampled.
	Active []int `json:"active"`
	// Replicas are the replica counts of the scaling part.
	Replicas []int `json:"replicas"`
	// Settle is how long the memory part samples a replica's RSS; with
	// waiting conversations it first runs SteadyRate follow-up messages a
	// second for Warm, and keeps them running while it samples.
	Settle     time.Duration `json:"settle"`
	Warm       time.Duration `json:"warm"`
	SteadyRate int           `json:"steady_rate"`
	// RebalanceSettle is how long the rebalance run waits before and after
	// a replica joins or leaves.
	RebalanceSettle time.Duration `json:"rebalance_settle"`
	// Session is the replicas' group session and rebalance timeout (0: the
	// default 10s); MinSession the broker's least session timeout.
	Session    time.Duration `json:"session"`
	MinSession time.Duration `json:"min_session"`
	// SSEClients is how many Server-Sent Events clients the delivery part
	// holds open, for at least SSEHold.
	SSEClients int           `json:"sse_clients"`
	SSEHold    time.Duration `json:"sse_hold"`
	// ReplicaEnv is added to the environment of replica child processes
	// (KEY=VALUE), e.g. GOMEMLIMIT=64MiB to see its effect on RSS.
	ReplicaEnv []string `json:"replica_env,omitempty"`
	// Dir holds configs, logs and profiles (a temporary directory when
	// empty); ProfileDir keeps the CPU profiles ("" keeps them in Dir).
	Dir        string `json:"-"`
	ProfileDir string `json:"-"`
}

// DefaultSettings are the sizes of "make bench".
func DefaultSettings() Settings {
	return Settings{
		Only:            AllParts,
		Events:          2_000_000,
		DayEvents:       5_000_000,
		StormEvents:     1_000_000,
		LiveRate:        20_000,
		DelayFor:        30 * time.Second,
		ProbesPerSecond: 100,
		Graces:          []time.Duration{2 * time.Second, 250 * time.Millisecond},
		Waiting:         100_000,
		Finished:        100_000,
		Active:          []int{10_000, 100_000, 1_000_000},
		Replicas:        []int{1, 2, 4},
		RebalanceSettle: 12 * time.Second,
		Settle:          5 * time.Second,
		Warm:            40 * time.Second,
		SteadyRate:      5_000,
		MinSession:      time.Second,
		SSEClients:      500,
		SSEHold:         60 * time.Second,
	}
}

// SmokeSettings are tiny sizes that run every part in seconds: they check
// that the harness works and reports every figure, not how fast anything is.
func SmokeSettings() Settings {
	return Settings{
		Only:            AllParts,
		Events:          20_000,
		DayEvents:       20_000,
		StormEvents:     20_000,
		LiveRate:        2_000,
		DelayFor:        4 * time.Second,
		ProbesPerSecond: 20,
		Graces:          []time.Duration{500 * time.Millisecond, 250 * time.Millisecond},
		Waiting:         2_000,
		Finished:        2_000,
		Active:          []int{500, 2_000, 5_000},
		Replicas:        []int{1, 2},
		RebalanceSettle: time.Second,
		Settle:          200 * time.Millisecond,
		Warm:            300 * time.Millisecond,
		SteadyRate:      500,
		Session:         time.Second,
		MinSession:      100 * time.Millisecond,
		SSEClients:      20,
		SSEHold:         time.Second,
	}
}

func (s Settings) has(part string) bool { return slices.Contains(s.Only, part) }

// harness is one run: the servers, the settings and the report.
type harness struct {
	s      Settings
	out    io.Writer
	dir    string
	redis  *RedisServer
	broker *Broker
	// chatReady says the broker holds the chat backlog; stormReady, when
	// positive, that it holds the bad day of that many events in
	// stormConvs conversations instead.
	chatReady              bool
	stormReady, stormConvs int
	report                 *Report
	log                    *zap.Logger
	// Ceilings measured in this run, for the end-to-end ratios.
	bareRate, minimalRate float64
}

// Run runs the selected parts and returns the report. Progress lines go
// to progress. A part that fails is reported in Report.Errors and the run
// goes on with the next.
func Run(ctx context.Context, s Settings, progress io.Writer) (*Report, error) {
	h := &harness{s: s, out: progress, report: &Report{
		Date:       time.Now().UTC().Format(time.RFC3339),
		Machine:    describeMachine(),
		LoadBefore: Load(),
		Settings:   s,
		Revision:   revision(),
	}}
	h.dir = s.Dir
	if h.dir != "" {
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", h.dir, err)
		}
	} else {
		d, err := os.MkdirTemp("", "rwbench-")
		if err != nil {
			return nil, fmt.Errorf("creating a work directory: %w", err)
		}
		defer os.RemoveAll(d)
		h.dir = d
	}
	if s.ProfileDir == "" {
		h.s.ProfileDir = h.dir
	}
	if err := os.MkdirAll(h.s.ProfileDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", h.s.ProfileDir, err)
	}
	logFile, err := os.Create(filepath.Join(h.dir, "inprocess.log"))
	if err != nil {
		return nil, fmt.Errorf("creating the replica log: %w", err)
	}
	defer logFile.Close()
	h.log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(logFile), zapcore.WarnLevel))
	versions(&h.report.Machine)

	h.redis, err = StartRedis(h.dir)
	if err != nil {
		return nil, err
	}
	defer h.redis.Stop()
	if v, err := infoField(ctx, h.redis.Client, "server", "redis_version"); err == nil {
		h.report.Machine.Redis = v
	}
	defer func() {
		if h.broker != nil {
			h.broker.Close()
		}
	}()

	parts := []struct {
		name string
		fn   func(context.Context) error
	}{
		{PartCeiling, h.ceiling},
		{PartE2E, h.e2e},
		{PartJoin, h.join},
		{PartScaling, h.scaling},
		{PartDelay, h.delay},
		{PartMemory, h.memory},
		{PartBacklog, h.backlog},
		{PartStorm, h.storm},
		{PartFloor, h.floor},
		{PartDelivery, h.delivery},
	}
	for _, p := range parts {
		if !s.has(p.name) || ctx.Err() != nil {
			continue
		}
		start := time.Now()
		h.logf("== %s", p.name)
		if err := p.fn(ctx); err != nil {
			h.report.Errors = append(h.report.Errors, p.name+": "+err.Error())
			h.logf("%s failed: %v", p.name, err)
		}
		h.logf("== %s done in %s", p.name, time.Since(start).Round(100*time.Millisecond))
	}
	h.report.LoadAfter = Load()
	return h.report, ctx.Err()
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// freshBroker replaces the broker with an empty one and empties Redis.
func (h *harness) freshBroker(ctx context.Context) error {
	if h.broker != nil {
		h.broker.Close()
		h.broker = nil
	}
	h.chatReady, h.stormReady = false, 0
	b, err := StartBroker(h.s.MinSession)
	if err != nil {
		return err
	}
	h.broker = b
	return h.redis.Reset(ctx)
}

// chatBacklog makes sure the broker holds the chat backlog of Settings.Events.
func (h *harness) chatBacklog(ctx context.Context) error {
	if h.chatReady {
		return nil
	}
	if err := h.freshBroker(ctx); err != nil {
		return err
	}
	h.logf("producing %d simulated chat events to %s", h.s.Events, TopicChat)
	n, took, err := ProduceChat(ctx, h.broker.Addr, DefaultMix, h.s.Events)
	if err != nil {
		return err
	}
	h.logf("produced %d chat events in %s (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	h.report.add("load", "chat backlog produced", float64(n), "events",
		fmt.Sprintf("%d shops × ~%d agents, sim rate scaled to fill one day", DefaultMix.Shops, DefaultMix.Agents))
	h.chatReady = true
	return nil
}

// versions fills the dependency versions from the build information.
func versions(m *Machine) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v = d.Replace.Version
		}
		switch d.Path {
		case "github.com/segmentio/kafka-go":
			m.KafkaGo = v
		case "github.com/twmb/franz-go/pkg/kfake":
			m.Kfake = v
		case "github.com/redis/go-redis/v9":
			m.GoRedis = v
		}
	}
}

// revision is the git commit of the working directory, "+dirty" when it
// has uncommitted changes, or "unknown" outside a git checkout.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "+dirty"
	}
	return rev
}

// profilePath names a profile file of the run.
func (h *harness) profilePath(name string) string {
	return filepath.Join(h.s.ProfileDir, name+".cpu.pprof")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
