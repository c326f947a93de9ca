package config

import (
	"fmt"
	"time"
)

// EffectiveReply configures PDD's effective reply rate (有效回复率, DESIGN.md
// §4) and its projection to the end of the day.
type EffectiveReply struct {
	// Within is how soon after a buyer's first message of the day a human
	// reply must come for the buyer to count as effectively replied.
	Within time.Duration `yaml:"within"`
	// AlertBelow is the projected rate under which effective_reply_risk is
	// raised (with at least 100 consulting buyers projected).
	AlertBelow float64 `yaml:"alert_below"`
}

// ShopEffectiveReply is a shop's partial effective_reply.
type ShopEffectiveReply struct {
	Within     *time.Duration `yaml:"within,omitempty"`
	AlertBelow *float64       `yaml:"alert_below,omitempty"`
}

func defaultEffectiveReply() EffectiveReply {
	return EffectiveReply{Within: time.Hour, AlertBelow: 0.6}
}

func (c *Config) validateEffectiveReply(p *problems) {
	check := func(prefix string, within *time.Duration, below *float64) {
		if within != nil {
			atLeast(p, prefix+".within", *within, time.Second)
		}
		if below != nil && (*below < 0 || *below > 1) {
			p.add(prefix+".alert_below", "%v is not between 0 and 1", *below)
		}
	}
	check("effective_reply", &c.EffectiveReply.Within, &c.EffectiveReply.AlertBelow)
	for _, id := range textShopIDs(c.Shops) {
		o := c.Shops[id].EffectiveReply
		check(fmt.Sprintf("shops.%s.effective_reply", id), o.Within, o.AlertBelow)
	}
}

// EffectiveReplyOf is a shop's effective_reply: its own keys, else the
// top-level ones.
func (c *Config) EffectiveReplyOf(shop string) EffectiveReply {
	e := c.EffectiveReply
	if o, ok := c.Shops[shop]; ok {
		if o.EffectiveReply.Within != nil {
			e.Within = *o.EffectiveReply.Within
		}
		if o.EffectiveReply.AlertBelow != nil {
			e.AlertBelow = *o.EffectiveReply.AlertBelow
		}
	}
	return e
}
