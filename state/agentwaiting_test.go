package state

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/internal/testenv"
)

// TestAgentWaiting lists an agent's waiting buyers across partitions and
// shops, from a set split into buckets (more buyers than a compact bucket
// holds), earliest wait first, at most the limit, without another agent's
// buyers or the buyers whose wait ended.
func TestAgentWaiting(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	claim(t, s, "chat.0", 1)
	claim(t, s, "chat.1", 1)
	const t0 = int64(1_700_000_000_000)
	var want []WaitingBuyer
	// 300 buyers of a1 in s1 on chat.0: the set splits (zsetCompact 128).
	b := &Batch{Token: 1, Offset: 0}
	for i := range 300 {
		buyer := fmt.Sprintf("b%03d", i)
		start := t0 + int64((i*37)%300)*1000
		b.Waits = append(b.Waits,
			detectors.WaitOp{Shop: "s1", Buyer: buyer, Start: start, Add: true},
			detectors.WaitOp{Shop: "s1", Agent: "a1", Buyer: buyer, Start: start, Add: true})
		want = append(want, WaitingBuyer{Shop: "s1", Agent: "a1", Buyer: buyer, Start: start})
	}
	// Another agent's buyer in the same shop and partition.
	b.Waits = append(b.Waits, detectors.WaitOp{Shop: "s1", Agent: "a2", Buyer: "x1", Start: t0, Add: true})
	apply(t, s, "chat.0", b)
	// a1 in another shop, on another partition; one of them answered.
	apply(t, s, "chat.1", &Batch{Token: 1, Offset: 0, Waits: []detectors.WaitOp{
		{Shop: "s2", Agent: "a1", Buyer: "y1", Start: t0 + 500, Add: true},
		{Shop: "s2", Agent: "a1", Buyer: "y2", Start: t0 + 600, Add: true},
	}})
	apply(t, s, "chat.1", &Batch{Token: 1, Offset: 1, Waits: []detectors.WaitOp{
		{Shop: "s2", Agent: "a1", Buyer: "y2", Start: t0 + 600},
	}})
	want = append(want, WaitingBuyer{Shop: "s2", Agent: "a1", Buyer: "y1", Start: t0 + 500})
	slices.SortFunc(want, func(x, y WaitingBuyer) int {
		return cmp.Or(cmp.Compare(x.Start, y.Start), cmp.Compare(x.Shop, y.Shop), cmp.Compare(x.Buyer, y.Buyer))
	})
	if level, _ := c.HGet(ctx, "rw:{chat.0}:wl", "s1"+detectors.AgentSetSep+"a1").Int(); level == 0 {
		t.Fatalf("a1's set in s1 did not split; the test needs buckets")
	}
	scopes, err := s.Scopes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.AgentWaiting(ctx, scopes, "a1", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("a1 waiting: %d buyers, want %d; first %v, want %v", len(got), len(want), got[:min(3, len(got))], want[:3])
	}
	if got, err = s.AgentWaiting(ctx, scopes, "a1", 10); err != nil || !slices.Equal(got, want[:10]) {
		t.Errorf("a1's 10 earliest: %v, %v; want %v", got, err, want[:10])
	}
	if got, err = s.AgentWaiting(ctx, scopes, "a2", 10); err != nil || !slices.Equal(got, []WaitingBuyer{{Shop: "s1", Agent: "a2", Buyer: "x1", Start: t0}}) {
		t.Errorf("a2 waiting: %v, %v", got, err)
	}
	if got, err = s.AgentWaiting(ctx, scopes, "nobody", 10); err != nil || len(got) != 0 {
		t.Errorf("an agent with no set: %v, %v", got, err)
	}
}
