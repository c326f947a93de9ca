package pipeline

import (
	"strings"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
)

// Entity is one keyed piece of state a handler owns (a conversation, a seat).
type Entity interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// Handler applies one input stream's events to its entities. It is the seam
// where detectors plug into the pipeline: the pipeline loads and stores
// entities and drives time; the handler holds the rules.
type Handler interface {
	// New returns a fresh entity for a key ("shop/buyer", "shop/agent").
	New(key string) Entity
	Event(e Entity, ev *event.Event, fx *detectors.Effects) detectors.Result
	Advance(e Entity, now time.Time, fx *detectors.Effects)
	NextDue(e Entity) (time.Time, bool)
}

// ChatHandler runs the reply rules over conversations, and the text rules
// over their messages when Text is set. Its entities are
// *detectors.ChatState.
type ChatHandler struct {
	Engine *detectors.Engine
	Text   *detectors.TextEngine
	// Effective counts effectively replied buyers when set.
	Effective *detectors.Effective
}

func splitKey(key string) (string, string) {
	shop, rest, _ := strings.Cut(key, "/")
	return shop, rest
}

func (h ChatHandler) New(key string) Entity {
	shop, buyer := splitKey(key)
	return &detectors.ChatState{Conv: detectors.Conversation{Shop: shop, Buyer: buyer}}
}

// Event applies the reply rules, then the text rules to a message that is
// not a duplicate: the text rules see each message once, whatever the
// reply rules do with its time.
func (h ChatHandler) Event(e Entity, ev *event.Event, fx *detectors.Effects) detectors.Result {
	cs := e.(*detectors.ChatState)
	res := h.Engine.Chat(&cs.Conv, ev, fx)
	if res == detectors.Applied && h.Text != nil {
		h.Text.Message(&cs.Text, cs.Conv.Shop, cs.Conv.Buyer, ev, fx)
	}
	if res == detectors.Applied && h.Effective != nil {
		h.Effective.Event(&cs.Eff, cs.Conv.Shop, ev, fx)
	}
	return res
}

func (h ChatHandler) Advance(e Entity, now time.Time, fx *detectors.Effects) {
	h.Engine.Advance(&e.(*detectors.ChatState).Conv, now, fx)
}

// SeatHandler runs the seat rules over agents' seats.
type SeatHandler struct{ Engine *detectors.SeatEngine }

func (h SeatHandler) New(key string) Entity {
	shop, agent := splitKey(key)
	return &detectors.Seat{Shop: shop, Agent: agent}
}

func (h SeatHandler) Event(e Entity, ev *event.Event, fx *detectors.Effects) detectors.Result {
	return h.Engine.Presence(e.(*detectors.Seat), ev, fx)
}

func (h SeatHandler) Advance(e Entity, now time.Time, fx *detectors.Effects) {
	h.Engine.Advance(e.(*detectors.Seat), now, fx)
}

func (h SeatHandler) NextDue(e Entity) (time.Time, bool) {
	return h.Engine.NextDue(e.(*detectors.Seat))
}

func (h ChatHandler) NextDue(e Entity) (time.Time, bool) {
	return h.Engine.NextDue(&e.(*detectors.ChatState).Conv)
}

// OrderHandler runs the order rules over buyers' order books. The entity is
// the cs.orders key, shop_id/buyer_id: every order of a buyer, whatever
// its events' order, meets in one partition's state, and a buyer's open
// orders and cases are one read away for the join with chat.
type OrderHandler struct{ Engine *detectors.OrderEngine }

func (h OrderHandler) New(key string) Entity {
	shop, buyer := splitKey(key)
	return &detectors.OrderBook{Shop: shop, Buyer: buyer}
}

func (h OrderHandler) Event(e Entity, ev *event.Event, fx *detectors.Effects) detectors.Result {
	return h.Engine.Order(e.(*detectors.OrderBook), ev, fx)
}

func (h OrderHandler) Advance(e Entity, now time.Time, fx *detectors.Effects) {
	h.Engine.Advance(e.(*detectors.OrderBook), now, fx)
}

func (h OrderHandler) NextDue(e Entity) (time.Time, bool) {
	return h.Engine.NextDue(e.(*detectors.OrderBook))
}

// BuyerJoinHandler runs the buyer join (inquiry conversion, priority
// buyers) over the buyers topic, where the repartition stage puts a
// buyer's chat and order facts side by side. Its entities are
// *detectors.BuyerJoin.
type BuyerJoinHandler struct{ Engine *detectors.JoinEngine }

func (h BuyerJoinHandler) New(key string) Entity {
	shop, buyer := splitKey(key)
	return &detectors.BuyerJoin{Shop: shop, Buyer: buyer}
}

func (h BuyerJoinHandler) Event(e Entity, ev *event.Event, fx *detectors.Effects) detectors.Result {
	return h.Engine.Event(e.(*detectors.BuyerJoin), ev, fx)
}

func (h BuyerJoinHandler) Advance(e Entity, now time.Time, fx *detectors.Effects) {
	h.Engine.Advance(e.(*detectors.BuyerJoin), now, fx)
}

func (h BuyerJoinHandler) NextDue(e Entity) (time.Time, bool) {
	return h.Engine.NextDue(e.(*detectors.BuyerJoin))
}
