package pipeline

import "time"

// Clock is a partition's notion of "now" (DESIGN.md §5): event time decides,
// partition time fires. While the partition is behind its high-water mark the
// clock follows the largest event time read, minus an allowance for events
// slightly out of order; once caught up (or idle) it follows the wall clock
// minus a grace, so a reply still in flight is not yet overtaken by its
// deadline. It never goes backwards.
type Clock struct {
	Grace     time.Duration
	Allowance time.Duration

	now     time.Time // current partition time
	maxSeen time.Time // largest event time read
}

// Observe records an event time read from the partition.
func (c *Clock) Observe(ts time.Time) {
	if ts.After(c.maxSeen) {
		c.maxSeen = ts
	}
}

// Advance moves the clock after a batch: behind says whether the partition
// still has records past the last one read; wall is the wall clock.
func (c *Clock) Advance(behind bool, wall time.Time) time.Time {
	var cand time.Time
	if behind {
		if c.maxSeen.IsZero() {
			return c.now
		}
		cand = c.maxSeen.Add(-c.Allowance)
		// Never run ahead of the wall-clock rule, even for future-stamped events.
		if w := wall.Add(-c.Grace); cand.After(w) {
			cand = w
		}
	} else {
		cand = wall.Add(-c.Grace)
	}
	if cand.After(c.now) {
		c.now = cand
	}
	return c.now
}

// Now is the current partition time.
func (c *Clock) Now() time.Time { return c.now }
