package pipeline

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
)

// stormRecords returns one partition's share (one of twelve) of a bad day
// of conversations five-message conversations, as encoded records in
// offset order.
func stormRecords(b *testing.B, conversations int) [][]byte {
	b.Helper()
	var out [][]byte
	err := sim.Storm(sim.StormOptions{Seed: 7, Conversations: conversations, Start: stepStart}, func(r sim.Record) error {
		h := fnv.New32a()
		h.Write([]byte(r.Key))
		if r.Topic != event.Chat || h.Sum32()%12 != 0 {
			return nil
		}
		v, err := json.Marshal(&r.Event)
		out = append(out, v)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkStormBatch500 measures one 500-record batch of the bad day (many
// short conversations, most of them alerting) through what a partition
// worker does on the processor's side: decode, the batch step over a cache
// of 1,024 conversations that holds few of them (the others are read back
// from the store and derived again), and the step's encoding of states and
// alerts. The store's own work (a memory store here, Redis in production)
// is left out of the timing.
func BenchmarkStormBatch500(b *testing.B) {
	values := stormRecords(b, 60_000)
	loc := sim.Shanghai()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	h := ChatHandler{Engine: &detectors.Engine{Rules: func(string) *detectors.Rules { return rules }}}
	ctx := context.Background()
	var (
		s      *Step
		store  *state.Memory
		next   int
		alerts int
		events int
	)
	restart := func() {
		cache, _ := lru.New[string, Entity](1024)
		s = &Step{Handler: h, Cache: cache, Language: "zh", Location: func(string) *time.Location { return loc }, Log: zap.NewNop()}
		store = state.NewMemory()
		if _, err := store.Claim(ctx, "chat.0", 1); err != nil {
			b.Fatal(err)
		}
		next = 0
	}
	restart()
	recs := make([]Record, 0, 500)
	b.ReportAllocs()
	for b.Loop() {
		if next+500 > len(values) {
			b.StopTimer()
			restart()
			b.StartTimer()
		}
		recs = recs[:0]
		for _, v := range values[next : next+500] {
			ev, err := event.Decode(event.Chat, v, stepStart.Add(24*time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, Record{Event: ev, Offset: int64(next + len(recs)), Key: ev.Key(event.Chat)})
		}
		next += 500
		now := recs[len(recs)-1].Event.TS.Add(-time.Second)
		b.StopTimer()
		loaded, err := store.Load(ctx, "chat.0", s.Uncached(recs, nil), now.UnixMilli()-1, 1000)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		out, err := s.Run(&Input{Records: recs, Stored: loaded.States, Due: loaded.Due, Now: now, Wall: now})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		out.Batch.Token, out.Batch.Offset, out.Batch.Now, out.Batch.Lease = 1, int64(next-1), now.UnixMilli(), time.Minute
		if _, err := store.ApplyLoad(ctx, "chat.0", &out.Batch, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		alerts += len(out.Alerts)
		events += len(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1000/float64(events), "µs/event")
	b.ReportMetric(float64(alerts)/float64(events), "alerts/event")
}

// BenchmarkRepartitionFact measures the repartition stage's work for one
// chat record of the bad day: decode, the join's fact, its key and JSON.
func BenchmarkRepartitionFact(b *testing.B) {
	values := stormRecords(b, 20_000)
	r := NewRepartitioner(RepartitionConfig{Buyers: "cs.buyers"}, nil, zap.NewNop())
	r.Now = func() time.Time { return stepStart.Add(24 * time.Hour) }
	buf := make([]byte, 0, 256*500)
	var ev event.Event
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%500 == 0 {
			buf = buf[:0]
		}
		if _, ok := r.fact(event.Chat, values[i%len(values)], &ev, &buf); !ok && i < len(values) {
			b.Fatalf("no fact for %s", values[i%len(values)])
		}
		i++
	}
}
