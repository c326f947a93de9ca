package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// orderRulesCases: a shop's own value wins over the inherited one, and
// pdd_flash gives 24 h at its level.
var orderRulesCases = []struct {
	name       string
	yaml       string
	shop       string
	shipWithin time.Duration
	warnBefore time.Duration
	badReview  int
}{
	{"defaults", ``, "any", 48 * time.Hour, 4 * time.Hour, 2},
	{"top-level pdd_flash", "orders: {pdd_flash: true}", "any", 24 * time.Hour, 4 * time.Hour, 2},
	{"shop's own ship_within over an inherited pdd_flash",
		"orders: {pdd_flash: true}\nshops: {s1: {orders: {ship_within: 36h}}}", "s1", 36 * time.Hour, 4 * time.Hour, 2},
	{"shop's pdd_flash", "shops: {s1: {orders: {pdd_flash: true, warn_before: 2h}}}", "s1", 24 * time.Hour, 2 * time.Hour, 2},
	{"shop turns an inherited pdd_flash off",
		"orders: {pdd_flash: true, ship_within: 72h}\nshops: {s1: {orders: {pdd_flash: false}}}", "s1", 72 * time.Hour, 4 * time.Hour, 2},
	{"other shops keep the top level", "orders: {bad_review_at: 1}\nshops: {s1: {orders: {bad_review_at: 3}}}", "s2", 48 * time.Hour, 4 * time.Hour, 1},
	{"shop's bad_review_at", "orders: {bad_review_at: 1}\nshops: {s1: {orders: {bad_review_at: 3}}}", "s1", 48 * time.Hour, 4 * time.Hour, 3},
}

func TestOrderRules(t *testing.T) {
	for _, c := range orderRulesCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			r := cfg.OrderRules()(c.shop)
			if r.ShipWithin != c.shipWithin || r.WarnBefore != c.warnBefore || r.BadReviewAt != c.badReview ||
				r.RespondWarnBefore != 2*time.Hour || r.ConversionWindow != 24*time.Hour || r.Loc.String() != "Asia/Shanghai" {
				t.Errorf("rules %+v", r)
			}
		})
	}
}

// The orders example in the README is a valid configuration and means what
// the README says.
func TestReadmeOrdersExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "## The order rules")
	if !ok {
		t.Fatal("README has no order rules section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README's order rules section has no yaml block")
	}
	cfg, err := Parse([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.OrderRules()
	if got := rules("shop-07").ShipWithin; got != 24*time.Hour {
		t.Errorf("shop-07 ships within %s, want 24h (pdd_flash)", got)
	}
	if got := rules("other").ShipWithin; got != 48*time.Hour {
		t.Errorf("other shops ship within %s, want 48h", got)
	}
}
