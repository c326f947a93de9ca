package notify

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
)

func TestMemoryBoundedByCountAndAge(t *testing.T) {
	const bound = 1000
	m := newMemory(bound)
	for i := range 5 * bound {
		m.add(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Millisecond))
		if m.size() > bound || m.n > bound {
			t.Fatalf("after %d keys: %d remembered, %d in the ring, bound %d", i+1, m.size(), m.n, bound)
		}
	}
	for i := range 5 * bound {
		if got, want := m.has(fmt.Sprintf("k%d", i)), i >= 4*bound; got != want {
			t.Fatalf("key %d remembered %v, want %v (oldest go first)", i, got, want)
		}
	}
	// A key forgotten and added again is not evicted by its older entry.
	m.forget("k4000")
	m.add("k4000", t0.Add(10*time.Second))
	m.add("k5000", t0.Add(10*time.Second))
	if !m.has("k4000") || m.has("k4001") || m.size() != bound {
		t.Fatalf("re-added key: has %v, oldest still there %v, %d remembered", m.has("k4000"), m.has("k4001"), m.size())
	}
	// Age: everything added before the cut goes, the rest stays.
	m.expire(t0.Add(4999 * time.Millisecond))
	if m.size() != 3 || !m.has("k4999") || !m.has("k4000") || !m.has("k5000") || m.has("k4998") {
		t.Fatalf("after expiry: %d remembered", m.size())
	}
	m.expire(t0.Add(time.Hour))
	if m.size() != 0 || m.n != 0 {
		t.Fatalf("after expiry of all: %d remembered, %d in the ring", m.size(), m.n)
	}
}

// boundedLane is a lane whose memory holds bound keys, so a test can go
// past it quickly.
func boundedLane(bound int) *lane {
	l := newTestLane()
	l.seen = newMemory(bound)
	return l
}

// drain flushes and takes everything ready, as if delivered and marked.
func drain(l *lane, now time.Time) int {
	l.flush(now)
	n := 0
	for m := l.take(unlimited); m != nil; m = l.take(unlimited) {
		n += len(m.Items)
		l.done(m.Items)
	}
	return n
}

func TestLaneMemoryStaysWithinItsBound(t *testing.T) {
	const bound = 64
	r := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id"}, GroupWait: ptrD(0)})
	l := boundedLane(bound)
	now := t0.Add(4 * time.Minute)
	for i := range 10 * bound {
		l.add(item(breach(i, fmt.Sprintf("b%d", i)), r), now)
		if i%10 == 0 {
			drain(l, now)
		}
		if l.seen.size() > bound {
			t.Fatalf("after %d alerts the lane remembers %d keys, bound %d", i+1, l.seen.size(), bound)
		}
	}
	drain(l, now)
	// Within the bound a second copy is a duplicate, delivered or not.
	for i := 9 * bound; i < 10*bound; i++ {
		if out := l.add(item(breach(i, fmt.Sprintf("b%d", i)), r), now); len(out) != 1 || out[0].how != resultDuplicate {
			t.Fatalf("copy of alert %d within the bound: %+v, want duplicate", i, out)
		}
	}
	// Past the bound a delivered alert's copy is queued again here: the
	// notifier checked it against its Redis mark before (consume).
	if out := l.add(item(breach(0, "b0"), r), now); len(out) != 0 || l.pending() != 1 {
		t.Fatalf("copy of a delivered alert past the bound: %+v, pending %d", out, l.pending())
	}
}

// A firing alert queued or being sent is a duplicate even when its key
// went: it has no Redis mark yet, so nothing else would stop a second send.
func TestUnmarkedAlertIsDuplicatePastTheBound(t *testing.T) {
	const bound = 16
	r := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id"}})
	l := boundedLane(bound)
	now := t0.Add(4 * time.Minute)
	first := breach(0, "b0")
	l.add(item(first, r), now)
	for i := 1; i <= 3*bound; i++ {
		l.add(item(breach(i, fmt.Sprintf("b%d", i)), r), now)
	}
	if l.seen.has(first.ID + "\x1f" + first.Status) {
		t.Fatal("the first key should have been evicted")
	}
	if out := l.add(item(first, r), now); len(out) != 1 || out[0].how != resultDuplicate {
		t.Fatalf("copy of a queued alert past the bound: %+v, want duplicate", out)
	}
	// Being sent, it is still unmarked: a copy is still a duplicate.
	l.flush(now.Add(time.Minute))
	var sending *Message
	for m := l.take(unlimited); m != nil; m = l.take(unlimited) {
		if slices.ContainsFunc(m.Items, func(it *Item) bool { return it.Alert.ID == first.ID }) {
			sending = m
		}
	}
	if sending == nil || l.pending() != 0 {
		t.Fatalf("the first alert was not taken; %d pending", l.pending())
	}
	if out := l.add(item(first, r), now.Add(time.Minute)); len(out) != 1 || out[0].how != resultDuplicate {
		t.Fatalf("copy of an alert being sent past the bound: %+v, want duplicate", out)
	}
	// Once marked, a copy is the Redis mark's to stop (consume).
	l.done(sending.Items)
	if out := l.add(item(first, r), now.Add(time.Minute)); len(out) != 0 || l.pending() != 1 {
		t.Fatalf("copy of a marked alert past the bound: %+v, pending %d", out, l.pending())
	}
}

