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
