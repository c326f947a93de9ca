package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/internal/testenv"
)

// storeCases is the behaviour every Store shares; testStore runs it against
// each implementation.
var storeCases = []struct {
	name string
	run  func(t *testing.T, s Store)
}{
	{"fresh claim", func(t *testing.T, s Store) {
		c := claim(t, s, "chat.0", 1)
		if c != (Claimed{Offset: -1}) {
			t.Fatalf("fresh claim = %+v, want offset -1 and no timer", c)
		}
		claim(t, s, "orders.3", 1)
		got, err := s.Scopes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"chat.0", "orders.3"}; !slices.Equal(got, want) {
			t.Fatalf("Scopes = %v, want %v", got, want)
		}
	}},
	{"claim reports offset and earliest timer", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		next := apply(t, s, "chat.0", &Batch{Token: 1, Offset: 41, Timers: map[string]int64{"a": 500, "b": 300}})
		if next != 300 {
			t.Fatalf("Apply next due = %d, want 300", next)
		}
		c := claim(t, s, "chat.0", 2)
		if c != (Claimed{Offset: 41, NextDue: 300}) {
			t.Fatalf("claim = %+v, want offset 41, next due 300", c)
		}
	}},
	{"agents' waiting sets give their oldest wait, apart from the shop's", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		claim(t, s, "chat.1", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, Waits: []detectors.WaitOp{
			{Shop: "s1", Buyer: "b1", Start: 900, Add: true}, {Shop: "s1", Agent: "a1", Buyer: "b1", Start: 900, Add: true},
			{Shop: "s1", Buyer: "b2", Start: 800, Add: true}, {Shop: "s1", Agent: "a2", Buyer: "b2", Start: 800, Add: true},
		}})
		// A transfer moves b2 from a2 to a1; b3 waits on a1 in another partition.
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 2, Waits: []detectors.WaitOp{
			{Shop: "s1", Agent: "a2", Buyer: "b2", Start: 800}, {Shop: "s1", Agent: "a1", Buyer: "b2", Start: 800, Add: true},
		}})
		apply(t, s, "chat.1", &Batch{Token: 1, Offset: 1, Waits: []detectors.WaitOp{
			{Shop: "s1", Buyer: "b3", Start: 700, Add: true}, {Shop: "s1", Agent: "a1", Buyer: "b3", Start: 700, Add: true},
		}})
		f := figures(t, s, []string{"chat.0", "chat.1"})
		if len(f) != 1 || f["s1"].Waiting != 3 || f["s1"].OldestStart != 700 {
			t.Fatalf("figures %+v, want only s1 with 3 waiting since 700", f)
		}
		if got := f["s1"].AgentOldest; !maps.Equal(got, map[string]int64{"a1": 700}) {
			t.Fatalf("agents' oldest waits %v, want a1 700 (a2 has none left)", got)
		}
	}},
	{"takeover ignores a newer token, and fences it afterwards", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 9)
		apply(t, s, "chat.0", &Batch{Token: 9, Offset: 20})
		c, err := s.Takeover(context.Background(), "chat.0", 1) // a recreated group starts at generation 1
		if err != nil || c.Offset != 20 {
			t.Fatalf("Takeover = %+v, %v; want offset 20", c, err)
		}
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 21})
		if _, err := s.Apply(context.Background(), "chat.0", &Batch{Token: 0, Offset: 22}); !errors.Is(err, ErrFenced) {
			t.Fatalf("older token after takeover: %v, want ErrFenced", err)
		}
	}},
	{"older token is fenced and writes nothing", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 5)
		apply(t, s, "chat.0", &Batch{Token: 5, Offset: 10, States: map[string][]byte{"a": []byte("v5")}})
		claim(t, s, "chat.0", 6)
		old := fullBatch(5, 11)
		if _, err := s.Apply(context.Background(), "chat.0", old); !errors.Is(err, ErrFenced) {
			t.Fatalf("Apply with token 5 after claim 6: err = %v, want ErrFenced", err)
		}
		if _, err := s.Outbox(context.Background(), "chat.0", 5, 1<<50, time.Second, 10); !errors.Is(err, ErrFenced) {
			t.Fatalf("Outbox with token 5 after claim 6: err = %v, want ErrFenced", err)
		}
		if _, err := s.Claim(context.Background(), "chat.0", 5); !errors.Is(err, ErrFenced) {
			t.Fatalf("Claim with token 5 after claim 6: err = %v, want ErrFenced", err)
		}
		l := load(t, s, "chat.0", []string{"a", "c1"}, 1<<50, 10)
		if want := map[string][]byte{"a": []byte("v5")}; !reflect.DeepEqual(l.States, want) || len(l.Due) != 0 {
			t.Fatalf("after fenced apply: states %q due %v, want only a=v5", l.States, l.Due)
		}
		if f := figures(t, s, []string{"chat.0"}); len(f) != 0 {
			t.Fatalf("fenced apply wrote figures: %v", f)
		}
		if c := claim(t, s, "chat.0", 6); c.Offset != 10 {
			t.Fatalf("offset after fenced apply = %d, want 10", c.Offset)
		}
		// The owner itself writes on.
		apply(t, s, "chat.0", fullBatch(6, 11))
	}},
	{"newer token writes without a claim and fences older ones", func(t *testing.T, s Store) {
		// As after Redis lost the owner (a restart without persistence):
		// the newest writer goes on, older ones stay out.
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", &Batch{Token: 2, Offset: 1})
		if _, err := s.Apply(context.Background(), "chat.0", &Batch{Token: 1, Offset: 2}); !errors.Is(err, ErrFenced) {
			t.Fatalf("Apply with token 1 after token 2 wrote: err = %v, want ErrFenced", err)
		}
		if _, err := s.Claim(context.Background(), "chat.0", 1); !errors.Is(err, ErrFenced) {
			t.Fatalf("Claim with token 1 after token 2 wrote: err = %v, want ErrFenced", err)
		}
	}},
	{"a partition never claimed, or whose state was lost, writes nothing", func(t *testing.T, s Store) {
		// Its owner key is missing: Redis restarted without persistence.
		if _, err := s.Apply(context.Background(), "chat.0", fullBatch(1, 5)); !errors.Is(err, ErrLost) {
			t.Fatalf("Apply without a claim: err = %v, want ErrLost", err)
		}
		if _, err := s.Outbox(context.Background(), "chat.0", 1, 1<<50, time.Second, 10); !errors.Is(err, ErrLost) {
			t.Fatalf("Outbox without a claim: err = %v, want ErrLost", err)
		}
		if c := claim(t, s, "chat.0", 1); c.Offset != -1 || c.NextDue != 0 {
			t.Fatalf("claim after the refused batch = %+v, want nothing applied", c)
		}
		apply(t, s, "chat.0", fullBatch(1, 5))
	}},
	{"a store behind the writer's offset writes nothing", func(t *testing.T, s Store) {
		// As after Redis restarted from an older snapshot: it holds offset
		// 5, the writer applied 9.
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", fullBatch(1, 5))
		b := fullBatch(1, 12)
		b.Expect = 10
		_, err := s.Apply(context.Background(), "chat.0", b)
		var be *BehindError
		if !errors.As(err, &be) || !errors.Is(err, ErrBehind) || be.Stored != 5 {
			t.Fatalf("Apply expecting offset 9 applied over a store at 5: err = %v, want ErrBehind at 5", err)
		}
		if c := claim(t, s, "chat.0", 1); c.Offset != 5 {
			t.Fatalf("offset after the refused batch = %d, want 5", c.Offset)
		}
		b.Expect = 6
		apply(t, s, "chat.0", b)
	}},
	{"stale offset writes nothing", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 10, States: map[string][]byte{"a": []byte("v10")}})
		for _, off := range []int64{10, 9, 0} {
			b := fullBatch(1, off)
			b.States["a"] = []byte("stale")
			if _, err := s.Apply(context.Background(), "chat.0", b); !errors.Is(err, ErrStale) {
				t.Fatalf("Apply offset %d after 10: err = %v, want ErrStale", off, err)
			}
		}
		l := load(t, s, "chat.0", []string{"a"}, 1<<50, 10)
		if string(l.States["a"]) != "v10" || len(l.Due) != 0 || l.NextDue != 0 {
			t.Fatalf("after stale applies: %+v, want a=v10 and no timers", l)
		}
		if f := figures(t, s, []string{"chat.0"}); len(f) != 0 {
			t.Fatalf("stale apply wrote figures: %v", f)
		}
		// A timer sweep covers no record and is never stale.
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: -1, States: map[string][]byte{"a": []byte("swept")}})
		if l := load(t, s, "chat.0", []string{"a"}, 0, 0); string(l.States["a"]) != "swept" {
			t.Fatalf("timer-only batch not applied: a = %q", l.States["a"])
		}
		if c := claim(t, s, "chat.0", 1); c.Offset != 10 {
			t.Fatalf("offset after timer-only batch = %d, want 10", c.Offset)
		}
	}},
	{"redelivered batch changes nothing", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", fullBatch(1, 7))
		before := snapshot(t, s, "chat.0")
		if _, err := s.Apply(context.Background(), "chat.0", fullBatch(1, 7)); !errors.Is(err, ErrStale) {
			t.Fatalf("redelivered batch: err = %v, want ErrStale", err)
		}
		if after := snapshot(t, s, "chat.0"); !reflect.DeepEqual(before, after) {
			t.Fatalf("redelivered batch changed the state:\nbefore %+v\nafter  %+v", before, after)
		}
	}},
	{"states set and deleted", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, States: map[string][]byte{"a": []byte("1"), "b": []byte("2"), "e": {}}})
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 2, States: map[string][]byte{"a": nil, "b": []byte("3")}})
		l := load(t, s, "chat.0", []string{"a", "b", "e", "zz"}, 0, 0)
		if want := map[string][]byte{"b": []byte("3"), "e": {}}; !reflect.DeepEqual(l.States, want) {
			t.Fatalf("states = %q, want %q", l.States, want)
		}
	}},
	{"timers due in order within limit", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1,
			States: map[string][]byte{"a": []byte("A"), "b": []byte("B"), "d": []byte("D")},
			Timers: map[string]int64{"a": 300, "b": 100, "c": 200, "d": 100, "e": 900}})
		cases := []struct {
			dueBy int64
			limit int
			want  []string
		}{
			{99, 10, nil},
			{100, 10, []string{"b", "d"}},
			{200, 2, []string{"b", "d"}},
			{300, 10, []string{"b", "d", "c", "a"}},
			{300, 0, nil},
			{0, 10, nil},
		}
		for _, c := range cases {
			l := load(t, s, "chat.0", nil, c.dueBy, c.limit)
			if !slices.Equal(l.Due, c.want) {
				t.Errorf("Load(dueBy %d, limit %d).Due = %v, want %v", c.dueBy, c.limit, l.Due, c.want)
			}
			if l.NextDue != 100 {
				t.Errorf("Load(dueBy %d).NextDue = %d, want 100", c.dueBy, l.NextDue)
			}
			for _, k := range l.Due {
				if k != "c" && l.States[k] == nil {
					t.Errorf("Load(dueBy %d) has no state of due %s", c.dueBy, k)
				}
			}
			if _, ok := l.States["c"]; ok {
				t.Errorf("Load returned a state for c, which has none")
			}
		}
		// Moving and removing timers.
		next := apply(t, s, "chat.0", &Batch{Token: 1, Offset: 2, Timers: map[string]int64{"b": 0, "d": 250, "c": 0}})
		if next != 250 {
			t.Fatalf("next due after moving = %d, want 250", next)
		}
		if l := load(t, s, "chat.0", nil, 1000, 10); !slices.Equal(l.Due, []string{"d", "a", "e"}) {
			t.Fatalf("due after moving = %v, want [d a e]", l.Due)
		}
		// Back to an earlier time: due once, not twice.
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 3, Timers: map[string]int64{"d": 400}})
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 4, Timers: map[string]int64{"d": 250}})
		if l := load(t, s, "chat.0", nil, 1000, 10); !slices.Equal(l.Due, []string{"d", "a", "e"}) {
			t.Fatalf("due after moving back = %v, want [d a e]", l.Due)
		}
		next = apply(t, s, "chat.0", &Batch{Token: 1, Offset: 5, Timers: map[string]int64{"a": 0, "d": 0, "e": 0}})
		if next != 0 {
			t.Fatalf("next due with no timers = %d, want 0", next)
		}
	}},
	{"apply with a next load reads what a load after it would", func(t *testing.T, s Store) {
		ctx := context.Background()
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1,
			States: map[string][]byte{"a": []byte("A1"), "b": []byte("B1"), "c": []byte("C1"), "d": []byte("D1")},
			Timers: map[string]int64{"a": 300, "b": 100, "c": 200, "d": 900}})
		// The reads see the batch's writes: b deleted, a and n written, d's
		// timer moved ahead of c, n's set, b's removed.
		b := &Batch{Token: 1, Offset: 2,
			States: map[string][]byte{"a": []byte("A2"), "b": nil, "n": []byte("N2")},
			Timers: map[string]int64{"b": 0, "d": 150, "n": 250}}
		req := &LoadRequest{Keys: []string{"a", "b", "n", "x"}, DueBy: 250, Limit: 3}
		got, err := s.ApplyLoad(ctx, "chat.0", b, req)
		if err != nil {
			t.Fatalf("ApplyLoad: %v", err)
		}
		want := Applied{NextDue: 150, DueAt: []int64{150, 200, 250}, Loaded: Loaded{NextDue: 150,
			States: map[string][]byte{"a": []byte("A2"), "n": []byte("N2"), "c": []byte("C1"), "d": []byte("D1")},
			Due:    []string{"d", "c", "n"}}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ApplyLoad:\n got  %+v\n want %+v", got, want)
		}
		if l := load(t, s, "chat.0", req.Keys, req.DueBy, req.Limit); !reflect.DeepEqual(got.Loaded, l) {
			t.Fatalf("ApplyLoad read %+v, a Load after it %+v", got.Loaded, l)
		}
		if c := claim(t, s, "chat.0", 1); c != (Claimed{Offset: 2, NextDue: 150}) {
			t.Fatalf("claim after ApplyLoad = %+v, want offset 2, next due 150", c)
		}
		reqs := []struct {
			next *LoadRequest
			want Applied
		}{
			{&LoadRequest{DueBy: 1000, Limit: 2}, Applied{NextDue: 150, DueAt: []int64{150, 200},
				Loaded: Loaded{NextDue: 150, Due: []string{"d", "c"}, States: map[string][]byte{"c": []byte("C1"), "d": []byte("D1")}}}},
			{&LoadRequest{Keys: []string{"c"}, DueBy: 149, Limit: 10}, Applied{NextDue: 150,
				Loaded: Loaded{NextDue: 150, States: map[string][]byte{"c": []byte("C1")}}}},
			{&LoadRequest{Keys: []string{"a"}, DueBy: 1000, Limit: 0}, Applied{NextDue: 150,
				Loaded: Loaded{NextDue: 150, States: map[string][]byte{"a": []byte("A2")}}}},
			{nil, Applied{NextDue: 150}},
		}
		for i, r := range reqs {
			// A timer sweep's batch: never stale, writes nothing here.
			got, err := s.ApplyLoad(ctx, "chat.0", &Batch{Token: 1, Offset: -1}, r.next)
			if err != nil {
				t.Fatalf("ApplyLoad %d: %v", i, err)
			}
			if !reflect.DeepEqual(got, r.want) {
				t.Errorf("ApplyLoad %d (%+v):\n got  %+v\n want %+v", i, r.next, got, r.want)
			}
			if r.next == nil {
				continue
			}
			if l := load(t, s, "chat.0", r.next.Keys, r.next.DueBy, r.next.Limit); !reflect.DeepEqual(got.Loaded, l) {
				t.Errorf("ApplyLoad %d read %+v, a Load after it %+v", i, got.Loaded, l)
			}
		}
	}},
	{"apply with a next load, fenced or stale, writes and reads nothing", func(t *testing.T, s Store) {
		ctx := context.Background()
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", fullBatch(1, 10))
		before := snapshot(t, s, "chat.0")
		req := &LoadRequest{Keys: []string{"c1"}, DueBy: 1 << 50, Limit: 10}
		got, err := s.ApplyLoad(ctx, "chat.0", fullBatch(0, 11), req)
		if !errors.Is(err, ErrFenced) || !reflect.DeepEqual(got, Applied{}) {
			t.Fatalf("fenced ApplyLoad = %+v, %v; want nothing and ErrFenced", got, err)
		}
		got, err = s.ApplyLoad(ctx, "chat.0", fullBatch(1, 10), req)
		if !errors.Is(err, ErrStale) || !reflect.DeepEqual(got, Applied{}) {
			t.Fatalf("stale ApplyLoad = %+v, %v; want nothing and ErrStale", got, err)
		}
		if after := snapshot(t, s, "chat.0"); !reflect.DeepEqual(before, after) {
			t.Fatalf("fenced and stale ApplyLoad changed the state:\nbefore %+v\nafter  %+v", before, after)
		}
	}},
	{"outbox leases and acks", func(t *testing.T, s Store) {
		ctx := context.Background()
		claim(t, s, "chat.0", 1)
		// A batch's records are one entry; a timer batch's are keyed by
		// its wall clock.
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, Now: 1000, Lease: 5 * time.Second,
			Outbox: []Delivery{{Key: "k2", Payload: []byte("p2")}, {Key: "k1", Payload: []byte("p1")}}})
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: -1, Now: 1000, Lease: 5 * time.Second,
			Outbox: []Delivery{{Key: "k3", Payload: []byte("p3")}}})
		outbox := func(now int64, limit int) string {
			t.Helper()
			ds, err := s.Outbox(ctx, "chat.0", 1, now, 5*time.Second, limit)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(entries(ds))
		}
		if got := outbox(5999, 10); got != "[]" {
			t.Fatalf("outbox before the lease ends = %s, want none", got)
		}
		if got := outbox(6000, 1); got != "[#1:k2: k2=p2 k1=p1]" {
			t.Fatalf("outbox at lease end, limit 1 = %s, want [#1:k2: k2=p2 k1=p1]", got)
		}
		if got := outbox(6000, 10); got != "[#t1000:k3: k3=p3]" {
			t.Fatalf("outbox again = %s, want [#t1000:k3: k3=p3] (#1:k2 leased again)", got)
		}
		if got := outbox(10999, 10); got != "[]" {
			t.Fatalf("outbox before the new leases end = %s, want none", got)
		}
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: -1, Acks: []string{"#1:k2"}})
		if got := outbox(11000, 10); got != "[#t1000:k3: k3=p3]" {
			t.Fatalf("outbox after acking #1:k2 = %s, want [#t1000:k3: k3=p3]", got)
		}
		if got := outbox(11000, 0); got != "[]" {
			t.Fatalf("outbox with limit 0 = %s, want none", got)
		}
		// A new owner takes everything over at once.
		claim(t, s, "chat.0", 2)
		ds, err := s.Outbox(ctx, "chat.0", 2, 1<<62, time.Second, 500)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(entries(ds)); got != "[#t1000:k3: k3=p3]" {
			t.Fatalf("outbox for the new owner = %s, want [#t1000:k3: k3=p3]", got)
		}
	}},
	{"agents' latest activity is a maximum over batches and scopes", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		claim(t, s, "chat.1", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, Activity: []detectors.Activity{
			{Shop: "s1", Agent: "a1", At: 5000}, {Shop: "s1", Agent: "a1", At: 9000}, {Shop: "s1", Agent: "a1", At: 7000},
			{Shop: "s1", Agent: "a2", At: 100}}})
		// An older message in a later batch does not move it back.
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 2, Activity: []detectors.Activity{{Shop: "s1", Agent: "a1", At: 6000}}})
		apply(t, s, "chat.1", &Batch{Token: 1, Offset: 1, Activity: []detectors.Activity{
			{Shop: "s1", Agent: "a1", At: 8000}, {Shop: "s1", Agent: "a2", At: 200}},
			Figures: []detectors.FigureDelta{{Shop: "s1", Field: "a:a1:waiting", Delta: 2}}})
		figs, err := s.Figures(context.Background(), []string{"chat.0", "chat.1"}, func(string) string { return "2026-11-24" })
		if err != nil {
			t.Fatal(err)
		}
		now := figs["s1"].Now
		if now["a:a1:last_human"] != 9000 || now["a:a2:last_human"] != 200 || now["a:a1:waiting"] != 2 {
			t.Fatalf("current counters = %v, want a1 last 9000 (max, not sum), a2 last 200, a1 waiting 2", now)
		}
	}},
	{"figures sum across scopes and shops", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		claim(t, s, "chat.1", 1)
		claim(t, s, "presence.0", 1)
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1,
			Figures: []detectors.FigureDelta{
				{Shop: "s1", Day: "2026-11-24", Field: "consulting", Delta: 2},
				{Shop: "s1", Day: "2026-11-24", Field: "breached:3m", Delta: 1},
				{Shop: "s1", Day: "2026-11-23", Field: "consulting", Delta: 100},
				{Shop: "s2", Day: "2026-11-25", Field: "consulting", Delta: 4},
				{Shop: "s1", Day: "", Field: "a:a7:waiting", Delta: 1},
				// Not aggregated by the caller: summed all the same.
				{Shop: "s1", Day: "2026-11-24", Field: "consulting", Delta: 1},
			},
			Waits: []detectors.WaitOp{
				{Shop: "s1", Buyer: "b1", Start: 5000, Add: true},
				{Shop: "s1", Buyer: "b2", Start: 7000, Add: true},
				// Added and removed in one batch: gone.
				{Shop: "s1", Buyer: "b3", Start: 1000, Add: true},
				{Shop: "s1", Buyer: "b3", Add: false},
			}})
		apply(t, s, "chat.1", &Batch{Token: 1, Offset: 1,
			Figures: []detectors.FigureDelta{
				{Shop: "s1", Day: "2026-11-24", Field: "consulting", Delta: 5},
				{Shop: "s1", Day: "", Field: "a:a7:waiting", Delta: 2},
			},
			Waits: []detectors.WaitOp{
				// Removed and added again: waiting since the new start.
				{Shop: "s1", Buyer: "b9", Add: false},
				{Shop: "s1", Buyer: "b9", Start: 3000, Add: true},
				{Shop: "s3", Buyer: "x", Start: 9000, Add: true},
			}})
		apply(t, s, "presence.0", &Batch{Token: 1, Offset: 1,
			Figures: []detectors.FigureDelta{
				{Shop: "s1", Field: detectors.SeatField("online"), Delta: 1},
				{Shop: "s1", Field: detectors.SeatField("online"), Delta: -1},
			}})
		got := figures(t, s, []string{"chat.0", "chat.1", "presence.0"})
		want := map[string]ShopFigures{
			"s1": {Shop: "s1",
				Day: map[string]int64{"consulting": 8, "breached:3m": 1},
				// A counter back at zero is still there: it was seen.
				Now:     map[string]int64{"a:a7:waiting": 3, "seats:online": 0},
				Waiting: 3, OldestStart: 3000},
			// s2 counted only on another day.
			"s2": {Shop: "s2", Day: map[string]int64{}, Now: map[string]int64{}},
			"s3": {Shop: "s3", Day: map[string]int64{}, Now: map[string]int64{}, Waiting: 1, OldestStart: 9000},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("figures:\n got  %+v\n want %+v", got, want)
		}
		// Only the scopes asked for count.
		got = figures(t, s, []string{"chat.1"})
		if f := got["s1"]; f.Day["consulting"] != 5 || f.Waiting != 1 || f.OldestStart != 3000 {
			t.Fatalf("figures of chat.1 only: s1 = %+v", f)
		}
		// Waits end.
		apply(t, s, "chat.1", &Batch{Token: 1, Offset: 2, Waits: []detectors.WaitOp{{Shop: "s1", Buyer: "b9"}}})
		if f := figures(t, s, []string{"chat.0", "chat.1"})["s1"]; f.Waiting != 2 || f.OldestStart != 5000 {
			t.Fatalf("after b9 replied: waiting %d oldest %d, want 2 and 5000", f.Waiting, f.OldestStart)
		}
	}},
	{"timers in many buckets: due reads, moves, removals and the earliest", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		// Enough entities that every timer bucket holds several, with
		// repeated dues so that ties are ordered by key.
		want := map[string]int64{}
		for i := range 5000 {
			want[fmt.Sprintf("shop-%d/b%d", i%7, i)] = 1000 + int64(i*7919%2500)*10
		}
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, Timers: maps.Clone(want)})
		check := func(step string, offset int64) {
			t.Helper()
			type timer struct {
				key string
				due int64
			}
			var all []timer
			for k, d := range want {
				all = append(all, timer{k, d})
			}
			slices.SortFunc(all, func(x, y timer) int { return cmp.Or(cmp.Compare(x.due, y.due), cmp.Compare(x.key, y.key)) })
			var first int64
			if len(all) > 0 {
				first = all[0].due
			}
			for _, q := range []struct {
				dueBy int64
				limit int
			}{{first, 1000}, {5000, 3}, {5000, 1000}, {12000, 700}, {1 << 50, 10000}, {first - 1, 10}} {
				var exp []string
				for _, tm := range all {
					if tm.due <= q.dueBy && len(exp) < q.limit {
						exp = append(exp, tm.key)
					}
				}
				l := load(t, s, "chat.0", nil, q.dueBy, q.limit)
				if !slices.Equal(l.Due, exp) {
					t.Fatalf("%s: Load(dueBy %d, limit %d) = %d keys %.5v…, want %d keys %.5v…", step, q.dueBy, q.limit, len(l.Due), l.Due, len(exp), exp)
				}
				if l.NextDue != first {
					t.Fatalf("%s: Load next due = %d, want %d", step, l.NextDue, first)
				}
			}
			if c := claim(t, s, "chat.0", 1); c.NextDue != first || c.Offset != offset {
				t.Fatalf("%s: claim = %+v, want offset %d next due %d", step, c, offset, first)
			}
		}
		check("set", 1)
		// Move the earliest timers later, some others earlier, and remove
		// a few, including keys that never had a timer.
		change := map[string]int64{"never": 0}
		for i := range 5000 {
			k := fmt.Sprintf("shop-%d/b%d", i%7, i)
			switch {
			case want[k] < 1200:
				change[k], want[k] = want[k]+30000, want[k]+30000
			case i%5 == 0:
				change[k] = 0
				delete(want, k)
			case i%11 == 0:
				change[k], want[k] = want[k]-150, want[k]-150
			}
		}
		next := apply(t, s, "chat.0", &Batch{Token: 1, Offset: 2, Timers: change})
		check("moved", 2)
		// Remove the earliest timers until none are left, a batch at a time:
		// each batch's next due is the earliest left.
		for off := int64(3); len(want) > 0; off++ {
			l := load(t, s, "chat.0", nil, 1<<50, 400)
			if len(l.Due) == 0 || l.NextDue != next {
				t.Fatalf("offset %d: due %d, next due %d, want some and %d", off, len(l.Due), l.NextDue, next)
			}
			rm := map[string]int64{}
			for _, k := range l.Due {
				rm[k] = 0
				delete(want, k)
			}
			next = apply(t, s, "chat.0", &Batch{Token: 1, Offset: off, Timers: rm})
			var first int64
			for _, d := range want {
				if first == 0 || d < first {
					first = d
				}
			}
			if next != first {
				t.Fatalf("offset %d: next due after removing the earliest = %d, want %d", off, next, first)
			}
		}
		if l := load(t, s, "chat.0", nil, 1<<50, 10); len(l.Due) != 0 || l.NextDue != 0 {
			t.Fatalf("after removing all: due %v next %d", l.Due, l.NextDue)
		}
	}},
	{"many waiting buyers across buckets and the oldest among them", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		claim(t, s, "chat.1", 1)
		// A shop with thousands waiting in one partition, added in batches
		// and ended out of order, and a small shop beside it.
		waiting := map[string]int64{}
		off := int64(0)
		for round := range 6 {
			var ops []detectors.WaitOp
			for i := range 1500 {
				b := fmt.Sprintf("w%d", (round*977+i*31)%4000)
				if _, ok := waiting[b]; ok && i%3 == 0 {
					ops = append(ops, detectors.WaitOp{Shop: "big", Buyer: b})
					delete(waiting, b)
					continue
				}
				if _, ok := waiting[b]; !ok {
					start := int64(100000 + round*10000 + i)
					ops = append(ops, detectors.WaitOp{Shop: "big", Buyer: b, Start: start, Add: true})
					waiting[b] = start
				}
			}
			ops = append(ops, detectors.WaitOp{Shop: "small", Buyer: fmt.Sprint("s", round), Start: 50 + int64(round), Add: true})
			off++
			apply(t, s, "chat.0", &Batch{Token: 1, Offset: off, Waits: ops, Figures: []detectors.FigureDelta{{Shop: "big", Day: testDay, Field: "consulting", Delta: 1}}})
			oldestBig := int64(0)
			for _, st := range waiting {
				if oldestBig == 0 || st < oldestBig {
					oldestBig = st
				}
			}
			f := figures(t, s, []string{"chat.0"})
			if f["big"].Waiting != int64(len(waiting)) || f["big"].OldestStart != oldestBig {
				t.Fatalf("round %d: big waiting %d oldest %d, want %d and %d", round, f["big"].Waiting, f["big"].OldestStart, len(waiting), oldestBig)
			}
			if f["small"].Waiting != int64(round+1) || f["small"].OldestStart != 50 {
				t.Fatalf("round %d: small waiting %d oldest %d, want %d and 50", round, f["small"].Waiting, f["small"].OldestStart, round+1)
			}
		}
		// Another partition's older wait counts too.
		apply(t, s, "chat.1", &Batch{Token: 1, Offset: 1, Waits: []detectors.WaitOp{{Shop: "big", Buyer: "x", Start: 7, Add: true}}})
		if f := figures(t, s, []string{"chat.0", "chat.1"})["big"]; f.Waiting != int64(len(waiting))+1 || f.OldestStart != 7 {
			t.Fatalf("across partitions: big waiting %d oldest %d, want %d and 7", f.Waiting, f.OldestStart, len(waiting)+1)
		}
		// Every wait ends, the oldest first: none is left behind in a bucket.
		var rest []string
		for b := range waiting {
			rest = append(rest, b)
		}
		slices.SortFunc(rest, func(x, y string) int { return cmp.Compare(waiting[x], waiting[y]) })
		for len(rest) > 0 {
			n := min(len(rest), 700)
			var ops []detectors.WaitOp
			for _, b := range rest[:n] {
				ops = append(ops, detectors.WaitOp{Shop: "big", Buyer: b})
			}
			rest = rest[n:]
			off++
			apply(t, s, "chat.0", &Batch{Token: 1, Offset: off, Waits: ops})
			f := figures(t, s, []string{"chat.0"})["big"]
			want := int64(0)
			if len(rest) > 0 {
				want = waiting[rest[0]]
			}
			if f.Waiting != int64(len(rest)) || f.OldestStart != want {
				t.Fatalf("ending waits: big waiting %d oldest %d, want %d and %d", f.Waiting, f.OldestStart, len(rest), want)
			}
		}
	}},
	{"each shop's figures are of its own today, whatever its id holds", func(t *testing.T, s Store) {
		claim(t, s, "chat.0", 1)
		// Shops in different time zones are on different days at once;
		// ids with colons and digits must not bleed into each other.
		apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1,
			Figures: []detectors.FigureDelta{
				{Shop: "x", Day: "2026-11-24", Field: "consulting", Delta: 1},
				{Shop: "x", Day: "2026-11-25", Field: "consulting", Delta: 10},
				{Shop: "x:1", Day: "2026-11-24", Field: "consulting", Delta: 100},
				{Shop: "x:1", Day: "2026-11-25", Field: "consulting", Delta: 1000},
				{Shop: "1:x", Field: "a:1:x:waiting", Delta: 3},
			},
			Activity: []detectors.Activity{{Shop: "x:1", Agent: "a:1", At: 42}}})
		dayOf := map[string]string{"x": "2026-11-24", "x:1": "2026-11-25", "1:x": "2026-11-24"}
		figs, err := s.Figures(context.Background(), []string{"chat.0"}, func(shop string) string { return dayOf[shop] })
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]ShopFigures{}
		for k, f := range figs {
			got[k] = *f
		}
		want := map[string]ShopFigures{
			"x":   {Shop: "x", Day: map[string]int64{"consulting": 1}, Now: map[string]int64{}},
			"x:1": {Shop: "x:1", Day: map[string]int64{"consulting": 1000}, Now: map[string]int64{"a:a:1:last_human": 42}},
			"1:x": {Shop: "1:x", Day: map[string]int64{}, Now: map[string]int64{"a:1:x:waiting": 3}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("figures:\n got  %+v\n want %+v", got, want)
		}
	}},
	{"lease", func(t *testing.T, s Store) {
		ctx := context.Background()
		lease := func(holder string, ttl time.Duration) bool {
			t.Helper()
			ok, err := s.Lease(ctx, "reporter", holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !lease("a", time.Minute) {
			t.Fatal("a did not get a free lease")
		}
		if lease("b", time.Minute) {
			t.Fatal("b took a's live lease")
		}
		if !lease("a", time.Minute) {
			t.Fatal("a could not renew its lease")
		}
		if err := s.ReleaseLease(ctx, "reporter", "b"); err != nil {
			t.Fatal(err)
		}
		if lease("b", time.Minute) {
			t.Fatal("b's release freed a's lease")
		}
		if err := s.ReleaseLease(ctx, "reporter", "a"); err != nil {
			t.Fatal(err)
		}
		if !lease("b", 150*time.Millisecond) {
			t.Fatal("b did not get the released lease")
		}
		if lease("a", time.Minute) {
			t.Fatal("a took b's live lease")
		}
		// b's 150 ms lease lapses by the store's clock: a takes over then.
		testenv.Eventually(t, 10*time.Second, "a takes over once b's lease lapsed", func() error {
			if !lease("a", time.Minute) {
				return errors.New("b's lease still live")
			}
			return nil
		})
		if lease("b", time.Minute) {
			t.Fatal("b still holds a lapsed lease")
		}
	}},
}

// testStore runs the shared behaviour against fresh stores from newStore.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	for _, c := range storeCases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t)) })
	}
}

