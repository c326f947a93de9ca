package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// A conversation-day re-sent whole (a sync job sending the same events with
// new offsets) is recognised event by event and changes nothing, also across
// an encode/decode of the state after every event.
func TestWholeConversationResentIsDuplicate(t *testing.T) {
	e := &Engine{Rules: func(string) *Rules { return pddRules() }}
	var evs []*event.Event
	base := clockAt(shanghai, "2026-11-24 10:00:00.000")
	for i := 0; i < 40; i++ {
		sender := event.SenderBuyer
		if i%3 == 2 {
			sender = event.SenderAgent
		}
		evs = append(evs, &event.Event{EventID: fmt.Sprintf("ev-%d", i), Type: event.TypeMessage,
			TS: event.Time{Time: base.Add(time.Duration(i) * 50 * time.Second)}, ShopID: "s1", BuyerID: "b1",
			Sender: sender, AgentID: "a1"})
	}
	c := &Conversation{Shop: "s1", Buyer: "b1"}
	var fx Effects
	for _, ev := range evs {
		if r := e.Chat(c, ev, &fx); r != Applied {
			t.Fatalf("first delivery of %s: %v", ev.EventID, r)
		}
	}
	before, _ := c.MarshalBinary()
	nAlerts, nFigs := len(fx.Alerts), len(fx.Figures)
	for _, ev := range evs {
		blob, _ := c.MarshalBinary()
		c = &Conversation{Shop: "s1", Buyer: "b1"}
		if err := c.UnmarshalBinary(blob); err != nil {
			t.Fatal(err)
		}
		if r := e.Chat(c, ev, &fx); r != Duplicate {
			t.Errorf("re-sent %s: %v, want Duplicate", ev.EventID, r)
		}
	}
	after, _ := c.MarshalBinary()
	if string(before) != string(after) {
		t.Error("re-sent events changed the conversation state")
	}
	if len(fx.Alerts) != nAlerts || len(fx.Figures) != nFigs {
		t.Errorf("re-sent events produced %d alerts and %d figure changes", len(fx.Alerts)-nAlerts, len(fx.Figures)-nFigs)
	}
}
