// Package scenario holds a shop day whose figures and alerts were counted by
// hand, shared by the integration tests that check replywatch end to end
// (in process, and as the built binary fed by kcat).
package scenario

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// Day is the hand-counted day, on the given date in loc. Shop s1, PDD rules
// (08:00-23:00, 3m and 5m, warnings 60 s before each):
//
//	b1 answered in 20 s; b2 waits 10:01, writes again, answered at 10:04:30
//	(3m breach); b3 waits from 10:10, never answered (3m and 5m breach); b4
//	gets a bot reply, then a human one exactly 2 min after (warning due at
//	that instant: in time); b5 writes at 07:30 (outside hours: nothing);
//	b6 breaches and is then blocked (leaves the figures, alerts excluded);
//	b2 breaches 3m again at 11:03 (a second alert, still one breached buyer).
//	Shop s2: one buyer answered in 10 s.
type Day struct {
	Loc  *time.Location
	Date string // "2006-01-02"
}

// At is a shop-local time of the day, "15:04:05".
func (d Day) At(hms string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", d.Date+" "+hms, d.Loc)
	if err != nil {
		panic(err)
	}
	return t
}

func msg(id, shop, buyer, sender, agent string, ts time.Time) event.Event {
	return event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: ts}, ShopID: shop,
		BuyerID: buyer, Sender: sender, AgentID: agent, Text: "你好"}
}

// Events are the day's chat events, in the order a producer sends them.
func (d Day) Events() []event.Event {
	blocked := event.Event{EventID: d.Date + "-e12", Type: event.TypeBuyerBlocked, TS: event.Time{Time: d.At("10:40:00")},
		ShopID: "s1", BuyerID: "b6", AgentID: "a1"}
	id := func(n string) string { return d.Date + "-" + n }
	return []event.Event{
		msg(id("e01"), "s1", "b1", "buyer", "", d.At("10:00:00")),
		msg(id("e02"), "s1", "b1", "agent", "a1", d.At("10:00:20")),
		msg(id("e03"), "s1", "b2", "buyer", "", d.At("10:01:00")),
		msg(id("e04"), "s1", "b2", "buyer", "", d.At("10:02:00")),
		msg(id("e05"), "s1", "b2", "agent", "a1", d.At("10:04:30")),
		msg(id("e06"), "s1", "b3", "buyer", "", d.At("10:10:00")),
		msg(id("e07"), "s1", "b4", "buyer", "", d.At("10:20:00")),
		msg(id("e08"), "s1", "b4", "bot", "", d.At("10:20:05")),
		msg(id("e09"), "s1", "b4", "agent", "a2", d.At("10:22:00")),
		msg(id("e10"), "s1", "b5", "buyer", "", d.At("07:30:00")),
		msg(id("e11"), "s1", "b6", "buyer", "", d.At("10:30:00")),
		blocked,
		msg(id("e13"), "s1", "b2", "buyer", "", d.At("11:00:00")),
		msg(id("e14"), "s1", "b2", "agent", "a1", d.At("11:03:30")),
		msg(id("e15"), "s2", "b1", "buyer", "", d.At("10:00:00")),
		msg(id("e16"), "s2", "b1", "agent", "a9", d.At("10:00:10")),
	}
}

// End is a time after every deadline of the day, when the checks are made.
func (d Day) End() time.Time { return d.At("12:00:00") }

// Figures are the hand-counted gauges at End, as "name{labels}" with labels
// sorted by name.
var Figures = map[string]float64{
	"replywatch_consulting_buyers{shop=s1}":                  4,
	"replywatch_reply_breached_buyers{shop=s1,threshold=3m}": 2,
	"replywatch_reply_breached_buyers{shop=s1,threshold=5m}": 1,
	"replywatch_reply_rate{shop=s1,threshold=3m}":            0.5,
	"replywatch_reply_rate{shop=s1,threshold=5m}":            0.75,
	"replywatch_buyer_messages{shop=s1}":                     6,
	"replywatch_response_30s_rate{shop=s1}":                  1.0 / 6,
	"replywatch_avg_response_seconds{shop=s1}":               (20 + 210 + 120 + 210) / 4.0,
	"replywatch_waiting_buyers{shop=s1}":                     1,
	"replywatch_consulting_buyers{shop=s2}":                  1,
	"replywatch_reply_breached_buyers{shop=s2,threshold=3m}": 0,
	"replywatch_reply_rate{shop=s2,threshold=3m}":            1,
	"replywatch_buyer_messages{shop=s2}":                     1,
	"replywatch_response_30s_rate{shop=s2}":                  1,
	"replywatch_avg_response_seconds{shop=s2}":               10,
	"replywatch_waiting_buyers{shop=s2}":                     0,
}

