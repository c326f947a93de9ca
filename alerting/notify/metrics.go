package notify

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the notifier's metrics (CONTRACT.md §7), registered on an
// injected Registerer.
type Metrics struct {
	// Deliveries is replywatch_alert_deliveries_total{sink,result}, shared
	// with the processor's Kafka sink when both run in one process.
	Deliveries *prometheus.CounterVec
	Delay      *prometheus.HistogramVec
	Pending    *prometheus.GaugeVec
	// Memory is how many keys a receiver's lane remembers (queued alerts,
	// priority and inhibited marks): bounded by age and by count.
	Memory  *prometheus.GaugeVec
	Records *prometheus.CounterVec
	// ConfigErrors counts vendor answers that are configuration errors.
	ConfigErrors *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg. deliveries,
// when not nil, is the process's replywatch_alert_deliveries_total (the
// processor counts its Kafka sink there); otherwise it is created here.
func NewMetrics(reg prometheus.Registerer, deliveries *prometheus.CounterVec) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_alert_deliveries_total",
			Help: "Alert deliveries by sink and result.",
		}, []string{"sink", "result"}),
		Delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replywatch_notify_delay_seconds",
			Help:    "Time from an alert's emitted_at to its acceptance by the receiver.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"sink"}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_notify_pending",
			Help: "Alerts queued for a receiver: grouped, waiting for its budget or being sent.",
		}, []string{"sink"}),
		Memory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "replywatch_notify_memory_entries",
			Help: "Keys the notifier remembers for a receiver (alerts queued lately, escalated waits, inhibited alerts), at most " + strconv.Itoa(seenMax) + ".",
		}, []string{"sink"}),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_notify_records_total",
			Help: "Alert records the notifier read, by result (routed, unrouted, invalid).",
		}, []string{"result"}),
		ConfigErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replywatch_notify_config_errors_total",
			Help: "Receiver answers that say its configuration is wrong (signature, keyword, token).",
		}, []string{"sink"}),
	}
	if deliveries != nil {
		m.Deliveries = deliveries
	} else {
		reg.MustRegister(m.Deliveries)
	}
	reg.MustRegister(m.Delay, m.Pending, m.Memory, m.Records, m.ConfigErrors)
	return m
}

// init creates every series of a receiver, so dashboards and rules see
// zeros rather than nothing.
func (m *Metrics) init(sink string) {
	for _, r := range []string{resultSent, resultFailed, resultRetried, resultDigested, resultStale, resultDuplicate, resultInhibited} {
		m.Deliveries.WithLabelValues(sink, r)
	}
	m.Pending.WithLabelValues(sink)
	m.Memory.WithLabelValues(sink)
	m.Delay.WithLabelValues(sink)
	m.ConfigErrors.WithLabelValues(sink)
	for _, r := range []string{"routed", "unrouted", "invalid"} {
		m.Records.WithLabelValues(r)
	}
}
