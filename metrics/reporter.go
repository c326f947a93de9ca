package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/shoprules"
	"github.com/replywatch/replywatch/state"
)

// FigureSource is what the reporter reads figures and its lease from.
type FigureSource interface {
	Scopes(ctx context.Context) ([]string, error)
	Figures(ctx context.Context, scopes []string, dayOf func(shop string) string) (map[string]*state.ShopFigures, error)
	Lease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// ShopInfo is what the reporter needs to know about a shop.
type ShopInfo struct {
	Rules *detectors.Rules
	// Target is the shop's target reply rate (0: none exported).
	Target float64
}

// ShopRules evaluates the shop-level rules on the summed figures
// (shoprules.Evaluator); the lease holder runs it on every report.
type ShopRules interface {
	Evaluate(ctx context.Context, figs map[string]*state.ShopFigures, now time.Time) (map[string]shoprules.Seats, error)
	// Drop forgets the rules' fencing token once the lease is lost.
	Drop()
}

// Reporter exports the business gauges of CONTRACT.md §4. Only the replica
// holding the reporter lease exports them, so that summing over replicas
// gives the true value; the others export none. A scrape sees the last
// complete read of the figures, never one half refilled, and its age in
// replywatch_figures_age_seconds: while Redis cannot be read, the last
// figures stay, ageing, as long as the lease this replica held has not run
// out (no other replica can hold it before).
type Reporter struct {
	Source   FigureSource
	Holder   string
	LeaseTTL time.Duration
	Interval time.Duration
	// Shops lists the configured shops, reported even before they have data.
	Shops    []string
	Info     func(shop string) ShopInfo
	PerAgent bool
	// MaxAgents caps per-agent series per shop.
	MaxAgents int
	Now       func() time.Time
	// Clock times the lease and the figures' age (time.Now when nil): the
	// machine's clock, where Now may be a replay's.
	Clock   func() time.Time
	Log     *zap.Logger
	Process *Process
	// Rules, when set, are evaluated on each report's figures.
	Rules ShopRules

	waiting, oldest, consulting, breached, rate, messages, rate30, avgResp *prometheus.GaugeVec
	shopInfo, target, inHours, seats, idle, uncovered                      *prometheus.GaugeVec
	agSeat, agIdle                                                         *prometheus.GaugeVec
	agWaiting, agConsulting, agBreached, agAvg, agRate30, agMessages       *prometheus.GaugeVec
	flagged, agFlagged, effRate, effProjected, consultingProjected         *prometheus.GaugeVec
	agConverted, agConversion                                              *prometheus.GaugeVec
	dropped                                                                prometheus.Counter
	orders                                                                 orderGauges

	// mu guards the gauges and what follows, between a refill and a scrape.
	mu      sync.RWMutex
	vecs    []*prometheus.GaugeVec
	leader  bool
	at      time.Time // when the exported figures were read (monotonic)
	renewed time.Time // when the lease was last renewed
}

// ageDesc describes replywatch_figures_age_seconds.
var ageDesc = prometheus.NewDesc("replywatch_figures_age_seconds",
	"Seconds since the exported business gauges were read from Redis (exported with them, by the replica holding the reporter lease).", nil, nil)

// figureCollector exports the reporter's gauges as one consistent snapshot.
type figureCollector struct{ r *Reporter }

func (c figureCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range c.r.vecs {
		g.Describe(ch)
	}
	ch <- ageDesc
}

func (c figureCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, g := range r.vecs {
		g.Collect(ch)
	}
	if r.leader && !r.at.IsZero() {
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, r.clock().Sub(r.at).Seconds())
	}
}

// LeaseName is the reporter lease's name in the store.
const LeaseName = "reporter"

// gauge creates a business gauge; Register exports them all through one
// collector.
func (r *Reporter) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	r.vecs = append(r.vecs, g)
	return g
}

