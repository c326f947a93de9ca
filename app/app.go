// Package app assembles a running replywatch from a configuration: the
// Redis store, the Kafka pipeline with its handlers, the business gauge
// reporter, the notifier and the HTTP endpoints, run together as one run
// group. The run,
// demo and integration tests all start replywatch through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/alerting/notify"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/httpapi"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/shoprules"
	"github.com/replywatch/replywatch/state"
)

// Build identifies the binary in replywatch_build_info.
var (
	Version  = "dev"
	Revision = "unknown"
)

// Options tune an App beyond its configuration.
type Options struct {
	Log *zap.Logger
	// Listener, when set, serves HTTP instead of listening on cfg.HTTP.Addr.
	Listener net.Listener
	// OnAlert sees every alert once the alerts topic accepted it.
	OnAlert func(alerting.Alert)
	// Now is the wall clock (time.Now when nil).
	Now func() time.Time
	// Holder names this replica for the reporter lease (host:pid when empty).
	Holder string
	// NotifyOnly runs the notifier alone ("replywatch notify"): no
	// processor, no reporter.
	NotifyOnly bool
	// NotifyOut receives what the built-in log receiver writes (the
	// demo's terminal); nil writes only to the log.
	NotifyOut io.Writer
	// TrendEvery is how often the day's trend of each shop is sampled for
	// the wall (a minute when 0).
	TrendEvery time.Duration
}

// App is one replywatch replica.
type App struct {
	Config    *config.Config
	Registry  *prometheus.Registry
	Metrics   *metrics.Process
	Processor *pipeline.Processor
	// Repartition writes the chat and order facts of the buyer join to
	// the buyers topic.
	Repartition *pipeline.Repartitioner
	Reporter    *metrics.Reporter
	Store       *state.Redis
	Redis       redis.UniversalClient
	// Notifier delivers alerts to people; nil when notify.enabled is false.
	Notifier *notify.Notifier
	// API serves /api/v1 and the pages; Stream follows the alerts topic
	// for its Server-Sent Events.
	API        *httpapi.API
	Stream     *httpapi.Hub
	holder     string
	trendEvery time.Duration
	// stopStreams ends the requests in flight, long-lived streams included.
	stopStreams context.CancelFunc
	log         *zap.Logger
	sinks       *kafkasink.Sinks
	http        *http.Server
	listener    net.Listener
	checks      []httpapi.Check
}

