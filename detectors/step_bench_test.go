package detectors_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
)

// benchRules are the PDD defaults: 08:00–23:00 Shanghai, 3m and 5m,
// warnings a minute before.
func benchRules() (*detectors.Rules, *time.Location) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		loc = time.FixedZone("CST", 8*3600)
	}
	return &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}, loc
}

// stepCases are the two ways the pipeline runs an event through a
// conversation: cached in memory (Chat, then MarshalBinary for the batch)
// or read from Redis first (UnmarshalBinary too).
var stepCases = []struct {
	name   string
	cached bool
}{
	{"cached", true},
	{"loaded", false},
}

// BenchmarkChatStep measures one chat event on a conversation as the
// pipeline pays it: a buyer message or a human reply 20 s later, in turn,
// with the state encoded after each event (and decoded before it when the
// conversation is not cached). A conversation lasts 20 events, then a new
// one starts, so the state has a typical size.
func BenchmarkChatStep(b *testing.B) {
	for _, tc := range stepCases {
		b.Run(tc.name, func(b *testing.B) {
			r, loc := benchRules()
			e := &detectors.Engine{Rules: func(string) *detectors.Rules { return r }}
			start := time.Date(2026, 11, 11, 10, 0, 0, 0, loc)
			evs := [2]event.Event{
				{Type: event.TypeMessage, Sender: event.SenderBuyer, AgentID: "shop-01-a1", ShopID: "shop-01", BuyerID: "b100001", Platform: "pdd"},
				{Type: event.TypeMessage, Sender: event.SenderAgent, AgentID: "shop-01-a1", ShopID: "shop-01", BuyerID: "b100001", Platform: "pdd"},
			}
			ids := make([]string, 1024)
			for i := range ids {
				ids[i] = "1-1794362400-" + strconv.Itoa(i)
			}
			fresh, _ := (&detectors.Conversation{}).MarshalBinary()
			var (
				c    *detectors.Conversation
				blob []byte
				fx   detectors.Effects
				size int
				n    int
			)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := i % 20
				if k == 0 {
					c, blob = &detectors.Conversation{Shop: "shop-01", Buyer: "b100001"}, fresh
				}
				if !tc.cached {
					c = &detectors.Conversation{Shop: "shop-01", Buyer: "b100001"}
					if err := c.UnmarshalBinary(blob); err != nil {
						b.Fatal(err)
					}
				}
				ev := &evs[i%2]
				ev.EventID = ids[i%len(ids)]
				ev.TS = event.Time{Time: start.Add(time.Duration(k) * 20 * time.Second)}
				if res := e.Chat(c, ev, &fx); res != detectors.Applied {
					b.Fatalf("event %d: result %v", i, res)
				}
				var err error
				if blob, err = c.MarshalBinary(); err != nil {
					b.Fatal(err)
				}
				size += len(blob)
				n++
				fx.Reset()
			}
			b.ReportMetric(float64(size)/float64(max(n, 1)), "state-bytes")
		})
	}
}
