package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/replywatch/replywatch/metrics"
)

// Metrics are the pipeline's process metrics (README, "Metrics"): the
// records it reads, dead-letters and applies, where each partition's clock
// and timers stand, its batches and Redis round trips, and how late its
// timers fire. NewMetrics registers them. The counters other parts of the
// replica add to as well come from the replica's metrics.Process, which
// registers them: replywatch_alerts_total (the shop-level rules count
// their alerts too), replywatch_alert_deliveries_total (the notifier counts
// its receivers' deliveries) and replywatch_redis_errors_total (the store
// and the reporter count their failures).
type Metrics struct {
	Events          *prometheus.CounterVec
	DeadLetters     *prometheus.CounterVec
	ConsumerLag     *prometheus.GaugeVec
	WatermarkLag    *prometheus.GaugeVec
	TimerFireDelay  *prometheus.HistogramVec
	OwnedPartitions *prometheus.GaugeVec
	// TimersFired is the partition time up to which a partition's due
	// timers have fired and what they changed is in the store.
	TimersFired      *prometheus.GaugeVec
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

	// Shared with the rest of the replica (see above).
	Alerts          *prometheus.CounterVec
	AlertDeliveries *prometheus.CounterVec
	RedisErrors     *prometheus.CounterVec
}

// NewMetrics creates the pipeline's metrics and registers them on reg;
// shared holds the counters it shares with the rest of the replica.
func NewMetrics(reg prometheus.Registerer, shared *metrics.Process) *Metrics {
	m := &Metrics{
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
		OwnedPartitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_owned_partitions",
			Help: "Input partitions this replica owns now.",
		}, []string{"topic"}),
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
		Alerts:          shared.Alerts,
		AlertDeliveries: shared.AlertDeliveries,
		RedisErrors:     shared.RedisErrors,
	}
	reg.MustRegister(m.Events, m.DeadLetters, m.ConsumerLag, m.WatermarkLag, m.TimersFired, m.TimerFireDelay,
		m.OwnedPartitions, m.BatchSize, m.RedisRoundTrips, m.Rebalances, m.OutboxRedelivery,
		m.DeadLetterFailures, m.StateRebuilds)
	return m
}

// Init creates the known label sets at zero, so that rates and alert
// rules see a series before the first event of each kind.
func (m *Metrics) Init(topics []string, deadLetterReasons []string) {
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
	m.TimerFireDelay.WithLabelValues(metrics.FireLive)
	m.TimerFireDelay.WithLabelValues(metrics.FireCatchup)
}
