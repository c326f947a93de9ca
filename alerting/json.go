package alerting

import (
	"encoding/json"
	"time"

	"github.com/replywatch/replywatch/internal/jsonscan"
	"github.com/replywatch/replywatch/internal/jsonw"
)

const timeLayout = jsonw.TimeLayout

// wireAlert is the record as encoding/json reads it: the path of records
// the fast reader does not take (see UnmarshalJSON).
type wireAlert struct {
	*alias
	Since     string `json:"since,omitempty"`
	Due       string `json:"due,omitempty"`
	At        string `json:"at,omitempty"`
	EmittedAt string `json:"emitted_at,omitempty"`
}

type alias Alert

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// MarshalJSON writes the contract's alert JSON (AppendJSON).
func (a Alert) MarshalJSON() ([]byte, error) {
	return a.AppendJSON(make([]byte, 0, 512)), nil
}

// AppendJSON appends the contract's alert JSON to b and returns it: the
// fields in the contract's order, empty strings, false and zero times
// left out, strings escaped exactly as encoding/json escapes them (HTML
// characters, U+2028 and U+2029 included), times in the contract's format
// with their own offset. The output is compact and valid, so writers of
// the alerts topic use it as it is, without json.Marshal compacting it
// again.
func (a *Alert) AppendJSON(b []byte) []byte {
	b = append(b, `{"alert_id":`...)
	b = appendString(b, a.ID)
	b = append(b, `,"kind":`...)
	b = appendString(b, a.Kind)
	b = append(b, `,"status":`...)
	b = appendString(b, a.Status)
	b = append(b, `,"severity":`...)
	b = appendString(b, a.Severity)
	b = appendField(b, `,"threshold":`, a.Threshold)
	b = appendField(b, `,"platform":`, a.Platform)
	b = append(b, `,"shop_id":`...)
	b = appendString(b, a.ShopID)
	b = appendField(b, `,"buyer_id":`, a.BuyerID)
	b = appendField(b, `,"agent_id":`, a.AgentID)
	b = appendField(b, `,"order_id":`, a.OrderID)
	b = appendField(b, `,"reason":`, a.Reason)
	b = appendField(b, `,"summary":`, a.Summary)
	b = appendField(b, `,"category":`, a.Category)
	b = appendField(b, `,"term":`, a.Term)
	b = appendField(b, `,"excerpt":`, a.Excerpt)
	if a.Replay {
		b = append(b, `,"replay":true`...)
	}
	b = appendTime(b, `,"since":`, a.Since)
	b = appendTime(b, `,"due":`, a.Due)
	b = appendTime(b, `,"at":`, a.At)
	b = appendTime(b, `,"emitted_at":`, a.EmittedAt)
	return append(b, '}')
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(append(b, name...), v)
}

func appendTime(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, name...)
	b = append(b, '"')
	b = jsonw.Time(b, t)
	return append(b, '"')
}

// appendString writes s as a JSON string exactly as encoding/json does.
func appendString(b []byte, s string) []byte { return jsonw.String(b, s) }

// UnmarshalJSON reads the contract's alert JSON. Records as replywatch
// writes them (the fields it knows, plain strings) are read by a scanner
// of their own; anything else (escapes, null, unknown or differently
// cased names, a syntax error) goes through encoding/json, whose result
// and errors the fast path matches exactly.
func (a *Alert) UnmarshalJSON(b []byte) error {
	// Fields the record leaves out keep their values, as with encoding/json.
	fast := *a
	if fast.scan(b) {
		*a = fast
		return nil
	}
	return a.unmarshalSlow(b)
}

func (a *Alert) unmarshalSlow(b []byte) error {
	w := wireAlert{alias: (*alias)(a)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	for _, f := range []struct {
		dst *time.Time
		s   string
	}{{&a.Since, w.Since}, {&a.Due, w.Due}, {&a.At, w.At}, {&a.EmittedAt, w.EmittedAt}} {
		if *f.dst, err = parseTime(f.s); err != nil {
			return err
		}
	}
	return nil
}

// Values of the enumerated fields, shared by every record read.
var (
	statuses   = []string{Firing, Resolved}
	severities = []string{Info, Warning, Critical}
)

// scan reads b into a when b is a record the fast path understands
// completely, and reports whether it did.
func (a *Alert) scan(b []byte) bool {
	s := jsonscan.New(b)
	var times [4]string
	ok := s.Object(func(name []byte) bool {
		var dst *string
		switch string(name) {
		case "alert_id":
			dst = &a.ID
		case "kind":
			return s.Intern(&a.Kind, Kinds)
		case "status":
			return s.Intern(&a.Status, statuses)
		case "severity":
			return s.Intern(&a.Severity, severities)
		case "threshold":
			dst = &a.Threshold
		case "platform":
			dst = &a.Platform
		case "shop_id":
			dst = &a.ShopID
		case "buyer_id":
			dst = &a.BuyerID
		case "agent_id":
			dst = &a.AgentID
		case "order_id":
			dst = &a.OrderID
		case "reason":
			dst = &a.Reason
		case "summary":
			dst = &a.Summary
		case "category":
			dst = &a.Category
		case "term":
			dst = &a.Term
		case "excerpt":
			dst = &a.Excerpt
		case "since":
			dst = &times[0]
		case "due":
			dst = &times[1]
		case "at":
			dst = &times[2]
		case "emitted_at":
			dst = &times[3]
		case "replay":
			v, ok := s.Bool()
			a.Replay = v
			return ok
		default:
			return false
		}
		v, ok := s.String()
		*dst = v
		return ok
	})
	if !ok {
		return false
	}
	for i, dst := range []*time.Time{&a.Since, &a.Due, &a.At, &a.EmittedAt} {
		t, err := parseTime(times[i])
		if err != nil {
			return false
		}
		*dst = t
	}
	return true
}
