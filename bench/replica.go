package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/internal/heapsignal"
	"github.com/replywatch/replywatch/internal/redisproc"
)

// Environment variables that turn this binary (rwbench, or the test binary
// of this package) into a replica child: the config file to run, and where
// to write a CPU profile of the run.
const (
	envReplicaConfig  = "RWBENCH_REPLICA_CONFIG"
	envReplicaProfile = "RWBENCH_REPLICA_CPUPROFILE"
	// envReplicaHeap, when set, makes the replica answer SIGUSR1 with a
	// garbage collection, a heap profile written to <value>.<n>.pprof, and
	// returning free memory to the OS; <value>.<n>.done marks it written.
	envReplicaHeap = "RWBENCH_REPLICA_HEAPPROFILE"
)

// MaybeReplica runs a replywatch replica and exits when the environment
// asks this process to be one; otherwise it returns at once. Call it first
// in main and TestMain. The replica is what "replywatch run --config FILE"
// runs (config.Load, app.New, Run until SIGTERM), so a child's memory and
// CPU are the processor's alone. The same binary also serves as a process
// of SSE subscribers (StartSubscribers), so that theirs are not either.
func MaybeReplica() {
	maybeSubscribers()
	path := os.Getenv(envReplicaConfig)
	if path == "" {
		return
	}
	if heap := os.Getenv(envReplicaHeap); heap != "" {
		go heapsignal.Serve(heap, true)
	}
	os.Exit(runReplica(path, os.Getenv(envReplicaProfile)))
}

func runReplica(path, profile string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "replica: %v\n", err)
		return 2
	}
	log, err := app.NewLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(os.Stderr, "replica: %v\n", err)
		return 2
	}
	a, err := app.New(cfg, app.Options{Log: log})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Error("cannot profile", zap.Error(err))
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := a.Run(ctx); err != nil {
		log.Error("replica stopped with an error", zap.Error(err))
		return 1
	}
	return 0
}

// Replica is one running replywatch replica: in this process (app.New) or
// a child process.
type Replica struct {
	Name string

	app    *app.App
	cancel context.CancelFunc
	// done is closed when the replica has stopped; err is why.
	done chan struct{}
	err  error

	cmd   *exec.Cmd
	addr  string
	heap  string
	heaps int
}

// HeapProfile asks a child started with a heap profile base to collect
// garbage, write a heap profile and return free memory to the OS, and
// waits until it has. It returns the profile's path.
func (r *Replica) HeapProfile(ctx context.Context) (string, error) {
	if r.cmd == nil || r.heap == "" {
		return "", errors.New("replica " + r.Name + " takes no heap profiles")
	}
	r.heaps++
	path := r.heap + "." + strconv.Itoa(r.heaps)
	if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return "", fmt.Errorf("asking %s for a heap profile: %w", r.Name, err)
	}
	for {
		if _, err := os.Stat(path + ".done"); err == nil {
			_ = os.Remove(path + ".done")
			return path + ".pprof", nil
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return "", ctx.Err()
		}
	}
}

// replicaOpts are the benchmark's choices on top of the default config.
type replicaOpts struct {
	group string
	// grace is clock.grace (default 2s when 0).
	grace time.Duration
	// allDay serves every hour, so events stamped with the wall clock
	// start waits whenever the benchmark runs.
	allDay bool
	// thresholds replace reply_sla.thresholds when set.
	thresholds []time.Duration
	// session is the group session and rebalance timeout (default 10s).
	session time.Duration
}

// replicaConfig is the production default config pointed at the benchmark's
// broker and Redis.
func replicaConfig(broker, redisURL string, o replicaOpts) (*config.Config, error) {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.GroupID = o.group
	cfg.Kafka.BatchSize = 500
	if o.session > 0 {
		cfg.Kafka.SessionTimeout = o.session
		cfg.Kafka.RebalanceTimeout = o.session
	}
	cfg.Redis.URL = redisURL
	cfg.HTTP.Addr = "127.0.0.1:0"
	if o.grace > 0 {
		cfg.Clock.Grace = o.grace
	}
	if o.allDay {
		cfg.ServiceHours = []config.TimeRange{{Start: "00:00", End: "24:00"}}
	}
	if len(o.thresholds) > 0 {
		cfg.ReplySLA.Thresholds = o.thresholds
	}
	// The backlogs replay a simulated day that may lie further back than
	// clock.max_event_age: accept it as a day replayed from storage.
	if age := time.Since(simDay) + 48*time.Hour; age > cfg.Clock.MaxEventAge {
		cfg.Clock.MaxEventAge = age
	}
	cfg.Log.Level = "warn"
	cfg.Log.Format = config.LogJSON
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("benchmark config: %w", err)
	}
	return cfg, nil
}

// StartInProcess runs a replica in this process. Its goroutines carry the
// profiler label role=processor.
func StartInProcess(name string, cfg *config.Config, log *zap.Logger) (*Replica, error) {
	a, err := app.New(cfg, app.Options{Log: log, Holder: name})
	if err != nil {
		return nil, fmt.Errorf("building replica %s: %w", name, err)
	}
	if err := a.Listen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replica{Name: name, app: a, cancel: cancel, done: make(chan struct{})}
	pprof.Do(ctx, pprof.Labels("role", "processor"), func(ctx context.Context) {
		go func() { r.err = a.Run(ctx); close(r.done) }()
	})
	return r, nil
}

