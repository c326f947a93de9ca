package sim

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BenchmarkGenerate measures generation alone: records in event-time order,
// no encoding. The figure that matters is events/s.
func BenchmarkGenerate(b *testing.B) {
	opts := Options{Seed: 1, Shops: 20, Rate: 10, Start: time.Date(2026, 11, 24, 0, 0, 0, 0, Shanghai())}
	n := 0
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if err := Generate(opts, func(Record) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(n)/float64(b.N), "events/op")
}

// BenchmarkAppendJSONL measures encoding one record as a JSONL line.
func BenchmarkAppendJSONL(b *testing.B) {
	var recs []Record
	opts := Options{Seed: 1, Start: time.Date(2026, 11, 24, 0, 0, 0, 0, Shanghai())}
	if err := Generate(opts, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		b.Fatal(err)
	}
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = AppendJSONL(buf[:0], &recs[i%len(recs)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkProduce measures generating, encoding and producing to an
// in-process Kafka-protocol broker (kfake) over loopback.
func BenchmarkProduce(b *testing.B) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, "cs.chat", "cs.orders", "cs.presence"))
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	w := NewWriter(cluster.ListenAddrs()[0])
	defer w.Close()
	opts := Options{Seed: 1, Shops: 20, Rate: 10, Start: time.Date(2026, 11, 24, 0, 0, 0, 0, Shanghai())}
	n := 0
	start := time.Now()
	for b.Loop() {
		p := NewProducer(context.Background(), w, DefaultTopics)
		if err := Generate(opts, p.Emit); err != nil {
			b.Fatal(err)
		}
		if err := p.Flush(); err != nil {
			b.Fatal(err)
		}
		n += int(p.Produced())
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
