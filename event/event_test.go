package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const ok = `"event_id":"e1","ts":"2026-11-24T10:00:00.123+08:00","shop_id":"s1"`

var decodeCases = []struct {
	name   string
	stream Stream
	value  string
	reason string // "" = valid
	detail string
}{
	{"buyer message", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"buyer"}`, "", ""},
	{"agent reply", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"agent","agent_id":"a1"}`, "", ""},
	{"transfer", Chat, `{` + ok + `,"type":"transfer","buyer_id":"b1","agent_id":"a2","from_agent_id":"a1"}`, "", ""},
	{"order paid", Orders, `{` + ok + `,"type":"order_paid","buyer_id":"b1","order_id":"o1","amount_cents":1999}`, "", ""},
	{"seat status", Presence, `{` + ok + `,"type":"agent_status","agent_id":"a1","status":"away"}`, "", ""},
	{"not JSON", Chat, `not json`, ReasonBadJSON, "invalid character"},
	{"two values", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"buyer"} {}`, ReasonBadJSON, "after top-level value"},
	{"wrong type of field", Chat, `{` + ok + `,"type":"message","buyer_id":7,"sender":"buyer"}`, ReasonBadField, "field buyer_id: expected string"},
	{"no event_id", Chat, `{"type":"message","ts":"2026-11-24T10:00:00Z","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`, ReasonMissing, "event_id is required"},
	{"no ts", Chat, `{"event_id":"e1","type":"message","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`, ReasonMissing, "ts is required"},
	{"lowercase t and z (RFC 3339 §5.6)", Chat, `{"event_id":"e1","ts":"2026-11-24t02:00:00.123z","type":"message","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`, "", ""},
	{"lowercase t with an offset", Chat, `{"event_id":"e1","ts":"2026-11-24t10:00:00+08:00","type":"message","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`, "", ""},
	{"lowercase z without the separator", Chat, `{"event_id":"e1","ts":"2026-11-24 10:00:00z","type":"message","shop_id":"s1"}`, ReasonBadField, `time "2026-11-24 10:00:00z" is not RFC 3339`},
	{"ts without offset", Chat, `{"event_id":"e1","ts":"2026-11-24T10:00:00","type":"message","shop_id":"s1"}`, ReasonBadField, `time "2026-11-24T10:00:00" is not RFC 3339 with an offset`},
	{"no shop", Chat, `{"event_id":"e1","ts":"2026-11-24T10:00:00Z","type":"message","buyer_id":"b1","sender":"buyer"}`, ReasonMissing, "shop_id is required"},
	{"no buyer", Chat, `{` + ok + `,"type":"message","sender":"buyer"}`, ReasonMissing, "buyer_id is required for message"},
	{"no sender", Chat, `{` + ok + `,"type":"message","buyer_id":"b1"}`, ReasonMissing, "sender is required"},
	{"bad sender", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"robot"}`, ReasonBadField, `sender "robot" is not one of`},
	{"agent without agent_id", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"agent"}`, ReasonMissing, "agent_id is required when sender is agent"},
	{"unknown type", Chat, `{` + ok + `,"type":"teleport","buyer_id":"b1"}`, ReasonUnknownType, `type "teleport" is not a chat event`},
	{"order type on chat", Chat, `{` + ok + `,"type":"order_paid","buyer_id":"b1","order_id":"o1"}`, ReasonUnknownType, "is not a chat event"},
	{"bad platform", Chat, `{` + ok + `,"platform":"amazon","type":"message","buyer_id":"b1","sender":"buyer"}`, ReasonBadField, `platform "amazon"`},
	{"order without order_id", Orders, `{` + ok + `,"type":"order_paid","buyer_id":"b1"}`, ReasonMissing, "order_id is required"},
	{"rating out of range", Orders, `{` + ok + `,"type":"review_posted","buyer_id":"b1","order_id":"o1","rating":6}`, ReasonBadField, "rating 6 is not between 1 and 5"},
	{"bad status", Presence, `{` + ok + `,"type":"agent_status","agent_id":"a1","status":"lunch"}`, ReasonBadField, `status "lunch"`},
	{"no status", Presence, `{` + ok + `,"type":"agent_status","agent_id":"a1"}`, ReasonMissing, "status is required"},
	{"far future", Chat, `{"event_id":"e1","ts":"2026-11-26T10:00:00Z","type":"message","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`, ReasonFuture, "more than 24h0m0s ahead"},
	{"long id", Chat, `{"event_id":"` + strings.Repeat("x", 129) + `","ts":"2026-11-24T10:00:00Z","type":"message","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`, ReasonBadField, "event_id is longer than 128 bytes"},
	{"long text", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"buyer","text":"` + strings.Repeat("a", 9000) + `"}`, ReasonBadField, "text is 9000 bytes"},
	{"oversize", Chat, `{` + ok + `,"type":"message","buyer_id":"b1","sender":"buyer","text":"` + strings.Repeat("a", 70000) + `"}`, ReasonOversize, "the limit is 65536"},
}

func TestDecode(t *testing.T) {
	for _, c := range decodeCases {
		ev, err := Decode(c.stream, []byte(c.value), now)
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		de, isErr := err.(*Error)
		if !isErr || de.Reason != c.reason || !strings.Contains(de.Detail, c.detail) {
			t.Errorf("%s: got %v (event %v), want %s containing %q", c.name, err, ev, c.reason, c.detail)
		}
	}
}

func TestLowercaseTimeIsTheSameInstant(t *testing.T) {
	for _, ts := range []string{"2026-11-24t02:00:00.123z", "2026-11-24T02:00:00.123z", "2026-11-24t10:00:00.123+08:00"} {
		ev, err := Decode(Chat, []byte(`{"event_id":"e1","ts":"`+ts+`","type":"message","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`), now)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		if ev.Ms() != time.Date(2026, 11, 24, 2, 0, 0, 123e6, time.UTC).UnixMilli() {
			t.Errorf("%s: ms = %d", ts, ev.Ms())
		}
	}
}