func escalationOf(buyer string) alerting.Alert {
	a := warning(0, buyer)
	a.ID, a.Severity, a.Reason = "pr-"+buyer, alerting.Critical, alerting.ReasonPriority
	a.At = a.Due.Add(-90 * time.Second)
	return a
}

// Within the bound the escalation supersedes the warning that comes
// after it; past it (README, Limits) the warning is sent too. A breach
// still supersedes the queued warning of its wait however much came in
// between, and is never held back.
func TestSupersedeWithinAndPastTheBound(t *testing.T) {
	const bound = 32
	r := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id", "kind"}})
	now := t0.Add(2*time.Minute + 30*time.Second)
	others := func(l *lane, n int, at time.Time) {
		for i := range n {
			l.add(item(breach(i, fmt.Sprintf("x%d", i)), r), at)
		}
	}

	l := boundedLane(bound)
	l.add(item(escalationOf("b1"), r), now)
	others(l, bound-2, now)
	late := item(warning(0, "b1"), r)
	if out := l.add(late, now.Add(time.Second)); len(out) != 1 || out[0].item != late || out[0].how != resultInhibited {
		t.Fatalf("warning after its escalation, within the bound: %+v, want inhibited", out)
	}

	l = boundedLane(bound)
	l.add(item(escalationOf("b2"), r), now)
	others(l, 2*bound, now)
	if out := l.add(item(warning(0, "b2"), r), now.Add(time.Second)); len(out) != 0 {
		t.Fatalf("warning after its escalation, past the bound: %+v, want queued", out)
	}

	l = boundedLane(bound)
	w := item(warning(0, "b3"), r)
	l.add(w, now)
	others(l, 2*bound, now)
	b := breach(0, "b3")
	if out := l.add(item(b, r), now.Add(time.Minute)); len(out) != 1 || out[0].item != w || out[0].how != resultInhibited {
		t.Fatalf("breach after its warning past the bound: %+v, want the warning superseded", out)
	}
	if l.queued[b.ID] == nil {
		t.Fatal("the breach is not queued")
	}
}

// TestLaneMemoryHeap reports the heap a lane holds after a million alert
// records with every one delivered (only the memory of them stays), and
// the bytes per remembered key. Run with RW_NOTIFY_MEMBENCH=1 (BENCHMARKS.md).
func TestLaneMemoryHeap(t *testing.T) {
	if os.Getenv("RW_NOTIFY_MEMBENCH") == "" {
		t.Skip("set RW_NOTIFY_MEMBENCH=1 to measure")
	}
	const records = 1_000_000
	r := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id"}, GroupWait: ptrD(0), GroupInterval: ptrD(0)})
	heap := func() (inuse, live uint64) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse, ms.HeapAlloc
	}
	inuse0, live0 := heap()
	l := newTestLane()
	start := t0.Add(4 * time.Minute)
	for i := range records {
		// 10,000 records a second: a bad day.
		now := start.Add(time.Duration(i) * 100 * time.Microsecond)
		a := breach(i, "b")
		a.ID = fmt.Sprintf("%032x", i) // as long as the processor's ids
		l.add(item(a, r), now)
		if i%1000 == 999 {
			if n := drain(l, now); n != 1000 {
				t.Fatalf("%d alerts taken, want 1000", n)
			}
		}
	}
	drain(l, start.Add(records*100*time.Microsecond))
	inuse, live := heap()
	entries := l.seen.size()
	t.Logf("%d records: %d keys remembered; heap in use %.1f MiB more (%.0f bytes a key), live heap %.1f MiB more (%.0f bytes a key)",
		records, entries, float64(inuse-inuse0)/(1<<20), float64(inuse-inuse0)/float64(entries),
		float64(live-live0)/(1<<20), float64(live-live0)/float64(entries))
	runtime.KeepAlive(l)
}