func claim(t *testing.T, s Store, scope string, token int64) Claimed {
	t.Helper()
	c, err := s.Claim(context.Background(), scope, token)
	if err != nil {
		t.Fatalf("Claim(%s, %d): %v", scope, token, err)
	}
	return c
}

func apply(t *testing.T, s Store, scope string, b *Batch) int64 {
	t.Helper()
	next, err := s.Apply(context.Background(), scope, b)
	if err != nil {
		t.Fatalf("Apply(%s, offset %d): %v", scope, b.Offset, err)
	}
	return next
}

func load(t *testing.T, s Store, scope string, keys []string, dueBy int64, limit int) Loaded {
	t.Helper()
	l, err := s.Load(context.Background(), scope, keys, dueBy, limit)
	if err != nil {
		t.Fatalf("Load(%s): %v", scope, err)
	}
	return l
}

const testDay = "2026-11-24"

func figures(t *testing.T, s Store, scopes []string) map[string]ShopFigures {
	t.Helper()
	f, err := s.Figures(context.Background(), scopes, func(string) string { return testDay })
	if err != nil {
		t.Fatalf("Figures: %v", err)
	}
	out := map[string]ShopFigures{}
	for k, v := range f {
		out[k] = *v
	}
	return out
}

func deliveries(ds []Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Key+"="+string(d.Payload))
	}
	return out
}

