package kafkasink

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/replywatch/replywatch/alerting"
	"github.com/segmentio/kafka-go"
)

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// A dead letter keeps the record's key and value up to its bounds and says
// what it cut.
func TestDeadLetterMessageCutsToItsBounds(t *testing.T) {
	big := bytes.Repeat([]byte("v"), MaxDeadLetterValue+1)
	longKey := bytes.Repeat([]byte("k"), MaxDeadLetterKey+1)
	for _, c := range []struct {
		name      string
		key, val  []byte
		truncated string
	}{
		{"within bounds", []byte("s1/b1"), bytes.Repeat([]byte("v"), MaxDeadLetterValue), ""},
		{"value too long", []byte("s1/b1"), big, "value"},
		{"key and value too long", longKey, big, "key,value"},
	} {
		m := deadLetterMessage(DeadLetter{Topic: "cs.chat", Partition: 3, Offset: 7, Key: c.key, Value: c.val, Reason: "oversize", Detail: "d"})
		h := headers(m)
		if m.Topic != "cs.chat.DLT" || h["rw-error"] != "oversize: d" || h["rw-topic"] != "cs.chat" || h["rw-partition"] != "3" || h["rw-offset"] != "7" {
			t.Errorf("%s: topic %s headers %v", c.name, m.Topic, h)
		}
		if h["rw-truncated"] != c.truncated {
			t.Errorf("%s: rw-truncated %q, want %q", c.name, h["rw-truncated"], c.truncated)
		}
		wantSize := ""
		if c.truncated != "" {
			wantSize = strconv.Itoa(len(c.val))
		}
		if h["rw-original-size"] != wantSize {
			t.Errorf("%s: rw-original-size %q, want %q", c.name, h["rw-original-size"], wantSize)
		}
		if len(m.Value) > MaxDeadLetterValue || !bytes.HasPrefix(c.val, m.Value) || len(m.Key) > MaxDeadLetterKey || !bytes.HasPrefix(c.key, m.Key) {
			t.Errorf("%s: key %d bytes, value %d bytes: not a bounded prefix of the record's", c.name, len(m.Key), len(m.Value))
		}
	}
}

func TestPermanentWrite(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{kafka.MessageTooLargeError{}, true},
		{fmt.Errorf("writing: %w", kafka.MessageSizeTooLarge), true},
		{kafka.WriteErrors{nil, kafka.MessageSizeTooLarge}, true},
		{kafka.WriteErrors{kafka.LeaderNotAvailable, kafka.MessageSizeTooLarge}, false},
		{kafka.LeaderNotAvailable, false},
		{errors.New("unexpected EOF"), false},
	} {
		if got := Permanent(c.err); got != c.want {
			t.Errorf("Permanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// The alerts topic's key is the record's shop_id, whether the scanner or
// encoding/json reads it (an escaped name, a nested value), and a record
// that is not JSON is an error, not a record keyed by nothing.
func TestShopOf(t *testing.T) {
	a := alerting.Alert{ID: "x", Kind: "reply_breach", Status: alerting.Firing, ShopID: "shop-7", BuyerID: "b1"}
	rec, err := a.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		payload string
		want    string
	}{
		{string(rec), "shop-7"},
		{`{"kind":"reply_breach","shop_id":"shop-\u0038"}`, "shop-8"},
		{`{"labels":{"a":"b"},"shop_id":"s9"}`, "s9"},
	} {
		got, err := shopOf([]byte(c.payload))
		if err != nil || string(got) != c.want {
			t.Errorf("shopOf(%s) = %q, %v; want %q", c.payload, got, err, c.want)
		}
	}
	if _, err := shopOf([]byte(`{"shop_id":`)); err == nil {
		t.Error("a cut record was read")
	}
}
