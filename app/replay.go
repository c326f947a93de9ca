package app

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/shoprules"
	"github.com/replywatch/replywatch/state"
)

// ReplayResult is what an offline replay found.
type ReplayResult struct {
	// At is the wall clock the replay stood at when figures were read.
	At          time.Time
	Shops       []metrics.ShopReport
	Alerts      []alerting.Alert
	DeadLetters []pipeline.DeadLetter
	Events      int
}

// Source feeds recorded records to fn, in order.
type Source func(fn func(stream event.Stream, key string, value []byte) error) error

// Replay runs the same pipeline step and detectors as `run` over recorded
// events, with state in memory and no Kafka or Redis, then reads every
// shop's figures as the reporter would at the wall clock at. A zero at
// stands just after the last event, late enough for its deadlines
// (largest threshold plus the clock grace) but not past its shop-local day.
func Replay(ctx context.Context, cfg *config.Config, src Source, at time.Time, log *zap.Logger) (*ReplayResult, error) {
	if log == nil {
		log = zap.NewNop()
	}
	store := state.NewMemory()
	if at.IsZero() {
		// A first pass finds the last event time (the source is read twice
		// rather than held in memory).
		var last time.Time
		err := src(func(stream event.Stream, key string, value []byte) error {
			if ev, err := event.Decode(stream, value, time.Time{}); err == nil && ev.TS.After(last) {
				last = ev.TS.Time
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		at = defaultReplayClock(cfg, last)
	}
	hs, err := handlers(cfg)
	if err != nil {
		return nil, err
	}
	// The buyer join reads what the repartition stage would write.
	repart, err := repartitioner(cfg, log)
	if err != nil {
		return nil, err
	}
	repart.Now = func() time.Time { return time.Time{} }
	rp, err := pipeline.NewReplayer(ctx, pipeline.Options{
		Config: pipelineConfig(cfg), Store: store, Handlers: hs,
		Metrics: pipeline.NewMetrics(nopRegisterer{}, metrics.NewProcess(nopRegisterer{})), Log: log, Location: cfg.Location,
	}, at)
	if err != nil {
		return nil, err
	}
	// The shop-level rules run as the reporter-lease holder runs them, every
	// report_interval of event time, on the figures of every record up to
	// then.
	seatLog := &alertLog{}
	rules := &shoprules.Evaluator{Store: store, Sink: seatLog, Rules: cfg.Rules(), Language: cfg.Alerts.Language, Log: log,
		AlertBelow: func(shop string) float64 { return cfg.EffectiveReplyOf(shop).AlertBelow }, PerfunctoryAfter: cfg.PerfunctoryAlertAfterOf}
	interval := cfg.Metrics.ReportInterval
	var next time.Time
	var seats map[string]shoprules.Seats
	evaluate := func(t time.Time) error {
		if err := rp.Flush(ctx); err != nil {
			return err
		}
		figs, err := readFigures(ctx, cfg, store, t)
		if err != nil {
			return err
		}
		seats, err = rules.Evaluate(ctx, figs, t)
		return err
	}
	n := 0
	err = src(func(stream event.Stream, key string, value []byte) error {
		n++
		if ev, err := event.Decode(stream, value, time.Time{}); err == nil {
			ts := ev.TS.Time
			if next.IsZero() {
				next = ts.Truncate(interval)
			}
			for ts.After(next) && !next.After(at) {
				if err := evaluate(next); err != nil {
					return err
				}
				next = next.Add(interval)
			}
		}
		if err := rp.Add(ctx, stream, key, value); err != nil {
			return err
		}
		if k, fact, ok := repart.Fact(stream, value); ok {
			return rp.Add(ctx, event.Buyers, k, fact)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := rp.Finish(ctx); err != nil {
		return nil, err
	}
	for ; !next.IsZero() && next.Before(at); next = next.Add(interval) {
		if err := evaluate(next); err != nil {
			return nil, err
		}
	}
	if err := evaluate(at); err != nil {
		return nil, err
	}
	res := &ReplayResult{At: at, Alerts: append(rp.Alerts(), seatLog.alerts...), DeadLetters: rp.DeadLetters(), Events: n}
	res.Shops, err = Figures(ctx, cfg, store, at)
	for i := range res.Shops {
		if s, ok := seats[res.Shops[i].Shop]; ok {
			res.Shops[i].WithSeats(s)
		}
	}
	return res, err
}

// alertLog keeps the alerts a replay's shop-level rules deliver.
type alertLog struct{ alerts []alerting.Alert }

func (l *alertLog) Deliver(_ context.Context, ds []state.Delivery) error {
	for _, d := range ds {
		var a alerting.Alert
		if err := a.UnmarshalJSON(d.Payload); err != nil {
			return fmt.Errorf("decoding alert %s: %w", d.Key, err)
		}
		l.alerts = append(l.alerts, a)
	}
	return nil
}

// readFigures reads every shop's summed figures at now.
func readFigures(ctx context.Context, cfg *config.Config, store state.Store, now time.Time) (map[string]*state.ShopFigures, error) {
	scopes, err := store.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	info := shopInfo(cfg)
	figs, err := store.Figures(ctx, scopes, func(shop string) string { return info(shop).Rules.Hours.Day(now) })
	if err != nil {
		return nil, fmt.Errorf("reading figures: %w", err)
	}
	return figs, nil
}

// defaultReplayClock is just after the last event: past its largest
// threshold plus grace, capped at the end of that event's shop-local day so
// that "today" is the day replayed.
func defaultReplayClock(cfg *config.Config, last time.Time) time.Time {
	if last.IsZero() {
		return time.Now()
	}
	rules := cfg.Rules()("")
	wait := cfg.Clock.Grace + time.Second
	if n := len(rules.Thresholds); n > 0 {
		wait += rules.Thresholds[n-1]
	}
	at := last.Add(wait)
	if end := rules.Hours.NextMidnight(last).Add(-time.Millisecond); at.After(end) {
		at = end
	}
	return at
}

// Figures reads every shop's figures from store at now, as the reporter
// exports them, sorted by shop.
func Figures(ctx context.Context, cfg *config.Config, store state.Store, now time.Time) ([]metrics.ShopReport, error) {
	figs, err := readFigures(ctx, cfg, store, now)
	if err != nil {
		return nil, err
	}
	info := shopInfo(cfg)
	out := make([]metrics.ShopReport, 0, len(figs))
	for _, f := range figs {
		r, _ := metrics.Report(f, info(f.Shop), now, cfg.Metrics.PerAgent, cfg.Metrics.MaxAgents)
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shop < out[j].Shop })
	return out, nil
}
