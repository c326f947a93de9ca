package event

import (
	"strconv"

	"github.com/replywatch/replywatch/internal/jsonw"
)

// AppendJSON appends the event's JSON to b and returns it: the same bytes
// as json.Marshal(e), written without reflection (the repartition stage
// writes a fact for most chat records).
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"event_id":`...)
	b = jsonw.String(b, e.EventID)
	b = append(b, `,"type":`...)
	b = jsonw.String(b, e.Type)
	b = append(b, `,"ts":"`...)
	b = jsonw.Time(b, e.TS.Time)
	b = append(b, `","shop_id":`...)
	b = jsonw.String(b, e.ShopID)
	b = appendField(b, `,"platform":`, e.Platform)
	b = appendField(b, `,"buyer_id":`, e.BuyerID)
	b = appendField(b, `,"sender":`, e.Sender)
	b = appendField(b, `,"agent_id":`, e.AgentID)
	b = appendField(b, `,"from_agent_id":`, e.FromAgentID)
	b = appendField(b, `,"msg_id":`, e.MsgID)
	b = appendField(b, `,"text":`, e.Text)
	b = appendField(b, `,"order_id":`, e.OrderID)
	if e.AmountCents != 0 {
		b = append(b, `,"amount_cents":`...)
		b = strconv.AppendInt(b, e.AmountCents, 10)
	}
	b = appendTimeField(b, `,"respond_by":"`, e.RespondBy)
	b = appendTimeField(b, `,"ship_by":"`, e.ShipBy)
	if e.Rating != 0 {
		b = append(b, `,"rating":`...)
		b = strconv.AppendInt(b, int64(e.Rating), 10)
	}
	b = appendField(b, `,"status":`, e.Status)
	b = appendField(b, `,"intent":`, e.Intent)
	return append(b, '}')
}

// appendField writes a string member left out when empty.
func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return jsonw.String(append(b, name...), v)
}

// appendTimeField writes a time member left out when nil; name ends with
// the opening quote.
func appendTimeField(b []byte, name string, t *Time) []byte {
	if t == nil {
		return b
	}
	return append(jsonw.Time(append(b, name...), t.Time), '"')
}