// New builds a replica from cfg. Nothing runs until Run.
func New(cfg *config.Config, o Options) (*App, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		o.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pm := metrics.NewProcess(reg)
	pm.BuildInfo.WithLabelValues(Version, Revision).Set(1)
	pm.Init()
	plm := pipeline.NewMetrics(reg, pm)
	plm.Init([]string{cfg.Kafka.Topics.Chat, cfg.Kafka.Topics.Orders, cfg.Kafka.Topics.Presence, cfg.Kafka.Topics.Buyers}, event.Reasons)

	client, err := dialRedis(cfg, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("connecting to Redis: %w", err)
	}
	dialer, transport, err := kafkaSecurity(cfg, os.Getenv)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("connecting to Kafka: %w", err)
	}
	store := state.NewRedis(client, cfg.Redis.Prefix, cfg.Redis.StateTTL)
	reg.MustRegister(metrics.NewRedisMemory(func(ctx context.Context) (string, error) {
		return client.Info(ctx, "memory").Result()
	}))
	store.OnError = func(op string) { pm.RedisErrors.WithLabelValues(op).Inc() }

	var notifier *notify.Notifier
	if cfg.Notify.Enabled || o.NotifyOnly {
		notifier, err = notify.FromConfig(cfg, notify.Deps{Redis: client, Registry: reg, Deliveries: pm.AlertDeliveries, Log: o.Log, Kafka: dialer, Getenv: os.Getenv, Out: o.NotifyOut})
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("building the notifier: %w", err)
		}
	}
	if o.NotifyOnly {
		a := &App{Config: cfg, Registry: reg, Metrics: pm, Store: store, Redis: client, Notifier: notifier, log: o.Log, listener: o.Listener}
		a.checks = []httpapi.Check{
			{Name: "redis", Fn: store.Ping},
			{Name: "group", Fn: func(context.Context) error {
				if !notifier.Joined() {
					return errors.New("not a member of the notify consumer group")
				}
				return nil
			}},
			{Name: "notify", Fn: notifier.Check, Advisory: true},
		}
		// Alertmanager's notifications are delivered by the notifier alone
		// too: POST /api/v1/alertmanager is all the API it serves.
		intake := &httpapi.API{Auth: httpapi.NewAuth(cfg.API.Tokens), Intake: notifier, IntakeOnly: true, Log: o.Log.With(zap.String("component", "api"))}
		a.http = &http.Server{
			Addr:              cfg.HTTP.Addr,
			Handler:           httpapi.NewHandler(reg, a.checks, func(ok bool) { pm.Ready.Set(b2f(ok)) }, intake),
			ReadHeaderTimeout: 5 * time.Second,
		}
		return a, nil
	}

	hs, err := handlers(cfg)
	if err != nil {
		return nil, err
	}
	repart, err := repartitioner(cfg, o.Log.With(zap.String("component", "repartition")))
	if err != nil {
		return nil, err
	}
	repart.Now = o.Now
	if transport != nil {
		repart.UseSecurity(dialer, transport)
	}
	sinks := kafkasink.New(cfg.Kafka.Brokers, cfg.Kafka.Topics.Alerts)
	pc := pipelineConfig(cfg)
	// The buyers partitions' clocks wait for the repartition stage.
	pc.JoinStage = &pipeline.JoinStage{GroupID: repart.GroupID(), Latest: cfg.Kafka.StartOffset == "latest",
		Inputs: map[string]event.Stream{cfg.Kafka.Topics.Chat: event.Chat, cfg.Kafka.Topics.Orders: event.Orders}}
	if transport != nil {
		sinks.UseTransport(transport)
		pc.Dialer, pc.Transport = dialer, transport
	}
	proc := pipeline.New(pipeline.Options{
		Config:   pc,
		Store:    store,
		Handlers: hs,
		Alerts:   sinks,
		DLT:      sinks,
		Metrics:  plm,
		Log:      o.Log,
		Now:      o.Now,
		Location: cfg.Location,
		OnAlert:  o.OnAlert,
	})
	shops := make([]string, 0, len(cfg.Shops))
	for s := range cfg.Shops {
		shops = append(shops, s)
	}
	rep := &metrics.Reporter{
		Source:    store,
		Holder:    o.Holder,
		LeaseTTL:  cfg.Metrics.ReporterLease,
		Interval:  cfg.Metrics.ReportInterval,
		Shops:     shops,
		Info:      shopInfo(cfg),
		PerAgent:  cfg.Metrics.PerAgent,
		MaxAgents: cfg.Metrics.MaxAgents,
		Now:       o.Now,
		Log:       o.Log.With(zap.String("component", "reporter")),
		Process:   pm,
	}
	rules := &shoprules.Evaluator{
		Store: store, Sink: sinks, Rules: cfg.Rules(), Language: cfg.Alerts.Language, Lag: cfg.Clock.Grace,
		AlertBelow: func(shop string) float64 { return cfg.EffectiveReplyOf(shop).AlertBelow }, PerfunctoryAfter: cfg.PerfunctoryAlertAfterOf,
		Log: o.Log.With(zap.String("component", "shoprules")), Alerts: pm.Alerts, OnAlert: o.OnAlert,
		Ready: proc.CaughtUp,
	}
	rep.Rules = rules
	rep.Register(reg)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "replywatch_shop_rules_clock_seconds",
		Help: "The time (Unix seconds) the shop-level rules were last evaluated at on this replica: the reporter's clock minus the clock grace.",
	}, rules.Clock))

	hub := httpapi.NewHub(cfg.Kafka.Brokers, cfg.Kafka.Topics.Alerts, reg, o.Log.With(zap.String("component", "stream")))
	hub.Dialer = dialer
	api := &httpapi.API{
		Auth: httpapi.NewAuth(cfg.API.Tokens), Alerts: store, Figures: store, Trends: store, Waiting: store,
		Shops: apiShops(cfg), Info: shopInfo(cfg), PerAgent: cfg.Metrics.PerAgent, MaxAgents: cfg.Metrics.MaxAgents,
		Stream: hub, MaxAge: cfg.Redis.StateTTL, Now: o.Now, Log: o.Log.With(zap.String("component", "api")),
	}
	if notifier != nil {
		api.Intake = notifier
	}
	if o.TrendEvery <= 0 {
		o.TrendEvery = time.Minute
	}
	a := &App{Config: cfg, Registry: reg, Metrics: pm, Processor: proc, Repartition: repart, Reporter: rep, Store: store,
		Redis: client, Notifier: notifier, API: api, Stream: hub, holder: o.Holder, trendEvery: o.TrendEvery,
		log: o.Log, sinks: sinks, listener: o.Listener}
	checks := []httpapi.Check{
		{Name: "kafka", Fn: proc.Ping},
		{Name: "redis", Fn: store.Ping},
		{Name: "group", Fn: func(context.Context) error {
			if !proc.Joined() {
				return errors.New("not a member of a consumer group generation")
			}
			return nil
		}},
	}
	if notifier != nil {
		// A receiver the vendor refuses (signature, keyword) shows here,
		// without taking the replica out of service.
		checks = append(checks, httpapi.Check{Name: "notify", Fn: notifier.Check, Advisory: true})
	}
	a.checks = checks
	base, stop := context.WithCancel(context.Background())
	a.stopStreams = stop
	a.http = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return base },
		Addr:              cfg.HTTP.Addr,
		Handler:           httpapi.NewHandler(reg, checks, func(ok bool) { pm.Ready.Set(b2f(ok)) }, api),
		ReadHeaderTimeout: 5 * time.Second,
	}
	return a, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// pipelineConfig is the pipeline's part of the configuration.
