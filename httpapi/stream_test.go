package httpapi

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/replywatch/replywatch/config"
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
	slow, _, _, _, err := h.subscribe(ctx, route{all: true})
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _, _, err := h.subscribe(ctx, route{all: true})
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

func TestRouteOf(t *testing.T) {
	sup := &Scope{Role: config.RoleSupervisor, Shops: map[string]bool{"s2": true, "s1": true}}
	agent := &Scope{Role: config.RoleAgent, Agent: "a1"}
	for _, c := range []struct {
		name  string
		scope *Scope
		f     filter
		want  route
	}{
		{"loopback", &Scope{All: true}, filter{}, route{all: true}},
		{"loopback, a kind", &Scope{All: true}, filter{kinds: []string{"reply_breach"}}, route{all: true}},
		{"loopback, a shop", &Scope{All: true}, filter{shops: []string{"s3"}}, route{shops: []string{"s3"}}},
		{"supervisor", sup, filter{}, route{shops: []string{"s1", "s2"}}},
		{"supervisor, a shop", sup, filter{shops: []string{"s2"}}, route{shops: []string{"s2"}}},
		{"supervisor, an agent", sup, filter{agents: []string{"a7"}, shops: []string{"s2"}}, route{agents: []string{"a7"}}},
		{"agent", agent, filter{}, route{agents: []string{"a1"}}},
		{"agent, its own", agent, filter{agents: []string{"a1"}}, route{agents: []string{"a1"}}},
	} {
		if got := routeOf(c.scope, &c.f); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: route %+v, want %+v", c.name, got, c.want)
		}
	}
}

// The hub hands a record only to the subscribers filed under every
// record, its agent or its shop, each once; a subscriber that leaves or
// is dropped leaves no trace in the index.
func TestHubRoutesByScope(t *testing.T) {
	h := NewHub(nil, "cs.alerts", nil, nil)
	h.Buffer, h.Keep = 8, 100
	h.pos, h.low = map[int]int64{0: 0, 1: 0}, map[int]int64{0: 0, 1: 0}
	close(h.ready)
	ctx := context.Background()
	subs := map[string]*subscriber{}
	for name, rt := range map[string]route{
		"all": {all: true}, "a1": {agents: []string{"a1"}}, "a1+a2": {agents: []string{"a1", "a2"}},
		"s1": {shops: []string{"s1"}}, "s1+s2": {shops: []string{"s1", "s2"}}, "s3": {shops: []string{"s3"}},
	} {
		s, _, _, _, err := h.subscribe(ctx, rt)
		if err != nil {
			t.Fatal(err)
		}
		subs[name] = s
	}
	records := []struct{ shop, agent string }{{"s1", "a1"}, {"s2", "a1"}, {"s1", "a2"}, {"s2", "a3"}, {"s1", ""}, {"", ""}}
	for i, r := range records {
		h.publish(hubEvent{part: i % 2, off: int64(i / 2),
			data: []byte(fmt.Sprintf(`{"alert_id":"x%d","shop_id":%q,"agent_id":%q}`, i, r.shop, r.agent))})
	}
	want := map[string][]string{
		"all": {"x0", "x1", "x2", "x3", "x4", "x5"}, "a1": {"x0", "x1"}, "a1+a2": {"x0", "x1", "x2"},
		"s1": {"x0", "x2", "x4"}, "s1+s2": {"x0", "x1", "x2", "x3", "x4"}, "s3": nil,
	}
	for name, s := range subs {
		var got []string
		var ids []string
	drain:
		for {
			select {
			case ev := <-s.ch:
				got = append(got, ev.rec.ID)
				ids = append(ids, ev.id)
			default:
				break drain
			}
		}
		if !slices.Equal(got, want[name]) {
			t.Errorf("%s got %v, want %v", name, got, want[name])
		}
		// Each record's id is the hub's position after it.
		for k, id := range ids {
			i := slices.Index(want["all"], got[k])
			if wantID := (Position{0: int64(i/2 + 1), 1: int64((i + 1) / 2)}).String(); id != wantID {
				t.Errorf("%s: %s has id %s, want %s", name, got[k], id, wantID)
			}
		}
	}
	// A record of a1 fills a1's buffer: a1 is dropped, the others stay.
	for i := range h.Buffer + 1 {
		h.publish(hubEvent{part: 0, off: int64(3 + i), data: []byte(`{"alert_id":"y","shop_id":"s9","agent_id":"a1"}`)})
	}
	for _, name := range []string{"a1", "a1+a2"} {
		select {
		case <-subs[name].gone:
		default:
			t.Errorf("%s was not dropped", name)
		}
	}
	for name, s := range subs {
		if name != "a1" && name != "a1+a2" {
			h.unsubscribe(s)
		}
	}
	if len(h.subs) != 0 || len(h.all) != 0 || len(h.byAgent) != 0 || len(h.byShop) != 0 || h.nsubs.Load() != 0 {
		t.Errorf("after every subscriber left: subs %d, all %d, by agent %v, by shop %v",
			len(h.subs), len(h.all), h.byAgent, h.byShop)
	}
}

