package pipeline

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

var clockCases = []struct {
	name  string
	steps []clockStep
}{
	{"behind follows event time minus allowance", []clockStep{
		{observe: t0, behind: true, wall: t0.Add(time.Hour), want: t0.Add(-2 * time.Second)},
		{observe: t0.Add(time.Minute), behind: true, wall: t0.Add(time.Hour), want: t0.Add(58 * time.Second)},
	}},
	{"caught up follows wall minus grace", []clockStep{
		{observe: t0, behind: true, wall: t0.Add(time.Hour), want: t0.Add(-2 * time.Second)},
		{behind: false, wall: t0.Add(time.Hour), want: t0.Add(time.Hour - 2*time.Second)},
	}},
	{"never goes backwards", []clockStep{
		{behind: false, wall: t0.Add(time.Hour), want: t0.Add(time.Hour - 2*time.Second)},
		{observe: t0, behind: true, wall: t0.Add(time.Hour), want: t0.Add(time.Hour - 2*time.Second)},
	}},
	{"future-stamped events cannot push it past the wall rule", []clockStep{
		{observe: t0.Add(24 * time.Hour), behind: true, wall: t0, want: t0.Add(-2 * time.Second)},
	}},
	{"behind with nothing seen stays put", []clockStep{
		{behind: true, wall: t0, want: time.Time{}},
	}},
}

type clockStep struct {
	observe time.Time
	behind  bool
	wall    time.Time
	want    time.Time
}

func TestClock(t *testing.T) {
	for _, c := range clockCases {
		clk := Clock{Grace: 2 * time.Second, Allowance: 2 * time.Second}
		for i, s := range c.steps {
			if !s.observe.IsZero() {
				clk.Observe(s.observe)
			}
			if got := clk.Advance(s.behind, s.wall); !got.Equal(s.want) {
				t.Errorf("%s step %d: clock %s, want %s", c.name, i, got, s.want)
			}
		}
	}
}

// A bounded clock (the buyer join's) passes neither the wall rule nor the
// limit, and a limit takes effect only once the records it covers are read.
func TestBoundedClock(t *testing.T) {
	type step struct {
		limit  time.Time // given when not zero, covering the records before from
		from   int64
		read   int64 // offset of the next record to read
		behind bool
		want   time.Time
	}
	wall := t0.Add(time.Hour)
	cases := []struct {
		name  string
		steps []step
	}{
		{"stands still without a limit, even caught up", []step{
			{read: 10, want: time.Time{}},
		}},
		{"a limit waits for its records", []step{
			{limit: t0, from: 20, read: 10, want: time.Time{}},
			{read: 19, want: time.Time{}},
			{read: 20, want: t0},
		}},
		{"caught up, the limit holds the wall rule back", []step{
			{limit: t0, from: 0, read: 0, want: t0},
			{limit: t0.Add(time.Minute), from: 5, read: 5, want: t0.Add(time.Minute)},
		}},
		{"a limit past the wall rule leaves it", []step{
			{limit: wall, from: 0, read: 0, want: wall.Add(-2 * time.Second)},
		}},
		{"never goes backwards when the limit does", []step{
			{limit: t0.Add(time.Minute), from: 0, read: 0, want: t0.Add(time.Minute)},
			{limit: t0, from: 0, read: 0, want: t0.Add(time.Minute)},
		}},
	}
	for _, c := range cases {
		clk := Clock{Grace: 2 * time.Second, Allowance: 2 * time.Second}
		clk.Bound()
		for i, s := range c.steps {
			if !s.limit.IsZero() {
				clk.Limit(s.limit, s.from)
			}
			clk.Read(s.read)
			if got := clk.Advance(s.behind, wall); !got.Equal(s.want) {
				t.Errorf("%s step %d: clock %s, want %s", c.name, i, got, s.want)
			}
		}
	}
}