// entries lists the records of es as "<entry>: <key>=<payload> ...".
func entries(es []OutboxEntry) []string {
	out := []string{}
	for _, e := range es {
		s := e.Key + ":"
		for _, d := range e.Records {
			s += " " + d.Key + "=" + string(d.Payload)
		}
		out = append(out, s)
	}
	return out
}

// fullBatch touches every part of a partition.
func fullBatch(token, offset int64) *Batch {
	return &Batch{Token: token, Offset: offset, Now: 1000, Lease: time.Second,
		States: map[string][]byte{"c1": []byte("state-1"), "c2": []byte("state-2")},
		Timers: map[string]int64{"c1": 5000, "c2": 7000},
		Figures: []detectors.FigureDelta{
			{Shop: "s1", Day: testDay, Field: "consulting", Delta: 1},
			{Shop: "s1", Field: "a:a1:waiting", Delta: 1},
		},
		Waits:  []detectors.WaitOp{{Shop: "s1", Buyer: "b1", Start: 900, Add: true}},
		Outbox: []Delivery{{Key: "alert-1/firing", Payload: []byte(`{"id":1}`)}},
	}
}

type partitionSnapshot struct {
	Claimed Claimed
	Loaded  Loaded
	Figures map[string]ShopFigures
	Outbox  []string
}

