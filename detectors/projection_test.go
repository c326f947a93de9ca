package detectors

import (
	"math"
	"testing"
	"time"

	"github.com/replywatch/replywatch/hours"
)

func TestDayShare(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	h := hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60})
	at := func(hm string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", "2026-11-24 "+hm, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// The share grows through the service window and is whole at its end.
	prev := -1.0
	for _, hm := range []string{"07:00", "08:00", "10:00", "12:00", "16:00", "20:00", "22:59", "23:00", "23:30"} {
		s := DayShare(h, at(hm))
		if s < prev || s < 0 || s > 1 {
			t.Errorf("share at %s = %v after %v", hm, s, prev)
		}
		prev = s
	}
	if s := DayShare(h, at("08:00")); s != 0 {
		t.Errorf("share at opening = %v, want 0", s)
	}
	if s := DayShare(h, at("23:00")); math.Abs(s-1) > 1e-9 {
		t.Errorf("share at closing = %v, want 1", s)
	}
	// From the curve by hand: 08:00–10:00 holds weights 3 and 5 of the
	// window's total.
	total := 0.0
	for hr := 8; hr < 23; hr++ {
		total += consultCurve[hr]
	}
	if s, want := DayShare(h, at("10:00")), 8/total; math.Abs(s-want) > 1e-9 {
		t.Errorf("share at 10:00 = %v, want %v", s, want)
	}

	p := ProjectEffective(h, at("10:00"), 40, 30)
	if !p.Projected || p.Rate != 0.75 || math.Abs(p.ProjectedConsulting-40*total/8) > 1e-6 {
		t.Errorf("at 10:00 with 30 of 40: %+v", p)
	}
	if p := ProjectEffective(h, at("10:00"), 0, 0); p.Projected || p.Consulting != 0 {
		t.Errorf("a projection with no consulting buyers: %+v", p)
	}
	if p := ProjectEffective(h, at("08:05"), 3, 1); p.Projected || p.Rate != 1.0/3 {
		t.Errorf("projected five minutes after opening: %+v", p)
	}
}
