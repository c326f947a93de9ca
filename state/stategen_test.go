package state

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/internal/testenv"
)

// TestRedisStateGenerations moves the writer's clock over generations of
// entity states: a state is read from the generation it was written in
// until that generation ends stateTTL after its period (at least stateTTL
// after the write, at most a period more), a write moves it into the
// newest generation and a delete removes it from all, so no state is
// stored twice; a writer whose clock is a little behind finds and writes
// the newer generation another writer made.
func TestRedisStateGenerations(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	period := statePeriod(72 * 3600)
	const g = 13611
	at := func(gen, into int64) { setClock(s, "chat.0", gen*period+into) }
	// where lists the generations that hold key.
	where := func(key string) []int64 {
		var in []int64
		for gen := int64(g - 3); gen <= g+4; gen++ {
			ok, err := c.HExists(ctx, "rw:{chat.0}:"+stateGenKey(gen), key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				in = append(in, gen)
			}
		}
		return in
	}
	states := func(l Loaded) map[string]string {
		m := map[string]string{}
		for k, v := range l.States {
			m[k] = string(v)
		}
		return m
	}
	keys := []string{"a", "b", "c", "d", "x"}

	at(g, 0)
	claim(t, s, "chat.0", 1)
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, States: map[string][]byte{"a": []byte("a1"), "b": []byte("b1"), "c": []byte("c1")}})
	at(g+1, 10)
	if got := states(load(t, s, "chat.0", keys, 0, 0)); !holds(got, "a", "a1", "b", "b1", "c", "c1") {
		t.Fatalf("in the next generation, states = %v", got)
	}
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 2, States: map[string][]byte{"a": []byte("a2"), "c": nil, "d": []byte("d2")}})
	for k, want := range map[string][]int64{"a": {g + 1}, "b": {g}, "c": nil, "d": {g + 1}} {
		if got := where(k); !slices.Equal(got, want) {
			t.Errorf("%s is in generations %v, want %v", k, got, want)
		}
	}

	// b, written at the start of generation g, lives stateTTL and a period.
	at(g+3, -1)
	a, err := s.ApplyLoad(ctx, "chat.0", &Batch{Token: 1, Offset: 3}, &LoadRequest{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if got := states(a.Loaded); !holds(got, "a", "a2", "b", "b1", "d", "d2") {
		t.Fatalf("a period before b's generation ends, states = %v", got)
	}
	at(g+3, 0)
	if got := states(load(t, s, "chat.0", []string{"b"}, 0, 0)); len(got) != 0 {
		t.Fatalf("once b's generation ended, states = %v", got)
	}
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 4, States: map[string][]byte{"e": []byte("e4")}})
	ttl, err := c.TTL(ctx, "rw:{chat.0}:"+stateGenKey(g+3)).Result()
	if want := time.Duration(period)*time.Second + 72*time.Hour; err != nil || ttl > want || ttl < want-5*time.Second {
		t.Errorf("TTL of a generation written at its start = %v (%v), want %v", ttl, err, want)
	}

	// A writer 5 s behind, still in generation g + 2.
	at(g+3, -5)
	if got := states(load(t, s, "chat.0", []string{"e"}, 0, 0)); got["e"] != "e4" {
		t.Fatalf("a writer behind reads %v, want e4", got)
	}
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 5, States: map[string][]byte{"a": []byte("a5"), "f": []byte("f5")}})
	for k, want := range map[string][]int64{"a": {g + 3}, "e": {g + 3}, "f": {g + 3}} {
		if got := where(k); !slices.Equal(got, want) {
			t.Errorf("after the writer behind, %s is in generations %v, want %v", k, got, want)
		}
	}
	at(g+3, 1)
	if got := states(load(t, s, "chat.0", []string{"a", "d", "e", "f"}, 0, 0)); !holds(got, "a", "a5", "d", "d2", "e", "e4", "f", "f5") {
		t.Fatalf("states = %v", got)
	}
}

// setClock sets s's clock so that scope's clock of generations
// (Redis.clock) reads t (Unix s).
func setClock(s *Redis, scope string, t int64) {
	now := time.Unix(t-statePhase(scope, statePeriod(seconds(s.stateTTL))), 0)
	s.now = func() time.Time { return now }
}

