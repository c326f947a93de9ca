package sim

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/jsonw"
)

// JSONL files (simulate --out, replay) hold one record a line:
//
//	{"topic":"chat","key":"shop-01/b100001","value":{...contract event...}}
//
// where value is exactly the Kafka value. ReadJSONL also takes bare contract
// events, one a line, and gzip-compressed files.

var typeStream = map[string]event.Stream{
	event.TypeMessage: event.Chat, event.TypeTransfer: event.Chat,
	event.TypeBuyerBlocked: event.Chat, event.TypeBuyerReported: event.Chat,
	event.TypeAgentStatus:  event.Presence,
	event.TypeOrderCreated: event.Orders, event.TypeOrderPaid: event.Orders, event.TypeOrderGrouped: event.Orders,
	event.TypeOrderShipped: event.Orders, event.TypeRefundRequested: event.Orders, event.TypeRefundCompleted: event.Orders,
	event.TypeRefundRejected: event.Orders, event.TypeDisputeOpened: event.Orders, event.TypeDisputeClosed: event.Orders,
	event.TypeComplaintOpened: event.Orders, event.TypeReviewPosted: event.Orders,
}

// StreamOf is the stream an event type belongs to.
func StreamOf(eventType string) (event.Stream, bool) {
	s, ok := typeStream[eventType]
	return s, ok
}

// streamOfTopic accepts a stream name ("chat") or a topic name whose last
// dot-separated part is one ("cs.chat").
func streamOfTopic(topic string) (event.Stream, bool) {
	if i := strings.LastIndexByte(topic, '.'); i >= 0 {
		topic = topic[i+1:]
	}
	switch s := event.Stream(topic); s {
	case event.Chat, event.Orders, event.Presence:
		return s, true
	}
	return "", false
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// WriteJSONL writes one record as a JSONL line.
func WriteJSONL(w io.Writer, r Record) error {
	bp := bufPool.Get().(*[]byte)
	b := AppendJSONL((*bp)[:0], &r)
	_, err := w.Write(b)
	*bp = b
	bufPool.Put(bp)
	if err != nil {
		return fmt.Errorf("writing a JSONL record: %w", err)
	}
	return nil
}

// AppendJSONL appends the JSONL line of a record, newline included.
func AppendJSONL(dst []byte, r *Record) []byte {
	dst = append(dst, `{"topic":`...)
	dst = jsonw.String(dst, string(r.Topic))
	dst = append(dst, `,"key":`...)
	dst = jsonw.String(dst, r.Key)
	dst = append(dst, `,"value":`...)
	dst = AppendEvent(dst, &r.Event)
	return append(dst, '}', '\n')
}

// Each hands fn every record of recs in order, as its topic, key and the
// JSON producers write (AppendEvent): the shape app.Replay reads its input
// in, so a generated day can be replayed without going through Kafka.
func Each(recs []Record, fn func(topic event.Stream, key string, value []byte) error) error {
	var buf []byte
	for i := range recs {
		buf = AppendEvent(buf[:0], &recs[i].Event)
		if err := fn(recs[i].Topic, recs[i].Key, buf); err != nil {
			return err
		}
	}
	return nil
}

// AppendEvent appends the event's JSON, byte for byte what encoding/json
// writes for event.Event, several times faster: producing millions of
// events is bound by it.
func AppendEvent(dst []byte, e *event.Event) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = jsonw.String(dst, e.EventID)
	dst = append(dst, `,"type":`...)
	dst = jsonw.String(dst, e.Type)
	dst = append(dst, `,"ts":`...)
	dst = appendTime(dst, e.TS.Time)
	dst = append(dst, `,"shop_id":`...)
	dst = jsonw.String(dst, e.ShopID)
	dst = appendField(dst, `,"platform":`, e.Platform)
	dst = appendField(dst, `,"buyer_id":`, e.BuyerID)
	dst = appendField(dst, `,"sender":`, e.Sender)
	dst = appendField(dst, `,"agent_id":`, e.AgentID)
	dst = appendField(dst, `,"from_agent_id":`, e.FromAgentID)
	dst = appendField(dst, `,"msg_id":`, e.MsgID)
	dst = appendField(dst, `,"text":`, e.Text)
	dst = appendField(dst, `,"order_id":`, e.OrderID)
	if e.AmountCents != 0 {
		dst = append(dst, `,"amount_cents":`...)
		dst = strconv.AppendInt(dst, e.AmountCents, 10)
	}
	if e.RespondBy != nil {
		dst = append(dst, `,"respond_by":`...)
		dst = appendTime(dst, e.RespondBy.Time)
	}
	if e.ShipBy != nil {
		dst = append(dst, `,"ship_by":`...)
		dst = appendTime(dst, e.ShipBy.Time)
	}
	if e.Rating != 0 {
		dst = append(dst, `,"rating":`...)
		dst = strconv.AppendInt(dst, int64(e.Rating), 10)
	}
	dst = appendField(dst, `,"status":`, e.Status)
	return append(dst, '}')
}