// The hub's position is a subscriber's only while it has taken every
// record handed to it, and never once it was dropped: a heartbeat's id
// must not pass over records the client did not get.
func TestIdle(t *testing.T) {
	h := NewHub(nil, "cs.alerts", nil, nil)
	h.Buffer, h.Keep = 2, 100
	h.pos, h.low = map[int]int64{0: 0}, map[int]int64{0: 0}
	close(h.ready)
	s, _, _, _, err := h.subscribe(context.Background(), route{agents: []string{"a1"}})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(hubEvent{part: 0, off: 0, data: []byte(`{"shop_id":"s1","agent_id":"a2"}`)})
	if got := h.idle(s); !reflect.DeepEqual(got, Position{0: 1}) {
		t.Errorf("after a record of another agent: idle = %v, want 0:1", got)
	}
	h.publish(hubEvent{part: 0, off: 1, data: []byte(`{"shop_id":"s1","agent_id":"a1"}`)})
	if got := h.idle(s); got != nil {
		t.Errorf("with a record waiting: idle = %v, want nil", got)
	}
	<-s.ch
	if got := h.idle(s); !reflect.DeepEqual(got, Position{0: 2}) {
		t.Errorf("once it is taken: idle = %v, want 0:2", got)
	}
	for off := int64(2); off < 5; off++ {
		h.publish(hubEvent{part: 0, off: off, data: []byte(`{"shop_id":"s1","agent_id":"a1"}`)})
	}
	<-s.gone
	<-s.ch
	<-s.ch
	if got := h.idle(s); got != nil {
		t.Errorf("dropped: idle = %v, want nil", got)
	}
}

// BenchmarkPublish hands records of 40 shops' 1,200 agents to 500
// subscribers: filed by scope (480 agents' pages, 20 walls of every
// shop), and all filed under every record (what every subscriber cost
// before the hub filed them by scope, and what 500 walls still cost).
//
//	go test ./httpapi -run '^$' -bench Publish
func BenchmarkPublish(b *testing.B) {
	const shops, agents = 40, 30
	records := make([][]byte, 0, shops*agents)
	for s := range shops {
		for a := range agents {
			records = append(records, []byte(fmt.Sprintf(
				`{"alert_id":"x","kind":"reply_breach","status":"firing","shop_id":"shop-%02d","agent_id":"shop-%02d-a%d"}`, s, s, a)))
		}
	}
	for _, c := range []struct {
		name   string
		routes func(i int) route
	}{
		{"scoped", func(i int) route {
			if i < 20 {
				return route{all: true}
			}
			k := i - 20 // 12 agents of each shop
			return route{agents: []string{fmt.Sprintf("shop-%02d-a%d", k%shops, k/shops)}}
		}},
		{"every", func(int) route { return route{all: true} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := NewHub(nil, "cs.alerts", nil, nil)
			h.Buffer, h.Keep = 1024, 10_000
			h.pos, h.low = map[int]int64{0: 0}, map[int]int64{0: 0}
			close(h.ready)
			var subs []*subscriber
			for i := range 500 {
				s, _, _, _, err := h.subscribe(context.Background(), c.routes(i))
				if err != nil {
					b.Fatal(err)
				}
				subs = append(subs, s)
			}
			handed := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.publish(hubEvent{part: 0, off: int64(i), data: records[i%len(records)]})
				if i%512 == 511 {
					b.StopTimer()
					for _, s := range subs {
						for len(s.ch) > 0 {
							<-s.ch
							handed++
						}
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(handed)/float64(b.N), "handed/record")
		})
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
			if _, _, _, _, err := h.subscribe(context.Background(), route{all: true}); err != nil {
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
		_, pos, held, low, err := h.subscribe(context.Background(), route{all: true})
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
