package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var utf8Cases = []struct {
	name  string
	value string
	bad   string // the invalid bytes, "" when valid
}{
	{"latin-1 byte in a buyer id", `{` + ok + `,"type":"message","buyer_id":"poison-utf8-` + "\xe9" + `","sender":"buyer"}`, "\xe9"},
	{"truncated sequence at the end", `{` + ok + `,"type":"message","buyer_id":"b1","sender":"buyer","text":"在` + "\xe5\x90" + `"}`, "\xe5\x90"},
	{"overlong encoding of /", `{` + ok + `,"type":"message","buyer_id":"b` + "\xc0\xaf" + `","sender":"buyer"}`, "\xc0\xaf"},
	{"UTF-16 surrogate encoded", `{` + ok + `,"type":"message","buyer_id":"b` + "\xed\xa0\x80" + `","sender":"buyer"}`, "\xed\xa0\x80"},
	{"valid Chinese and an escaped replacement character", `{` + ok + `,"type":"message","buyer_id":"买家","sender":"buyer","text":"亲\ufffd"}`, ""},
}

// Values are UTF-8 by contract: invalid bytes anywhere are dead-lettered as
// bad_utf8, naming the offset, before the JSON decoder could replace them.
func TestDecodeRejectsInvalidUTF8(t *testing.T) {
	for _, c := range utf8Cases {
		ev, err := Decode(Chat, []byte(c.value), now)
		if c.bad == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var de *Error
		if !errors.As(err, &de) || de.Reason != ReasonBadUTF8 {
			t.Errorf("%s: got %v (event %+v), want %s", c.name, err, ev, ReasonBadUTF8)
			continue
		}
		want := "at offset " + strconv.Itoa(strings.Index(c.value, c.bad))
		if !strings.Contains(de.Detail, want) {
			t.Errorf("%s: detail %q, want it to name %q", c.name, de.Detail, want)
		}
	}
}

// An event older than the maximum age, measured from the record's time, is
// stale; an age limit of 0 accepts any age.
func TestCheckAge(t *testing.T) {
	ev := &Event{TS: Time{now.Add(-8 * 24 * time.Hour)}}
	if err := ev.CheckAge(now, 7*24*time.Hour); err == nil || err.Reason != ReasonStale || !strings.Contains(err.Detail, "more than 168h0m0s before") {
		t.Errorf("8 days old with a 7-day limit: %v, want %s", err, ReasonStale)
	}
	ev.TS = Time{now.Add(-6 * 24 * time.Hour)}
	if err := ev.CheckAge(now, 7*24*time.Hour); err != nil {
		t.Errorf("6 days old with a 7-day limit: %v", err)
	}
	ev.TS = Time{now.AddDate(-10, 0, 0)}
	if err := ev.CheckAge(now, 0); err != nil {
		t.Errorf("10 years old with no limit: %v", err)
	}
}

var streams = []Stream{Chat, Orders, Presence}

// FuzzDecode: whatever the bytes, Decode does not panic; it either rejects
// them with a known reason and a detail, or returns an event that is valid,
// has valid UTF-8 in every field, and decodes to the same event again after
// encoding. The seeds (every table case of this package) run in every
// `go test`; `go test -fuzz FuzzDecode ./event` explores further.
// everyField is a record with every field of an event set.
const everyField = `{"event_id":"e0","ts":"2026-11-24T10:00:00Z","type":"dispute_opened","shop_id":"s0","platform":"pdd","buyer_id":"b0","sender":"buyer","agent_id":"a0","from_agent_id":"a9","msg_id":"m0","text":"t","order_id":"o0","intent":"complaint","amount_cents":5,"rating":4,"respond_by":"2026-11-25T10:00:00Z","ship_by":"2026-11-25T10:00:00Z","status":"online"}`