func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return jsonw.String(append(dst, name...), v)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	return append(dst, '"')
}

// MaxLineBytes bounds one JSONL line: a 64 KiB value and its envelope fit
// with room to spare.
const MaxLineBytes = 1 << 20

// ReadJSONL reads records from r and calls fn for each, in file order. r may
// be gzip-compressed. A line is either an envelope {"topic","key","value"}
// (topic a stream name like "chat" or a topic name like "cs.chat"; key
// defaults to the contract's key) or a bare contract event, whose stream
// follows from its type. Blank lines are skipped. Events are validated as
// the processor would (without the future check); the first bad line ends
// the read with an error naming its line number.
func ReadJSONL(r io.Reader, fn func(Record) error) error {
	return ReadJSONLLines(r, func(l Line) error {
		if l.Err != nil {
			return fmt.Errorf("JSONL line %d: %w", l.Number, l.Err)
		}
		ev, err := event.Decode(l.Stream, l.Value, time.Time{})
		if err != nil {
			return fmt.Errorf("JSONL line %d: %s event: %w", l.Number, l.Stream, err)
		}
		rec := Record{Topic: l.Stream, Event: *ev, Key: l.Key}
		if !l.Keyed {
			rec.Key = ev.Key(l.Stream)
		}
		return fn(rec)
	})
}

// Line is one line of a JSONL file, placed on its stream but not validated:
// Value is the Kafka value as the file has it, for the processor to use or
// dead-letter as it would live.
type Line struct {
	Number int
	Stream event.Stream
	Key    string // the envelope's key, when Keyed (see RecordKey)
	Keyed  bool
	Value  []byte // valid until fn returns
	// Err says why the line names no stream (not JSON, an unknown topic or
	// type): it cannot be replayed and nothing else is set.
	Err error
}

// ReadJSONLLines reads r as ReadJSONL does but does not stop at a bad
// line: it hands every non-blank line to fn, in file order, placed on its
// stream when it names one, with Err set when it does not. Only an
// unreadable file or a line over MaxLineBytes ends the read early.
func ReadJSONLLines(r io.Reader, fn func(Line) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("opening gzip JSONL: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		l := placeLine(b)
		l.Number = line
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("JSONL line %d: longer than %d bytes", line+1, MaxLineBytes)
		}
		return fmt.Errorf("reading JSONL after line %d: %w", line, err)
	}
	return nil
}

// placeLine finds a line's stream, key and value.
func placeLine(b []byte) Line {
	var env struct {
		Topic string          `json:"topic"`
		Key   *string         `json:"key"`
		Value json.RawMessage `json:"value"`
		Type  string          `json:"type"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return Line{Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	value := []byte(env.Value)
	envelope := len(value) > 0 && !bytes.Equal(value, []byte("null"))
	typ := env.Type
	switch {
	case !envelope && typ == "":
		return Line{Err: fmt.Errorf(`neither an envelope with "value" nor a contract event with "type"`)}
	case !envelope:
		value = b // a bare contract event
	case value[0] != '{':
		return Line{Err: fmt.Errorf("value is not a JSON object: %.40s", value)}
	case env.Topic == "":
		var v struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(value, &v); err != nil {
			return Line{Err: fmt.Errorf("value is not a JSON object: %w", err)}
		}
		typ = v.Type
	}
	var stream event.Stream
	if envelope && env.Topic != "" {
		s, ok := streamOfTopic(env.Topic)
		if !ok {
			return Line{Err: fmt.Errorf("topic %q is not chat, orders or presence", env.Topic)}
		}
		stream = s
	} else {
		s, ok := StreamOf(typ)
		if !ok {
			return Line{Err: fmt.Errorf("type %q is not a contract event type", typ)}
		}
		stream = s
	}
	l := Line{Stream: stream, Value: value}
	if env.Key != nil && envelope {
		l.Key, l.Keyed = *env.Key, true
	}
	return l
}

// RecordKey is the line's Kafka key: the envelope's, or else the
// contract's from the event's fields as far as they decode.
func (l *Line) RecordKey() string {
	if l.Keyed {
		return l.Key
	}
	var k struct {
		ShopID  string `json:"shop_id"`
		BuyerID string `json:"buyer_id"`
		AgentID string `json:"agent_id"`
	}
	_ = json.Unmarshal(l.Value, &k)
	return (&event.Event{ShopID: k.ShopID, BuyerID: k.BuyerID, AgentID: k.AgentID}).Key(l.Stream)
}
