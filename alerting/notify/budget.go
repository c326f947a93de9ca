package notify

import (
	"time"

	"github.com/replywatch/replywatch/config"
)

// Budget is a receiver's sending allowance: at most Messages per Per for
// each limit, over a sliding window (the vendors count per rolling
// minute, and DingTalk blocks a robot for ten minutes past 20).
type Budget struct {
	limits []config.Limit
	sent   []time.Time // send times within the longest window, oldest first
}

// NewBudget builds a budget; no limits means unlimited.
func NewBudget(limits []config.Limit) *Budget { return &Budget{limits: limits} }

func (b *Budget) prune(now time.Time) {
	var longest time.Duration
	for _, l := range b.limits {
		longest = max(longest, l.Per)
	}
	i := 0
	for i < len(b.sent) && !b.sent[i].After(now.Add(-longest)) {
		i++
	}
	b.sent = b.sent[i:]
}

// Available is how many messages may go out now.
func (b *Budget) Available(now time.Time) int {
	if len(b.limits) == 0 {
		return 1 << 30
	}
	b.prune(now)
	avail := 1 << 30
	for _, l := range b.limits {
		n := 0
		for _, t := range b.sent {
			if t.After(now.Add(-l.Per)) {
				n++
			}
		}
		avail = min(avail, l.Messages-n)
	}
	return max(avail, 0)
}

// Wait is how long until one message may go out.
func (b *Budget) Wait(now time.Time) time.Duration {
	if b.Available(now) > 0 {
		return 0
	}
	var wait time.Duration
	for _, l := range b.limits {
		var in []time.Time
		for _, t := range b.sent {
			if t.After(now.Add(-l.Per)) {
				in = append(in, t)
			}
		}
		if len(in) >= l.Messages {
			// The oldest send that must leave the window for one slot.
			free := in[len(in)-l.Messages].Add(l.Per).Sub(now)
			wait = max(wait, free)
		}
	}
	return wait
}

// Take records a send at now.
func (b *Budget) Take(now time.Time) {
	if len(b.limits) > 0 {
		b.sent = append(b.sent, now)
	}
}

// Touch moves the last send to now, when the vendor answered: the vendor
// counts a message when it arrives, after we took it from the budget, so
// counting from the answer keeps our window behind theirs.
func (b *Budget) Touch(now time.Time) {
	if n := len(b.sent); n > 0 && now.After(b.sent[n-1]) {
		b.sent[n-1] = now
	}
}