// TestStatePhasesDiffer: the generations of twelve partitions end at twelve
// different times within a period, so Redis frees them one at a time.
func TestStatePhasesDiffer(t *testing.T) {
	period := statePeriod(72 * 3600)
	seen := map[int64]bool{}
	for p := range 12 {
		ph := statePhase(Scope("chat", p), period)
		if ph < 0 || ph >= period {
			t.Fatalf("phase of chat.%d = %d, outside [0, %d)", p, ph, period)
		}
		seen[ph] = true
	}
	if len(seen) != 12 {
		t.Errorf("12 partitions have %d phases", len(seen))
	}
}

// holds tells whether m holds exactly the key, value pairs kv.
func holds(m map[string]string, kv ...string) bool {
	if len(m) != len(kv)/2 {
		return false
	}
	for i := 0; i < len(kv); i += 2 {
		if v, ok := m[kv[i]]; !ok || v != kv[i+1] {
			return false
		}
	}
	return true
}

// TestRedisReadsEarlierStateLayout: a partition written by a version that
// kept each entity state in a key of its own (c:<entity key>, expiring
// stateTTL after its last write) is read after the upgrade: its states are
// found where no generation holds them, removed when written or deleted,
// and looked for until the last of them has expired. A partition claimed
// afresh has none to look for.
func TestRedisReadsEarlierStateLayout(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	for k, v := range map[string]string{"rw:{chat.0}:owner": "1", "rw:{chat.0}:offset": "41"} {
		if err := c.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, "rw:{chat.0}:c:"+k, k+"-old", 72*time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := NewRedis(c, "rw", 72*time.Hour)
	now := int64(1_764_000_000)
	setClock(s, "chat.0", now)
	if got := claim(t, s, "chat.0", 2); got.Offset != 41 {
		t.Fatalf("claimed at offset %d, want 41", got.Offset)
	}
	if got, _ := c.Get(ctx, "rw:{chat.0}:c@old").Int64(); got != now+72*3600 {
		t.Fatalf("c@old = %d, want %d", got, now+72*3600)
	}
	l := load(t, s, "chat.0", []string{"a", "b", "c", "x"}, 0, 0)
	if len(l.States) != 3 || string(l.States["a"]) != "a-old" || string(l.States["c"]) != "c-old" {
		t.Fatalf("states after the upgrade: %q", l.States)
	}
	a, err := s.ApplyLoad(ctx, "chat.0", &Batch{Token: 2, Offset: 42, Expect: 42,
		States: map[string][]byte{"a": []byte("a-new"), "b": nil}}, &LoadRequest{Keys: []string{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Loaded.States; len(got) != 2 || string(got["a"]) != "a-new" || string(got["c"]) != "c-old" {
		t.Fatalf("states read ahead after writing a and deleting b: %q", got)
	}
	if n, _ := c.Exists(ctx, "rw:{chat.0}:c:a", "rw:{chat.0}:c:b").Result(); n != 0 {
		t.Fatalf("%d of the earlier keys written or deleted remain", n)
	}
	// Claimed again, the partition keeps looking for them until they expired.
	setClock(s, "chat.0", now+72*3600-1)
	claim(t, s, "chat.0", 3)
	if got := load(t, s, "chat.0", []string{"c"}, 0, 0); string(got.States["c"]) != "c-old" {
		t.Fatalf("c just before the earlier states expired = %q", got.States["c"])
	}
	setClock(s, "chat.0", now+72*3600)
	if got := load(t, s, "chat.0", []string{"c"}, 0, 0); len(got.States) != 0 {
		t.Fatalf("earlier states read after they expired: %q", got.States)
	}

	// A partition claimed afresh: nothing of the earlier layout is read.
	claim(t, s, "chat.1", 1)
	if err := c.Set(ctx, "rw:{chat.1}:c:z", "stray", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := load(t, s, "chat.1", []string{"z"}, 0, 0); len(got.States) != 0 {
		t.Fatalf("a new partition read the earlier layout: %q", got.States)
	}
}
