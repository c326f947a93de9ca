// Package hours owns service windows as data: daily time ranges in a shop's
// IANA time zone, several ranges for split shifts, "24:00" as an end, and
// dated exceptions (holidays). It answers "is this instant inside the
// window", "when does it next open" and "which shop-local day is this".
package hours

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Range is a daily range [Start, End) in minutes after shop-local midnight.
// End may be 1440 (24:00).
type Range struct{ Start, End int }

// ParseRange parses "HH:MM" start and end; "24:00" is a valid end only.
func ParseRange(start, end string) (Range, error) {
	s, err := parseClock(start, false)
	if err != nil {
		return Range{}, fmt.Errorf("start: %w", err)
	}
	e, err := parseClock(end, true)
	if err != nil {
		return Range{}, fmt.Errorf("end: %w", err)
	}
	if e <= s {
		return Range{}, fmt.Errorf("end %s is not after start %s", end, start)
	}
	return Range{s, e}, nil
}

func parseClock(v string, isEnd bool) (int, error) {
	h, m, ok := strings.Cut(v, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || mm < 0 || mm > 59 || hh < 0 || hh > 24 || (hh == 24 && (mm != 0 || !isEnd)) {
		if hh == 24 && !isEnd {
			return 0, fmt.Errorf("%q: 24:00 is only valid as an end", v)
		}
		return 0, fmt.Errorf("%q is not a time of day between 00:00 and 24:00", v)
	}
	return hh*60 + mm, nil
}

func (r Range) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", r.Start/60, r.Start%60, r.End/60, r.End%60)
}

// Schedule is a shop's service window.
type Schedule struct {
	Loc    *time.Location
	Ranges []Range
	// Exceptions replace Ranges on the given shop-local dates ("2006-01-02");
	// an empty slice closes the whole day.
	Exceptions map[string][]Range
}

// New builds a schedule, sorting ranges and rejecting overlaps.
func New(loc *time.Location, ranges []Range, exceptions map[string][]Range) (*Schedule, error) {
	if loc == nil {
		return nil, fmt.Errorf("no time zone")
	}
	s := &Schedule{Loc: loc, Ranges: sorted(ranges), Exceptions: map[string][]Range{}}
	if err := checkOverlap(s.Ranges); err != nil {
		return nil, err
	}
	for d, rs := range exceptions {
		if _, err := time.ParseInLocation(time.DateOnly, d, loc); err != nil {
			return nil, fmt.Errorf("exception date %q is not YYYY-MM-DD", d)
		}
		rs = sorted(rs)
		if err := checkOverlap(rs); err != nil {
			return nil, fmt.Errorf("exception %s: %w", d, err)
		}
		s.Exceptions[d] = rs
	}
	return s, nil
}

// MustNew is New for literals in tests and defaults.
func MustNew(loc *time.Location, ranges ...Range) *Schedule {
	s, err := New(loc, ranges, nil)
	if err != nil {
		panic(err)
	}
	return s
}

func sorted(rs []Range) []Range {
	out := append([]Range(nil), rs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

func checkOverlap(rs []Range) error {
	for i := 1; i < len(rs); i++ {
		if rs[i].Start < rs[i-1].End {
			return fmt.Errorf("ranges %s and %s overlap", rs[i-1], rs[i])
		}
	}
	return nil
}

func (s *Schedule) rangesOn(day string) []Range {
	if rs, ok := s.Exceptions[day]; ok {
		return rs
	}
	return s.Ranges
}

// midnight returns shop-local midnight of t's day.
func (s *Schedule) midnight(t time.Time) time.Time {
	y, m, d := t.In(s.Loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.Loc)
}

// at returns the instant minute m after the local midnight mid (DST-safe:
// computed from the wall clock, not by adding durations).
func (s *Schedule) at(mid time.Time, m int) time.Time {
	return time.Date(mid.Year(), mid.Month(), mid.Day(), 0, m, 0, 0, s.Loc)
}

// Day is the shop-local calendar day of t, "2006-01-02".
func (s *Schedule) Day(t time.Time) string {
	y, m, d := t.In(s.Loc).Date()
	return Date(y, m, d)
}

// dates caches the strings of recent calendar days: a process works on a
// few days, and asks for their strings for every event. An entry is
// replaced whole, so a reader sees a day and its string together.
var dates [64]atomic.Pointer[dateEntry]

type dateEntry struct {
	key int
	s   string
}

// Date is the calendar day y-m-d as "2006-01-02" (time.DateOnly), without
// formatting it again for a day asked for lately.
func Date(y int, m time.Month, d int) string {
	key := (y*13+int(m))*32 + d
	slot := &dates[key&63]
	if e := slot.Load(); e != nil && e.key == key {
		return e.s
	}
	e := &dateEntry{key: key, s: time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)}
	slot.Store(e)
	return e.s
}

// NextMidnight is the first shop-local midnight strictly after t.
func (s *Schedule) NextMidnight(t time.Time) time.Time {
	m := s.midnight(t)
	return time.Date(m.Year(), m.Month(), m.Day()+1, 0, 0, 0, 0, s.Loc)
}

// Open reports whether t is inside the service window.
func (s *Schedule) Open(t time.Time) bool {
	y, m, d := t.In(s.Loc).Date()
	mid := time.Date(y, m, d, 0, 0, 0, 0, s.Loc)
	for _, r := range s.rangesOn(Date(y, m, d)) {
		if !t.Before(s.at(mid, r.Start)) && t.Before(s.at(mid, r.End)) {
			return true
		}
	}
	return false
}

// NextOpen is t when the window is open at t, otherwise the next instant it
// opens. It looks at most 400 days ahead and returns the zero time when the
// window never opens in that span.
func (s *Schedule) NextOpen(t time.Time) time.Time {
	if s.Open(t) {
		return t
	}
	mid := s.midnight(t)
	for i := 0; i < 400; i++ {
		day := time.Date(mid.Year(), mid.Month(), mid.Day()+i, 0, 0, 0, 0, s.Loc)
		for _, r := range s.rangesOn(day.Format(time.DateOnly)) {
			if open := s.at(day, r.Start); open.After(t) {
				return open
			}
		}
	}
	return time.Time{}
}

// Span is the range of the window that t is in: when it opened and when it
// closes. ok is false when the window is closed at t.
func (s *Schedule) Span(t time.Time) (start, end time.Time, ok bool) {
	mid := s.midnight(t)
	for _, r := range s.rangesOn(s.Day(t)) {
		if a, b := s.at(mid, r.Start), s.at(mid, r.End); !t.Before(a) && t.Before(b) {
			return a, b, true
		}
	}
	return time.Time{}, time.Time{}, false
}

// OpenBetween is how much of [from, to) lies inside the service window.
func (s *Schedule) OpenBetween(from, to time.Time) time.Duration {
	var d time.Duration
	for mid := s.midnight(from); mid.Before(to); mid = s.NextMidnight(mid) {
		for _, r := range s.rangesOn(mid.Format(time.DateOnly)) {
			a, b := s.at(mid, r.Start), s.at(mid, r.End)
			if a.Before(from) {
				a = from
			}
			if b.After(to) {
				b = to
			}
			if b.After(a) {
				d += b.Sub(a)
			}
		}
	}
	return d
}