// snapshot reads everything of scope through the Store (and claims it
// again with the same token, which changes nothing).
func snapshot(t *testing.T, s Store, scope string) partitionSnapshot {
	t.Helper()
	l := load(t, s, scope, []string{"c1", "c2"}, 1<<50, 100)
	ds, err := s.Outbox(context.Background(), scope, 1, 1<<50, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return partitionSnapshot{Claimed: claim(t, s, scope, 1), Loaded: l,
		Figures: figures(t, s, []string{scope}), Outbox: entries(ds)}
}

// shopRulesStore is what both stores offer the shop-level rules.
type shopRulesStore interface {
	ClaimShopRules(ctx context.Context) (int64, error)
	ShopRules(ctx context.Context) (ShopRulesState, error)
	WriteShopRules(ctx context.Context, token int64, w *ShopRulesWrite) error
}

// testShopRules: a new claim fences the earlier holder, whose write changes
// nothing; spells and outbox records survive to the next holder.
func testShopRules(t *testing.T, s shopRulesStore) {
	ctx := context.Background()
	a, err := s.ClaimShopRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &ShopRulesWrite{Spells: map[string][]byte{"s1": []byte("spells-1"), "s2": []byte("x")},
		Outbox: []Delivery{{Key: "id1:firing", Payload: []byte("{}")}, {Key: "id2:firing", Payload: []byte("{}")}}}
	if err := s.WriteShopRules(ctx, a, w); err != nil {
		t.Fatal(err)
	}
	b, err := s.ClaimShopRules(ctx)
	if err != nil || b <= a {
		t.Fatalf("second claim %d, %v; want a token above %d", b, err, a)
	}
	if err := s.WriteShopRules(ctx, a, &ShopRulesWrite{Spells: map[string][]byte{"s1": []byte("stale")}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("write of a fenced holder: %v, want ErrFenced", err)
	}
	if err := s.WriteShopRules(ctx, b, &ShopRulesWrite{Spells: map[string][]byte{"s2": nil}, Acks: []string{"id1:firing"}}); err != nil {
		t.Fatal(err)
	}
	st, err := s.ShopRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Spells) != 1 || string(st.Spells["s1"]) != "spells-1" || !slices.Equal(deliveries(st.Outbox), []string{"id2:firing={}"}) {
		t.Fatalf("state %v %v", st.Spells, deliveries(st.Outbox))
	}
}

func TestMemoryShopRules(t *testing.T) { testShopRules(t, NewMemory()) }
