package sim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

func readAll(t *testing.T, data []byte) []Record {
	t.Helper()
	var out []Record
	if err := ReadJSONL(bytes.NewReader(data), func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("ReadJSONL: %v", err)
	}
	return out
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A day written as JSONL reads back to the same lines, plain or gzipped,
// and as bare contract events it reads back to the same streams and keys.
func TestJSONLRoundTrip(t *testing.T) {
	recs := generate(t, Options{Seed: 3, Start: day.Add(9 * time.Hour), End: day.Add(13 * time.Hour)})
	var file bytes.Buffer
	for _, r := range recs {
		if err := WriteJSONL(&file, r); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string][]byte{"plain": file.Bytes(), "gzip": gz(t, file.Bytes())} {
		back := readAll(t, data)
		if got := jsonl(back); !bytes.Equal(got, file.Bytes()) {
			t.Fatalf("%s: %d records read back differ from the %d written", name, len(back), len(recs))
		}
	}

	var bare []byte
	for i := range recs {
		bare = append(AppendEvent(bare, &recs[i].Event), '\n')
	}
	back := readAll(t, gz(t, bare))
	if !bytes.Equal(jsonl(back), file.Bytes()) {
		t.Fatal("bare events read back with other streams, keys or values")
	}
}

func TestReadJSONLMixed(t *testing.T) {
	data, err := os.ReadFile("testdata/mixed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range readAll(t, data) {
		got = append(got, string(r.Topic)+" "+r.Key+" "+r.Event.EventID+" "+r.Event.Type)
	}
	want := []string{
		"chat s1/b1 e1 message",
		"orders s1/b1 e2 order_paid",
		"presence s1/a7 e3 agent_status",
		"chat s1/b1 e4 message",
		"orders s2/b9 e5 review_posted",
		"chat s1/b1 e6 buyer_blocked",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("read\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const okLine = `{"topic":"chat","key":"s1/b1","value":{"event_id":"e1","type":"message","ts":"2026-11-24T10:00:00.000+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer"}}`

var badJSONL = []struct {
	name, data, want string
}{
	{"not JSON", okLine + "\nhello\n", "JSONL line 2: not a JSON object"},
	{"neither envelope nor event", okLine + "\n\n{}\n", "JSONL line 3: neither an envelope"},
	{"unknown topic", `{"topic":"billing","value":{"type":"message"}}`, `JSONL line 1: topic "billing" is not chat, orders or presence`},
	{"value not an object", `{"topic":"chat","value":5}`, "JSONL line 1: value is not a JSON object"},
	{"unknown bare type", `{"event_id":"e1","type":"order_lost","ts":"2026-11-24T10:00:00Z","shop_id":"s1"}`, `JSONL line 1: type "order_lost" is not a contract event type`},
	{"type of another stream", `{"topic":"chat","value":{"event_id":"e1","type":"order_paid","ts":"2026-11-24T10:00:00Z","shop_id":"s1","buyer_id":"b","order_id":"o"}}`, `JSONL line 1: chat event: unknown_type: type "order_paid" is not a chat event`},
	{"missing field", okLine + "\n" + strings.Replace(okLine, `"buyer_id":"b1",`, "", 1), "JSONL line 2: chat event: missing_field: buyer_id is required"},
	{"bad ts", `{"event_id":"e1","type":"agent_status","ts":"yesterday","shop_id":"s1","agent_id":"a","status":"online"}`, "JSONL line 1: presence event: bad_field: time \"yesterday\" is not RFC 3339"},
	{"line too long", okLine + "\n" + `{"text":"` + strings.Repeat("x", MaxLineBytes) + `"}`, "JSONL line 2: longer than"},
}

func TestReadJSONLErrors(t *testing.T) {
	for _, tc := range badJSONL {
		t.Run(tc.name, func(t *testing.T) {
			for _, data := range [][]byte{[]byte(tc.data), gz(t, []byte(tc.data))} {
				err := ReadJSONL(bytes.NewReader(data), func(Record) error { return nil })
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q", err, tc.want)
				}
			}
		})
	}
}

func TestReadJSONLCallbackError(t *testing.T) {
	stop := errorString("stop")
	n := 0
	err := ReadJSONL(strings.NewReader(okLine+"\n"+okLine+"\n"), func(Record) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("got %v after %d records, want the callback's error after 1", err, n)
	}
}

func at(s string) *event.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &event.Time{Time: t}
}

// Events whose JSON must come out of AppendEvent exactly as encoding/json
// writes it: every field, empty fields, and strings that need escaping.
var encodeCases = []event.Event{
	{},
	{EventID: "e1", Type: "message", TS: *at("2026-11-24T10:00:00.5+08:00"), ShopID: "s1"},
	{EventID: "e2", Type: "order_paid", TS: *at("2026-11-24T02:00:00Z"), ShopID: "s1", Platform: "pdd",
		BuyerID: "b1", Sender: "buyer", AgentID: "a1", FromAgentID: "a0", MsgID: "m1", Text: "亲,在的哦~", OrderID: "o1",
		AmountCents: -5, RespondBy: at("2026-11-25T10:00:00.123456+08:00"), ShipBy: at("2026-11-24T23:59:59.999-05:00"),
		Rating: 3, Status: "away"},
	{EventID: `quote " back \ slash`, Type: "t\n\r\t\b\f\x00\x01\x1f\x7f", ShopID: "<html> & </html>", Text: "bad \xff utf8 \xe4\xbd and \u2028 \u2029 😀 é"},
	{EventID: strings.Repeat("长", 50), Text: strings.Repeat("a\"", 300)},
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	check := func(e *event.Event) {
		t.Helper()
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendEvent(nil, e); !bytes.Equal(got, want) {
			t.Fatalf("AppendEvent\n%s\nencoding/json\n%s", got, want)
		}
	}
	for i := range encodeCases {
		check(&encodeCases[i])
	}
	for _, r := range generate(t, Options{Seed: 12, Start: day}) {
		check(&r.Event)
	}
}
