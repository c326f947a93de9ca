package alerting

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var keyCases = []struct {
	a    Alert
	want string
}{
	{Alert{ID: "x", Status: Firing}, "x:firing"},
	{Alert{ID: "x", Status: Resolved, Reason: ReasonReplied}, "x:resolved:replied"},
	{Alert{ID: "x", Status: Resolved, Reason: ReasonRetracted}, "x:resolved:retracted"},
}

func TestKeySeparatesDeliveries(t *testing.T) {
	for _, c := range keyCases {
		if got := c.a.Key(); got != c.want {
			t.Errorf("Key() = %q, want %q", got, c.want)
		}
	}
}

// Ids are the first 16 bytes of the SHA-256 of the parts joined by 0x1f,
// in hex, as they always were: a changed id would deliver every open alert
// again after an upgrade.
func TestIDIsTheSameAcrossVersions(t *testing.T) {
	for _, parts := range [][]string{{"reply_breach", "3m", "s1", "b1", "1700000000000"}, {}, {""}, {"a", ""},
		{strings.Repeat("长", 200), "b"}} {
		h := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
		if got, want := ID(parts...), hex.EncodeToString(h[:16]); got != want {
			t.Errorf("ID(%q) = %s, want %s", parts, got, want)
		}
	}
}

func TestIDIsStableAndDistinct(t *testing.T) {
	a := ID("reply_breach", "3m", "s1", "b1", "1700000000000")
	if a != ID("reply_breach", "3m", "s1", "b1", "1700000000000") || len(a) != 32 {
		t.Fatalf("ID not stable or not 32 hex chars: %q", a)
	}
	// Parts are separated, so shifting a character between parts changes the id.
	if a == ID("reply_breach", "3m", "s1b", "1", "1700000000000") {
		t.Error("ID collides when parts shift")
	}
}

func TestJSONRoundTripKeepsContractFormat(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	in := Alert{ID: "i", Kind: KindReplyBreach, Status: Firing, Severity: Critical, Threshold: "3m", ShopID: "s1",
		BuyerID: "b1", Since: time.Date(2026, 11, 24, 10, 0, 0, 0, loc), Due: time.Date(2026, 11, 24, 10, 3, 0, 0, loc)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["since"] != "2026-11-24T10:00:00.000+08:00" || m["due"] != "2026-11-24T10:03:00.000+08:00" {
		t.Errorf("times not in the contract format: %s", b)
	}
	for _, absent := range []string{"at", "emitted_at", "order_id", "reason", "agent_id"} {
		if _, ok := m[absent]; ok {
			t.Errorf("%s present though it does not apply: %s", absent, b)
		}
	}
	var out Alert
	if err := json.Unmarshal(b, &out); err != nil || !out.Due.Equal(in.Due) || out.Kind != in.Kind {
		t.Errorf("round trip: %+v %v", out, err)
	}
	if FormatThreshold(3*time.Minute) != "3m" || FormatThreshold(30*time.Second) != "30s" || FormatThreshold(90*time.Minute) != "1h30m" {
		t.Error("FormatThreshold")
	}
}

// TestTimesCarryTheShopOffset: times are written with the shop's own UTC
// offset whatever zone they were made in (CONTRACT.md §3).
func TestTimesCarryTheShopOffset(t *testing.T) {
	due := time.Date(2026, 11, 24, 2, 3, 0, 0, time.UTC)
	for _, c := range []struct{ zone, due string }{
		{"Asia/Shanghai", "2026-11-24T10:03:00.000+08:00"},
		{"America/Los_Angeles", "2026-11-23T18:03:00.000-08:00"},
		{"Asia/Kolkata", "2026-11-24T07:33:00.000+05:30"},
		{"UTC", "2026-11-24T02:03:00.000Z"},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		a := Alert{ID: "i", Kind: KindReplyBreach, Status: Firing, ShopID: "s1", Since: due.Add(-3 * time.Minute), Due: due,
			At: due, EmittedAt: due.Add(2014 * time.Millisecond)}
		a.InZone(loc)
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		if m["due"] != c.due || m["at"] != c.due || len(m["since"]) != len(c.due) || m["since"][23:] != c.due[23:] ||
			m["emitted_at"][23:] != c.due[23:] {
			t.Errorf("%s: times %s, want due %s and the same offset on every time", c.zone, b, c.due)
		}
		var back Alert
		if err := json.Unmarshal(b, &back); err != nil || !back.Due.Equal(due) {
			t.Errorf("%s: read back due %v (%v), want %v", c.zone, back.Due, err, due)
		}
	}
}
