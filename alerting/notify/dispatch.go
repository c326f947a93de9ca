package notify

import (
	"time"

	"github.com/replywatch/replywatch/alerting"
)

// How an item was settled, as written in its mark and counted in
// replywatch_alert_deliveries_total{result}.
const (
	resultSent      = "sent"      // named in a message the receiver accepted
	resultDigested  = "digested"  // counted, not named, in an accepted digest
	resultStale     = "stale"     // part of an accepted backlog digest
	resultDuplicate = "duplicate" // already delivered (its mark exists)
	resultInhibited = "inhibited" // superseded or cancelled while queued
	resultFailed    = "failed"    // an attempt the receiver did not accept
	resultRetried   = "retried"   // an attempt after a failed one
)

// settled is an item leaving the pipeline without being sent.
type settled struct {
	item *Item
	how  string
}

// group is alerts waiting together on one route (Alertmanager's
// aggregation group): the first flush waits GroupWait so that a burst
// lands in one message, later ones GroupInterval.
type group struct {
	route   *Route
	items   []*Item
	created time.Time
	last    time.Time // last flush, or last add for a stale bucket
	flushed bool
}

// lane is one receiver's part of the pipeline: its groups, its stale
// buckets (one per shop), the messages ready to go and its budget. The
// stages are methods taking the time, so each is tested on its own.
type lane struct {
	name   string
	maxAge time.Duration
	groups map[string]*group
	stale  map[string]*group
	ready  []*Message
}

func newLane(name string, maxAge time.Duration) *lane {
	return &lane{name: name, maxAge: maxAge, groups: map[string]*group{}, stale: map[string]*group{}}
}

// isStale is the stale filter: an alert whose condition became true
// longer than max_age ago is part of a backlog.
func isStale(a *alerting.Alert, now time.Time, maxAge time.Duration) bool {
	at := a.At
	if at.IsZero() {
		at = a.EmittedAt
	}
	return !at.IsZero() && now.Sub(at) > maxAge
}

// add takes an item through the stale filter, inhibition and grouping.
// It returns the items that leave the pipeline unsent.
func (l *lane) add(it *Item, now time.Time) []settled {
	if isStale(&it.Alert, now, l.maxAge) {
		g := l.stale[it.Alert.ShopID]
		if g == nil {
			g = &group{route: it.Route, created: now}
			l.stale[it.Alert.ShopID] = g
		}
		g.items = append(g.items, it)
		g.last = now
		return nil
	}
	var out []settled
	a := &it.Alert
	switch {
	case a.Status == alerting.Resolved:
		// A resolved record cancels its firing one while that is queued:
		// nobody needs to hear of either.
		if q := l.remove(func(q *Item) bool { return q.Alert.ID == a.ID && q.Alert.Status == alerting.Firing }); len(q) > 0 {
			for _, x := range q {
				out = append(out, settled{x, resultInhibited})
			}
			return append(out, settled{it, resultInhibited})
		}
	case a.Kind == alerting.KindReplyBreach:
		// A breach supersedes the queued warning of the same wait.
		for _, x := range l.remove(func(q *Item) bool {
			w := &q.Alert
			return w.Kind == alerting.KindReplyWarning && w.Status == alerting.Firing &&
				w.ShopID == a.ShopID && w.BuyerID == a.BuyerID && w.Since.Equal(a.Since)
		}) {
			out = append(out, settled{x, resultInhibited})
		}
	}
	key := it.Route.GroupKey(a)
	g := l.groups[key]
	if g == nil {
		g = &group{route: it.Route, created: now}
		l.groups[key] = g
	}
	g.items = append(g.items, it)
	return out
}

// remove takes the queued items (in groups and ready messages) matching
// f out of the lane.
func (l *lane) remove(f func(*Item) bool) []*Item {
	var out []*Item
	keep := func(items []*Item) []*Item {
		kept := items[:0]
		for _, it := range items {
			if f(it) {
				out = append(out, it)
			} else {
				kept = append(kept, it)
			}
		}
		return kept
	}
	for _, g := range l.groups {
		g.items = keep(g.items)
	}
	ready := l.ready[:0]
	for _, m := range l.ready {
		if m.Items = keep(m.Items); len(m.Items) > 0 {
			ready = append(ready, m)
		}
	}
	l.ready = ready
	return out
}

// flush moves the groups whose time has come into ready messages, and
// forgets groups that stayed empty for an interval.
func (l *lane) flush(now time.Time) {
	for key, g := range l.groups {
		g.items = live(g.items)
		switch {
		case len(g.items) == 0:
			if !g.flushed || now.Sub(g.last) >= g.route.GroupInterval {
				if g.flushed || now.Sub(g.created) >= g.route.GroupWait {
					delete(l.groups, key)
				}
			}
		case !g.flushed && now.Sub(g.created) >= g.route.GroupWait,
			g.flushed && now.Sub(g.last) >= g.route.GroupInterval:
			l.ready = append(l.ready, &Message{Receiver: l.name, Items: g.items})
			g.items, g.last, g.flushed = nil, now, true
		}
	}
	for shop, g := range l.stale {
		g.items = live(g.items)
		// A backlog is read fast: its digest goes once no more of the
		// shop's old alerts came for a group_wait, or after ten
		// intervals at most.
		if len(g.items) == 0 {
			delete(l.stale, shop)
			continue
		}
		if now.Sub(g.last) >= g.route.GroupWait || now.Sub(g.created) >= 10*g.route.GroupInterval {
			l.ready = append(l.ready, &Message{Receiver: l.name, Items: g.items, Stale: true})
			delete(l.stale, shop)
		}
	}
}

// live drops items whose partition this notifier no longer owns: the new
// owner reads them again.
func live(items []*Item) []*Item {
	kept := items[:0]
	for _, it := range items {
		if !it.revoked() {
			kept = append(kept, it)
		}
	}
	return kept
}

// take is the rate limit and digest stage: the next message to send when
// the budget allows avail more now. When more messages are ready than
// that, they all merge into one digest: never more than the budget, never
// a dropped alert.
func (l *lane) take(avail int) *Message {
	ready := l.ready[:0]
	for _, m := range l.ready {
		if m.Items = live(m.Items); len(m.Items) > 0 {
			ready = append(ready, m)
		}
	}
	l.ready = ready
	if len(l.ready) == 0 || avail <= 0 {
		return nil
	}
	if len(l.ready) > avail {
		m := &Message{Receiver: l.name, Stale: true}
		for _, r := range l.ready {
			m.Items = append(m.Items, r.Items...)
			m.Stale = m.Stale && r.Stale
		}
		l.ready = nil
		return m
	}
	m := l.ready[0]
	l.ready = l.ready[1:]
	return m
}

// putBack returns a taken message to the front of the queue (another
// replica took the budget first).
func (l *lane) putBack(m *Message) {
	l.ready = append([]*Message{m}, l.ready...)
}

// pending counts the items queued in the lane.
func (l *lane) pending() int {
	n := 0
	for _, g := range l.groups {
		n += len(g.items)
	}
	for _, g := range l.stale {
		n += len(g.items)
	}
	for _, m := range l.ready {
		n += len(m.Items)
	}
	return n
}
