package alerting

import (
	"encoding/json"
	"testing"
	"time"
)

// stormAlert is the common record of a bad day: a reply breach of a buyer
// waiting on an agent, stamped in the shop's zone with its summary.
func stormAlert() Alert {
	a := Alert{ID: ID(KindReplyBreach, "3m", "shop-01", "b100001", "1794362400000"), Kind: KindReplyBreach, Status: Firing,
		Severity: Critical, Threshold: "3m", Platform: "pdd", ShopID: "shop-01", BuyerID: "b100001", AgentID: "shop-01-a7",
		Since: since, Due: since.Add(3 * time.Minute), At: since.Add(3 * time.Minute)}
	a.Stamp(since.Add(3*time.Minute+1500*time.Millisecond), "zh", shanghai)
	return a
}

// BenchmarkSummary is the summary of a firing breach: every alert record
// pays it once.
func BenchmarkSummary(b *testing.B) {
	a := stormAlert()
	b.ReportAllocs()
	for b.Loop() {
		if s := Summary(&a, "zh", shanghai); len(s) == 0 {
			b.Fatal("empty summary")
		}
	}
}

// BenchmarkMarshal is an alert record encoded as the writers of the alerts
// topic encode it.
func BenchmarkMarshal(b *testing.B) {
	a := stormAlert()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalEncodingJSON is the same record through json.Marshal,
// which validates and compacts what MarshalJSON returns.
func BenchmarkMarshalEncodingJSON(b *testing.B) {
	a := stormAlert()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshal is an alert record read back, as the notifier and the
// alert stream read every record of the alerts topic.
func BenchmarkUnmarshal(b *testing.B) {
	a := stormAlert()
	raw, err := json.Marshal(a)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var out Alert
		if err := json.Unmarshal(raw, &out); err != nil {
			b.Fatal(err)
		}
		if out.ShopID != "shop-01" {
			b.Fatalf("shop %q", out.ShopID)
		}
	}
}

// BenchmarkID is the id of a reply alert, derived for every alert.
func BenchmarkID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if id := ID(KindReplyBreach, "3m", "shop-01", "b100001", "1794362400000"); len(id) != 32 {
			b.Fatal(id)
		}
	}
}