func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add(byte(slices.Index(streams, c.stream)), []byte(c.value))
	}
	for _, c := range utf8Cases {
		f.Add(byte(0), []byte(c.value))
	}
	f.Add(byte(0), []byte(`{"event_id":"e1","ts":"2026-11-24T10:00:00.123456789+08:00","type":"message","shop_id":"s\u0000","buyer_id":"\ud800","sender":"buyer"}`))
	f.Add(byte(1), []byte(`{"event_id":"e1","ts":"2026-11-24T10:00:00z","type":"order_paid","shop_id":"s1","buyer_id":"b1","order_id":"o1","amount_cents":1e3}`))
	f.Add(byte(2), []byte(`[{"event_id":"e1"}]`))
	f.Add(byte(2), []byte(``))
	f.Add(byte(0), []byte(`{"event_id":"1-1794362400-14","type":"message","ts":"2026-11-11T10:00:50.878+08:00","shop_id":"shop-01","platform":"pdd","buyer_id":"b100001","sender":"buyer","agent_id":"shop-01-a1","msg_id":"1794362400-14","text":"怎么还没发货","order_id":"o01-p1000001"}`))
	f.Add(byte(1), []byte(` {"event_id":"e1","ts":"2026-11-24T10:00:00Z","type":"dispute_opened","shop_id":"s1","buyer_id":"b1","order_id":"o1","amount_cents":-0,"rating":5,"respond_by":"2026-11-25t10:00:00z","ship_by":"2026-11-25T10:00:00.5+08:00","status":"x"} `))
	f.Add(byte(1), []byte(`{"event_id":"e1","Event_ID":"e2","ts":"2026-11-24T10:00:00Z","type":"order_paid","shop_id":"s1","buyer_id":"b1","order_id":"o1","amount_cents":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, s byte, value []byte) {
		stream := streams[int(s)%len(streams)]
		// The fast reader, when it takes a value, reads exactly what
		// encoding/json reads.
		var fast, slow Event
		if utf8.Valid(value) && fast.scan(value) {
			if err := unmarshal(value, &slow); err != nil {
				t.Fatalf("the fast reader took %q, encoding/json rejects it: %v", value, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast reader %+v, encoding/json %+v", value, fast, slow)
			}
		}
		ev, err := Decode(stream, value, now)
		// Decoding into an event that held another record gives the same
		// event, or the same error.
		var reused Event
		_ = DecodeInto(&reused, Orders, []byte(everyField), now)
		if rerr := DecodeInto(&reused, stream, value, now); fmt.Sprint(rerr) != fmt.Sprint(err) || err == nil && !reflect.DeepEqual(reused, *ev) {
			t.Fatalf("%q decoded into a used event: %+v, %v; into a new one: %+v, %v", value, reused, rerr, ev, err)
		}
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if !slices.Contains(Reasons, de.Reason) || de.Detail == "" {
				t.Fatalf("error %q: reason not in Reasons or no detail", err)
			}
			if ev != nil {
				t.Fatalf("an event with an error")
			}
			return
		}
		if !utf8.Valid(value) {
			t.Fatalf("invalid UTF-8 accepted: %q", value)
		}
		if err := ev.Validate(stream, now); err != nil {
			t.Fatalf("decoded event does not validate: %v", err)
		}
		for _, v := range []string{ev.EventID, ev.Type, ev.ShopID, ev.Platform, ev.BuyerID, ev.Sender, ev.AgentID, ev.FromAgentID, ev.MsgID, ev.Text, ev.OrderID, ev.Status} {
			if !utf8.ValidString(v) {
				t.Fatalf("field %q is not valid UTF-8", v)
			}
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("encoding the event: %v", err)
		}
		ev2, err := Decode(stream, again, now)
		if err != nil {
			t.Fatalf("the event encoded again does not decode: %v: %s", err, again)
		}
		if ev2.Ms() != ev.Ms() || ev2.Key(stream) != ev.Key(stream) || ev2.EventID != ev.EventID || ev2.Type != ev.Type || ev2.Text != ev.Text {
			t.Fatalf("the event changed through encoding: %+v, then %+v", ev, ev2)
		}
	})
}
