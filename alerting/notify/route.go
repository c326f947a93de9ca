// Package notify owns alert delivery to people: a consumer group on the
// alerts topic and a pipeline of small stages, route → group → inhibit →
// stale filter → rate limit and digest → send with retries → mark sent,
// with one receiver per chat robot or endpoint (WeCom, DingTalk, Feishu,
// signed webhooks, Alertmanager, the log). It does not decide when an
// alert fires (detectors) or write alerts to Kafka (pipeline).
package notify

import (
	"slices"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
)

// Route is a compiled node of the routing tree, with its parent's settings
// filled in where it sets none.
type Route struct {
	Receiver      string
	Match         map[string][]string
	Mention       string
	Continue      bool
	GroupBy       []string
	GroupWait     time.Duration
	GroupInterval time.Duration
	Routes        []*Route
	// ID is the node's position in the tree ("0", "0.1"): alerts are
	// grouped per route.
	ID string
}

// NewRoute compiles a validated route tree.
func NewRoute(c config.Route) *Route {
	return compile(c, nil, "0")
}

func compile(c config.Route, parent *Route, id string) *Route {
	r := &Route{Receiver: c.Receiver, Match: c.Match, Mention: c.Mention, Continue: c.Continue, GroupBy: c.GroupBy, ID: id}
	if parent != nil {
		if r.Receiver == "" {
			r.Receiver = parent.Receiver
		}
		if r.Mention == "" {
			r.Mention = parent.Mention
		}
		if r.GroupBy == nil {
			r.GroupBy = parent.GroupBy
		}
		r.GroupWait, r.GroupInterval = parent.GroupWait, parent.GroupInterval
	} else {
		r.GroupWait, r.GroupInterval = 5*time.Second, time.Minute
	}
	if r.Mention == "" {
		r.Mention = config.MentionAuto
	}
	if c.GroupWait != nil {
		r.GroupWait = *c.GroupWait
	}
	if c.GroupInterval != nil {
		r.GroupInterval = *c.GroupInterval
	}
	for i, child := range c.Routes {
		r.Routes = append(r.Routes, compile(child, r, id+"."+strconv.Itoa(i)))
	}
	return r
}

// For returns the routes an alert goes to, as Alertmanager does: the
// deepest matching nodes, the first matching child only unless it says
// continue; a node none of whose children match takes the alert itself.
// A receiver appears once, at its first route.
func (r *Route) For(a *alerting.Alert) []*Route {
	var out []*Route
	seen := map[string]bool{}
	for _, m := range r.match(a) {
		if m.Receiver == "" || seen[m.Receiver] {
			continue
		}
		seen[m.Receiver] = true
		out = append(out, m)
	}
	return out
}

func (r *Route) match(a *alerting.Alert) []*Route {
	if !r.matches(a) {
		return nil
	}
	var all []*Route
	for _, c := range r.Routes {
		m := c.match(a)
		all = append(all, m...)
		if len(m) > 0 && !c.Continue {
			break
		}
	}
	if len(all) == 0 {
		return []*Route{r}
	}
	return all
}

func (r *Route) matches(a *alerting.Alert) bool {
	for k, vs := range r.Match {
		if !slices.Contains(vs, Label(a, k)) {
			return false
		}
	}
	return true
}

// GroupKey names the group an alert joins on this route.
func (r *Route) GroupKey(a *alerting.Alert) string {
	k := r.ID
	for _, l := range r.GroupBy {
		k += "\x1f" + Label(a, l)
	}
	return k
}

// Label is the value of a field routes match on.
func Label(a *alerting.Alert, name string) string {
	switch name {
	case "kind":
		return a.Kind
	case "severity":
		return a.Severity
	case "status":
		return a.Status
	case "shop_id":
		return a.ShopID
	case "platform":
		return a.Platform
	case "agent_id":
		return a.AgentID
	case "buyer_id":
		return a.BuyerID
	case "threshold":
		return a.Threshold
	case "audience":
		return Audience(a)
	}
	return ""
}

// breachKinds are alerts that tell of a failure already counted against
// the shop: they go to supervisors as well as agents.
var breachKinds = map[string]bool{
	alerting.KindReplyBreach: true, alerting.KindLongNoReply: true, alerting.KindShippingBreach: true,
	alerting.KindShopUncovered: true, alerting.KindAbusiveReply: true, alerting.KindOffPlatformTrade: true,
	alerting.KindComplaintRisk: true, alerting.KindEffectiveReplyRisk: true,
}

// Audience is "supervisor" for breaches and critical alerts, "agent" for
// warnings: routes match it to send breaches to the supervisors' chat.
func Audience(a *alerting.Alert) string {
	if a.Severity == alerting.Critical || breachKinds[a.Kind] {
		return "supervisor"
	}
	return "agent"
}
