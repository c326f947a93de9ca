package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

var factCases = []struct {
	name   string
	stream event.Stream
	value  string
	// want is the fact's key, "" for none; intent its intent.
	want, intent string
}{
	{"a buyer message, its text judged and dropped", event.Chat,
		`{"event_id":"m1","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer","msg_id":"x","text":"我要投诉"}`,
		"s1/b1", event.IntentComplaint},
	{"a buyer message without complaint", event.Chat,
		`{"event_id":"m2","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer","text":"在吗"}`,
		"s1/b1", ""},
	{"a human reply", event.Chat,
		`{"event_id":"m3","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"agent","agent_id":"a1","text":"在的"}`,
		"s1/b1", ""},
	{"a bot answers no one", event.Chat,
		`{"event_id":"m4","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"bot","text":"自动回复"}`,
		"", ""},
	{"a transfer is not a fact", event.Chat,
		`{"event_id":"t1","type":"transfer","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","agent_id":"a2"}`,
		"", ""},
	{"a payment", event.Orders,
		`{"event_id":"p1","type":"order_paid","ts":"2026-11-24T10:00:00+08:00","shop_id":"s2","buyer_id":"b9","order_id":"o1","amount_cents":100}`,
		"s2/b9", ""},
	{"a dispute", event.Orders,
		`{"event_id":"d1","type":"dispute_opened","ts":"2026-11-24T10:00:00+08:00","shop_id":"s2","buyer_id":"b9","order_id":"o1","respond_by":"2026-11-25T10:00:00+08:00"}`,
		"s2/b9", ""},
	{"a shipment is not a fact", event.Orders,
		`{"event_id":"s1","type":"order_shipped","ts":"2026-11-24T10:00:00+08:00","shop_id":"s2","buyer_id":"b9","order_id":"o1"}`,
		"", ""},
	{"bad input is left to the processor's dead letters", event.Chat,
		`{"event_id":"m5","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1"}`,
		"", ""},
	{"presence is not the join's", event.Presence,
		`{"event_id":"a1","type":"agent_status","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","agent_id":"a1","status":"online"}`,
		"", ""},
}

// The repartition stage keeps what the join needs, keyed by the event's
// own shop and buyer, with text, ids and amounts dropped, and each fact
// valid on the buyers stream.
func TestRepartitionFacts(t *testing.T) {
	r := NewRepartitioner(RepartitionConfig{Buyers: "cs.buyers"},
		func(_, text string) bool { return strings.Contains(text, "投诉") }, nil)
	r.Now = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	for _, c := range factCases {
		t.Run(c.name, func(t *testing.T) {
			key, fact, ok := r.Fact(c.stream, []byte(c.value))
			if ok != (c.want != "") || key != c.want {
				t.Fatalf("fact %v with key %q, want key %q", ok, key, c.want)
			}
			if !ok {
				return
			}
			ev, err := event.Decode(event.Buyers, fact, r.Now())
			if err != nil {
				t.Fatalf("the fact %s is not a buyers event: %v", fact, err)
			}
			if ev.Intent != c.intent || ev.Text != "" || ev.MsgID != "" || ev.AmountCents != 0 || ev.RespondBy != nil {
				t.Errorf("fact %s: want intent %q and no text, msg_id, amount or respond_by", fact, c.intent)
			}
			if len(fact) >= len(c.value) {
				t.Errorf("fact of %d bytes from a record of %d", len(fact), len(c.value))
			}
		})
	}
}
