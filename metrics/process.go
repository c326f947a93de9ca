// Package metrics owns what replywatch exports to Prometheus beside the
// pipeline's own metrics (pipeline.Metrics): the process metrics that are
// no one package's (build, readiness, the counters several packages add
// to), and the business gauges that only the replica holding the reporter
// lease exports (see Reporter). Metrics are registered on an injected
// Registerer, never the global one.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Process holds the per-replica metrics that are not one package's own:
// the build, readiness and reporter lease, and the counters several
// packages add to (alerts by the pipeline and the shop-level rules,
// deliveries by the pipeline's alert sink and the notifier, Redis errors
// by the store and the reporter). The pipeline registers its own
// (pipeline.Metrics).
type Process struct {
	Alerts          *prometheus.CounterVec
	AlertDeliveries *prometheus.CounterVec
	RedisErrors     *prometheus.CounterVec
	BuildInfo       *prometheus.GaugeVec
	Ready           prometheus.Gauge
	ReporterLeader  prometheus.Gauge
}

// NewProcess creates and registers the process metrics on reg.
func NewProcess(reg prometheus.Registerer) *Process {
	m := &Process{
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_alerts_total",
			Help: "Alert records produced, by kind and status.",
		}, []string{"kind", "status"}),
		AlertDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_alert_deliveries_total",
			Help: "Alert deliveries by sink and result: the alerts topic (sink kafka: ok, error) and the notifier's receivers (sent, digested, stale, duplicate, inhibited; failed and retried attempts).",
		}, []string{"sink", "result"}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_redis_errors_total",
			Help: "Failed Redis operations, by operation.",
		}, []string{"op"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_build_info",
			Help: "Always 1; labels carry the version and revision of this binary.",
		}, []string{"version", "revision"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "replywatch_ready",
			Help: "1 when /readyz answers 200: Kafka and Redis answer and the group has joined.",
		}),
		ReporterLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "replywatch_reporter_leader",
			Help: "1 on the replica that holds the reporter lease and exports the business gauges.",
		}),
	}
	reg.MustRegister(m.Alerts, m.AlertDeliveries, m.RedisErrors, m.BuildInfo, m.Ready, m.ReporterLeader)
	return m
}

// Modes of replywatch_timer_fire_delay_seconds: a timer that fell due while
// its partition was caught up fires live; one that fell due before (while a
// backlog was replayed, or while no replica owned the partition) fires in
// catch-up, late by the backlog's age. Delay objectives look at live fires.
const (
	FireLive    = "live"
	FireCatchup = "catchup"
)

// RedisOps are the store operations counted in replywatch_redis_errors_total.
var RedisOps = []string{"claim", "load", "apply", "outbox", "scopes", "figures", "lease", "release", "ping"}

// AlertKinds are the alert kinds this build produces.
var AlertKinds = []string{"reply_warning", "reply_breach", "long_no_reply", "seat_away", "abusive_reply", "off_platform_trade", "complaint_risk", "effective_reply_risk"}

// Init creates the known label sets of the counters at zero, so that rates
// and alert rules see a series before the first event of each kind.
func (m *Process) Init() {
	for _, op := range RedisOps {
		m.RedisErrors.WithLabelValues(op)
	}
	for _, k := range AlertKinds {
		m.Alerts.WithLabelValues(k, "firing")
		m.Alerts.WithLabelValues(k, "resolved")
	}
}
