package sim

import (
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// The bad day is what rwbench's storm part promises: five valid chat
// messages per conversation, each conversation its own buyer, records in
// event-time order but for a few sent late by at most a second or so
// (far inside the allowed lateness) and a few sent twice, and first
// replies that mostly come after a reply warning.
func TestStormIsABadDay(t *testing.T) {
	const convs = 3000
	start := time.Date(2026, 11, 11, 14, 0, 0, 0, Shanghai())
	var (
		n, late, lateMs int64
		seen            = map[string]int{}
		keys            = map[string]bool{}
		firstWait       = map[string]time.Time{}
		slowReplies     int
		maxTS           time.Time
	)
	err := Storm(StormOptions{Seed: 3, Conversations: convs, Start: start}, func(r Record) error {
		n++
		v := AppendEvent(nil, &r.Event)
		ev, err := event.Decode(event.Chat, v, start.Add(24*time.Hour))
		if err != nil {
			t.Fatalf("record %s does not decode: %v", v, err)
		}
		if ev.Key(event.Chat) != r.Key {
			t.Fatalf("key %q, event says %q", r.Key, ev.Key(event.Chat))
		}
		seen[ev.EventID]++
		keys[r.Key] = true
		if ts := ev.TS.Time; ts.Before(maxTS) {
			late++
			lateMs = max(lateMs, maxTS.Sub(ts).Milliseconds())
		} else {
			maxTS = ts
		}
		if ev.Sender == event.SenderBuyer {
			if _, ok := firstWait[r.Key]; !ok {
				firstWait[r.Key] = ev.TS.Time
			}
		}
		if ev.Sender == event.SenderAgent && seen[ev.EventID] == 1 && ev.EventID[len(ev.EventID)-2:] == "-3" {
			if ev.TS.Sub(firstWait[r.Key]) > 2*time.Minute {
				slowReplies++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	if len(seen) != 5*convs || len(keys) != convs {
		t.Errorf("%d distinct events in %d conversations, want %d in %d", len(seen), len(keys), 5*convs, convs)
	}
	if dups == 0 || dups > convs/10 {
		t.Errorf("%d records sent twice of %d, want a few", dups, n)
	}
	if late == 0 || late > n/20 || lateMs > 1000 {
		t.Errorf("%d records out of order of %d, the latest %d ms behind: want a few, by little", late, n, lateMs)
	}
	if share := float64(slowReplies) / convs; share < 0.45 || share > 0.65 {
		t.Errorf("%.0f %% of first replies after 2 minutes, want about 55 %%", 100*share)
	}
}
