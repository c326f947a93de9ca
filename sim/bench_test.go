package sim

import (
	"testing"
	"time"
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
