package notify

import (
	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
)

// Person is someone a message mentions.
type Person struct {
	ID       string
	Name     string
	Mobile   string
	WeCom    string
	DingTalk string
	Feishu   string
}

// Directory finds people by agent id, a shop's own entry
// ("shop_id/agent_id") winning over the plain id.
type Directory map[string]config.Agent

func (d Directory) lookup(shop, id string) (Person, string, bool) {
	if id == "" {
		return Person{}, "", false
	}
	for _, k := range []string{shop + "/" + id, id} {
		if a, ok := d[k]; ok {
			return Person{ID: k, Name: a.Name, Mobile: a.Mobile, WeCom: a.WeCom, DingTalk: a.DingTalk, Feishu: a.Feishu}, a.Supervisor, true
		}
	}
	return Person{}, "", false
}

// Agent is the alert's agent; an agent missing from the directory is
// still named by id.
func (d Directory) Agent(a *alerting.Alert) (Person, bool) {
	if a.AgentID == "" {
		return Person{}, false
	}
	p, _, ok := d.lookup(a.ShopID, a.AgentID)
	if !ok {
		return Person{ID: a.AgentID, Name: a.AgentID}, true
	}
	return p, true
}

// Supervisor is the supervisor of the alert's agent, or the shop's
// ("shop_id/supervisor", then "supervisor" in the directory) for alerts
// with no agent.
func (d Directory) Supervisor(a *alerting.Alert) (Person, bool) {
	if _, sup, ok := d.lookup(a.ShopID, a.AgentID); ok && sup != "" {
		p, _, ok := d.lookup(a.ShopID, sup)
		return p, ok
	}
	if p, _, ok := d.lookup(a.ShopID, "supervisor"); ok {
		return p, true
	}
	return Person{}, false
}

// Mentions are the people a message about a is to @-mention under the
// route's mention setting. Resolved alerts mention nobody: a cleared alert
// needs no one's attention.
func (d Directory) Mentions(a *alerting.Alert, mode string) []Person {
	if a.Status == alerting.Resolved {
		return nil
	}
	agent, sup := false, false
	switch mode {
	case config.MentionAgent:
		agent = true
	case config.MentionSupervisor:
		sup = true
	case config.MentionBoth:
		agent, sup = true, true
	case config.MentionNone:
	default: // auto
		switch {
		case a.Severity == alerting.Critical:
			sup = true
		case breachKinds[a.Kind]:
			agent, sup = true, true
		default:
			agent = true
		}
	}
	var out []Person
	if agent {
		if p, ok := d.Agent(a); ok {
			out = append(out, p)
		}
	}
	if sup {
		if p, ok := d.Supervisor(a); ok {
			out = append(out, p)
		}
	}
	return out
}

// unionPeople merges mention lists, each person once, in order.
func unionPeople(lists ...[]Person) []Person {
	var out []Person
	seen := map[string]bool{}
	for _, l := range lists {
		for _, p := range l {
			if !seen[p.ID] {
				seen[p.ID] = true
				out = append(out, p)
			}
		}
	}
	return out
}
