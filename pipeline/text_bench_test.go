package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/text"
)

// BenchmarkBatchBuild500Text is BenchmarkBatchBuild500 with the text rules
// on (default lexicons): with it, the two give the text rules' share of the
// worker's CPU per batch.
func BenchmarkBatchBuild500Text(b *testing.B) {
	batches := simBatches(b, 40)
	loc := sim.Shanghai()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	rf := func(string) *detectors.Rules { return rules }
	lex, err := text.Default()
	if err != nil {
		b.Fatal(err)
	}
	m, err := text.Compile(lex)
	if err != nil {
		b.Fatal(err)
	}
	text.Warm()
	tr := &detectors.TextRules{Matcher: m}
	h := ChatHandler{Engine: &detectors.Engine{Rules: rf}, Text: &detectors.TextEngine{Text: func(string) *detectors.TextRules { return tr }, Rules: rf}}
	p := New(Options{
		Config:   Config{Brokers: []string{"127.0.0.1:9"}},
		Store:    discardStore{},
		Handlers: map[event.Stream]Handler{event.Chat: h},
		Alerts:   discardSink{},
		DLT:      discardSink{},
		Metrics:  metrics.NewProcess(prometheus.NewRegistry()),
		Location: func(string) *time.Location { return loc },
	})
	w := p.newWorker(nil, "cs.chat", event.Chat, 0, 1)
	ctx := context.Background()
	alerts := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := i % len(batches)
		if k == 0 {
			w.cache.Purge()
		}
		w.items = append(w.items[:0], batches[k]...)
		last := w.items[len(w.items)-1]
		now := last.ev.TS.Add(-2 * time.Second)
		if err := w.apply(ctx, now, now, last.offset, false, nil); err != nil {
			b.Fatal(err)
		}
		alerts += len(w.fx.Alerts)
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(alerts)/float64(b.N), "alerts/batch")
}
