package metrics

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RedisMemory exports the memory Redis uses and its limit, read with INFO
// memory at each scrape, so that the SRE dashboard shows Redis filling up
// (state that would then be refused) without a separate redis_exporter.
// With Sentinel it is the primary; with Cluster, the node that answers.
type RedisMemory struct {
	// Info returns the text of INFO memory.
	Info    func(ctx context.Context) (string, error)
	Timeout time.Duration

	used, limit *prometheus.Desc
}

// NewRedisMemory creates the collector; register it on the registry.
func NewRedisMemory(info func(ctx context.Context) (string, error)) *RedisMemory {
	return &RedisMemory{
		Info:    info,
		Timeout: time.Second,
		used: prometheus.NewDesc("replywatch_redis_used_memory_bytes",
			"Memory Redis has allocated (INFO memory used_memory), read at scrape.", nil, nil),
		limit: prometheus.NewDesc("replywatch_redis_maxmemory_bytes",
			"Redis's maxmemory (INFO memory maxmemory; 0: no limit), read at scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *RedisMemory) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.used
	ch <- m.limit
}

// Collect implements prometheus.Collector. When Redis does not answer in
// time the series are absent from this scrape (replywatch_redis_errors_total
// and /readyz say why).
func (m *RedisMemory) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	text, err := m.Info(ctx)
	if err != nil {
		return
	}
	fields := infoFields(text)
	for desc, key := range map[*prometheus.Desc]string{m.used: "used_memory", m.limit: "maxmemory"} {
		if v, err := strconv.ParseFloat(fields[key], 64); err == nil {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
		}
	}
}

// infoFields reads the "key:value" lines of an INFO reply.
func infoFields(text string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
