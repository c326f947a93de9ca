package state

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/internal/testenv"
)

func TestOutboxEntryFraming(t *testing.T) {
	ds := []Delivery{{Key: "a:firing", Payload: []byte(`{"alert_id":"a"}`)}, {Key: "b:resolved:replied", Payload: nil},
		{Key: "c:firing", Payload: make([]byte, 300)}}
	v, at := frameRecords([]byte("junk before"), ds, nil)
	v = v[len("junk before"):]
	for i := range at {
		at[i][0] -= len("junk before")
		at[i][1] -= len("junk before")
	}
	e, err := outboxEntry("#7:a:firing", v)
	if err != nil {
		t.Fatal(err)
	}
	if e.Key != "#7:a:firing" || len(e.Records) != len(ds) {
		t.Fatalf("entry %+v", e)
	}
	for i, d := range ds {
		if e.Records[i].Key != d.Key || string(e.Records[i].Payload) != string(d.Payload) {
			t.Errorf("record %d = %s %q, want %s %q", i, e.Records[i].Key, e.Records[i].Payload, d.Key, d.Payload)
		}
		if got := v[at[i][0]:at[i][1]]; string(got) != string(d.Payload) {
			t.Errorf("payload %d lies at %v: %q", i, at[i], got)
		}
	}
	// An entry of the earlier shape is one record under its own key.
	if e, err := outboxEntry("a:firing", []byte(`{"x":1}`)); err != nil || !reflect.DeepEqual(e, OutboxEntry{Key: "a:firing", Records: []Delivery{{Key: "a:firing", Payload: []byte(`{"x":1}`)}}}) {
		t.Errorf("earlier shape: %+v, %v", e, err)
	}
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{nil, "outbox entry #1:k holds no record"},
		{[]byte{5, 'a', 'b'}, "outbox entry #1:k, record 1: key: 3 bytes left do not hold a length and that many bytes"},
		{append([]byte{1, 'k', 9}, "short"...), "outbox entry #1:k, record 1 (k): payload: 6 bytes left do not hold a length and that many bytes"},
		{[]byte{1, 'k'}, "outbox entry #1:k, record 1 (k): payload: 0 bytes left do not hold a length and that many bytes"},
		{[]byte{0xff}, "outbox entry #1:k, record 1: key: 1 bytes left do not hold a length and that many bytes"},
	} {
		if _, err := outboxEntry("#1:k", c.v); err == nil || err.Error() != c.want {
			t.Errorf("outboxEntry(%q) error = %v, want %q", c.v, err, c.want)
		}
	}
}

func TestFiringOps(t *testing.T) {
	recs := func(keys ...string) []Delivery {
		var ds []Delivery
		for _, k := range keys {
			ds = append(ds, Delivery{Key: k})
		}
		return ds
	}
	for _, c := range []struct {
		keys []string
		want []firingOp
	}{
		{nil, nil},
		{[]string{"a:firing", "b:firing"}, []firingOp{{"a", 0}, {"b", 1}}},
		{[]string{"a:firing", "a:resolved:replied"}, []firingOp{{"a", -1}}},
		{[]string{"a:resolved:replied", "a:firing"}, []firingOp{{"a", 1}}},
		{[]string{"b:resolved", "a:warning", "a:firing", "b:firing", "b:resolved:retracted"}, []firingOp{{"b", -1}, {"a", 2}}},
		{[]string{"nocolon", "x:firingish"}, nil},
	} {
		got := firingOps(nil, map[string]int{}, recs(c.keys...))
		if !slices.Equal(got, c.want) {
			t.Errorf("firingOps(%q) = %v, want %v", c.keys, got, c.want)
		}
	}
}

// TestRedisOutboxReadsTheEarlierShape: a replica of this version delivers
// the per-record outbox entries an earlier version left (a record's key →
// its payload, leased under that key) and acks them by that key; an entry
// it cannot read is reported, and the others are still handed out.
func TestRedisOutboxReadsTheEarlierShape(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, testenv.Redis(t))
	s := NewRedis(c, "rw", time.Hour)
	claim(t, s, "chat.0", 1)
	base := "rw:{chat.0}:"
	// As the earlier apply.lua wrote them.
	c.HSet(ctx, base+"outbox", "old1:firing", `{"alert_id":"old1"}`, "old2:resolved:replied", `{"alert_id":"old2"}`)
	c.ZAdd(ctx, base+"outbox:lease", redis.Z{Score: 1000, Member: "old1:firing"}, redis.Z{Score: 1000, Member: "old2:resolved:replied"})
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 5, Now: 2000, Lease: time.Second,
		Outbox: []Delivery{{Key: "new1:firing", Payload: []byte(`{"alert_id":"new1"}`)}}})
	es, err := s.Outbox(ctx, "chat.0", 1, 3000, time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`old1:firing: old1:firing={"alert_id":"old1"}`, `old2:resolved:replied: old2:resolved:replied={"alert_id":"old2"}`,
		`#5:new1:firing: new1:firing={"alert_id":"new1"}`}
	if got := entries(es); !slices.Equal(got, want) {
		t.Fatalf("outbox = %q, want %q", got, want)
	}
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 6, Acks: []string{"old1:firing", "#5:new1:firing"}})
	es, err = s.Outbox(ctx, "chat.0", 1, 1<<50, time.Second, 10)
	if got := entries(es); err != nil || !slices.Equal(got, want[1:2]) {
		t.Fatalf("outbox after acks = %q, %v; want %q", got, err, want[1:2])
	}

	c.HSet(ctx, base+"outbox", "#9:bad:firing", "\x05ab")
	c.ZAdd(ctx, base+"outbox:lease", redis.Z{Score: 1, Member: "#9:bad:firing"})
	es, err = s.Outbox(ctx, "chat.0", 1, 1<<51, time.Second, 10)
	if !errors.Is(err, ErrOutboxEntry) || !slices.Equal(entries(es), want[1:2]) {
		t.Fatalf("outbox with an unreadable entry = %q, %v; want %q and ErrOutboxEntry", entries(es), err, want[1:2])
	}
	if want := "#9:bad:firing, record 1: key"; !strings.Contains(fmt.Sprint(err), want) {
		t.Errorf("error %q does not name the entry (%q)", err, want)
	}
	if n := c.ZCard(ctx, base+"outbox:lease").Val(); n != 2 {
		t.Errorf("%d leases left, want the unreadable entry's still there with the other", n)
	}
}