// Firing maps each expected firing alert id to how it ends ("" = still
// firing at End).
func (d Day) Firing() map[string]string {
	w, b := alerting.KindReplyWarning, alerting.KindReplyBreach
	id := func(kind, th, buyer, start string) string {
		return alerting.ID(kind, th, "s1", buyer, strconv.FormatInt(d.At(start).UnixMilli(), 10))
	}
	return map[string]string{
		id(w, "3m", "b2", "10:01:00"): alerting.ReasonReplied,
		id(b, "3m", "b2", "10:01:00"): alerting.ReasonReplied,
		id(w, "3m", "b3", "10:10:00"): "",
		id(b, "3m", "b3", "10:10:00"): "",
		id(w, "5m", "b3", "10:10:00"): "",
		id(b, "5m", "b3", "10:10:00"): "",
		id(w, "3m", "b6", "10:30:00"): alerting.ReasonExcluded,
		id(b, "3m", "b6", "10:30:00"): alerting.ReasonExcluded,
		id(w, "5m", "b6", "10:30:00"): alerting.ReasonExcluded,
		id(b, "5m", "b6", "10:30:00"): alerting.ReasonExcluded,
		id(w, "3m", "b2", "11:00:00"): alerting.ReasonReplied,
		id(b, "3m", "b2", "11:00:00"): alerting.ReasonReplied,
	}
}

// ShopLevel reports whether an alert kind is raised on the reporter-lease
// holder from the summed figures (seats, the effective reply projection)
// rather than by a partition's detectors: a backlog raises only the spells
// still open once it is read, so seat alerts are compared by SeatOutcome,
// in live runs.
func ShopLevel(kind string) bool {
	return kind == alerting.KindIdleSeat || kind == alerting.KindShopUncovered || kind == alerting.KindEffectiveReplyRisk
}

// Outcome summarises the partition-level alerts as id → "" (firing) or the
// reason that resolved it, failing on a resolved record without its firing
// one.
func Outcome(alerts []alerting.Alert) (map[string]string, error) {
	return outcome(alerts, func(k string) bool { return !ShopLevel(k) })
}

// SeatOutcome is Outcome of the shop-level alerts.
func SeatOutcome(alerts []alerting.Alert) (map[string]string, error) {
	return outcome(alerts, ShopLevel)
}

func outcome(alerts []alerting.Alert, keep func(kind string) bool) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range alerts {
		if !keep(a.Kind) {
			continue
		}
		switch a.Status {
		case alerting.Firing:
			// Firing again after a retraction (a late event made it due
			// again) stands again.
			if r, ok := out[a.ID]; !ok || r == alerting.ReasonRetracted {
				out[a.ID] = ""
			}
		case alerting.Resolved:
			if _, ok := out[a.ID]; !ok {
				return nil, fmt.Errorf("resolved %s (%s) before or without its firing record", a.ID, a.Kind)
			}
			out[a.ID] = a.Reason
		}
	}
	return out, nil
}

// Standing leaves out the alerts of an outcome that were retracted: they
// never held. What stands is what every arrival order must agree on.
func Standing(o map[string]string) map[string]string {
	out := make(map[string]string, len(o))
	for id, r := range o {
		if r != alerting.ReasonRetracted {
			out[id] = r
		}
	}
	return out
}

// Withdrawn are the ids that got fired and then retracted while want
// never raised them: where a backlog's batches happen to fall decides
// whether a late record is read before a deadline passes, so such alerts
// may come and go without anything being lost or wrong in the end.
func Withdrawn(got, want map[string]string) map[string]bool {
	out := map[string]bool{}
	for id, r := range got {
		if _, ok := want[id]; !ok && r == alerting.ReasonRetracted {
			out[id] = true
		}
	}
	return out
}

func SameOutcome(got, want map[string]string) error {
	var diffs []string
	for id, r := range want {
		g, ok := got[id]
		if !ok {
			diffs = append(diffs, "missing "+id)
		} else if g != r {
			diffs = append(diffs, fmt.Sprintf("%s ended %q, want %q", id, g, r))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, "unexpected "+id)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}

// OneConditionPerID fails when two records with one alert id describe
// different conditions (kind, threshold, shop, buyer, order, since): an
// id sent again must be the same alert.
func OneConditionPerID(alerts []alerting.Alert) error {
	cond := map[string]string{}
	for _, a := range alerts {
		c := strings.Join([]string{a.Kind, a.Threshold, a.ShopID, a.BuyerID, a.OrderID, a.Since.UTC().String()}, "|")
		if prev, ok := cond[a.ID]; ok && prev != c {
			return fmt.Errorf("alert id %s stands for %s and for %s", a.ID, prev, c)
		}
		cond[a.ID] = c
	}
	return nil
}

// Breaches counts the distinct firing reply_breach ids.
func Breaches(alerts []alerting.Alert) int {
	ids := map[string]bool{}
	for _, a := range alerts {
		if a.Kind == alerting.KindReplyBreach && a.Status == alerting.Firing {
			ids[a.ID] = true
		}
	}
	return len(ids)
}

// Escalations are the ids among ids that are the buyer join's priority
// escalations (a firing record with reason priority), sorted. The join's
// clock waits for the repartition stage, so none of them may come and go:
// a backlog escalates exactly the waits the replay escalates.
func Escalations(alerts []alerting.Alert, ids map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range alerts {
		if ids[a.ID] && !seen[a.ID] && a.Status == alerting.Firing && a.Reason == alerting.ReasonPriority {
			seen[a.ID] = true
			out = append(out, a.ID)
		}
	}
	sort.Strings(out)
	return out
}