// Register creates the business gauges on reg.
func (r *Reporter) Register(reg prometheus.Registerer) {
	r.waiting = r.gauge("replywatch_waiting_buyers", "Buyers now waiting for a human reply.", "shop")
	r.oldest = r.gauge("replywatch_oldest_wait_seconds", "Longest current wait for a human reply.", "shop")
	r.consulting = r.gauge("replywatch_consulting_buyers", "Distinct buyers who consulted today in service hours.", "shop")
	r.breached = r.gauge("replywatch_reply_breached_buyers", "Distinct buyers whose wait breached the threshold today.", "shop", "threshold")
	r.rate = r.gauge("replywatch_reply_rate", "1 - breached/consulting today (absent while no one consulted).", "shop", "threshold")
	r.messages = r.gauge("replywatch_buyer_messages", "Buyer messages today in service hours.", "shop")
	r.rate30 = r.gauge("replywatch_response_30s_rate", "Share of today's buyer messages human-answered within 30 s (absent while none).", "shop")
	r.avgResp = r.gauge("replywatch_avg_response_seconds", "Mean human response time of waits started today and ended (absent while none has).", "shop")
	r.seats = r.gauge("replywatch_seats", "Agents per seat state (online, busy, away, offline; exclusive, summing to the shop's agents).", "shop", "state")
	r.idle = r.gauge("replywatch_idle_seats", "Seats idle now: working, buyers waiting on them, no human message for idle_after.", "shop")
	r.uncovered = r.gauge("replywatch_uncovered_seconds", "Seconds so far today in service hours with no seat working.", "shop")
	r.agSeat = r.gauge("replywatch_agent_seat", "1 for the agent's seat state (online, busy, away, offline).", "shop", "agent", "state")
	r.agIdle = r.gauge("replywatch_agent_idle_seconds", "How long the agent has been idle (0 while not idle).", "shop", "agent")
	r.shopInfo = r.gauge("replywatch_shop_info", "Always 1; labels carry the shop's platform and time zone.", "shop", "platform", "timezone")
	r.target = r.gauge("replywatch_reply_rate_target", "The shop's target reply rate from the configuration.", "shop", "threshold")
	r.inHours = r.gauge("replywatch_service_window_open", "1 while the shop's service window is open.", "shop")
	r.agWaiting = r.gauge("replywatch_agent_waiting_buyers", "Buyers now waiting whose assigned agent this is.", "shop", "agent")
	r.agConsulting = r.gauge("replywatch_agent_consulting_buyers", "Distinct buyers assigned to the agent who consulted today.", "shop", "agent")
	r.agBreached = r.gauge("replywatch_agent_reply_breached_buyers", "Distinct buyers breached today while assigned to the agent.", "shop", "agent", "threshold")
	r.agAvg = r.gauge("replywatch_agent_avg_response_seconds", "Mean response time of the agent's replies that ended waits today.", "shop", "agent")
	r.agRate30 = r.gauge("replywatch_agent_response_30s_rate", "Share of buyer messages the agent answered within 30 s today.", "shop", "agent")
	r.agMessages = r.gauge("replywatch_agent_buyer_messages", "Buyer messages today while assigned to the agent.", "shop", "agent")
	r.agConverted = r.gauge("replywatch_agent_converted_buyers", "Consulting buyers today who paid within the conversion window, credited to the agent who last sent them a human reply before payment.", "shop", "agent")
	r.agConversion = r.gauge("replywatch_agent_inquiry_conversion_rate", "The agent's converted buyers / buyers assigned to the agent who consulted today (absent while none).", "shop", "agent")
	r.flagged = r.gauge("replywatch_flagged_messages", "Messages today matched by a text rule, per category.", "shop", "category")
	r.agFlagged = r.gauge("replywatch_agent_flagged_messages", "The agent's messages (or their buyers' for complaint_intent) matched by a text rule today.", "shop", "agent", "category")
	r.effRate = r.gauge("replywatch_effective_reply_rate", "PDD effective reply rate so far today: consulting buyers a human replied within effective_reply.within of their first message / consulting buyers.", "shop")
	r.effProjected = r.gauge("replywatch_effective_reply_rate_projected", "The effective reply rate projected to the end of the day.", "shop")
	r.consultingProjected = r.gauge("replywatch_consulting_buyers_projected", "Consulting buyers projected to the end of the day by the usual daily curve.", "shop")
	r.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "replywatch_agent_series_dropped_total",
		Help: "Per-agent series left out because a shop has more agents than metrics.max_agents."})
	r.orders.register(r.gauge)
	reg.MustRegister(r.dropped, figureCollector{r})
}

