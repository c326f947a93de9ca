// Package pipeline owns the path from Kafka to the store: the consumer group
// and its generations, one worker per assigned partition, batched fetches,
// decoding and dead-lettering, partition clocks, the one store step per
// batch, alert delivery from the outbox, and offset commits. It does not hold
// rules (detectors) or know how state is kept (state).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/state"
)

// Config is what the pipeline needs from the configuration.
type Config struct {
	Brokers []string
	// Dialer connects the consumer group and the partition readers, and
	// Transport the client and the alert writer, when the brokers need TLS
	// or SASL (kafka-go's defaults when nil).
	Dialer           *kafka.Dialer
	Transport        kafka.RoundTripper
	GroupID          string
	ClientID         string
	StartOffset      string // earliest | latest
	Topics           map[event.Stream]string
	BatchSize        int
	BatchWait        time.Duration
	Tick             time.Duration
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	Grace            time.Duration
	Allowance        time.Duration
	OutboxLease      time.Duration
	CommitInterval   time.Duration
	// CacheEntries bounds the entities kept in memory per partition, so
	// memory does not grow with the number of conversations.
	CacheEntries int
	// TimerBatch bounds how many due timers one step fires.
	TimerBatch int
	// IdleAfter is how long a partition that believes it is behind may go
	// without records before it asks the broker again, and follows the wall
	// clock when the broker cannot say (DESIGN.md §5: caught up or idle).
	IdleAfter time.Duration
	// MaxEventAge dead-letters events whose ts is older than this (stale_ts);
	// 0 accepts any age.
	MaxEventAge time.Duration
	// RebuildFrom is where a partition whose Redis state was lost is read
	// again from, given the wall clock: the start of the oldest day still
	// counted (two days back when nil).
	RebuildFrom func(wall time.Time) time.Time
	// DeadLetterFor bounds how long a batch's dead letters are retried
	// before they are skipped, logged and counted.
	DeadLetterFor time.Duration
	Language      string
}

