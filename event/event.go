// Package event owns the input events of the contract: their fields, how they
// are decoded from a Kafka record value, and the validation that decides
// whether an event is usable or must be dead-lettered. It does not know about
// Kafka, Redis or the rules.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/replywatch/replywatch/internal/jsonscan"
)

// Stream names the kind of input topic an event came from.
type Stream string

const (
	Chat     Stream = "chat"
	Orders   Stream = "orders"
	Presence Stream = "presence"
	// Buyers is replywatch's internal topic where a buyer's chat and order
	// facts meet by key (DESIGN.md §3): chat messages of buyers and human
	// agents, and the order events the join needs.
	Buyers Stream = "buyers"
)

// Limits from the contract.
const (
	MaxValueBytes = 64 << 10
	MaxIDLen      = 128
	MaxTextBytes  = 8 << 10
	// MaxFuture is how far ahead of the processing clock an event time may be.
	MaxFuture = 24 * time.Hour
)

// Senders of a chat message.
const (
	SenderBuyer  = "buyer"
	SenderAgent  = "agent"
	SenderBot    = "bot"
	SenderSystem = "system"
)

// Event types.
const (
	TypeMessage       = "message"
	TypeTransfer      = "transfer"
	TypeBuyerBlocked  = "buyer_blocked"
	TypeBuyerReported = "buyer_reported"
	TypeAgentStatus   = "agent_status"

	TypeOrderCreated    = "order_created"
	TypeOrderPaid       = "order_paid"
	TypeOrderGrouped    = "order_grouped"
	TypeOrderShipped    = "order_shipped"
	TypeRefundRequested = "refund_requested"
	TypeRefundCompleted = "refund_completed"
	TypeRefundRejected  = "refund_rejected"
	TypeDisputeOpened   = "dispute_opened"
	TypeDisputeClosed   = "dispute_closed"
	TypeComplaintOpened = "complaint_opened"
	TypeReviewPosted    = "review_posted"
)

var streamTypes = map[Stream]map[string]bool{
	Chat: {TypeMessage: true, TypeTransfer: true, TypeBuyerBlocked: true, TypeBuyerReported: true},
	Orders: {TypeOrderCreated: true, TypeOrderPaid: true, TypeOrderGrouped: true, TypeOrderShipped: true,
		TypeRefundRequested: true, TypeRefundCompleted: true, TypeRefundRejected: true,
		TypeDisputeOpened: true, TypeDisputeClosed: true, TypeComplaintOpened: true, TypeReviewPosted: true},
	Presence: {TypeAgentStatus: true},
	Buyers: {TypeMessage: true, TypeOrderPaid: true, TypeOrderGrouped: true, TypeRefundRequested: true,
		TypeRefundCompleted: true, TypeRefundRejected: true, TypeDisputeOpened: true, TypeDisputeClosed: true,
		TypeComplaintOpened: true, TypeReviewPosted: true},
}

// JoinFact reports whether an event of stream s is one the buyer join
// needs: a buyer's or a human agent's message, or an order event in the
// Buyers stream's types.
func JoinFact(s Stream, e *Event) bool {
	if !streamTypes[Buyers][e.Type] {
		return false
	}
	if e.Type == TypeMessage {
		return s == Chat && (e.Sender == SenderBuyer || e.Sender == SenderAgent)
	}
	return s == Orders
}

// Platforms accepted in the platform field.
var Platforms = map[string]bool{"pdd": true, "taobao": true, "tmall": true, "jd": true, "douyin": true, "other": true}

// Statuses of an agent seat.
var Statuses = map[string]bool{"online": true, "busy": true, "away": true, "offline": true}

// Event is one input event of any stream. Fields that do not apply are empty.
type Event struct {
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	TS       Time   `json:"ts"`
	ShopID   string `json:"shop_id"`
	Platform string `json:"platform,omitempty"`

	BuyerID     string `json:"buyer_id,omitempty"`
	Sender      string `json:"sender,omitempty"`
	AgentID     string `json:"agent_id,omitempty"`
	FromAgentID string `json:"from_agent_id,omitempty"`
	MsgID       string `json:"msg_id,omitempty"`
	Text        string `json:"text,omitempty"`
	OrderID     string `json:"order_id,omitempty"`

	AmountCents int64  `json:"amount_cents,omitempty"`
	RespondBy   *Time  `json:"respond_by,omitempty"`
	ShipBy      *Time  `json:"ship_by,omitempty"`
	Rating      int    `json:"rating,omitempty"`
	Status      string `json:"status,omitempty"`

	// Intent is what replywatch read in a buyer message's text
	// (IntentComplaint), set on the facts it repartitions to the buyers
	// topic; producers do not send it.
	Intent string `json:"intent,omitempty"`
}

