package config

import "testing"

// TestTextRules: a shop's own lexicon and allow-listed phrases add to the
// defaults for that shop only; perfunctory_alert_after is inherited unless
// the shop sets it.
func TestTextRules(t *testing.T) {
	cfg, err := Parse([]byte(`
text: {perfunctory_alert_after: 2}
shops:
  s1:
    text: {lexicons: [testdata/lexicons/shop.yml], allow: [加个微信好友]}
  s2:
    text: {perfunctory_alert_after: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := cfg.TextRules()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		shop, msg string
		flagged   bool
	}{
		{"s1", "我的抖音号是abc", true},         // the shop's own term
		{"other", "我的抖音号是abc", false},     // not elsewhere
		{"s1", "关注并加微信公众号领券", false},      // the shop's lexicon allows it
		{"s1", "亲，不用加个微信好友，平台内就行", false}, // the shop's allow-listed phrase
		{"other", "加个微信好友", true},
		{"s1", "加我微信", true}, // defaults still apply
	}
	for _, c := range cases {
		got := rules(c.shop).Matcher.Scan(c.msg, "off_platform")
		if (len(got) > 0) != c.flagged {
			t.Errorf("shop %s, %q: flagged %v, want %v", c.shop, c.msg, got, c.flagged)
		}
	}
	if a, b, o := rules("s1").PerfunctoryAlertAfter, rules("s2").PerfunctoryAlertAfter, rules("other").PerfunctoryAlertAfter; a != 2 || b != 0 || o != 2 {
		t.Errorf("perfunctory_alert_after s1=%d s2=%d other=%d, want 2 0 2", a, b, o)
	}
}
