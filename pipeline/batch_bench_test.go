package pipeline

import (
	"hash/fnv"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/sim"
)

// simBatches returns n batches of 500 chat events of one partition's share
// of a simulated busy shop day from 10:00, in order.
func simBatches(b *testing.B, n int) [][]Record {
	b.Helper()
	loc := sim.Shanghai()
	opts := sim.Options{Seed: 11, Shops: 40, Agents: 30, Rate: 2,
		Start: time.Date(2026, 11, 11, 10, 0, 0, 0, loc), End: time.Date(2026, 11, 11, 14, 0, 0, 0, loc)}
	var all []Record
	err := sim.Generate(opts, func(r sim.Record) error {
		// One partition of twelve sees every twelfth conversation.
		h := fnv.New32a()
		h.Write([]byte(r.Key))
		if r.Topic != event.Chat || h.Sum32()%12 != 0 {
			return nil
		}
		ev := r.Event
		all = append(all, Record{Event: &ev, Offset: int64(len(all)), Key: r.Key})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(all) < 500*n {
		b.Fatalf("the simulated day has %d events for this partition, want %d", len(all), 500*n)
	}
	out := make([][]Record, n)
	for i := range out {
		out[i] = all[500*i : 500*(i+1)]
	}
	return out
}

// BenchmarkBatchBuild500 measures one 500-event batch through the batch
// step: the rules over every event, due timers, encoding the dirty
// conversations, alert summaries and JSON, and the state.Batch. Nothing is
// stored, so after a pass over the batches the cache is emptied and the
// conversations start again.
func BenchmarkBatchBuild500(b *testing.B) {
	loc := sim.Shanghai()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	benchStep(b, ChatHandler{Engine: &detectors.Engine{Rules: func(string) *detectors.Rules { return rules }}})
}

// benchStep runs 500-event batches of a simulated day through a Step of h.
func benchStep(b *testing.B, h Handler) {
	batches := simBatches(b, 40)
	loc := sim.Shanghai()
	cache, _ := lru.New[string, Entity](1024)
	s := &Step{Handler: h, Cache: cache, Language: "zh", Location: func(string) *time.Location { return loc }, Log: zap.NewNop()}
	alerts, stateBytes, outboxBytes, figures := 0, 0, 0, 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := i % len(batches)
		if k == 0 {
			cache.Purge()
		}
		recs := batches[k]
		now := recs[len(recs)-1].Event.TS.Add(-2 * time.Second)
		out, err := s.Run(&Input{Records: recs, Now: now, Wall: now})
		if err != nil {
			b.Fatal(err)
		}
		alerts += len(out.Alerts)
		figures += len(out.Batch.Figures)
		for k, v := range out.Batch.States {
			stateBytes += len(k) + len(v)
		}
		for _, d := range out.Batch.Outbox {
			outboxBytes += len(d.Key) + len(d.Payload)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(alerts)/float64(b.N), "alerts/batch")
	// What the batch gives Redis to write, per event.
	b.ReportMetric(float64(stateBytes)/float64(b.N*500), "state-B/event")
	b.ReportMetric(float64(outboxBytes)/float64(b.N*500), "outbox-B/event")
	b.ReportMetric(float64(figures)/float64(b.N*500), "figures/event")
}