// defaults fills what c leaves unset: configuration keys from the
// configuration's own defaults (config.Default, the one place they are
// written), the pipeline's internal bounds from here.
func (c *Config) defaults() {
	d := config.Default()
	if c.BatchSize <= 0 {
		c.BatchSize = d.Kafka.BatchSize
	}
	if c.BatchWait <= 0 {
		c.BatchWait = d.Kafka.BatchWait
	}
	if c.Tick <= 0 {
		c.Tick = d.Clock.Tick
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = d.Kafka.SessionTimeout
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = d.Kafka.RebalanceTimeout
	}
	if c.OutboxLease <= 0 {
		c.OutboxLease = d.Alerts.Lease
	}
	if c.CacheEntries <= 0 {
		c.CacheEntries = d.Redis.CacheEntries
	}
	if c.Language == "" {
		c.Language = d.Alerts.Language
	}
	if c.GroupID == "" {
		c.GroupID = d.Kafka.GroupID
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.CacheEntries <= 0 {
		c.CacheEntries = 1024
	}
	if c.TimerBatch <= 0 {
		c.TimerBatch = 1000
	}
	if c.RebuildFrom == nil {
		c.RebuildFrom = func(wall time.Time) time.Time { return wall.Add(-48 * time.Hour) }
	}
	if c.DeadLetterFor <= 0 {
		c.DeadLetterFor = time.Minute
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = 5 * time.Second
	}
}

// Store is what the pipeline needs of the state: claiming partitions, the
// one read and write step per batch, and the alert outbox. state.Redis and
// state.Memory are ones.
type Store interface {
	Claim(ctx context.Context, scope string, token int64) (state.Claimed, error)
	Takeover(ctx context.Context, scope string, token int64) (state.Claimed, error)
	Load(ctx context.Context, scope string, keys []string, dueBy int64, limit int) (state.Loaded, error)
	ApplyLoad(ctx context.Context, scope string, b *state.Batch, next *state.LoadRequest) (state.Applied, error)
	Outbox(ctx context.Context, scope string, token int64, now int64, lease time.Duration, limit int) ([]state.OutboxEntry, error)
}

// Processor consumes the input topics as one member of the consumer group.
type Processor struct {
	cfg      Config
	store    Store
	handlers map[event.Stream]Handler
	alerts   AlertSink
	dlt      DeadLetterSink
	metrics  *Metrics
	log      *zap.Logger
	now      func() time.Time
	location func(shop string) *time.Location
	onAlert  func(alerting.Alert)

	client   *kafka.Client
	stopping chan struct{}
	stopOnce sync.Once
	joined   atomic.Bool
	badLog   *rate.Limiter

	behindMu sync.Mutex
	behind   map[string]bool // scope -> the partition is catching up with a backlog

	// commitMu lets one partition at a time commit offsets: they share the
	// generation's connection to the coordinator, where kafka-go's waiters
	// take turns reading each other's responses until their own arrives.
	commitMu sync.Mutex
}

// Options are the parts a Processor is built from.
type Options struct {
	Config   Config
	Store    Store
	Handlers map[event.Stream]Handler // streams without a handler are validated and counted only
	Alerts   AlertSink
	DLT      DeadLetterSink
	Metrics  *Metrics
	Log      *zap.Logger
	// Now is the wall clock (time.Now when nil).
	Now func() time.Time
	// Location gives a shop's time zone, for alert summaries.
	Location func(shop string) *time.Location
	// OnAlert, when set, sees every alert once its delivery was accepted
	// (the demo's terminal view uses it).
	OnAlert func(alerting.Alert)
}

// New builds a processor.
func New(o Options) *Processor {
	o.Config.defaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = func(string) *time.Location { return time.UTC }
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return &Processor{
		cfg: o.Config, store: o.Store, handlers: o.Handlers, alerts: o.Alerts, dlt: o.DLT,
		metrics: o.Metrics, log: o.Log, now: o.Now, location: o.Location, onAlert: o.OnAlert,
		client:   &kafka.Client{Addr: kafka.TCP(o.Config.Brokers...), Timeout: 10 * time.Second, Transport: o.Config.Transport},
		stopping: make(chan struct{}),
		badLog:   rate.NewLimiter(rate.Every(time.Second), 5),
		behind:   map[string]bool{},
	}
}

// CaughtUp reports whether the processor is a member of a group generation
// and none of its partitions is catching up with a backlog: its figures
// then stand at the partition clocks, a few seconds behind the wall.
func (p *Processor) CaughtUp() bool {
	if !p.Joined() {
		return false
	}
	p.behindMu.Lock()
	defer p.behindMu.Unlock()
	for _, b := range p.behind {
		if b {
			return false
		}
	}
	return true
}

// setBehind records whether a partition is catching up; gone removes it.
func (p *Processor) setBehind(scope string, behind, gone bool) {
	p.behindMu.Lock()
	defer p.behindMu.Unlock()
	if gone {
		delete(p.behind, scope)
	} else {
		p.behind[scope] = behind
	}
}

// Joined reports whether the processor is a member of a group generation.
func (p *Processor) Joined() bool { return p.joined.Load() }

// Stop asks the processor to stop fetching, finish its batches, commit and
// leave the group; Run then returns.
func (p *Processor) Stop() { p.stopOnce.Do(func() { close(p.stopping) }) }

// Run joins the group and processes generations until ctx ends or Stop is
// called. It returns nil on a clean stop.
func (p *Processor) Run(ctx context.Context) error {
	topics := make([]string, 0, len(p.cfg.Topics))
	streamOf := map[string]event.Stream{}
	for s, t := range p.cfg.Topics {
		topics = append(topics, t)
		streamOf[t] = s
	}
	start := kafka.FirstOffset
	if p.cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                p.cfg.GroupID,
		Brokers:           p.cfg.Brokers,
		Dialer:            p.cfg.Dialer,
		Topics:            topics,
		StartOffset:       start,
		SessionTimeout:    p.cfg.SessionTimeout,
		RebalanceTimeout:  p.cfg.RebalanceTimeout,
		HeartbeatInterval: p.cfg.SessionTimeout / 5,
		JoinGroupBackoff:  time.Second,
		Logger:            kafkaLogger(p.log.Debug),
		ErrorLogger:       kafkaLogger(p.log.Warn),
	})
	if err != nil {
		return fmt.Errorf("creating consumer group %s: %w", p.cfg.GroupID, err)
	}
	// Leaving the group on stop ends the current generation; its workers
	// have already finished their batches and committed.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var closeOnce sync.Once
	closeGroup := func() { closeOnce.Do(func() { _ = group.Close() }) }
	defer closeGroup()
	// Workers are added under mu until the stop begins, so every wg.Add
	// happens before the stopper's wg.Wait.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stopped bool
	)
	go func() {
		select {
		case <-p.stopping:
		case <-runCtx.Done():
		}
		mu.Lock()
		stopped = true
		mu.Unlock()
		wg.Wait() // the workers of the current generation are done with their batches
		closeGroup()
		cancel()
	}()

	for {
		gen, err := group.Next(runCtx)
		if err != nil {
			p.joined.Store(false)
			if errors.Is(err, kafka.ErrGroupClosed) || runCtx.Err() != nil {
				return nil
			}
			p.log.Warn("joining the consumer group failed; retrying", zap.Error(err))
			if !sleep(runCtx, time.Second) {
				return nil
			}
			continue
		}
		p.joined.Store(true)
		p.metrics.Rebalances.Inc()
		p.log.Info("joined group generation", zap.Int32("generation", gen.ID), zap.String("member", gen.MemberID))
		mu.Lock()
		if stopped {
			// Stop arrived while joining: start nothing.
			mu.Unlock()
			continue
		}
		n := 0
		for topic, as := range gen.Assignments {
			stream, ok := streamOf[topic]
			if !ok {
				continue
			}
			n += len(as)
			for _, a := range as {
				w := p.newWorker(gen, topic, stream, a.ID, int64(gen.ID))
				offset := a.Offset
				wg.Add(1)
				gen.Start(func(ctx context.Context) {
					w.run(ctx, offset, wg.Done)
				})
			}
		}
		mu.Unlock()
		p.log.Info("partitions assigned", zap.Int("partitions", n))
	}
}

