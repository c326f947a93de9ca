package sim_test

import (
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/text"
)

// TestTextRuleRates: a simulated day's agents and buyers write what the
// text rules look for, at rates a shop would see (so the demo shows every
// text alert every day), judged by the shipped lexicons themselves: per
// category, the share of agents' (buyers' for complaint intent) messages
// flagged lies in a realistic band, and every category shows up on a day
// of six shops.
func TestTextRuleRates(t *testing.T) {
	lex, err := text.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := text.Compile(lex)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, sim.Shanghai())
	flagged := map[text.Category]int{}
	var agentMsgs, buyerMsgs int
	err = sim.Generate(sim.Options{Seed: 7, Shops: 6, Start: start, End: start.Add(24 * time.Hour)}, func(r sim.Record) error {
		ev := &r.Event
		if r.Topic != event.Chat || ev.Type != event.TypeMessage || ev.Text == "" {
			return nil
		}
		var cats []text.Category
		switch ev.Sender {
		case event.SenderAgent:
			agentMsgs++
			cats = []text.Category{text.Threat, text.Abuse, text.Sarcasm, text.OffPlatform, text.Perfunctory}
		case event.SenderBuyer:
			buyerMsgs++
			cats = []text.Category{text.ComplaintIntent}
		default:
			return nil
		}
		for _, c := range m.Scan(ev.Text, cats...) {
			flagged[c.Category]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	share := func(n, of int) float64 { return float64(n) / float64(of) }
	abusive := flagged[text.Abuse] + flagged[text.Threat] + flagged[text.Sarcasm]
	for _, c := range []struct {
		what     string
		n, of    int
		min, max float64
	}{
		// A few abusive or off-platform replies a shop-day: rare, as the
		// 30-point penalty makes them, but there.
		{"abusive (abuse, threat, sarcasm) of agents' messages", abusive, agentMsgs, 0.0005, 0.01},
		{"off-platform of agents' messages", flagged[text.OffPlatform], agentMsgs, 0.0005, 0.01},
		// Filler replies and brush-offs are the commonest fault.
		{"perfunctory of agents' messages", flagged[text.Perfunctory], agentMsgs, 0.003, 0.05},
		// Complaint threats come with after-sale trouble: a few per cent.
		{"complaint intent of buyers' messages", flagged[text.ComplaintIntent], buyerMsgs, 0.005, 0.1},
	} {
		s := share(c.n, c.of)
		t.Logf("%s: %d of %d (%.2f %%)", c.what, c.n, c.of, 100*s)
		if s < c.min || s > c.max {
			t.Errorf("%s: %.3f %%, want %.2f–%.1f %%", c.what, 100*s, 100*c.min, 100*c.max)
		}
	}
	for _, c := range text.Categories {
		if flagged[c] == 0 {
			t.Errorf("no message of the day flagged %s", c)
		}
	}
}