// Run keeps the lease and the gauges fresh until ctx ends, then gives the
// lease up so another replica takes over at once.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.tick(ctx)
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = r.Source.ReleaseLease(rctx, LeaseName, r.Holder)
			cancel()
			r.setLeader(false)
			return nil
		case <-t.C:
		}
	}
}

func (r *Reporter) setLeader(v bool) {
	r.mu.Lock()
	if r.leader && !v {
		r.reset()
		r.at = time.Time{}
		if r.Rules != nil {
			r.Rules.Drop()
		}
	}
	r.leader = v
	r.mu.Unlock()
	if r.Process != nil {
		if v {
			r.Process.ReporterLeader.Set(1)
		} else {
			r.Process.ReporterLeader.Set(0)
		}
	}
}

func (r *Reporter) tick(ctx context.Context) {
	asked := r.clock()
	held, err := r.Source.Lease(ctx, LeaseName, r.Holder, r.LeaseTTL)
	if err != nil {
		if ctx.Err() == nil {
			r.Log.Warn("reporter lease check failed", zap.Error(err))
			if r.Process != nil {
				r.Process.RedisErrors.WithLabelValues("lease").Inc()
			}
		}
		// The lease held is ours until it runs out: meanwhile the last
		// figures stay, their age growing. After it, stop exporting: two
		// exporters would double the sums.
		if r.isLeader() && r.clock().Sub(r.renewed) < r.LeaseTTL {
			return
		}
		r.setLeader(false)
		return
	}
	if held {
		r.renewed = asked
	}
	if held != r.isLeader() {
		r.Log.Info("reporter lease", zap.Bool("held", held))
	}
	r.setLeader(held)
	if !held {
		return
	}
	if err := r.Collect(ctx); err != nil && ctx.Err() == nil {
		r.Log.Warn("reading figures failed", zap.Error(err))
		if r.Process != nil {
			r.Process.RedisErrors.WithLabelValues("figures").Inc()
		}
	}
}

func (r *Reporter) reset() {
	for _, g := range []*prometheus.GaugeVec{r.waiting, r.oldest, r.consulting, r.breached, r.rate, r.messages,
		r.rate30, r.avgResp, r.seats, r.idle, r.uncovered, r.agSeat, r.agIdle, r.shopInfo, r.target, r.inHours,
		r.agWaiting, r.agConsulting, r.agBreached, r.agAvg, r.agRate30, r.agMessages, r.flagged, r.agFlagged, r.effRate, r.effProjected, r.consultingProjected,
		r.agConverted, r.agConversion} {
		g.Reset()
	}
	r.orders.reset()
}

// Collect reads the figures of every partition and sets the gauges.
func (r *Reporter) Collect(ctx context.Context) error {
	scopes, err := r.Source.Scopes(ctx)
	if err != nil {
		return err
	}
	now := r.Now()
	figs, err := r.Source.Figures(ctx, scopes, func(shop string) string {
		return r.Info(shop).Rules.Hours.Day(now)
	})
	if err != nil {
		return err
	}
	for _, s := range r.Shops {
		if figs[s] == nil {
			figs[s] = &state.ShopFigures{Shop: s}
		}
	}
	var seats map[string]shoprules.Seats
	if r.Rules != nil {
		if seats, err = r.Rules.Evaluate(ctx, figs, now); err != nil && ctx.Err() == nil {
			// The figures are still exported; the rules run again next time.
			r.Log.Warn("evaluating shop-level rules failed", zap.Error(err))
			if r.Process != nil {
				r.Process.RedisErrors.WithLabelValues("shoprules").Inc()
			}
		}
	}
	reports := make([]ShopReport, 0, len(figs))
	dropped := 0
	for _, f := range figs {
		rep, d := Report(f, r.Info(f.Shop), now, r.PerAgent, r.MaxAgents)
		if s, ok := seats[f.Shop]; ok {
			rep.WithSeats(s)
		}
		reports = append(reports, rep)
		dropped += d
	}
	// The refill is whole before a scrape sees it.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reset()
	for _, rep := range reports {
		r.export(rep, 0)
	}
	r.dropped.Add(float64(dropped))
	r.at = r.clock()
	return nil
}

