package jsonw

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Strings are written byte for byte as encoding/json writes them.
func TestString(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "<a href='x'>&amp;</a>", "tab\tnew\nline\r\b\f\x00\x1f\x7f",
		"中文 回复 😀", "bad \xff\xfe utf8 \xe4\xb8", "line\u2028para\u2029end", strings.Repeat("x", 300)} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := String(nil, s); string(got) != string(want) {
			t.Errorf("String(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("a<b>&\"\\\n\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := String(nil, s); string(got) != string(want) {
			t.Fatalf("String(%q) = %s, want %s", s, got, want)
		}
	})
}

// Times are written as AppendFormat writes them in the contract's layout,
// in every zone, offset and year, leap days and the ends of years included.
func TestTime(t *testing.T) {
	var zones []*time.Location
	for _, name := range []string{"UTC", "Asia/Shanghai", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati", "America/Los_Angeles"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		zones = append(zones, loc)
	}
	zones = append(zones, time.FixedZone("", -30), time.FixedZone("", 90), time.FixedZone("", -(9*3600+30*60)), time.Local)
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(-1, 999_999_999), time.Unix(-86400, 0),
		time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC), time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1900, 2, 28, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 11, 0, 0, 0, 1_000_000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		times = append(times, time.Unix(r.Int64N(400_000_000_000)-62_000_000_000, r.Int64N(1e9)))
	}
	for _, tm := range times {
		for _, loc := range zones {
			tz := tm.In(loc)
			want := tz.AppendFormat(nil, TimeLayout)
			if got := Time(nil, tz); string(got) != string(want) {
				t.Fatalf("Time(%v) = %s, want %s", tz, got, want)
			}
		}
	}
}

func BenchmarkTime(b *testing.B) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	tm := time.Date(2026, 11, 11, 14, 3, 7, 123_456_789, loc)
	buf := make([]byte, 0, 64)
	b.Run("jsonw", func(b *testing.B) {
		for b.Loop() {
			buf = Time(buf[:0], tm)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = tm.AppendFormat(buf[:0], TimeLayout)
		}
	})
}