// takeoverAfter is how long a claim may stay fenced by a higher token
// before the group is taken to have been recreated: longer than any
// rebalance of a live group lets a stale member keep its generation.
func (p *Processor) takeoverAfter() time.Duration {
	return 2*p.cfg.RebalanceTimeout + p.cfg.SessionTimeout
}

func (p *Processor) newWorker(gen *kafka.Generation, topic string, stream event.Stream, partition int, token int64) *worker {
	cache, _ := lru.New[string, Entity](p.cfg.CacheEntries)
	log := p.log.With(zap.String("topic", topic), zap.Int("partition", partition))
	w := &worker{
		p: p, gen: gen, topic: topic, stream: stream, partition: partition,
		scope: state.Scope(string(stream), partition), token: token,
		handler: p.handlers[stream], applied: -1,
		step:      &Step{Handler: p.handlers[stream], Cache: cache, Language: p.cfg.Language, Location: p.location, Log: log},
		clock:     Clock{Grace: p.cfg.Grace, Allowance: p.cfg.Allowance},
		partLabel: partLabel(partition),
		log:       log,
		cur:       records{last: -1},
		next:      records{last: -1},
	}
	w.courier = &courier{deliver: w.deliver}
	return w
}

// highWaterMark asks the broker for a partition's high-water mark. A broker
// that restarted leaves dead connections in the client's pool: the first
// request on one fails at once, so a failure is tried again twice, each try
// bounded by a few seconds.
func (p *Processor) highWaterMark(ctx context.Context, topic string, partition int) (hwm int64, err error) {
	for attempt := range 3 {
		if attempt > 0 && !sleep(ctx, 200*time.Millisecond) {
			return 0, ctx.Err()
		}
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		hwm, err = p.listOffsets(tctx, topic, partition)
		cancel()
		if err == nil || ctx.Err() != nil {
			return hwm, err
		}
	}
	return 0, fmt.Errorf("reading the high-water mark of %s/%d: %w", topic, partition, err)
}

func (p *Processor) listOffsets(ctx context.Context, topic string, partition int) (int64, error) {
	res, err := p.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(partition)}},
	})
	if err != nil {
		return 0, err
	}
	for _, po := range res.Topics[topic] {
		if po.Partition == partition {
			if po.Error != nil {
				return 0, po.Error
			}
			return po.LastOffset, nil
		}
	}
	return 0, fmt.Errorf("no offsets for %s/%d", topic, partition)
}

// badInput logs a dead-lettered record, at most a few per second.
func (p *Processor) badInput(log *zap.Logger, d DeadLetter) {
	if p.badLog.Allow() {
		log.Warn("input record dead-lettered", zap.Int64("offset", d.Offset),
			zap.String("reason", d.Reason), zap.String("detail", d.Detail))
	}
}

// Ping checks that Kafka answers, for readiness. It asks the broker for its
// API versions: the client answers metadata requests from its cache, which
// outlives the broker.
func (p *Processor) Ping(ctx context.Context) error {
	res, err := p.client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	if err != nil {
		return err
	}
	if res.Error != nil {
		return res.Error
	}
	return nil
}

func kafkaLogger(f func(string, ...zap.Field)) kafka.LoggerFunc {
	return func(msg string, args ...any) { f(fmt.Sprintf(msg, args...), zap.String("component", "kafka")) }
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryPolicy backs off from 100 ms to 5 s between tries, forever: a
// partition must not skip work because Redis or Kafka was away for a while.
func retryPolicy(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0
	return backoff.WithContext(b, ctx)
}

// retry runs op until it succeeds, returns a backoff.Permanent error, or
// ctx ends, logging the first failure and every tenth.
func retry(ctx context.Context, log *zap.Logger, what string, op func() error) error {
	attempt := 0
	err := backoff.RetryNotify(op, retryPolicy(ctx), func(err error, next time.Duration) {
		if attempt%10 == 0 {
			log.Warn(what+" failed; retrying", zap.Error(err), zap.Int("attempt", attempt+1), zap.Duration("next", next))
		}
		attempt++
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Transport is the round tripper the processor's client uses (nil: plain
// TCP), for other clients of the same brokers.
func (p *Processor) Transport() kafka.RoundTripper { return p.cfg.Transport }
