package pipeline

import (
	"context"
	"hash/fnv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
)

// discardStore keeps nothing: Load finds no state and Apply accepts the
// batch, so a benchmark sees only the pipeline's own work.
type discardStore struct{ state.Store }

func (discardStore) Load(context.Context, string, []string, int64, int) (state.Loaded, error) {
	return state.Loaded{}, nil
}

func (discardStore) Apply(context.Context, string, *state.Batch) (int64, error) { return 0, nil }

type discardSink struct{}

func (discardSink) Deliver(context.Context, []state.Delivery) error { return nil }

func (discardSink) DeadLetter(context.Context, []DeadLetter) error { return nil }

// simBatches returns n batches of 500 chat events of one partition's share
// of a simulated busy shop day from 10:00, in order.
func simBatches(b *testing.B, n int) [][]item {
	b.Helper()
	loc := sim.Shanghai()
	opts := sim.Options{Seed: 11, Shops: 40, Agents: 30, Rate: 2,
		Start: time.Date(2026, 11, 11, 10, 0, 0, 0, loc), End: time.Date(2026, 11, 11, 14, 0, 0, 0, loc)}
	var all []item
	err := sim.Generate(opts, func(r sim.Record) error {
		// One partition of twelve sees every twelfth conversation.
		h := fnv.New32a()
		h.Write([]byte(r.Key))
		if r.Topic != event.Chat || h.Sum32()%12 != 0 {
			return nil
		}
		ev := r.Event
		all = append(all, item{ev: &ev, offset: int64(len(all)), key: r.Key})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(all) < 500*n {
		b.Fatalf("the simulated day has %d events for this partition, want %d", len(all), 500*n)
	}
	out := make([][]item, n)
	for i := range out {
		out[i] = all[500*i : 500*(i+1)]
	}
	return out
}

// BenchmarkBatchBuild500 measures one 500-event batch through the worker's
// step up to the store call: the rules over every event, due timers,
// encoding the dirty conversations, summing figure deltas, alert summaries
// and JSON, and the state.Batch. The store keeps nothing, so after a pass
// over the batches the cache is emptied and the conversations start again.
func BenchmarkBatchBuild500(b *testing.B) {
	batches := simBatches(b, 40)
	loc := sim.Shanghai()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	engine := &detectors.Engine{Rules: func(string) *detectors.Rules { return rules }}
	p := New(Options{
		Config:   Config{Brokers: []string{"127.0.0.1:9"}},
		Store:    discardStore{},
		Handlers: map[event.Stream]Handler{event.Chat: ChatHandler{Engine: engine}},
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
