package metrics

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
		s := dayShare(h, at(hm))
		if s < prev || s < 0 || s > 1 {
			t.Errorf("share at %s = %v after %v", hm, s, prev)
		}
		prev = s
	}
	if s := dayShare(h, at("08:00")); s != 0 {
		t.Errorf("share at opening = %v, want 0", s)
	}
	if s := dayShare(h, at("23:00")); math.Abs(s-1) > 1e-9 {
		t.Errorf("share at closing = %v, want 1", s)
	}
	// From the curve by hand: 08:00–10:00 holds weights 3 and 5 of the
	// window's total.
	total := 0.0
	for hr := 8; hr < 23; hr++ {
		total += consultCurve[hr]
	}
	if s, want := dayShare(h, at("10:00")), 8/total; math.Abs(s-want) > 1e-9 {
		t.Errorf("share at 10:00 = %v, want %v", s, want)
	}

	rate, proj, ok, projected := effectiveReply(h, at("10:00"), 40, 30)
	if !ok || !projected || rate != 0.75 || math.Abs(proj-40*total/8) > 1e-6 {
		t.Errorf("at 10:00 with 30 of 40: rate %v, projected consulting %v (%v %v)", rate, proj, ok, projected)
	}
	if _, _, ok, _ := effectiveReply(h, at("10:00"), 0, 0); ok {
		t.Error("a rate with no consulting buyers")
	}
	if _, _, ok, projected := effectiveReply(h, at("08:05"), 3, 1); !ok || projected {
		t.Error("projected five minutes after opening")
	}
}