func pipelineConfig(cfg *config.Config) pipeline.Config {
	return pipeline.Config{
		Brokers:     cfg.Kafka.Brokers,
		GroupID:     cfg.Kafka.GroupID,
		ClientID:    cfg.Kafka.ClientID,
		StartOffset: cfg.Kafka.StartOffset,
		Topics: map[event.Stream]string{
			event.Chat:     cfg.Kafka.Topics.Chat,
			event.Orders:   cfg.Kafka.Topics.Orders,
			event.Presence: cfg.Kafka.Topics.Presence,
			event.Buyers:   cfg.Kafka.Topics.Buyers,
		},
		BatchSize:        cfg.Kafka.BatchSize,
		BatchWait:        cfg.Kafka.BatchWait,
		Tick:             cfg.Clock.Tick,
		SessionTimeout:   cfg.Kafka.SessionTimeout,
		RebalanceTimeout: cfg.Kafka.RebalanceTimeout,
		Grace:            cfg.Clock.Grace,
		Allowance:        cfg.Clock.Allowance,
		MaxEventAge:      cfg.Clock.MaxEventAge,
		RebuildFrom:      rebuildFrom(cfg),
		OutboxLease:      cfg.Alerts.Lease,
		CacheEntries:     cfg.Redis.CacheEntries,
		Language:         cfg.Alerts.Language,
	}
}

// rebuildFrom is where a partition whose Redis state was lost is read again
// from: the start of yesterday in the zone, among the default one and the
// shops' own, whose day starts first. Today's figures, and waits open since
// yesterday, are then whole again.
func rebuildFrom(cfg *config.Config) func(time.Time) time.Time {
	locs := []*time.Location{cfg.Location("")}
	for s := range cfg.Shops {
		locs = append(locs, cfg.Location(s))
	}
	return func(now time.Time) time.Time {
		from := now
		for _, l := range locs {
			y, m, d := now.In(l).Date()
			if start := time.Date(y, m, d-1, 0, 0, 0, 0, l); start.Before(from) {
				from = start
			}
		}
		return from
	}
}

// repartitioner builds the stage that writes the buyer join's facts to the
// buyers topic, in its own consumer group.
func repartitioner(cfg *config.Config, log *zap.Logger) (*pipeline.Repartitioner, error) {
	textRules, err := cfg.TextRules()
	if err != nil {
		return nil, fmt.Errorf("building the text rules: %w", err)
	}
	k := cfg.Kafka
	return pipeline.NewRepartitioner(pipeline.RepartitionConfig{
		Brokers: k.Brokers, GroupID: k.GroupID + "-repartition", StartOffset: k.StartOffset,
		Chat: k.Topics.Chat, Orders: k.Topics.Orders, Buyers: k.Topics.Buyers, Partitions: k.BuyersPartitions,
		BatchSize: k.BatchSize, BatchWait: k.BatchWait, SessionTimeout: k.SessionTimeout, RebalanceTimeout: k.RebalanceTimeout,
	}, func(shop, msg string) bool { return detectors.ComplaintIntent(textRules, shop, msg) }, log), nil
}