// IntentComplaint marks a buyer message with complaint or bad-review intent.
const IntentComplaint = "complaint"

// knownIntents are the intent values the scanner reads without allocating.
var knownIntents = []string{IntentComplaint}

// Time is an RFC 3339 timestamp that keeps millisecond precision and its
// original offset when encoded again.
type Time struct{ time.Time }

// timeError is a time value that is not RFC 3339 with an offset.
type timeError struct{ value string }

func (e *timeError) Error() string {
	return fmt.Sprintf("time %s is not RFC 3339 with an offset or Z", e.value)
}

// UnmarshalJSON accepts RFC 3339 with an offset or Z. RFC 3339 (§5.6)
// allows the "T" and "Z" in lowercase; Go's parser wants them in capitals.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &timeError{string(b)}
	}
	v, err := time.Parse(time.RFC3339Nano, upperTZ(s))
	if err != nil {
		return &timeError{strconv.Quote(s)}
	}
	t.Time = v
	return nil
}

// upperTZ writes the date-time separator and a Z offset of an RFC 3339
// time in capitals, leaving anything else for the parser to judge.
func upperTZ(s string) string {
	n := len(s)
	if n <= 10 || (s[10] != 't' && s[n-1] != 'z') {
		return s
	}
	b := []byte(s)
	if b[10] == 't' {
		b[10] = 'T'
	}
	if b[n-1] == 'z' {
		b[n-1] = 'Z'
	}
	return string(b)
}

// MarshalJSON writes RFC 3339 with milliseconds.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatTime(t.Time))
}

// FormatTime is the contract's time format: RFC 3339 with milliseconds.
func FormatTime(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z07:00") }

// Ms is the event time in Unix milliseconds.
func (e *Event) Ms() int64 { return e.TS.UnixMilli() }

// Key is the Kafka key the contract prescribes for the event's stream:
// shop_id/buyer_id for chat and orders, shop_id/agent_id for presence.
func (e *Event) Key(s Stream) string {
	if s == Presence {
		return e.ShopID + "/" + e.AgentID
	}
	return e.ShopID + "/" + e.BuyerID
}

// Reasons for dead-lettering, used as the `reason` label and the rw-error header prefix.
const (
	ReasonOversize    = "oversize"
	ReasonBadJSON     = "bad_json"
	ReasonMissing     = "missing_field"
	ReasonBadField    = "bad_field"
	ReasonUnknownType = "unknown_type"
	ReasonFuture      = "future_ts"
	ReasonBadUTF8     = "bad_utf8"
	ReasonStale       = "stale_ts"
)

// Reasons lists every dead-letter reason.
var Reasons = []string{ReasonOversize, ReasonBadJSON, ReasonMissing, ReasonBadField, ReasonUnknownType, ReasonFuture,
	ReasonBadUTF8, ReasonStale}

// Error says why an event cannot be used. Reason is a short label for
// metrics; Detail names the field and what was wrong with it.
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Detail }

func bad(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Decode parses and validates one record value from stream s. now is the
// processing clock, used to reject event times more than MaxFuture ahead.
// The error, when not nil, is always an *Error.
func Decode(s Stream, value []byte, now time.Time) (*Event, error) {
	ev := new(Event)
	if err := DecodeInto(ev, s, value, now); err != nil {
		return nil, err
	}
	return ev, nil
}

// DecodeInto is Decode into *ev, which it overwrites whatever the outcome:
// a reader of many records can decode them into Events it reuses.
func DecodeInto(ev *Event, s Stream, value []byte, now time.Time) error {
	*ev = Event{}
	if len(value) > MaxValueBytes {
		return bad(ReasonOversize, "value is %d bytes, the limit is %d", len(value), MaxValueBytes)
	}
	// Values are UTF-8 by contract. The JSON decoder would replace invalid
	// bytes with U+FFFD and accept the event under ids nobody sent.
	if i := invalidUTF8At(value); i >= 0 {
		return bad(ReasonBadUTF8, "value is not valid UTF-8: bad byte 0x%02x at offset %d", value[i], i)
	}
	// Records as producers usually write them are read by a scanner of
	// the event's own fields (scan); anything it does not fully
	// understand goes through json.Unmarshal, which gives the result and
	// the error messages it always gave.
	if !ev.scan(value) {
		*ev = Event{}
		if err := unmarshal(value, ev); err != nil {
			return err
		}
	}
	if err := ev.Validate(s, now); err != nil {
		return err
	}
	return nil // Validate's nil *Error, returned as an error, would not be nil
}

// unmarshal decodes value with encoding/json. json.Unmarshal rather than
// a Decoder per record: half the allocation, and it rejects anything
// after the object.
func unmarshal(value []byte, ev *Event) *Error {
	if err := json.Unmarshal(value, ev); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return bad(ReasonBadField, "field %s: expected %s", te.Field, te.Type)
		}
		var tm *timeError
		if errors.As(err, &tm) {
			return bad(ReasonBadField, "%v", tm)
		}
		return bad(ReasonBadJSON, "%v", err)
	}
	return nil
}

