package detectors_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
)

// BenchmarkOrderStep measures one order event on a buyer's order book as
// the pipeline pays it (as BenchmarkChatStep does for chat): a book of
// three orders, each paid, grouped, shipped and reviewed, one refunded and
// one disputed, then a new buyer.
func BenchmarkOrderStep(b *testing.B) {
	_, loc := benchRules()
	rules := &detectors.OrderRules{Platform: "pdd", Loc: loc, ShipWithin: 48 * time.Hour, WarnBefore: 4 * time.Hour,
		RespondWarnBefore: 2 * time.Hour, ConversionWindow: 24 * time.Hour, BadReviewAt: 2}
	e := &detectors.OrderEngine{Rules: func(string) *detectors.OrderRules { return rules }}
	start := time.Date(2026, 11, 11, 10, 0, 0, 0, loc)
	respond := &event.Time{Time: start.Add(30 * time.Hour)}
	var script []event.Event
	for o := 0; o < 3; o++ {
		id := "o" + strconv.Itoa(o)
		at := func(h int) event.Time { return event.Time{Time: start.Add(time.Duration(o*5+h) * time.Hour)} }
		script = append(script,
			event.Event{Type: event.TypeOrderPaid, OrderID: id, TS: at(0)},
			event.Event{Type: event.TypeOrderGrouped, OrderID: id, TS: at(1)},
			event.Event{Type: event.TypeOrderShipped, OrderID: id, TS: at(20)},
			event.Event{Type: event.TypeReviewPosted, OrderID: id, TS: at(60), Rating: 4})
	}
	script = append(script,
		event.Event{Type: event.TypeRefundRequested, OrderID: "o1", TS: event.Time{Time: start.Add(70 * time.Hour)}},
		event.Event{Type: event.TypeRefundCompleted, OrderID: "o1", TS: event.Time{Time: start.Add(72 * time.Hour)}},
		event.Event{Type: event.TypeDisputeOpened, OrderID: "o2", TS: event.Time{Time: start.Add(6 * time.Hour)}, RespondBy: respond},
		event.Event{Type: event.TypeDisputeClosed, OrderID: "o2", TS: event.Time{Time: start.Add(29 * time.Hour)}})
	for i := range script {
		script[i].ShopID, script[i].BuyerID, script[i].Platform, script[i].AgentID = "shop-01", "b100001", "pdd", "shop-01-a1"
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "1-1794362400-" + strconv.Itoa(i)
	}
	for _, tc := range stepCases {
		b.Run(tc.name, func(b *testing.B) {
			fresh, _ := (&detectors.OrderBook{}).MarshalBinary()
			var (
				book    *detectors.OrderBook
				blob    []byte
				fx      detectors.Effects
				size, n int
			)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := i % len(script)
				if k == 0 {
					book, blob = &detectors.OrderBook{Shop: "shop-01", Buyer: "b100001"}, fresh
				}
				if !tc.cached {
					book = &detectors.OrderBook{Shop: "shop-01", Buyer: "b100001"}
					if err := book.UnmarshalBinary(blob); err != nil {
						b.Fatal(err)
					}
				}
				ev := &script[k]
				ev.EventID = ids[i%len(ids)]
				if res := e.Order(book, ev, &fx); res != detectors.Applied {
					b.Fatalf("event %d: result %v", i, res)
				}
				var err error
				if blob, err = book.MarshalBinary(); err != nil {
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