func (r *Reporter) clock() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

func (r *Reporter) isLeader() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.leader
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (r *Reporter) export(rep ShopReport, dropped int) {
	shop := rep.Shop
	r.shopInfo.WithLabelValues(shop, rep.Platform, rep.Timezone).Set(1)
	r.inHours.WithLabelValues(shop).Set(b2f(rep.InServiceHours))
	r.waiting.WithLabelValues(shop).Set(float64(rep.Waiting))
	r.oldest.WithLabelValues(shop).Set(rep.OldestWaitSeconds)
	r.consulting.WithLabelValues(shop).Set(float64(rep.Consulting))
	for _, th := range rep.Thresholds {
		r.breached.WithLabelValues(shop, th).Set(float64(rep.Breached[th]))
		if v, ok := rep.ReplyRate[th]; ok {
			r.rate.WithLabelValues(shop, th).Set(v)
		}
		if rep.Target > 0 {
			r.target.WithLabelValues(shop, th).Set(rep.Target)
		}
	}
	r.messages.WithLabelValues(shop).Set(float64(rep.Messages))
	setIf(r.rate30.WithLabelValues, rep.Response30sRate, shop)
	setIf(r.avgResp.WithLabelValues, rep.AvgResponseSeconds, shop)
	for s, v := range rep.Seats {
		r.seats.WithLabelValues(shop, s).Set(float64(v))
	}
	if rep.IdleSeats != nil {
		r.idle.WithLabelValues(shop).Set(float64(*rep.IdleSeats))
	}
	if rep.UncoveredSeconds != nil {
		r.uncovered.WithLabelValues(shop).Set(*rep.UncoveredSeconds)
	}
	for _, a := range rep.AgentSeats {
		r.agSeat.WithLabelValues(shop, a.Agent, a.State).Set(1)
		r.agIdle.WithLabelValues(shop, a.Agent).Set(a.IdleSeconds)
	}
	for c, v := range rep.Flagged {
		r.flagged.WithLabelValues(shop, c).Set(float64(v))
	}
	if v := rep.EffectiveReplyRate; v != nil {
		r.effRate.WithLabelValues(shop).Set(*v)
	}
	if v := rep.EffectiveReplyRateProjected; v != nil {
		r.effProjected.WithLabelValues(shop).Set(*v)
		r.consultingProjected.WithLabelValues(shop).Set(*rep.ConsultingProjected)
	}
	r.orders.export(shop, rep.Orders)
	r.dropped.Add(float64(dropped))
	for _, a := range rep.Agents {
		r.agWaiting.WithLabelValues(shop, a.Agent).Set(float64(a.Waiting))
		r.agConsulting.WithLabelValues(shop, a.Agent).Set(float64(a.Consulting))
		r.agMessages.WithLabelValues(shop, a.Agent).Set(float64(a.Messages))
		r.agConverted.WithLabelValues(shop, a.Agent).Set(float64(a.Converted))
		if a.ConversionRate != nil {
			r.agConversion.WithLabelValues(shop, a.Agent).Set(*a.ConversionRate)
		}
		setIf(r.agRate30.WithLabelValues, a.Response30sRate, shop, a.Agent)
		setIf(r.agAvg.WithLabelValues, a.AvgResponseSeconds, shop, a.Agent)
		for th, v := range a.Breached {
			r.agBreached.WithLabelValues(shop, a.Agent, th).Set(float64(v))
		}
		for c, v := range a.Flagged {
			r.agFlagged.WithLabelValues(shop, a.Agent, c).Set(float64(v))
		}
	}
}

// setIf sets a ratio's or mean's series only when it has a value: while
// its denominator is 0 the series is absent, not 0 or 1.
func setIf(series func(...string) prometheus.Gauge, v *float64, labels ...string) {
	if v != nil {
		series(labels...).Set(*v)
	}
}
