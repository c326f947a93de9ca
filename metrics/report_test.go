package metrics

import (
	"testing"
	"time"

	"github.com/replywatch/replywatch/state"
)

var noon = time.Date(2026, 11, 24, 12, 0, 0, 0, shanghai)

func ms(d time.Duration) int64 { return noon.Add(-d).UnixMilli() }

var idleCases = []struct {
	name string
	now  map[string]int64
	idle int64
	ok   bool
}{
	{"no presence, no activity: not judged", map[string]int64{}, 0, false},
	{"online, buyers waiting, silent 4m: idle", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 2, "a:a1:last_human": ms(4 * time.Minute)}, 1, true},
	{"online, buyers waiting, replied 1m ago: working", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 2, "a:a1:last_human": ms(time.Minute)}, 0, true},
	{"online, nobody waiting: not idle", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 0, "a:a1:last_human": ms(time.Hour)}, 0, true},
	{"away with buyers waiting: away, not idle", map[string]int64{
		"seats:away": 1, "a:a1:seats:away": 1, "a:a1:waiting": 3, "a:a1:last_human": ms(time.Hour)}, 0, true},
	{"online, buyers waiting, never replied: idle", map[string]int64{
		"seats:online": 1, "a:a1:seats:online": 1, "a:a1:waiting": 1}, 1, true},
	{"no presence: active today counts as working", map[string]int64{
		"a:a1:waiting": 1, "a:a1:last_human": ms(10 * time.Minute),
		"a:a2:waiting": 1, "a:a2:last_human": ms(25 * time.Hour)}, 1, true},
}

func TestIdleSeats(t *testing.T) {
	for _, c := range idleCases {
		f := &state.ShopFigures{Shop: "s1", Now: c.now}
		n, ok := idleSeats(f, 3*time.Minute, noon, func(t time.Time) string { return t.In(shanghai).Format(time.DateOnly) })
		if n != c.idle || ok != c.ok {
			t.Errorf("%s: idle %d (judged %v), want %d (%v)", c.name, n, ok, c.idle, c.ok)
		}
	}
	if _, ok := idleSeats(&state.ShopFigures{Now: idleCases[1].now}, 0, noon, nil); ok {
		t.Error("idle seats judged with detection off")
	}
}
