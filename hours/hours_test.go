package hours

import (
	"testing"
	"time"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.000", s, shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

var pdd = MustNew(shanghai, Range{8 * 60, 23 * 60})

var openCases = []struct {
	name string
	s    *Schedule
	t    string
	open bool
}{
	{"before opening", pdd, "2026-11-24 07:59:59.999", false},
	{"at opening", pdd, "2026-11-24 08:00:00.000", true},
	{"last instant", pdd, "2026-11-24 22:59:59.999", true},
	{"at closing", pdd, "2026-11-24 23:00:00.000", false},
	{"24:00 end, late", MustNew(shanghai, Range{8 * 60, 24 * 60}), "2026-11-24 23:59:59.999", true},
	{"24:00 end, midnight", MustNew(shanghai, Range{8 * 60, 24 * 60}), "2026-11-25 00:00:00.000", false},
	{"split shift, lunch gap", MustNew(shanghai, Range{9 * 60, 12 * 60}, Range{13 * 60, 22 * 60}), "2026-11-24 12:30:00.000", false},
	{"split shift, afternoon", MustNew(shanghai, Range{9 * 60, 12 * 60}, Range{13 * 60, 22 * 60}), "2026-11-24 13:00:00.000", true},
}

func TestOpen(t *testing.T) {
	for _, c := range openCases {
		if got := c.s.Open(at(c.t)); got != c.open {
			t.Errorf("%s: Open(%s) = %v, want %v", c.name, c.t, got, c.open)
		}
	}
}

func TestExceptionsAndNextOpen(t *testing.T) {
	s, err := New(shanghai, []Range{{8 * 60, 23 * 60}}, map[string][]Range{"2026-11-25": nil, "2026-11-26": {{10 * 60, 12 * 60}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Open(at("2026-11-25 10:00:00.000")) {
		t.Error("closed holiday is open")
	}
	if !s.Open(at("2026-11-26 11:00:00.000")) || s.Open(at("2026-11-26 09:00:00.000")) {
		t.Error("exception hours not applied")
	}
	got := s.NextOpen(at("2026-11-24 23:30:00.000"))
	if want := at("2026-11-26 10:00:00.000"); !got.Equal(want) {
		t.Errorf("NextOpen across a closed day = %s, want %s", got, want)
	}
	if got := s.NextOpen(at("2026-11-24 09:00:00.000")); !got.Equal(at("2026-11-24 09:00:00.000")) {
		t.Errorf("NextOpen while open = %s", got)
	}
}

func TestDayAndMidnightInOtherZone(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	s := MustNew(ny, Range{8 * 60, 23 * 60})
	utc := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC) // 22:00 on the 23rd in New York
	if d := s.Day(utc); d != "2026-11-23" {
		t.Errorf("Day = %s", d)
	}
	if !s.Open(utc) {
		t.Error("22:00 New York should be open")
	}
	want := time.Date(2026, 11, 24, 0, 0, 0, 0, ny)
	if got := s.NextMidnight(utc); !got.Equal(want) {
		t.Errorf("NextMidnight = %s, want %s", got, want)
	}
}

var badRanges = []struct{ start, end, err string }{
	{"8:00", "23:00", `start: "8:00" is not HH:MM`},
	{"24:00", "24:00", `start: "24:00": 24:00 is only valid as an end`},
	{"23:00", "08:00", "end 08:00 is not after start 23:00"},
	{"08:00", "24:30", `end: "24:30" is not a time of day between 00:00 and 24:00`},
	{"08:60", "09:00", `start: "08:60" is not a time of day between 00:00 and 24:00`},
}

func TestParseRangeErrors(t *testing.T) {
	for _, c := range badRanges {
		_, err := ParseRange(c.start, c.end)
		if err == nil || err.Error() != c.err {
			t.Errorf("ParseRange(%s,%s) = %v, want %q", c.start, c.end, err, c.err)
		}
	}
	if r, err := ParseRange("08:00", "24:00"); err != nil || r != (Range{480, 1440}) {
		t.Errorf("24:00 end: %v %v", r, err)
	}
}

var openBetweenCases = []struct {
	name     string
	s        *Schedule
	from, to string
	want     time.Duration
}{
	{"inside one range", pdd, "2026-11-24 10:00:00.000", "2026-11-24 10:05:00.000", 5 * time.Minute},
	{"across closing", pdd, "2026-11-24 22:59:30.000", "2026-11-24 23:10:00.000", 30 * time.Second},
	{"across the night", pdd, "2026-11-24 22:00:00.000", "2026-11-25 09:00:00.000", 2 * time.Hour},
	{"lunch gap left out", MustNew(shanghai, Range{9 * 60, 12 * 60}, Range{13 * 60, 22 * 60}),
		"2026-11-24 11:50:00.000", "2026-11-24 13:05:00.000", 15 * time.Minute},
	{"empty interval", pdd, "2026-11-24 10:00:00.000", "2026-11-24 09:00:00.000", 0},
}

func TestOpenBetweenAndSpan(t *testing.T) {
	for _, c := range openBetweenCases {
		if got := c.s.OpenBetween(at(c.from), at(c.to)); got != c.want {
			t.Errorf("%s: OpenBetween = %s, want %s", c.name, got, c.want)
		}
	}
	split := MustNew(shanghai, Range{9 * 60, 12 * 60}, Range{13 * 60, 22 * 60})
	a, b, ok := split.Span(at("2026-11-24 13:30:00.000"))
	if !ok || !a.Equal(at("2026-11-24 13:00:00.000")) || !b.Equal(at("2026-11-24 22:00:00.000")) {
		t.Errorf("Span in the afternoon shift = %s, %s, %v", a, b, ok)
	}
	if _, _, ok := split.Span(at("2026-11-24 12:30:00.000")); ok {
		t.Error("Span in the lunch gap is open")
	}
}

// Date gives the same string as formatting the day, whatever days were
// asked for before (its cache holds few).
func TestDate(t *testing.T) {
	for _, tm := range []time.Time{time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)} {
		for i := range 400 {
			d := tm.AddDate(0, 0, i*37%400)
			if got, want := Date(d.Date()), d.Format(time.DateOnly); got != want {
				t.Fatalf("Date(%v) = %s, want %s", d, got, want)
			}
		}
	}
}
