// Package demo runs all of replywatch on one machine with nothing installed:
// an in-process Kafka-protocol broker, Redis (a redis-server child, or an
// embedded miniredis), the processor assembled exactly as "replywatch run"
// assembles it, and the simulator feeding it a shop day so far and then live
// traffic, with buyers whose warnings and breaches fall due within seconds.
// It shows the alerts and the figures the processor exports. It does not
// decide anything itself: every figure shown is read from the processor's
// own metrics registry.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

// Options say what the demo runs. The zero value of a port or address
// takes any free one; DefaultOptions gives what the command uses.
type Options struct {
	Shops  int
	Agents int
	// Rate multiplies the simulator's daily curve.
	Rate float64
	Seed uint64
	// Timezone is the shops' zone; outside its service hours the demo runs
	// the shops in a zone where they are open, and says so.
	Timezone string
	// Language of alert summaries, zh or en.
	Language string
	// Listen is the HTTP address; when its port is taken the next free one
	// is used.
	Listen string
	// KafkaPort is the embedded broker's port; when taken, the next free one.
	KafkaPort int
	// Brokers and RedisURL point the demo at external servers instead of
	// the embedded ones.
	Brokers  []string
	RedisURL string
	// EmbeddedRedis runs miniredis even when redis-server is on PATH.
	EmbeddedRedis bool
	// Duration stops the demo by itself; 0 runs until ctx ends.
	Duration time.Duration
	// Terminal redraws one screen in place; otherwise plain lines are
	// written. Size reports the terminal's columns and rows.
	Terminal bool
	Size     func() (width, height int)
	// Stderr receives the processor's warnings in plain mode.
	Stderr io.Writer
	// OnReady, when set, learns where everything runs once it does.
	OnReady func(Info)
}

// DefaultOptions are the demo command's defaults.
func DefaultOptions() Options {
	return Options{Shops: sim.DefaultShops, Agents: 6, Rate: 5, Seed: 1,
		Timezone: "Asia/Shanghai", Language: "zh", Listen: "127.0.0.1:8080", KafkaPort: 9092}
}

// Info says where a running demo's parts are.
type Info struct {
	Brokers  []string
	RedisURL string
	// RedisDesc says which Redis runs; RedisPID is its child's pid, 0 when
	// there is none.
	RedisDesc string
	RedisPID  int
	HTTPAddr  string
	// TempDir holds the redis-server's files; it is removed on exit.
	TempDir string
	Zone    Zone
	Shops   []sim.Shop
	Started time.Time
	// WallURL and AgentURL open the pages with the demo's tokens.
	WallURL, AgentURL string
}

// urgentPerShop is how many buyers per shop are left waiting so that their
// warnings and breaches fall due 3–15 s after the history is written.
const urgentPerShop = 6

// stopTimeout bounds the processor's graceful stop (it cuts itself off at 8 s).
const stopTimeout = 12 * time.Second

