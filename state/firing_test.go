package state

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/internal/testenv"
)

// TestRedisFiring keeps the alerts firing now from the outbox records of
// each batch: a firing record is listed until its resolved record, in
// whichever batch or partition order they come, and a redelivered batch
// changes nothing.
func TestRedisFiring(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	claim(t, s, "chat.0", 1)
	claim(t, s, "chat.1", 1)
	firing := func() []string {
		t.Helper()
		got, err := s.Firing(ctx, []string{"chat.0", "chat.1", "chat.2"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range got {
			out = append(out, string(p))
		}
		slices.Sort(out)
		return out
	}
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 0, Outbox: []Delivery{
		{Key: "a1:firing", Payload: []byte(`{"alert_id":"a1","status":"firing"}`)},
		{Key: "a2:firing", Payload: []byte(`{"alert_id":"a2","status":"firing"}`)},
		// Fired and resolved in one batch: never listed.
		{Key: "a3:firing", Payload: []byte(`{"alert_id":"a3","status":"firing"}`)},
		{Key: "a3:resolved:replied", Payload: []byte(`{"alert_id":"a3","status":"resolved"}`)},
	}})
	apply(t, s, "chat.1", &Batch{Token: 1, Offset: 0, Outbox: []Delivery{
		{Key: "b1:firing", Payload: []byte(`{"alert_id":"b1","status":"firing"}`)},
	}})
	want := []string{`{"alert_id":"a1","status":"firing"}`, `{"alert_id":"a2","status":"firing"}`, `{"alert_id":"b1","status":"firing"}`}
	if got := firing(); !slices.Equal(got, want) {
		t.Fatalf("firing = %q, want %q", got, want)
	}
	apply(t, s, "chat.0", &Batch{Token: 1, Offset: 1, Outbox: []Delivery{
		{Key: "a1:resolved:retracted", Payload: []byte(`{"alert_id":"a1","status":"resolved"}`)},
	}})
	// Redelivered: stale, nothing written.
	if _, err := s.Apply(ctx, "chat.0", &Batch{Token: 1, Offset: 0, Outbox: []Delivery{
		{Key: "a1:firing", Payload: []byte(`{"alert_id":"a1","status":"firing"}`)},
	}}); !errors.Is(err, ErrStale) {
		t.Fatalf("redelivered batch: %v, want ErrStale", err)
	}
	want = []string{`{"alert_id":"a2","status":"firing"}`, `{"alert_id":"b1","status":"firing"}`}
	if got := firing(); !slices.Equal(got, want) {
		t.Fatalf("after a1 was resolved, firing = %q, want %q", got, want)
	}
	if ttl := c.TTL(ctx, "rw:{chat.0}:firing").Val(); ttl <= 71*time.Hour {
		t.Errorf("firing hash TTL = %v, want the state TTL", ttl)
	}
}
