package config

import (
	"sort"
	"time"

	"github.com/replywatch/replywatch/detectors"
)

// Orders are the order rules (DESIGN.md §3), per shop too.
type Orders struct {
	// ShipWithin is how long after payment (PDD: grouping) an order must
	// ship when its events name no ship_by.
	ShipWithin time.Duration `yaml:"ship_within"`
	// PDDFlash is PDD 闪电发货: orders must ship within 24 h, whatever
	// ship_within says at the same level.
	PDDFlash bool `yaml:"pdd_flash"`
	// WarnBefore is how long before the shipping deadline shipping_warning fires.
	WarnBefore time.Duration `yaml:"warn_before"`
	// RespondWarnBefore is how long before a dispute's respond_by the first
	// dispute_deadline fires (the critical one fires 30 min before).
	RespondWarnBefore time.Duration `yaml:"respond_warn_before"`
	// ConversionWindow is how soon after a buyer's first message a payment
	// counts as converting the inquiry.
	ConversionWindow time.Duration `yaml:"conversion_window"`
	// BadReviewAt is the highest rating that raises bad_review (0: none does).
	BadReviewAt int `yaml:"bad_review_at"`
}

// ShopOrders is a shop's partial orders block.
type ShopOrders struct {
	ShipWithin        *time.Duration `yaml:"ship_within,omitempty"`
	PDDFlash          *bool          `yaml:"pdd_flash,omitempty"`
	WarnBefore        *time.Duration `yaml:"warn_before,omitempty"`
	RespondWarnBefore *time.Duration `yaml:"respond_warn_before,omitempty"`
	ConversionWindow  *time.Duration `yaml:"conversion_window,omitempty"`
	BadReviewAt       *int           `yaml:"bad_review_at,omitempty"`
}

// pddFlashWithin is PDD's flash-shipping limit.
const pddFlashWithin = 24 * time.Hour

// shipWithin is the shipping limit the block gives.
func (o Orders) shipWithin() time.Duration {
	if o.PDDFlash {
		return pddFlashWithin
	}
	return o.ShipWithin
}

// merge is the shop's orders block over the inherited one. A shop that sets
// ship_within without pdd_flash ships within its own limit, even when it
// inherits pdd_flash.
func (o Orders) merge(s ShopOrders) Orders {
	if s.ShipWithin != nil {
		o.ShipWithin = *s.ShipWithin
		o.PDDFlash = false
	}
	if s.PDDFlash != nil {
		o.PDDFlash = *s.PDDFlash
	}
	if s.WarnBefore != nil {
		o.WarnBefore = *s.WarnBefore
	}
	if s.RespondWarnBefore != nil {
		o.RespondWarnBefore = *s.RespondWarnBefore
	}
	if s.ConversionWindow != nil {
		o.ConversionWindow = *s.ConversionWindow
	}
	if s.BadReviewAt != nil {
		o.BadReviewAt = *s.BadReviewAt
	}
	return o
}

// validateOrders checks the top-level orders block and every shop's, each
// merged with what it inherits; a shop's problems are reported under its
// own path, and only those its own keys cause.
func (c *Config) validateOrders(p *problems) {
	checkOrders(p, "orders", c.Orders, ShopOrders{}, true)
	ids := make([]string, 0, len(c.Shops))
	for id := range c.Shops {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := c.Shops[id].Orders
		if s == (ShopOrders{}) {
			continue
		}
		if s.ShipWithin != nil && s.PDDFlash != nil && *s.PDDFlash {
			p.add("shops."+id+".orders.ship_within", "is not used with pdd_flash: true (24h); set one of them")
		}
		checkOrders(p, "shops."+id+".orders", c.Orders.merge(s), s, false)
	}
}

// checkOrders checks a merged orders block; top checks every key, a shop
// only the keys it sets and those whose check depends on one it sets.
func checkOrders(p *problems, prefix string, o Orders, set ShopOrders, top bool) {
	within := top || set.ShipWithin != nil || set.PDDFlash != nil
	if top || set.ShipWithin != nil {
		atLeast(p, prefix+".ship_within", o.ShipWithin, time.Minute)
	}
	switch {
	case !top && set.WarnBefore == nil && !within:
	case o.WarnBefore < 0:
		p.add(prefix+".warn_before", "must not be negative")
	case o.shipWithin() >= time.Minute && o.WarnBefore >= o.shipWithin():
		p.add(prefix+".warn_before", "%s is not shorter than the shipping limit %s", fmtDur(o.WarnBefore), fmtDur(o.shipWithin()))
	}
	if (top || set.RespondWarnBefore != nil) && o.RespondWarnBefore <= detectors.DisputeCritical {
		p.add(prefix+".respond_warn_before", "%s is not longer than the critical lead %s", fmtDur(o.RespondWarnBefore), fmtDur(detectors.DisputeCritical))
	}
	if top || set.ConversionWindow != nil {
		atLeast(p, prefix+".conversion_window", o.ConversionWindow, time.Minute)
	}
	if (top || set.BadReviewAt != nil) && (o.BadReviewAt < 0 || o.BadReviewAt > 5) {
		p.add(prefix+".bad_review_at", "%d is not between 0 (off) and 5", o.BadReviewAt)
	}
}

// OrderRules returns the function the order detector uses to find a shop's
// order rules, built once here. It must be called on a configuration that
// passed Validate.
func (c *Config) OrderRules() detectors.OrderRulesFunc {
	build := func(shop string, o Orders) *detectors.OrderRules {
		return &detectors.OrderRules{
			Platform: c.PlatformOf(shop), Loc: c.Location(shop), ShipWithin: o.shipWithin(),
			WarnBefore: o.WarnBefore, RespondWarnBefore: o.RespondWarnBefore,
			ConversionWindow: o.ConversionWindow, BadReviewAt: o.BadReviewAt,
		}
	}
	shops := make(map[string]*detectors.OrderRules, len(c.Shops))
	for id, s := range c.Shops {
		shops[id] = build(id, c.Orders.merge(s.Orders))
	}
	fallback := build("", c.Orders)
	return func(shop string) *detectors.OrderRules {
		if r, ok := shops[shop]; ok {
			return r
		}
		return fallback
	}
}