// Run runs the demo until ctx ends or Duration passes, writing what happens
// to stdout, then stops every part it started: simulator, processor (which
// commits and leaves its group), broker, the redis-server child (killed and
// reaped), and removes its temporary directory.
func Run(ctx context.Context, o Options, stdout io.Writer) error {
	started := time.Now()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Size == nil {
		o.Size = func() (int, int) { return 120, 40 }
	}
	simOpts := sim.Options{Seed: o.Seed, Shops: o.Shops, Agents: o.Agents, Rate: o.Rate}
	shops, err := sim.Shops(simOpts)
	if err != nil {
		return fmt.Errorf("setting up the simulated shops: %w", err)
	}

	dir, err := os.MkdirTemp("", "replywatch-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo's temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// The configuration before the servers: a bad flag fails before anything starts.
	cfg := config.Default()
	cfg.Timezone = o.Timezone
	cfg.Alerts.Language = o.Language
	cfg.Metrics.PerAgent = true
	cfg.Metrics.ReportInterval = time.Second
	for _, s := range shops {
		cfg.Shops[s.ID] = config.ShopOverride{Platform: s.Platform}
	}
	pages, err := demoTokens(cfg, shops)
	if err != nil {
		return err
	}
	// On servers it does not own, the demo works under names of its own
	// (topics, group, keys), never a real deployment's, and removes them
	// when it stops.
	runID := ""
	if len(o.Brokers) > 0 || o.RedisURL != "" {
		runID = newRunID()
		cfg.Kafka.GroupID = runID
		cfg.Notify.GroupID = runID + "-notify"
		cfg.Redis.Prefix = runID
	}
	if len(o.Brokers) > 0 {
		cfg.Kafka.Topics = runTopics(runID)
	}
	cfg.Kafka.BuyersPartitions = inputPartitions
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuring the demo: %w", err)
	}
	zone, err := chooseZone(cfg, started)
	if err != nil {
		return err
	}
	cfg.Timezone = zone.Name
	simOpts.Location = zone.Loc
	if simOpts.Start, err = opening(cfg, started, zone.Loc); err != nil {
		return err
	}

	rd := &Redis{URL: o.RedisURL, Desc: "external Redis"}
	if o.RedisURL == "" {
		if rd, err = StartRedis(dir, o.EmbeddedRedis); err != nil {
			return err
		}
		defer rd.Close()
	} else {
		// Runs last, once the processor has stopped writing.
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			n, err := removeKeys(cctx, o.RedisURL, cfg.Redis.Prefix)
			if err != nil {
				fmt.Fprintf(stdout, "could not remove the demo's Redis keys %s:*: %v\n", cfg.Redis.Prefix, err)
				return
			}
			fmt.Fprintf(stdout, "removed the demo's %d Redis keys %s:*\n", n, cfg.Redis.Prefix)
		}()
	}
	brokers, kafkaDesc := o.Brokers, "external Kafka"
	if len(brokers) == 0 {
		b, err := StartBroker(o.KafkaPort, DefaultTopics)
		if err != nil {
			return err
		}
		defer b.Close()
		brokers, kafkaDesc = []string{b.Addr}, "embedded broker (kfake, in this process)"
	} else {
		if err := createTopics(ctx, brokers, cfg.Kafka.Topics); err != nil {
			return err
		}
		// Runs once the processor has left its group.
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := removeKafka(cctx, brokers, cfg.Kafka.Topics, cfg.Kafka.GroupID, cfg.Kafka.GroupID+"-repartition", cfg.Notify.GroupID); err != nil {
				fmt.Fprintf(stdout, "could not remove everything the demo created in Kafka: %v\n", err)
				return
			}
			fmt.Fprintf(stdout, "removed the demo's topics %s.* and consumer groups %s, %s-repartition, %s\n", runID, cfg.Kafka.GroupID, cfg.Kafka.GroupID, cfg.Notify.GroupID)
		}()
	}
	ln, moved, err := listen(o.Listen)
	if err != nil {
		return err
	}
	cfg.Kafka.Brokers = brokers
	cfg.Redis.URL = rd.URL
	cfg.HTTP.Addr = ln.Addr().String()

	v := &view{out: stdout, terminal: o.Terminal, size: o.Size, loc: zone.Loc, zone: zone.Label, started: started,
		alertsTopic: cfg.Kafka.Topics.Alerts}
	if zone.Shifted {
		v.zoneNote = zone.Note
	}
	for _, t := range cfg.ReplySLA.Thresholds {
		v.thresholds = append(v.thresholds, alerting.FormatThreshold(t))
	}
	metricsURL := "http://" + ln.Addr().String() + "/metrics"
	pages.base = "http://" + ln.Addr().String()
	v.footer = fmt.Sprintf("kafka %s   redis %s   metrics %s   wall %s", strings.Join(brokers, ","), config.MaskURL(rd.URL), metricsURL, pages.wall())
	if runID != "" {
		v.footer += fmt.Sprintf("   (own topics, group and keys %s*, deleted on exit)", runID)
	}

	a, err := app.New(cfg, app.Options{Log: logger(v, o), Listener: ln, OnAlert: v.alert, NotifyOut: notifyLines{v}})
	if err != nil {
		ln.Close()
		return fmt.Errorf("assembling the processor: %w", err)
	}
	intro(stdout, introData{kafka: kafkaDesc, brokers: brokers, external: len(o.Brokers) > 0, redis: rd,
		listen: o.Listen, moved: moved, addr: ln.Addr().String(), zone: zone, shops: shops, opts: o, cfg: cfg, pages: pages})
	if o.OnReady != nil {
		o.OnReady(Info{Brokers: brokers, RedisURL: rd.URL, RedisDesc: rd.Desc, RedisPID: rd.PID,
			HTTPAddr: ln.Addr().String(), TempDir: dir, Zone: zone, Shops: shops, Started: started,
			WallURL: pages.wall(), AgentURL: pages.agentPage()})
	}

	appDone := make(chan error, 1)
	appCtx, stopApp := context.WithCancel(context.Background())
	defer stopApp()
	go func() { appDone <- a.Run(appCtx) }()

	w := sim.NewWriter(brokers...)
	simDone := make(chan error, 1)
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	f := &feeder{opts: simOpts, v: v, urgent: urgentPerShop, topics: map[event.Stream]string{
		event.Chat: cfg.Kafka.Topics.Chat, event.Orders: cfg.Kafka.Topics.Orders, event.Presence: cfg.Kafka.Topics.Presence}}
	go func() { simDone <- f.run(simCtx, w) }()

	if o.Terminal {
		v.printf("%s", altScreenOn)
	}
	runErr := v.loop(ctx, a, &appDone, &simDone)
	if o.Terminal {
		v.printf("%s", altScreenOff)
	}

	// Stop in dependency order: nothing new in, then the processor finishes
	// and leaves its group while Kafka and Redis are still up.
	v.printf("stopping: simulator, processor, broker, redis…\n")
	stopSim()
	if simDone != nil {
		if err := <-simDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	_ = w.Close()
	// The last figures, before the stopping reporter withdraws them.
	if snap, err := ReadFigures(a.Registry); err == nil && len(snap.Shops) > 0 {
		v.update(snap, time.Now())
	}
	stopApp()
	if appDone != nil {
		select {
		case err := <-appDone:
			if err != nil && runErr == nil {
				runErr = fmt.Errorf("running the processor: %w", err)
			}
		case <-time.After(stopTimeout):
			if runErr == nil {
				runErr = fmt.Errorf("the processor did not stop within %s", stopTimeout)
			}
		}
	}
	v.summary(time.Now())
	return runErr
}