// handlers are the detectors plugged into each input stream. Streams
// without one are validated, dead-lettered and counted.
func handlers(cfg *config.Config) (map[event.Stream]pipeline.Handler, error) {
	rules := cfg.Rules()
	text, err := cfg.TextRules()
	if err != nil {
		return nil, fmt.Errorf("building the text rules: %w", err)
	}
	return map[event.Stream]pipeline.Handler{
		event.Chat: pipeline.ChatHandler{
			Engine: &detectors.Engine{Rules: rules, PerAgent: cfg.Metrics.PerAgent, Lateness: cfg.Clock.AllowedLateness},
			Text:   &detectors.TextEngine{Text: text, Rules: rules, PerAgent: cfg.Metrics.PerAgent, Lateness: cfg.Clock.AllowedLateness},
			Effective: &detectors.Effective{Rules: rules, Within: func(shop string) time.Duration {
				return cfg.EffectiveReplyOf(shop).Within
			}},
		},
		event.Presence: pipeline.SeatHandler{Engine: &detectors.SeatEngine{Rules: rules}},
		event.Orders:   pipeline.OrderHandler{Engine: &detectors.OrderEngine{Rules: cfg.OrderRules(), JoinReviews: true}},
		event.Buyers: pipeline.BuyerJoinHandler{Engine: &detectors.JoinEngine{Rules: rules, Orders: cfg.OrderRules(),
			PerAgent: cfg.Metrics.PerAgent}},
	}, nil
}

// shopInfo is what the figures need to know of a shop.
func shopInfo(cfg *config.Config) func(string) metrics.ShopInfo {
	rules := cfg.Rules()
	return func(shop string) metrics.ShopInfo {
		r := rules(shop)
		return metrics.ShopInfo{Rules: r, Target: r.Target}
	}
}

// apiShops are the shops the API lists even before they have data: the
// configured ones and those the tokens name.
func apiShops(cfg *config.Config) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for s := range cfg.Shops {
		add(s)
	}
	for _, t := range cfg.API.Tokens {
		for _, s := range t.Shops {
			add(s)
		}
	}
	return out
}

// Addr is where HTTP is served once Run started listening.
func (a *App) Addr() string {
	if a.listener != nil {
		return a.listener.Addr().String()
	}
	return a.http.Addr
}

// Listen opens the HTTP listener now (so callers learn the port before Run).
func (a *App) Listen() error {
	if a.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", a.http.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", a.http.Addr, err)
	}
	a.listener = l
	return nil
}

// Run runs the replica until ctx ends, then stops it cleanly: the pipeline
// finishes its batches, commits and leaves the group; the reporter gives up
// its lease; HTTP closes. It returns the first error that stopped it.
func (a *App) Run(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		return err
	}
	defer a.Redis.Close()
	if a.sinks != nil {
		defer a.sinks.Close()
	}
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	if a.Notifier != nil {
		// The notifier reads cs.alerts as its own group: a slow or failing
		// receiver never slows the processor.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return a.Notifier.Run(ctx)
		}, func(error) { cancel() })
	}
	if a.Repartition != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return a.Repartition.Run(ctx)
		}, func(error) { cancel() })
	}
	if a.Processor != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			// The buyers topic exists before the group subscribes to it,
			// with the partition count configured, not a broker default.
			k := a.Config.Kafka
			if err := pipeline.EnsureTopic(ctx, k.Brokers, a.Processor.Transport(), k.Topics.Buyers, k.BuyersPartitions); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			return a.Processor.Run(ctx)
		}, func(error) {
			a.Processor.Stop()
			// If the processor does not finish in time, cut it off.
			time.AfterFunc(8*time.Second, cancel)
		})
	}
	if a.Reporter != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return a.Reporter.Run(ctx)
		}, func(error) { cancel() })
	}
	if a.Stream != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return a.Stream.Run(ctx)
		}, func(error) { cancel() })
	}
	if a.API != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return a.API.RecordTrend(ctx, a.holder, a.trendEvery)
		}, func(error) { cancel() })
	}
	{
		// replywatch_ready stays current even when nothing polls /readyz.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				failed, _ := httpapi.Probe(ctx, a.checks)
				a.Metrics.Ready.Set(b2f(len(failed) == 0))
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		}, func(error) { cancel() })
	}
	g.Add(func() error {
		a.log.Info("serving HTTP", zap.String("addr", a.listener.Addr().String()))
		if err := a.http.Serve(a.listener); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
		return nil
	}, func(error) {
		// Open alert streams end now; their clients resume elsewhere.
		if a.stopStreams != nil {
			a.stopStreams()
		}
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if a.http.Shutdown(sctx) != nil {
			_ = a.http.Close()
		}
	})
	return g.Run()
}