// invalidUTF8At returns the offset of the first byte of b that is not part
// of valid UTF-8, or -1 when b is valid.
func invalidUTF8At(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// CheckAge rejects an event whose ts is more than maxAge before now (the
// record's time): a wait from years ago would fire breaches for a day long
// gone. maxAge 0 accepts any age.
func (e *Event) CheckAge(now time.Time, maxAge time.Duration) *Error {
	if maxAge <= 0 || now.IsZero() || now.Sub(e.TS.Time) <= maxAge {
		return nil
	}
	return bad(ReasonStale, "ts %s is more than %s before %s", FormatTime(e.TS.Time), maxAge, FormatTime(now))
}

// Validate checks the required fields and values of the event for stream s.
func (e *Event) Validate(s Stream, now time.Time) *Error {
	if e.EventID == "" {
		return bad(ReasonMissing, "event_id is required")
	}
	if len(e.EventID) > MaxIDLen {
		return bad(ReasonBadField, "event_id is longer than %d bytes", MaxIDLen)
	}
	if e.Type == "" {
		return bad(ReasonMissing, "type is required")
	}
	types, ok := streamTypes[s]
	if !ok {
		return bad(ReasonUnknownType, "no event types for stream %q", s)
	}
	if !types[e.Type] {
		return bad(ReasonUnknownType, "type %q is not a %s event", e.Type, s)
	}
	if e.TS.IsZero() {
		return bad(ReasonMissing, "ts is required")
	}
	if !now.IsZero() && e.TS.Sub(now) > MaxFuture {
		return bad(ReasonFuture, "ts %s is more than %s ahead of %s", FormatTime(e.TS.Time), MaxFuture, FormatTime(now))
	}
	if e.ShopID == "" {
		return bad(ReasonMissing, "shop_id is required")
	}
	if len(e.ShopID) > MaxIDLen {
		return bad(ReasonBadField, "shop_id is longer than %d bytes", MaxIDLen)
	}
	if e.Platform != "" && !Platforms[e.Platform] {
		return bad(ReasonBadField, "platform %q is not one of pdd, taobao, tmall, jd, douyin, other", e.Platform)
	}
	for _, f := range []struct{ name, v string }{{"buyer_id", e.BuyerID}, {"agent_id", e.AgentID}, {"from_agent_id", e.FromAgentID}, {"order_id", e.OrderID}, {"msg_id", e.MsgID}} {
		if len(f.v) > MaxIDLen {
			return bad(ReasonBadField, "%s is longer than %d bytes", f.name, MaxIDLen)
		}
	}
	as := s
	if s == Buyers {
		as = Orders
		if e.Type == TypeMessage {
			as = Chat
		}
		if e.Intent != "" && e.Intent != IntentComplaint {
			return bad(ReasonBadField, "intent %q is not %s", e.Intent, IntentComplaint)
		}
	}
	switch as {
	case Chat:
		if e.BuyerID == "" {
			return bad(ReasonMissing, "buyer_id is required for %s", e.Type)
		}
		if e.Type == TypeMessage {
			switch e.Sender {
			case "":
				return bad(ReasonMissing, "sender is required for message")
			case SenderBuyer, SenderBot, SenderSystem:
			case SenderAgent:
				if e.AgentID == "" {
					return bad(ReasonMissing, "agent_id is required when sender is agent")
				}
			default:
				return bad(ReasonBadField, "sender %q is not one of buyer, agent, bot, system", e.Sender)
			}
			if len(e.Text) > MaxTextBytes {
				return bad(ReasonBadField, "text is %d bytes, the limit is %d", len(e.Text), MaxTextBytes)
			}
		}
	case Orders:
		if e.BuyerID == "" {
			return bad(ReasonMissing, "buyer_id is required for %s", e.Type)
		}
		if e.OrderID == "" {
			return bad(ReasonMissing, "order_id is required for %s", e.Type)
		}
		if e.Type == TypeReviewPosted && e.Rating != 0 && (e.Rating < 1 || e.Rating > 5) {
			return bad(ReasonBadField, "rating %d is not between 1 and 5", e.Rating)
		}
	case Presence:
		if e.AgentID == "" {
			return bad(ReasonMissing, "agent_id is required for agent_status")
		}
		if e.Status == "" {
			return bad(ReasonMissing, "status is required for agent_status")
		}
		if !Statuses[e.Status] {
			return bad(ReasonBadField, "status %q is not one of online, busy, away, offline", e.Status)
		}
	}
	return nil
}

// Values of the enumerated fields, shared by every decoded event.
var (
	knownTypes = []string{TypeMessage, TypeTransfer, TypeBuyerBlocked, TypeBuyerReported, TypeAgentStatus,
		TypeOrderCreated, TypeOrderPaid, TypeOrderGrouped, TypeOrderShipped, TypeRefundRequested, TypeRefundCompleted,
		TypeRefundRejected, TypeDisputeOpened, TypeDisputeClosed, TypeComplaintOpened, TypeReviewPosted}
	knownPlatforms = []string{"pdd", "taobao", "tmall", "jd", "douyin", "other"}
	knownSenders   = []string{SenderBuyer, SenderAgent, SenderBot, SenderSystem}
	knownStatuses  = []string{"online", "busy", "away", "offline"}
)

// scan reads value into e when it is an event the fast path understands
// completely (the contract's field names, strings without escapes,
// integers, times Time.UnmarshalJSON accepts) and reports whether it did.
// Its result is then json.Unmarshal's; otherwise e is partly written and
// Decode starts again with json.Unmarshal.
func (e *Event) scan(value []byte) bool {
	sc := jsonscan.New(value)
	tm := func() (Time, bool) {
		v, ok := sc.Raw()
		if !ok {
			return Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, upperTZ(string(v)))
		return Time{t}, err == nil
	}
	// The ids share one string, made once the object is read: one
	// allocation instead of one each. The text, which can be long, has its
	// own, so that an id kept in a conversation's state does not hold it.
	var ids idStrings
	id := func(dst *string) bool {
		v, ok := sc.Raw()
		return ok && ids.add(dst, v)
	}
	if !sc.Object(func(name []byte) bool {
		switch string(name) {
		case "event_id":
			return id(&e.EventID)
		case "type":
			return sc.Intern(&e.Type, knownTypes)
		case "ts":
			t, ok := tm()
			e.TS = t
			return ok
		case "shop_id":
			return id(&e.ShopID)
		case "platform":
			return sc.Intern(&e.Platform, knownPlatforms)
		case "buyer_id":
			return id(&e.BuyerID)
		case "sender":
			return sc.Intern(&e.Sender, knownSenders)
		case "agent_id":
			return id(&e.AgentID)
		case "from_agent_id":
			return id(&e.FromAgentID)
		case "msg_id":
			return id(&e.MsgID)
		case "text":
			return sc.Intern(&e.Text, nil)
		case "order_id":
			return id(&e.OrderID)
		case "intent":
			return sc.Intern(&e.Intent, knownIntents)
		case "status":
			return sc.Intern(&e.Status, knownStatuses)
		case "amount_cents":
			n, ok := sc.Int()
			e.AmountCents = n
			return ok
		case "rating":
			n, ok := sc.Int()
			e.Rating = int(n)
			return ok && int64(e.Rating) == n
		case "respond_by":
			t, ok := tm()
			e.RespondBy = &t
			return ok
		case "ship_by":
			t, ok := tm()
			e.ShipBy = &t
			return ok
		}
		return false
	}) {
		return false
	}
	ids.set()
	return true
}

// idStrings gathers the id fields of a record as it is read, to give them
// one string between them once it is read.
type idStrings struct {
	n    int
	dsts [8]*string
	vals [8][]byte
}

// add notes that *dst is to be v (which aliases the record). It reports
// false when more ids came than there are id fields (repeated names,
// which encoding/json then reads).
func (s *idStrings) add(dst *string, v []byte) bool {
	if s.n == len(s.dsts) {
		return false
	}
	s.dsts[s.n], s.vals[s.n] = dst, v
	s.n++
	return true
}

// set copies the ids into one string and points each field at its part,
// in the order they came (a repeated name: the last one counts).
func (s *idStrings) set() {
	var stack [256]byte
	b := stack[:0]
	for _, v := range s.vals[:s.n] {
		b = append(b, v...)
	}
	all := string(b)
	for i, dst := range s.dsts[:s.n] {
		*dst, all = all[:len(s.vals[i])], all[len(s.vals[i]):]
	}
}
