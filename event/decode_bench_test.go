package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// typicalChat is a buyer message as the simulator writes it: the common
// record on cs.chat.
var typicalChat = []byte(`{"event_id":"1-1794362400-14","type":"message","ts":"2026-11-11T10:00:50.878+08:00","shop_id":"shop-01","platform":"pdd","buyer_id":"b100001","sender":"buyer","agent_id":"shop-01-a1","msg_id":"1794362400-14","text":"怎么还没发货","order_id":"o01-p1000001"}`)

// BenchmarkDecodeChatMessage measures decoding and validating one typical
// chat record: every input record pays it once.
func BenchmarkDecodeChatMessage(b *testing.B) {
	now := time.Date(2026, 11, 11, 10, 1, 0, 0, time.UTC)
	b.SetBytes(int64(len(typicalChat)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := event.Decode(event.Chat, typicalChat, now)
		if err != nil {
			b.Fatal(err)
		}
		if ev.BuyerID != "b100001" {
			b.Fatalf("decoded buyer %q", ev.BuyerID)
		}
	}
}

// BenchmarkDecodeChatMessageUnmarshal is the same record through
// json.Unmarshal and Validate alone: the floor of decoding with
// encoding/json, against which Decode's own cost shows.
func BenchmarkDecodeChatMessageUnmarshal(b *testing.B) {
	now := time.Date(2026, 11, 11, 10, 1, 0, 0, time.UTC)
	b.SetBytes(int64(len(typicalChat)))
	b.ReportAllocs()
	for b.Loop() {
		var ev event.Event
		if err := json.Unmarshal(typicalChat, &ev); err != nil {
			b.Fatal(err)
		}
		if err := ev.Validate(event.Chat, now); err != nil {
			b.Fatal(err)
		}
	}
}
