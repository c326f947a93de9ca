package pipeline

import "time"

// Clock is a partition's notion of "now" (DESIGN.md §5): event time decides,
// partition time fires. While the partition is behind its high-water mark the
// clock follows the largest event time read, minus an allowance for events
// slightly out of order; once caught up (or idle) it follows the wall clock
// minus a grace, so a reply still in flight is not yet overtaken by its
// deadline. It never goes backwards.
//
// A bounded clock (the buyer join's partitions, whose records another stage
// writes) never passes the limit it was last given, and stands still until
// it has one: see Limit.
type Clock struct {
	Grace     time.Duration
	Allowance time.Duration

	now     time.Time // current partition time
	maxSeen time.Time // largest event time read

	bounded bool
	limit   time.Time // the clock does not pass it while bounded
	// next is a limit that takes effect once the records before offset
	// nextFrom are read (pending says there is one).
	next     time.Time
	nextFrom int64
	pending  bool
}

// Observe records an event time read from the partition.
func (c *Clock) Observe(ts time.Time) {
	if ts.After(c.maxSeen) {
		c.maxSeen = ts
	}
}

// Limit bounds the clock by t once the records before offset from are read
// (see Read): t is how far the stage writing the partition's records is
// known to have got, and from the partition's high-water mark measured after
// t was, so the records the stage wrote up to t are all below it. A limit
// given while another is pending replaces it.
func (c *Clock) Limit(t time.Time, from int64) {
	c.bounded = true
	c.next, c.nextFrom, c.pending = t, from, true
}

// Bound makes the clock bounded: it stands still until a limit takes effect.
func (c *Clock) Bound() { c.bounded = true }

// Read says the records before offset next are read: a pending limit whose
// records are takes effect.
func (c *Clock) Read(next int64) {
	if c.pending && next >= c.nextFrom {
		c.limit, c.pending = c.next, false
	}
}

// Pending reports whether a limit waits for its records to be read.
func (c *Clock) Pending() bool { return c.pending }

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
	if c.bounded && cand.After(c.limit) {
		cand = c.limit
	}
	if cand.After(c.now) {
		c.now = cand
	}
	return c.now
}

// Now is the current partition time.
func (c *Clock) Now() time.Time { return c.now }
