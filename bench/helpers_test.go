package bench

import (
	"math"
	"testing"
	"time"
)

// percentileCases use nearest-rank percentiles of sorted samples.
var percentileCases = []struct {
	xs   []float64
	q    float64
	want float64
}{
	{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
	{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.99, 10},
	{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
	{[]float64{7}, 0.99, 7},
	{[]float64{1, 2}, 1, 2},
}

func TestPercentile(t *testing.T) {
	for _, tc := range percentileCases {
		if got := percentile(tc.xs, tc.q); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
	if !math.IsNaN(percentile(nil, 0.5)) {
		t.Error("the percentile of no samples is not NaN")
	}
}

// every lists times from..to (ms) step apart, then more.
func every(from, to, step int, more ...int) []int {
	var out []int
	for m := from; m <= to; m += step {
		out = append(out, m)
	}
	return append(out, more...)
}

// pauseCases are partitions' applied-batch times (ms after t0) and the
// pause they show for an event at 1000 ms, in a window to 3000 ms,
// observed until 5000 ms.
var pauseCases = []struct {
	name  string
	moves [][]int
	want  time.Duration
	part  int
}{
	{"steady", [][]int{every(0, 5000, 50)}, 50 * time.Millisecond, 0},
	{"stopped across the event", [][]int{every(0, 5000, 50), append(every(0, 980, 20), every(1700, 5000, 20)...)}, 720 * time.Millisecond, 1},
	{"never resumed", [][]int{every(0, 5000, 50), every(0, 990, 10)}, 4010 * time.Millisecond, 1},
	{"pause before the window does not count", [][]int{append([]int{0}, every(800, 5000, 100)...)}, 100 * time.Millisecond, 0},
	{"pause after the window does not count", [][]int{append(every(0, 3000, 100), 4900)}, 100 * time.Millisecond, 0},
}

func TestPause(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range pauseCases {
		tr := &offsetTracker{moves: make([][]time.Time, len(tc.moves))}
		for p, ms := range tc.moves {
			for _, m := range ms {
				tr.moves[p] = append(tr.moves[p], at(m))
			}
		}
		got, part := tr.pause(at(1000), at(3000), at(5000))
		if got != tc.want || part != tc.part {
			t.Errorf("%s: pause %s on partition %d, want %s on %d", tc.name, got, part, tc.want, tc.part)
		}
	}
}
