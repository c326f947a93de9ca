package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
)

// readRecord reads b as the alert stream does, and as encoding/json alone
// would: both results, for the fast reader to be held to the other.
func readRecord(b []byte) (fast, slow record, ferr, serr error) {
	prev := record{Kind: "kept", At: time.Unix(1, 0)}
	fast, slow = prev, prev
	ferr = json.Unmarshal(b, &fast)
	type plain record
	serr = json.Unmarshal(b, (*plain)(&slow))
	return
}

func sampleRecord() []byte {
	loc := time.FixedZone("", 8*3600)
	a := alerting.Alert{ID: "i1", Kind: alerting.KindReplyBreach, Status: alerting.Firing, Severity: alerting.Critical,
		Threshold: "3m", Platform: "pdd", ShopID: "s1", BuyerID: "b1", AgentID: "a7", Summary: "【回复超时】<b>",
		Since: time.Date(2026, 11, 24, 10, 0, 0, 0, loc), Due: time.Date(2026, 11, 24, 10, 3, 0, 0, loc),
		At: time.Date(2026, 11, 24, 10, 3, 0, 0, loc), EmittedAt: time.Date(2026, 11, 24, 10, 3, 1, 0, loc), Replay: true}
	return a.AppendJSON(nil)
}

// The alert stream reads the members it filters by exactly as
// encoding/json reads them, whatever the record.
func TestRecordReadsAsEncodingJSON(t *testing.T) {
	rec := sampleRecord()
	if !new(record).scan(rec) {
		t.Errorf("the fast reader refused a record as replywatch writes it: %s", rec)
	}
	for _, in := range [][]byte{rec,
		[]byte(`{"alert_id":"x","ALERT_ID":"y"}`),
		[]byte(`{"alert_id":"x","extra":{"a":[1]},"n":1.5,"z":null}`),
		[]byte(`{"alert_id":"x\u0041","due":"2026-11-24T10:03:00Z"}`),
		[]byte(`{"alert_id":"x","due":"2026-11-24 10:03:00Z"}`),
		[]byte(`{"alert_id":"x","due":null,"at":null}`),
		[]byte(`{"alert_id":7}`),
		[]byte(`{"alert_id":"x"`),
	} {
		fast, slow, ferr, serr := readRecord(in)
		if (ferr == nil) != (serr == nil) || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: fast %+v (%v), encoding/json %+v (%v)", in, fast, ferr, slow, serr)
		}
	}
}

// FuzzRecord holds the fast reader to encoding/json on any bytes.
// go test ./httpapi/ -run '^$' -fuzz FuzzRecord
func FuzzRecord(f *testing.F) {
	f.Add(sampleRecord())
	f.Add([]byte(`{"alert_id":"x","Due":"2026-11-24T10:03:00Z","replay":true,"n":-1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fast, slow, ferr, serr := readRecord(in)
		if (ferr == nil) != (serr == nil) || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v (%v), encoding/json %+v (%v)", in, fast, ferr, slow, serr)
		}
	})
}

// BenchmarkRecord is an alert record read as the alert stream reads each
// one (json.Unmarshal into a record).
func BenchmarkRecord(b *testing.B) {
	rec := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		var r record
		if err := json.Unmarshal(rec, &r); err != nil || r.ID != "i1" {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkRecordUnmarshalJSON is the same through UnmarshalJSON itself,
// without encoding/json's validating scan.
func BenchmarkRecordUnmarshalJSON(b *testing.B) {
	rec := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		var r record
		if err := r.UnmarshalJSON(rec); err != nil || r.ID != "i1" {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkRecordEncodingJSON is the record read by encoding/json alone,
// as before the scanner.
func BenchmarkRecordEncodingJSON(b *testing.B) {
	rec := sampleRecord()
	type plain record
	b.ReportAllocs()
	for b.Loop() {
		var r plain
		if err := json.Unmarshal(rec, &r); err != nil || r.ID != "i1" {
			b.Fatal(r, err)
		}
	}
}
