package state

import "testing"

// counterFieldCases are shop ids and field names that a naive separator
// would split wrongly.
var counterFieldCases = []struct{ shop, field string }{
	{"s1", "consulting"},
	{"shop:7", "a:a1:waiting"},
	{"12:34", "breached:3m"},
	{"", "x"},
	{"店铺:旗舰", "a:客服1:last_human"},
	{"a:b:c", ""},
}

func TestCounterFieldRoundTrip(t *testing.T) {
	for _, c := range counterFieldCases {
		f := counterField(c.shop, c.field)
		shop, field, err := splitCounterField(f)
		if err != nil || shop != c.shop || field != c.field {
			t.Errorf("split(%q) = %q, %q, %v; want %q, %q", f, shop, field, err, c.shop, c.field)
		}
	}
}

var badCounterFields = []string{"", "consulting", "x:s1:f", "-1:s:f", "5:s1:f", "2:s1f", ":s1:f"}

func TestSplitCounterFieldRejects(t *testing.T) {
	for _, f := range badCounterFields {
		if shop, field, err := splitCounterField(f); err == nil {
			t.Errorf("split(%q) = %q, %q; want an error", f, shop, field)
		}
	}
}
