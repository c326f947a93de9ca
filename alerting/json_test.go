package alerting

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// referenceJSON is the alert JSON as encoding/json wrote it before
// AppendJSON: the contract's bytes, which AppendJSON must reproduce.
func referenceJSON(t testing.TB, a Alert) []byte {
	t.Helper()
	f := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(timeLayout)
	}
	b, err := json.Marshal(wireAlert{alias: (*alias)(&a), Since: f(a.Since), Due: f(a.Due), At: f(a.At), EmittedAt: f(a.EmittedAt)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tricky are strings encoding/json escapes: HTML characters, quotes,
// control characters, line and paragraph separators, invalid UTF-8.
var tricky = []string{"", "b1", "<script>&amp;</script>", `a"b\c`, "tab\tnew\nline\rret\bbs\fff\x00\x1f\x7f",
	"买家说\u2028分行\u2029段", "bad\xffutf8\xc3", "客服 a7：“爱买不买”", "emoji 😀 and é"}

func TestAppendJSONIsTheContractBytes(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	base := stormAlert()
	cases := []Alert{base, {}, {ID: "x", Replay: true, At: time.Date(2026, 11, 11, 0, 0, 0, 123456789, time.UTC)}}
	for i, s := range tricky {
		a := base
		a.Summary, a.Excerpt, a.Term, a.BuyerID, a.Reason = s, s, s, tricky[(i+1)%len(tricky)], s
		a.Category, a.OrderID, a.Platform, a.Threshold = s, s, s, s
		a.InZone(loc)
		cases = append(cases, a)
	}
	for _, a := range cases {
		got, err := a.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceJSON(t, a); string(got) != string(want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
		}
		// json.Marshal of the record (validate and compact) changes nothing.
		if viaJSON, err := json.Marshal(a); err != nil || string(viaJSON) != string(got) {
			t.Errorf("json.Marshal gives %s (%v), AppendJSON %s", viaJSON, err, got)
		}
	}
}

// slowUnmarshal is encoding/json's reading of an alert record, the
// behaviour the fast reader must match.
func slowUnmarshal(b []byte, a *Alert) error { return a.unmarshalSlow(b) }

func TestUnmarshalFastMatchesEncodingJSON(t *testing.T) {
	a := stormAlert()
	a.Excerpt, a.Replay = "爱买不买", true
	rec := a.AppendJSON(nil)
	inputs := [][]byte{rec,
		[]byte(` { "alert_id" : "x" , "replay" : false , "since" : "2026-11-24T10:00:00+08:00" } `),
		[]byte(`{"alert_id":"x","Kind":"reply_breach"}`),      // a name in other case: encoding/json matches it
		[]byte(`{"alert_id":"x","kind":"a\u003cb"}`),          // an escape
		[]byte(`{"alert_id":"x","kind":null}`),                // null keeps the old value
		[]byte(`{"alert_id":"x","extra":{"n":[1,2]}}`),        // an unknown member
		[]byte(`{"alert_id":"x","due":"yesterday"}`),          // a bad time
		[]byte(`{"alert_id":"x","replay":1}`),                 // a wrong type
		[]byte(`{"alert_id":"x"} x`),                          // bytes after the object
		[]byte(`{"alert_id":"x","alert_id":"y"}`),             // the last of a name wins
		[]byte(`{"alert_id":"bad` + "\xff" + `"}`),            // invalid UTF-8
		[]byte(`{"alert_id":"x",}`), []byte(`{}`), []byte(``), // syntax
	}
	for _, in := range inputs {
		prev := Alert{Kind: "kept", Since: since}
		fast, slow := prev, prev
		ferr := fast.UnmarshalJSON(in)
		serr := slowUnmarshal(in, &slow)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Errorf("%s: error %v, encoding/json %v", in, ferr, serr)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\n got %+v\nwant %+v", in, fast, slow)
		}
	}
	if !new(Alert).scan(rec) {
		t.Errorf("the fast reader refused a record as replywatch writes it: %s", rec)
	}
	var back Alert
	if err := json.Unmarshal(rec, &back); err != nil || !back.Due.Equal(a.Due) || back.Summary != a.Summary || !back.Replay {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

// FuzzAlertJSON checks, for any record bytes, that the fast reader gives
// what encoding/json gives, and for any field values that AppendJSON
// writes the contract's bytes. go test -fuzz FuzzAlertJSON ./alerting/
func FuzzAlertJSON(f *testing.F) {
	a := stormAlert()
	f.Add(a.AppendJSON(nil), "b1", "爱买不买")
	for _, s := range tricky {
		f.Add([]byte(`{"alert_id":"`+s+`","kind":"x"}`), s, s)
	}
	f.Fuzz(func(t *testing.T, rec []byte, s1, s2 string) {
		prev := Alert{Kind: "kept"}
		fast, slow := prev, prev
		ferr := fast.UnmarshalJSON(rec)
		serr := slowUnmarshal(rec, &slow)
		if (ferr == nil) != (serr == nil) || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %+v (%v), encoding/json %+v (%v)", rec, fast, ferr, slow, serr)
		}
		b := a
		b.BuyerID, b.Summary, b.Excerpt = s1, s2, s1+s2
		if got, want := b.AppendJSON(nil), referenceJSON(t, b); string(got) != string(want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}
