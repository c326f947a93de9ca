package state

import (
	"testing"

	"github.com/replywatch/replywatch/detectors"
)

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

// TestEncodeDropsAgentSetRoundTrips: a reply that assigns the agent and
// ends the wait in one batch adds the buyer to the agent's set and removes
// it again; nothing of it is sent to Redis. The shop's own set keeps its op.
func TestEncodeDropsAgentSetRoundTrips(t *testing.T) {
	b := &Batch{Token: 1, Offset: 1, Waits: []detectors.WaitOp{
		{Shop: "s1", Agent: "a1", Buyer: "b9", Start: 5, Add: true},
		{Shop: "s1", Agent: "a1", Buyer: "b9", Start: 5},
		{Shop: "s1", Buyer: "b9", Start: 5},
		{Shop: "s1", Agent: "a1", Buyer: "b8", Start: 4},
	}}
	e := encodeBatch(b, "rw:{chat.0}:", 0, 0, func(string) bool { return true })
	defer e.release()
	n := map[string]int{}
	for _, v := range e.args {
		if s, ok := v.(string); ok {
			n[s]++
		}
	}
	if n["b9"] != 1 || n["b8"] != 1 {
		t.Errorf("b9 sent %d times (want once, the shop set's removal), b8 %d times (want once)", n["b9"], n["b8"])
	}
}