// StartChild runs a replica as a child process of this binary, with cfg
// written to dir. When profile is set the child writes a CPU profile there.
func StartChild(name string, cfg *config.Config, dir, profile string, env ...string) (*Replica, error) {
	return startChild(name, cfg, dir, profile, "", env...)
}

func startChild(name string, cfg *config.Config, dir, profile, heap string, env ...string) (*Replica, error) {
	port, err := redisproc.FreePort()
	if err != nil {
		return nil, err
	}
	c := *cfg
	c.HTTP.Addr = "127.0.0.1:" + strconv.Itoa(port)
	y, err := c.YAML()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(path, y, 0o600); err != nil {
		return nil, fmt.Errorf("writing the replica config: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to run replicas: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("creating the replica log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envReplicaConfig+"="+path, envReplicaProfile+"="+profile, envReplicaHeap+"="+heap)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting replica %s: %w", name, err)
	}
	r := &Replica{Name: name, cmd: cmd, addr: c.HTTP.Addr, done: make(chan struct{}), heap: heap}
	go func() {
		if err := cmd.Wait(); err != nil {
			r.err = fmt.Errorf("replica %s exited: %w", name, err)
		}
		close(r.done)
	}()
	return r, nil
}

// PID is the child's process id ("self" in process).
func (r *Replica) PID() string {
	if r.cmd == nil {
		return "self"
	}
	return strconv.Itoa(r.cmd.Process.Pid)
}

// App is the in-process replica's app (nil for a child).
func (r *Replica) App() *app.App { return r.app }

// Metrics returns the replica's metric families by name.
func (r *Replica) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	if r.app != nil {
		fams, err := r.app.Registry.Gather()
		if err != nil {
			return nil, fmt.Errorf("gathering metrics of %s: %w", r.Name, err)
		}
		out := make(map[string]*dto.MetricFamily, len(fams))
		for _, f := range fams {
			out[f.GetName()] = f
		}
		return out, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", r.Name, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics of %s: %w", r.Name, err)
	}
	return fams, nil
}

// Stop stops the replica cleanly (cancel, or SIGTERM for a child) and waits
// at most timeout for it; a child still running then is killed. Stopping a
// stopped replica returns how it ended.
func (r *Replica) Stop(timeout time.Duration) error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	if r.app != nil {
		r.cancel()
	} else {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
	}
	if r.cmd == nil {
		return fmt.Errorf("replica %s did not stop within %s", r.Name, timeout)
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	return fmt.Errorf("replica %s did not stop within %s; killed", r.Name, timeout)
}

// sumCounter adds up the samples of a counter or gauge family whose labels
// match every pair of match.
func sumCounter(fams map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.Metric {
		for k, v := range match {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k {
					found = l.GetValue() == v
					break
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// histogramSum is the sum and count of a histogram family.
func histogramSum(fams map[string]*dto.MetricFamily, name string) (sum float64, count uint64) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	for _, m := range f.Metric {
		if h := m.Histogram; h != nil {
			sum += h.GetSampleSum()
			count += h.GetSampleCount()
		}
	}
	return sum, count
}

// stop stops a replica and notes in the report how it ended when that was
// not cleanly: the measurement stands, but a replica that did not stop
// well (or, built with -race, reported a data race) is worth knowing of.
func (h *harness) stop(r *Replica) {
	if err := r.Stop(30 * time.Second); err != nil {
		note := "replica " + r.Name + " did not stop cleanly: " + err.Error()
		if strings.Contains(err.Error(), "exit status 66") {
			note += " (the race detector's exit code; first report: " + raceReport(filepath.Join(h.dir, r.Name+".log")) + ")"
		}
		h.report.Notes = append(h.report.Notes, note)
		h.logf("%s", note)
	}
}

// raceReport summarises the first data race report in a replica's log: the
// functions and lines of its two accesses.
func raceReport(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "no log: " + err.Error()
	}
	_, rest, ok := strings.Cut(string(b), "WARNING: DATA RACE")
	if !ok {
		return "none in " + logPath
	}
	var frames []string
	lines := strings.Split(rest, "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "==================") || len(frames) == 8 {
			break
		}
		if strings.HasPrefix(l, "Write at") || strings.HasPrefix(l, "Read at") || strings.HasPrefix(l, "Previous") {
			frames = append(frames, strings.TrimSuffix(strings.Fields(l)[0]+" "+strings.Fields(l)[1], ":"))
			continue
		}
		if strings.HasPrefix(l, "/") && i > 0 && !strings.Contains(l, "/runtime/") && !strings.Contains(lines[i-1], "runtime.race") {
			fn := strings.TrimSpace(lines[i-1])
			file := l
			if j := strings.LastIndex(file, "/"); j >= 0 {
				file = file[j+1:]
			}
			if k := strings.Index(file, " "); k >= 0 {
				file = file[:k]
			}
			frames = append(frames, fn+" "+file)
		}
	}
	return strings.Join(frames, "; ")
}