// loop refreshes the view until ctx ends or a part fails. A part that ended
// has its channel set to nil so Run does not wait for it again.
func (v *view) loop(ctx context.Context, a *app.App, appDone, simDone *chan error) error {
	// The terminal is redrawn every second; plain figures lines come every 10 s.
	const every = 10 * time.Second
	fast := time.NewTicker(time.Second)
	defer fast.Stop()
	lastPlain := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-*appDone:
			*appDone = nil
			if err == nil {
				err = errors.New("stopped by itself")
			}
			return fmt.Errorf("running the processor: %w", err)
		case err := <-*simDone:
			*simDone = nil
			if err != nil {
				return err
			}
		case now := <-fast.C:
			snap, err := ReadFigures(a.Registry)
			if err != nil {
				return err
			}
			v.update(snap, now)
			if v.terminal {
				v.draw(now)
				continue
			}
			if now.Sub(lastPlain) >= every-100*time.Millisecond {
				lastPlain = now
				v.printFigures(now)
			}
		}
	}
}

// summary is written on exit, in the normal screen.
func (v *view) summary(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	events, alerts := 0.0, 0.0
	if v.snap != nil {
		events, alerts = v.snap.Events, v.snap.Alerts
	}
	fmt.Fprintf(v.out, "stopped after %s: %s events processed, %s alerts written to %s (%s as they happened, %s from the day's history)\n",
		now.Sub(v.started).Truncate(time.Second), count(events), count(alerts), v.alertsTopic, count(float64(v.live)), count(float64(v.past)))
	for _, l := range v.table() {
		fmt.Fprintln(v.out, "  "+l)
	}
}

// logger sends the processor's warnings to the terminal view, or to stderr
// in plain mode; its routine info lines are left out of the demo's output.
func logger(v *view, o Options) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	var sink zapcore.WriteSyncer = zapcore.AddSync(o.Stderr)
	if o.Terminal {
		sink = v
	}
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), sink, zapcore.WarnLevel))
}

