package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var positionCases = []struct {
	id   string
	ok   bool
	want Position
}{
	{"0:12", true, Position{0: 12}},
	{"0:12,1:0,10:7", true, Position{0: 12, 1: 0, 10: 7}},
	{"", false, nil},
	{"0:12,", false, nil},
	{"0:-1", false, nil},
	{"x:1", false, nil},
	{"0=1", false, nil},
}

func TestPosition(t *testing.T) {
	for _, c := range positionCases {
		p, err := ParsePosition(c.id)
		if (err == nil) != c.ok {
			t.Errorf("ParsePosition(%q) error %v", c.id, err)
			continue
		}
		if c.ok && p.String() != c.id && Position(c.want).String() != p.String() {
			t.Errorf("ParsePosition(%q) = %v", c.id, p)
		}
	}
	if got := (Position{10: 7, 0: 12, 1: 0}).String(); got != "0:12,1:0,10:7" {
		t.Errorf("String = %q", got)
	}
}

// A subscriber that stops reading is dropped once its buffer is full, and
// publishing never waits for it: the others get every record.
func TestSlowSubscriberIsDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHub(nil, "cs.alerts", reg, nil)
	h.Buffer, h.Keep = 4, 100
	h.pos, h.low = map[int]int64{0: 0}, map[int]int64{0: 0}
	close(h.ready)
	ctx := context.Background()
	slow, _, _, _, err := h.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _, _, err := h.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 100)
	go func() {
		for ev := range fast.ch {
			got <- ev.off
		}
	}()
	start := time.Now()
	for off := range int64(50) {
		h.publish(hubEvent{part: 0, off: off, data: []byte(`{}`)})
		// The fast reader keeps up.
		select {
		case o := <-got:
			if o != off {
				t.Fatalf("fast subscriber got offset %d, want %d", o, off)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("fast subscriber did not get offset %d", off)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publishing took %v", d)
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("the slow subscriber was not dropped")
	}
	if v := testutil.ToFloat64(h.dropped); v != 1 {
		t.Errorf("dropped = %v, want 1", v)
	}
	if v := testutil.ToFloat64(h.subscribers); v != 1 {
		t.Errorf("subscribers = %v, want 1", v)
	}
	// The hub keeps what it holds for resuming.
	if len(h.ring) != 50 || h.pos[0] != 50 {
		t.Errorf("ring %d, position %d", len(h.ring), h.pos[0])
	}
}

// The hub holds at most 2×Keep records whether or not anyone subscribes
// (a replica nobody streams from reads every alert all the same), always
// the latest Keep at least, and its per-partition floor is the oldest
// offset it still holds: a client resuming from before it is read again
// from Kafka.
func TestHubHoldsABoundedRing(t *testing.T) {
	for _, subscribed := range []bool{false, true} {
		h := NewHub(nil, "cs.alerts", nil, nil)
		h.Buffer, h.Keep = 1<<20, 100
		h.pos, h.low = map[int]int64{0: 0, 1: 0}, map[int]int64{0: 0, 1: 0}
		close(h.ready)
		if subscribed {
			if _, _, _, _, err := h.subscribe(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		const n = 1000 // ten times Keep, over two partitions
		for i := range int64(n) {
			h.publish(hubEvent{part: int(i % 2), off: i / 2, data: []byte(`{"alert_id":"a"}`)})
			if len(h.ring) >= 2*h.Keep {
				t.Fatalf("subscribed %v: %d records held after %d published, Keep %d", subscribed, len(h.ring), i+1, h.Keep)
			}
		}
		_, pos, held, low, err := h.subscribe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(held) < h.Keep {
			t.Errorf("subscribed %v: %d records held, want at least Keep (%d)", subscribed, len(held), h.Keep)
		}
		// What is held is every record from the floor to the position, in order.
		next := Position{}
		for p, o := range low {
			next[p] = o
		}
		for _, ev := range held {
			if ev.off != next[ev.part] {
				t.Fatalf("subscribed %v: held partition %d offset %d, want %d (floor %v)", subscribed, ev.part, ev.off, next[ev.part], low)
			}
			next[ev.part]++
		}
		if next.String() != pos.String() || pos.String() != "0:500,1:500" {
			t.Errorf("subscribed %v: held up to %v, position %v, want 0:500,1:500", subscribed, next, pos)
		}
	}
}
