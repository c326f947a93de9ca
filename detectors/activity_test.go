package detectors

import (
	"testing"

	"github.com/replywatch/replywatch/event"
)

// A human reply is agent activity (for idle seats); buyer and bot messages
// are not.
func TestHumanRepliesAreActivity(t *testing.T) {
	e := &Engine{Rules: func(string) *Rules { return pddRules() }}
	c := &Conversation{Shop: "s1", Buyer: "b1"}
	var fx Effects
	at := clockAt(shanghai, "2026-11-24 10:00:00.000")
	for i, sender := range []string{event.SenderBuyer, event.SenderBot, event.SenderAgent} {
		e.Chat(c, &event.Event{EventID: string(rune('a' + i)), Type: event.TypeMessage, TS: event.Time{Time: at},
			ShopID: "s1", BuyerID: "b1", Sender: sender, AgentID: "a7"}, &fx)
	}
	if len(fx.Activity) != 1 || fx.Activity[0] != (Activity{Shop: "s1", Agent: "a7", At: at.UnixMilli()}) {
		t.Errorf("activity = %+v, want one for a7 at the reply", fx.Activity)
	}
	fx.Reset()
	if len(fx.Activity) != 0 {
		t.Error("Reset kept activity")
	}
}