func TestTimeKeepsMillisecondsAndOffset(t *testing.T) {
	ev, err := Decode(Chat, []byte(`{`+ok+`,"type":"message","buyer_id":"b1","sender":"buyer"}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Ms() != time.Date(2026, 11, 24, 2, 0, 0, 123e6, time.UTC).UnixMilli() {
		t.Errorf("ms = %d", ev.Ms())
	}
	b, _ := ev.TS.MarshalJSON()
	if string(b) != `"2026-11-24T10:00:00.123+08:00"` {
		t.Errorf("re-encoded ts = %s", b)
	}
	if ev.Key(Chat) != "s1/b1" {
		t.Errorf("key = %s", ev.Key(Chat))
	}
}

// Records as the simulator and most producers write them take the fast
// reader (its agreement with encoding/json is FuzzDecode's); the rest
// still decode, through encoding/json.
func TestCommonRecordsTakeTheFastReader(t *testing.T) {
	for _, v := range []string{
		`{"event_id":"1-1794362400-14","type":"message","ts":"2026-11-11T10:00:50.878+08:00","shop_id":"shop-01","platform":"pdd","buyer_id":"b100001","sender":"buyer","agent_id":"shop-01-a1","msg_id":"1794362400-14","text":"怎么还没发货","order_id":"o01-p1000001"}`,
		`{` + ok + `,"type":"order_paid","buyer_id":"b1","order_id":"o1","amount_cents":1999}`,
		`{` + ok + `,"type":"agent_status","agent_id":"a1","status":"away"}`,
		`{` + ok + `,"type":"message","buyer_id":"b1","sender":"buyer","intent":"complaint"}`,
	} {
		var ev Event
		if !ev.scan([]byte(v)) {
			t.Errorf("the fast reader refused %s", v)
		}
	}
	ev, err := Decode(Chat, []byte(`{`+ok+`,"type":"message","buyer_id":"b\u00e9","sender":"buyer","extra":[1]}`), now)
	if err != nil || ev.BuyerID != "bé" {
		t.Errorf("an escaped id and an unknown member: %+v %v", ev, err)
	}
}

// AppendJSON writes what json.Marshal writes, for events of every stream
// with every field set or left out, and strings that need escaping.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	ts := Time{time.Date(2026, 11, 11, 14, 3, 7, 123_456_789, time.FixedZone("", 8*3600))}
	due := Time{time.Date(2026, 11, 12, 0, 0, 0, 0, time.UTC)}
	events := []Event{
		{},
		{EventID: "e1", Type: TypeMessage, TS: ts, ShopID: "s1", BuyerID: "b1", Sender: SenderBuyer, MsgID: "m1", Text: "在吗？<b>\"急\"</b> & \n\xff\u2028"},
		{EventID: "e2", Type: TypeMessage, TS: ts, ShopID: "s1", Platform: "pdd", BuyerID: "b1", Sender: SenderAgent, AgentID: "a1", Intent: IntentComplaint},
		{EventID: "e3", Type: "transfer", TS: ts, ShopID: "s1", BuyerID: "b1", FromAgentID: "a1", AgentID: "a2"},
		{EventID: "e4", Type: "paid", TS: ts, ShopID: "s1", BuyerID: "b1", OrderID: "o1", AmountCents: -1299, ShipBy: &due},
		{EventID: "e5", Type: "dispute", TS: ts, ShopID: "s1", BuyerID: "b1", OrderID: "o1", RespondBy: &due, ShipBy: &ts},
		{EventID: "e6", Type: "review", TS: ts, ShopID: "s1", BuyerID: "b1", OrderID: "o1", Rating: 5},
		{EventID: "e7", Type: "status", TS: ts, ShopID: "s1", AgentID: "a1", Status: "online"},
	}
	for _, ev := range events {
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.AppendJSON([]byte("x")); string(got) != "x"+string(want) {
			t.Errorf("AppendJSON = %s\nwant           %s", got[1:], want)
		}
	}
}
