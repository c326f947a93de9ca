package state_test

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
)

// realBatches runs n batches of 500 simulated chat events of one
// partition through the reply rules, as the pipeline does, and returns
// each batch's changes with the keys it touched.
func realBatches(b *testing.B, n int) ([]*state.Batch, [][]string) {
	b.Helper()
	loc := sim.Shanghai()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	engine := &detectors.Engine{Rules: func(string) *detectors.Rules { return rules }}
	opts := sim.Options{Seed: 11, Shops: 40, Agents: 30, Rate: 2,
		Start: time.Date(2026, 11, 11, 10, 0, 0, 0, loc), End: time.Date(2026, 11, 11, 14, 0, 0, 0, loc)}
	var evs []sim.Record
	err := sim.Generate(opts, func(r sim.Record) error {
		h := fnv.New32a()
		h.Write([]byte(r.Key))
		if r.Topic == event.Chat && h.Sum32()%12 == 0 && len(evs) < 500*n {
			evs = append(evs, r)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(evs) < 500*n {
		b.Fatalf("%d simulated events for the partition, want %d", len(evs), 500*n)
	}
	convs := map[string]*detectors.Conversation{}
	batches := make([]*state.Batch, n)
	keys := make([][]string, n)
	for i := range batches {
		var fx detectors.Effects
		dirty := map[string]*detectors.Conversation{}
		chunk := evs[500*i : 500*(i+1)]
		for j := range chunk {
			r := &chunk[j]
			c := convs[r.Key]
			if c == nil {
				shop, buyer, _ := strings.Cut(r.Key, "/")
				c = &detectors.Conversation{Shop: shop, Buyer: buyer}
				convs[r.Key] = c
			}
			engine.Chat(c, &r.Event, &fx)
			dirty[r.Key] = c
		}
		now := chunk[len(chunk)-1].Event.TS.Add(-2 * time.Second)
		bt := &state.Batch{Token: 1, Now: now.UnixMilli(), Lease: 30 * time.Second,
			States: map[string][]byte{}, Timers: map[string]int64{}}
		for k, c := range dirty {
			engine.Advance(c, now, &fx)
			blob, err := c.MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			bt.States[k] = blob
			bt.Timers[k] = 0
			if d, ok := engine.NextDue(c); ok {
				bt.Timers[k] = d.UnixMilli()
			}
			keys[i] = append(keys[i], k)
		}
		bt.Figures, bt.Waits, bt.Activity = fx.Figures, fx.Waits, fx.Activity
		for _, a := range fx.Alerts {
			payload, err := json.Marshal(a)
			if err != nil {
				b.Fatal(err)
			}
			bt.Outbox = append(bt.Outbox, state.Delivery{Key: a.Key(), Payload: payload})
		}
		batches[i] = bt
	}
	return batches, keys
}

// stepBenchCases are the pipeline's two kinds of step: every conversation
// of the batch cached (one round trip, Apply), or none (Load, then Apply),
// which is every step of a backlog replay with many new buyers.
var stepBenchCases = []struct {
	name string
	load bool
}{
	{"apply", false},
	{"load+apply", true},
}

// BenchmarkStep500 writes 500-event batches built by the reply rules from
// simulated traffic to a real redis-server whose partition already holds
// the conversations' states.
func BenchmarkStep500(b *testing.B) {
	batches, keys := realBatches(b, 20)
	for _, tc := range stepBenchCases {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			c := redis.NewClient(&redis.Options{Addr: testenv.RedisServer(b).Addr})
			defer c.Close()
			s := state.NewRedis(c, "rw", 72*time.Hour)
			if _, err := s.Claim(ctx, "chat.0", 1); err != nil {
				b.Fatal(err)
			}
			offset := int64(0)
			write := func(i int) {
				k := i % len(batches)
				if tc.load {
					if _, err := s.Load(ctx, "chat.0", keys[k], 0, 0); err != nil {
						b.Fatal(err)
					}
				}
				bt := batches[k]
				offset += 500
				bt.Offset = offset
				if _, err := s.Apply(ctx, "chat.0", bt); err != nil {
					b.Fatal(err)
				}
			}
			for i := range batches { // the states exist before timing
				write(i)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				write(i)
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
