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
// buckets (one per shop) and the messages ready to go. The stages are
// methods taking the time, so each is tested on its own. Indexes of the
// queued firing alerts make inhibition O(1) per alert: a cancelled item
// stays where it is, flagged, and is dropped when its group flushes.
type lane struct {
	name   string
	maxAge time.Duration
	groups map[string]*group
	stale  map[string]*group
	ready  []*Message
	// queued firing items by alert id, and queued firing warnings by wait
	queued map[string]*Item
	warns  map[string]*Item
	count  int // items queued and not cancelled
	// sending counts the firing items taken by alert id until they are
	// marked or given up: with queued, what has no Redis mark yet.
	sending map[string]int
	// seen holds the (alert_id, status) this process queued lately: the
	// processor writes an alert at least once, so the same record may come
	// twice before the first one's mark is written. It also holds the
	// priority and inhibited marks (remember).
	seen memory
}

func newLane(name string, maxAge time.Duration) *lane {
	return &lane{name: name, maxAge: maxAge, groups: map[string]*group{}, stale: map[string]*group{},
		queued: map[string]*Item{}, warns: map[string]*Item{}, sending: map[string]int{}, seen: newMemory(seenMax)}
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

// waitKey names the wait a reply alert is about.
func waitKey(a *alerting.Alert) string {
	return a.ShopID + "\x1f" + a.BuyerID + "\x1f" + a.Since.UTC().Format(time.RFC3339Nano)
}

// add takes an item through the stale filter, inhibition and grouping.
// It returns the items that leave the pipeline unsent.
func (l *lane) add(it *Item, now time.Time) []settled {
	key := it.Alert.ID + "\x1f" + it.Alert.Status
	// A firing record whose alert is queued or being sent (it has no Redis
	// mark yet) is a duplicate even when the memory has let it go.
	firing := it.Alert.Status == alerting.Firing
	if l.seen.has(key) || (firing && (l.queued[it.Alert.ID] != nil || l.sending[it.Alert.ID] > 0)) {
		return []settled{{it, resultDuplicate}}
	}
	l.seen.add(key, now)
	if isStale(&it.Alert, now, l.maxAge) {
		g := l.stale[it.Alert.ShopID]
		if g == nil {
			g = &group{route: it.Route, created: now}
			l.stale[it.Alert.ShopID] = g
		}
		g.items = append(g.items, it)
		g.last = now
		l.count++
		return nil
	}
	var out []settled
	a := &it.Alert
	switch {
	case a.Status == alerting.Resolved && l.remembered(inhibitedMark+a.ID, now):
		// The firing record was inhibited: nobody heard of it.
		return []settled{{it, resultInhibited}}
	case a.Kind == alerting.KindReplyWarning && a.Status == alerting.Firing && a.Reason == alerting.ReasonPriority:
		// A priority buyer's escalation supersedes the ordinary warning
		// of the same wait, queued or still to come.
		l.remember(priorityMark+waitKey(a), now)
		if w := l.warns[waitKey(a)]; w != nil && w.Alert.Reason != alerting.ReasonPriority {
			l.cancel(w)
			l.remember(inhibitedMark+w.Alert.ID, now)
			out = append(out, settled{w, resultInhibited})
		}
	case a.Kind == alerting.KindReplyWarning && a.Status == alerting.Firing && l.remembered(priorityMark+waitKey(a), now):
		l.remember(inhibitedMark+a.ID, now)
		return []settled{{it, resultInhibited}}
	case a.Status == alerting.Resolved:
		// A resolved record cancels its firing one while that is queued:
		// nobody needs to hear of either.
		if q := l.queued[a.ID]; q != nil {
			l.cancel(q)
			return []settled{{q, resultInhibited}, {it, resultInhibited}}
		}
	case a.Kind == alerting.KindReplyBreach:
		// A breach supersedes the queued warning of the same wait.
		if w := l.warns[waitKey(a)]; w != nil {
			l.cancel(w)
			out = append(out, settled{w, resultInhibited})
		}
	}
	if a.Status == alerting.Firing {
		l.queued[a.ID] = it
		if a.Kind == alerting.KindReplyWarning {
			l.warns[waitKey(a)] = it
		}
	}
	gk := it.Route.GroupKey(a)
	g := l.groups[gk]
	if g == nil {
		g = &group{route: it.Route, created: now}
		l.groups[gk] = g
	}
	g.items = append(g.items, it)
	l.count++
	return out
}

// Marks kept with the seen (alert_id, status) keys: a wait whose priority
// escalation this lane took, and an alert whose firing record it inhibited.
const (
	priorityMark  = "\x00priority\x1f"
	inhibitedMark = "\x00inhibited\x1f"
)

// remember keeps a mark for seenFor, or until seenMax newer keys came.
func (l *lane) remember(key string, now time.Time) { l.seen.add(key, now) }

func (l *lane) remembered(key string, _ time.Time) bool { return l.seen.has(key) }

// cancel flags a queued item; it is dropped where it waits.
func (l *lane) cancel(it *Item) {
	it.cancelled = true
	l.count--
	l.unindex(it)
}

func (l *lane) unindex(it *Item) {
	a := &it.Alert
	if l.queued[a.ID] == it {
		delete(l.queued, a.ID)
	}
	if a.Kind == alerting.KindReplyWarning && l.warns[waitKey(a)] == it {
		delete(l.warns, waitKey(a))
	}
}

// live drops cancelled items, and items whose partition this notifier no
// longer owns (the new owner reads them again).
func (l *lane) live(items []*Item) []*Item {
	kept := items[:0]
	for _, it := range items {
		switch {
		case it.cancelled:
		case it.revoked():
			l.count--
			l.unindex(it)
			l.seen.forget(it.Alert.ID + "\x1f" + it.Alert.Status)
		default:
			kept = append(kept, it)
		}
	}
	return kept
}

// flush moves the groups whose time has come into ready messages, and
// forgets groups that stayed empty for an interval.
func (l *lane) flush(now time.Time) {
	l.seen.expire(now.Add(-seenFor))
	for key, g := range l.groups {
		due := (!g.flushed && now.Sub(g.created) >= g.route.GroupWait) ||
			(g.flushed && now.Sub(g.last) >= g.route.GroupInterval)
		if !due {
			continue
		}
		if g.items = l.live(g.items); len(g.items) == 0 {
			delete(l.groups, key)
			continue
		}
		l.ready = append(l.ready, &Message{Receiver: l.name, Items: g.items})
		g.items, g.last, g.flushed = nil, now, true
	}
	for shop, g := range l.stale {
		// A backlog is read fast: its digest goes once no more of the
		// shop's old alerts came for a group_wait, or after ten
		// intervals at most.
		if now.Sub(g.last) < g.route.GroupWait && now.Sub(g.created) < 10*g.route.GroupInterval {
			continue
		}
		if g.items = l.live(g.items); len(g.items) > 0 {
			l.ready = append(l.ready, &Message{Receiver: l.name, Items: g.items, Stale: true})
		}
		delete(l.stale, shop)
	}
}

// maxBatch bounds the alerts merged into one message for a receiver with
// no budget (a webhook, Alertmanager): a backlog goes out in batches.
const maxBatch = 1000

// forget drops items from the memory of what was queued: they were not
// delivered, and whoever reads their records again must send them.
func (l *lane) forget(items []*Item) {
	for _, it := range items {
		l.seen.forget(it.Alert.ID + "\x1f" + it.Alert.Status)
	}
	l.done(items)
}

// done ends the sending of taken items: marked, or given up.
func (l *lane) done(items []*Item) {
	for _, it := range items {
		if it.Alert.Status != alerting.Firing {
			continue
		}
		if l.sending[it.Alert.ID]--; l.sending[it.Alert.ID] <= 0 {
			delete(l.sending, it.Alert.ID)
		}
	}
}

// hasReady reports whether a message is ready.
func (l *lane) hasReady() bool {
	ready := l.ready[:0]
	for _, m := range l.ready {
		if m.Items = l.live(m.Items); len(m.Items) > 0 {
			ready = append(ready, m)
		}
	}
	l.ready = ready
	return len(l.ready) > 0
}

// take is the rate limit and digest stage: the next message to send when
// the budget allows avail more now. When more messages are ready than
// that, they all merge into one digest: never more than the budget, never
// a dropped alert. A receiver without a budget gets what is ready in
// batches.
func (l *lane) take(avail int) *Message {
	if !l.hasReady() || avail <= 0 {
		return nil
	}
	var m *Message
	switch {
	case avail >= unlimited && len(l.ready) > 1:
		m = &Message{Receiver: l.name, Stale: true}
		i := 0
		for ; i < len(l.ready) && len(m.Items) < maxBatch; i++ {
			m.Items = append(m.Items, l.ready[i].Items...)
			m.Stale = m.Stale && l.ready[i].Stale
		}
		l.ready = l.ready[i:]
	case len(l.ready) > avail:
		m = &Message{Receiver: l.name, Stale: true}
		for _, r := range l.ready {
			m.Items = append(m.Items, r.Items...)
			m.Stale = m.Stale && r.Stale
		}
		l.ready = nil
	default:
		m = l.ready[0]
		l.ready = l.ready[1:]
	}
	for _, it := range m.Items {
		l.count--
		l.unindex(it)
		if it.Alert.Status == alerting.Firing {
			l.sending[it.Alert.ID]++
		}
	}
	return m
}

// putBack returns a taken message to the front of the queue (another
// replica took the budget first).
func (l *lane) putBack(m *Message) {
	l.ready = append([]*Message{m}, l.ready...)
	l.done(m.Items)
	for _, it := range m.Items {
		l.count++
		if it.Alert.Status == alerting.Firing {
			l.queued[it.Alert.ID] = it
			if it.Alert.Kind == alerting.KindReplyWarning {
				l.warns[waitKey(&it.Alert)] = it
			}
		}
	}
}

// pending counts the items queued in the lane.
func (l *lane) pending() int { return l.count }