// listen opens addr, or the next free port after it when its port is
// taken; moved says it had to.
func listen(addr string) (net.Listener, bool, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false, fmt.Errorf("reading --listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, false, fmt.Errorf("reading --listen %q: the port is not a number", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	tries := portTries
	if port == 0 {
		tries = 1
	}
	var first error
	for i := 0; i < tries; i++ {
		p := port
		if port != 0 {
			p += i
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return l, i > 0, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, false, fmt.Errorf("listening for HTTP on %s or the %d ports after it: %w", addr, tries-1, first)
}

type introData struct {
	kafka    string
	brokers  []string
	external bool
	redis    *Redis
	listen   string
	moved    bool
	addr     string
	zone     Zone
	shops    []sim.Shop
	opts     Options
	cfg      *config.Config
	pages    *pageTokens
}

// intro tells the user what runs where and how to connect to it.
func intro(w io.Writer, d introData) {
	b := d.brokers[0]
	t := d.cfg.Kafka.Topics
	fmt.Fprintf(w, "replywatch demo: Kafka, Redis, the processor and a simulator of %s, on this machine\n\n", plural(len(d.shops), "shop"))
	fmt.Fprintf(w, "  kafka    %s at %s\n", d.kafka, strings.Join(d.brokers, ","))
	fmt.Fprintf(w, "           topics %s, %s, %s (%d partitions each), %s, and their .DLT dead-letter topics\n",
		t.Chat, t.Orders, t.Presence, inputPartitions, t.Alerts)
	if d.external {
		fmt.Fprintf(w, "           the demo's own topics and consumer group %s, not a deployment's: it deletes them when it stops\n",
			d.cfg.Kafka.GroupID)
	}
	fmt.Fprintf(w, "           kcat -b %s -L\n", b)
	fmt.Fprintf(w, "           kcat -b %s -C -t %s -o beginning\n", b, t.Alerts)
	fmt.Fprintf(w, "  redis    %s: %s\n", config.MaskURL(d.redis.URL), d.redis.Desc)
	fmt.Fprintf(w, "           redis-cli -u %s --scan --pattern '%s:*' | head\n", config.MaskURL(d.redis.URL), d.cfg.Redis.Prefix)
	if d.redis.PID == 0 && d.redis.close == nil {
		fmt.Fprintf(w, "           the demo's own keys %s:*, not a deployment's: it deletes them when it stops\n", d.cfg.Redis.Prefix)
	}
	fmt.Fprintf(w, "  metrics  http://%s/metrics   (also /healthz, /readyz)\n", d.addr)
	if d.moved {
		fmt.Fprintf(w, "           %s was taken, so HTTP is on the next free port\n", d.listen)
	}
	fmt.Fprintf(w, "  notify   no receivers configured: each message a DingTalk, WeCom or Feishu robot would get\n")
	fmt.Fprintf(w, "           is shown as \"→ log: ...\" (add receivers under notify: in a config file)\n")
	fmt.Fprintf(w, "  pages    %s   (the wall: every shop)\n", d.pages.wall())
	fmt.Fprintf(w, "           %s   (agent %s's page)\n", d.pages.agentPage(), d.pages.agent)
	fmt.Fprintf(w, "           API: curl -H 'Authorization: Bearer %s' %s/api/v1/shops\n", d.pages.supervisor, d.pages.base)
	fmt.Fprintf(w, "  time     %s\n", d.zone.Note)
	var shops []string
	for _, s := range d.shops {
		shops = append(shops, fmt.Sprintf("%s (%s, %s)", s.ID, s.Platform, plural(len(s.Agents), "agent")))
	}
	fmt.Fprintf(w, "  shops    %s\n", strings.Join(shops, ", "))
	fmt.Fprintf(w, "           simulated at %g× a normal day's traffic, seed %d; alert summaries in %s\n",
		d.opts.Rate, d.opts.Seed, d.cfg.Alerts.Language)
	fmt.Fprintf(w, "\nPrometheus scrape job (prometheus.yml):\n\n")
	fmt.Fprintf(w, "  scrape_configs:\n")
	fmt.Fprintf(w, "    - job_name: replywatch-demo\n")
	fmt.Fprintf(w, "      scrape_interval: 5s\n")
	fmt.Fprintf(w, "      static_configs:\n")
	fmt.Fprintf(w, "        - targets: [\"%s\"]\n\n", d.addr)
	if d.opts.Duration > 0 {
		fmt.Fprintf(w, "Runs for %s; Ctrl-C stops it earlier.\n\n", d.opts.Duration)
	} else {
		fmt.Fprintf(w, "Ctrl-C stops everything.\n\n")
	}
}

// plural writes a count with its noun: "1 shop", "3 shops".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
