package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/text"
)

// Text configures the text rules (DESIGN.md §4). The default lexicons are
// built in; these add to them.
type Text struct {
	// Lexicons are extra lexicon files (YAML: category → terms, and
	// allow → phrases), read relative to the working directory.
	Lexicons []string `yaml:"lexicons"`
	// Allow are phrases never flagged.
	Allow []string `yaml:"allow"`
	// PerfunctoryAlertAfter is how many perfunctory replies of an agent in
	// a shop-local day, to all their buyers, are only counted before the
	// agent-day alerts, once (0: every perfunctory reply alerts).
	PerfunctoryAlertAfter int `yaml:"perfunctory_alert_after"`
}

// ShopText is a shop's text rules: its lexicons and allow-listed phrases
// add to the top-level ones; perfunctory_alert_after replaces the
// inherited value.
type ShopText struct {
	Lexicons              []string `yaml:"lexicons,omitempty"`
	Allow                 []string `yaml:"allow,omitempty"`
	PerfunctoryAlertAfter *int     `yaml:"perfunctory_alert_after,omitempty"`
}

// defaultText is what an empty file gives.
func defaultText() Text { return Text{Lexicons: []string{}, Allow: []string{}} }

// validateText reports lexicons that do not load, allow-listed phrases that
// would match nothing and negative allowances, at the top level and per
// shop.
func (c *Config) validateText(p *problems) {
	var top []*text.Lexicon
	_ = c.textLexicons(p, "text", c.Text.Lexicons, c.Text.Allow, &top)
	if c.Text.PerfunctoryAlertAfter < 0 {
		p.add("text.perfunctory_alert_after", "must not be negative")
	}
	for _, id := range textShopIDs(c.Shops) {
		o := c.Shops[id].Text
		var own []*text.Lexicon
		_ = c.textLexicons(p, "shops."+id+".text", o.Lexicons, o.Allow, &own)
		if o.PerfunctoryAlertAfter != nil && *o.PerfunctoryAlertAfter < 0 {
			p.add("shops."+id+".text.perfunctory_alert_after", "must not be negative")
		}
	}
}

// textLexicons loads lexicon files and allow-listed phrases into out,
// reporting each problem under prefix; ok is false if any.
func (c *Config) textLexicons(p *problems, prefix string, files, allow []string, out *[]*text.Lexicon) bool {
	ok := true
	for i, f := range files {
		l, err := text.LoadLexicon(f)
		if err != nil {
			// A lexicon reports each bad line on a line of its own.
			for _, m := range strings.Split(err.Error(), "\n") {
				p.add(fmt.Sprintf("%s.lexicons[%d]", prefix, i), "%s", m)
			}
			ok = false
			continue
		}
		*out = append(*out, l)
	}
	for i, a := range allow {
		if text.Normalize(a).Text == "" {
			p.add(fmt.Sprintf("%s.allow[%d]", prefix, i), "%q has no letters or digits, it would match nothing", a)
			ok = false
		}
	}
	if len(allow) > 0 {
		*out = append(*out, &text.Lexicon{Name: prefix + ".allow", Allow: allow})
	}
	return ok
}

// TextRules builds each shop's text rules once: the default lexicons, the
// top-level ones and the shop's own, compiled into one matcher per shop
// that has its own lexicons or phrases. The returned function is safe for
// concurrent use. It fails on a configuration whose lexicons do not load
// (Validate reports the same).
func (c *Config) TextRules() (detectors.TextRulesFunc, error) {
	def, err := text.Default()
	if err != nil {
		return nil, err
	}
	var p problems
	top := []*text.Lexicon{def}
	c.textLexicons(&p, "text", c.Text.Lexicons, c.Text.Allow, &top)
	topM, err := text.Compile(top...)
	if err != nil {
		return nil, err
	}
	fallback := &detectors.TextRules{Matcher: topM, PerfunctoryAlertAfter: c.Text.PerfunctoryAlertAfter}
	shops := map[string]*detectors.TextRules{}
	for _, id := range textShopIDs(c.Shops) {
		o := c.Shops[id].Text
		tr := *fallback
		if o.PerfunctoryAlertAfter != nil {
			tr.PerfunctoryAlertAfter = *o.PerfunctoryAlertAfter
		}
		if len(o.Lexicons) > 0 || len(o.Allow) > 0 {
			own := append([]*text.Lexicon(nil), top...)
			c.textLexicons(&p, "shops."+id+".text", o.Lexicons, o.Allow, &own)
			if tr.Matcher, err = text.Compile(own...); err != nil {
				return nil, err
			}
		}
		shops[id] = &tr
	}
	if len(p) > 0 {
		return nil, &ValidationError{Errors: p}
	}
	return func(shop string) *detectors.TextRules {
		if r, ok := shops[shop]; ok {
			return r
		}
		return fallback
	}, nil
}

// PerfunctoryAlertAfterOf is a shop's text.perfunctory_alert_after: its
// own, else the top-level one.
func (c *Config) PerfunctoryAlertAfterOf(shop string) int {
	if o, ok := c.Shops[shop]; ok && o.Text.PerfunctoryAlertAfter != nil {
		return *o.Text.PerfunctoryAlertAfter
	}
	return c.Text.PerfunctoryAlertAfter
}

// textShopIDs are the configured shops in order, so messages come in a
// stable order.
func textShopIDs(shops map[string]ShopOverride) []string {
	ids := make([]string, 0, len(shops))
	for id := range shops {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
