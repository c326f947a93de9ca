// Package metrics owns what replywatch exports to Prometheus: the process
// metrics every replica reports about itself, and the business gauges that
// only the replica holding the reporter lease exports (see Reporter). Metrics
// are registered on an injected Registerer, never the global one.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Process holds the per-replica process metrics of the contract.
type Process struct {
	Events       *prometheus.CounterVec
	DeadLetters  *prometheus.CounterVec
	ConsumerLag  *prometheus.GaugeVec
	WatermarkLag *prometheus.GaugeVec
	// TimersFired is the partition time up to which a partition's due
	// timers have fired and what they changed is in the store.
	TimersFired      *prometheus.GaugeVec
	TimerFireDelay   *prometheus.HistogramVec
	Alerts           *prometheus.CounterVec
	AlertDeliveries  *prometheus.CounterVec
	OwnedPartitions  *prometheus.GaugeVec
	RedisErrors      *prometheus.CounterVec
	BuildInfo        *prometheus.GaugeVec
	Ready            prometheus.Gauge
	ReporterLeader   prometheus.Gauge
	BatchSize        prometheus.Histogram
	RedisRoundTrips  *prometheus.CounterVec
	Rebalances       prometheus.Counter
	OutboxRedelivery prometheus.Counter
	// DeadLetterFailures counts records that could not be written to their
	// dead-letter topic after bounded retries: skipped, logged and counted.
	DeadLetterFailures *prometheus.CounterVec
	// StateRebuilds counts partitions whose Redis state was found lost and
	// rebuilt from Kafka.
	StateRebuilds *prometheus.CounterVec
}

// NewProcess creates and registers the process metrics on reg.
func NewProcess(reg prometheus.Registerer) *Process {
	m := &Process{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_events_total",
			Help: "Input events read, by topic and result (applied, duplicate, invalid).",
		}, []string{"topic", "result"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_dead_letters_total",
			Help: "Input records written to the topic's dead-letter topic, by reason.",
		}, []string{"topic", "reason"}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_consumer_lag_messages",
			Help: "Records between the last one read and the partition's high-water mark.",
		}, []string{"topic", "partition"}),
		WatermarkLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_watermark_lag_seconds",
			Help: "Wall clock minus the partition clock: how far behind real time the partition's timers fire.",
		}, []string{"topic", "partition"}),
		TimersFired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_timers_fired_seconds",
			Help: "Partition time (Unix seconds) before which every timer of the partition has fired and its changes and alerts are in Redis (the alerts' outbox).",
		}, []string{"topic", "partition"}),
		TimerFireDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "replywatch_timer_fire_delay_seconds",
			Help: "Wall clock when a timer alert was emitted minus its due time (includes the configured clock grace), " +
				"by mode: live, or catchup for timers that fell due before their partition caught up (a replayed backlog, a restart).",
			Buckets: []float64{0.5, 1, 1.5, 2, 2.05, 2.1, 2.25, 2.5, 3, 4, 5, 10, 30, 60, 300},
		}, []string{"mode"}),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_alerts_total",
			Help: "Alert records produced, by kind and status.",
		}, []string{"kind", "status"}),
		AlertDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_alert_deliveries_total",
			Help: "Alert deliveries by sink and result: the alerts topic (sink kafka: ok, error) and the notifier's receivers (sent, digested, stale, duplicate, inhibited; failed and retried attempts).",
		}, []string{"sink", "result"}),
		OwnedPartitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_owned_partitions",
			Help: "Input partitions this replica owns now.",
		}, []string{"topic"}),
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
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "replywatch_batch_records",
			Help:    "Records per processed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		RedisRoundTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_redis_round_trips_total",
			Help: "Redis round trips made by partition workers, by operation (load, apply, outbox, claim) and input topic.",
		}, []string{"op", "topic"}),
		Rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "replywatch_generations_total",
			Help: "Consumer group generations this replica joined.",
		}),
		OutboxRedelivery: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "replywatch_alert_redeliveries_total",
			Help: "Alert records sent again from the outbox after their lease ran out or a partition changed owner.",
		}),
		DeadLetterFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_dead_letter_failures_total",
			Help: "Of the records counted in replywatch_dead_letters_total, those that could not be written to the dead-letter topic (skipped after bounded retries, logged with their offsets).",
		}, []string{"topic"}),
		StateRebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_state_rebuilds_total",
			Help: "Partitions whose state Redis lost (its owner key gone while the group had committed offsets) or took back to an older snapshot, rebuilt or caught up by reading Kafka again.",
		}, []string{"topic"}),
	}
	reg.MustRegister(m.Events, m.DeadLetters, m.ConsumerLag, m.WatermarkLag, m.TimersFired, m.TimerFireDelay,
		m.Alerts, m.AlertDeliveries, m.OwnedPartitions, m.RedisErrors, m.BuildInfo, m.Ready,
		m.ReporterLeader, m.BatchSize, m.RedisRoundTrips, m.Rebalances, m.OutboxRedelivery,
		m.DeadLetterFailures, m.StateRebuilds)
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
func (m *Process) Init(topics []string, deadLetterReasons []string) {
	for _, t := range topics {
		for _, r := range []string{"applied", "duplicate", "invalid"} {
			m.Events.WithLabelValues(t, r)
		}
		for _, r := range deadLetterReasons {
			m.DeadLetters.WithLabelValues(t, r)
		}
		m.OwnedPartitions.WithLabelValues(t)
		m.DeadLetterFailures.WithLabelValues(t)
		m.StateRebuilds.WithLabelValues(t)
	}
	for _, r := range []string{"ok", "error"} {
		m.AlertDeliveries.WithLabelValues("kafka", r)
	}
	for _, op := range RedisOps {
		m.RedisErrors.WithLabelValues(op)
	}
	m.TimerFireDelay.WithLabelValues(FireLive)
	m.TimerFireDelay.WithLabelValues(FireCatchup)
	for _, k := range AlertKinds {
		m.Alerts.WithLabelValues(k, "firing")
		m.Alerts.WithLabelValues(k, "resolved")
	}
}
