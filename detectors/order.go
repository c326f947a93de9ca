package detectors

import (
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// OrderRules are the order rules in force for one shop (DESIGN.md §3), after
// config defaults and the shop's overrides.
type OrderRules struct {
	Platform string
	// Loc is the shop's time zone: it decides which day a figure counts for.
	Loc *time.Location
	// ShipWithin is how long after payment (PDD: grouping) an order must
	// ship when the event names no ship_by (24 h with pdd_flash).
	ShipWithin time.Duration
	// WarnBefore is how long before the shipping deadline shipping_warning fires.
	WarnBefore time.Duration
	// RespondWarnBefore is how long before a dispute's respond_by the first
	// dispute_deadline (warning) fires; the critical one fires DisputeCritical before.
	RespondWarnBefore time.Duration
	// ConversionWindow is how soon after consulting a payment converts the inquiry.
	ConversionWindow time.Duration
	// BadReviewAt is the highest rating that raises bad_review.
	BadReviewAt int
}

// OrderRulesFunc resolves the order rules of a shop; never nil.
type OrderRulesFunc func(shopID string) *OrderRules

// DisputeCritical is how long before respond_by the critical
// dispute_deadline fires: a platform intervention must never time out into
// an automatic judgement.
const DisputeCritical = 30 * time.Minute

// Order figure fields. Awaiting and open disputes are current counters
// (Day ""); the others count for a shop-local day.
const (
	FieldAwaitingShipment = "awaiting_ship" // orders paid (or grouped) and not yet shipped or refunded
	FieldShipBreached     = "ship_breached" // orders whose shipping deadline passed unshipped that day
	FieldReviews          = "reviews"       // rated reviews posted that day
	FieldReviewsGood      = "reviews_good"  // of those, rated 4 or 5
	FieldRefundMs         = "refund_ms"     // sum of (completed - requested) of refunds completed that day
	FieldRefundN          = "refund_n"      // number of those refunds
)

// Dispute kinds, the label of replywatch_open_disputes.
const (
	DisputeKindDispute   = "dispute"
	DisputeKindComplaint = "complaint"
)

// DisputeKinds lists the kinds in the order orders store them.
var DisputeKinds = [numCaseKinds]string{DisputeKindDispute, DisputeKindComplaint}

// OpenDisputesField is the current-counter field of open cases of a kind
// (with a respond_by).
func OpenDisputesField(kind string) string { return "disputes:" + kind }

// Bounds of what one buyer's order book remembers.
const (
	// maxOrders is how many orders of one buyer are kept. Beyond it, the
	// least recently touched order with nothing pending is forgotten (or,
	// when every order has something pending, the least recently touched
	// one, its current counters taken back).
	maxOrders = 16
	// orderSeenIDs is how many recent event ids are kept per buyer to
	// recognise a producer sending an event again.
	orderSeenIDs = 32
	numCaseKinds = 2
)

// Timer bits of an order's shipping deadline and of each case.
const (
	bitShipWarn   = 1 << 0
	bitShipBreach = 1 << 1
	bitCaseWarn   = 1 << 0
	bitCaseCrit   = 1 << 1
)

// OrderEngine applies the order rules to buyers' order books. It keeps no
// state of its own.
type OrderEngine struct {
	Rules OrderRulesFunc
	// JoinReviews leaves bad_review to the buyer join, which credits it
	// to the agent who last replied to the buyer in chat; reviews are
	// still counted here.
	JoinReviews bool
}

// OrderBook is the state of one buyer's orders in one shop (the cs.orders
// key shop_id/buyer_id, so that all of a buyer's order events meet in one
// partition whatever the producer's partitioner). Shop and Buyer come from
// the key and are not encoded. Times are Unix ms.
type OrderBook struct {
	Shop, Buyer string

	platform string    // last platform an event named; "" means the shop's
	agent    string    // last agent an order event named
	lastTS   int64     // latest applied event time
	seen     recentIDs // hashes of the latest applied event ids
	orders   []order   // at most maxOrders
}

// order is one order's lifecycle as far as its events have arrived, in any
// order.
type order struct {
	id      string
	touched int64 // latest event time applied to it
	paid    int64 // order_paid, 0 until seen
	grouped int64 // order_grouped (PDD 成团)
	shipBy  int64 // ship_by named by an event, overriding ship_within
	// deadline is the shipping deadline in force, 0 until paid or grouped.
	deadline  int64
	shipped   int64 // earliest order_shipped
	refundReq int64 // first refund_requested: refund times count from it
	refunded  int64 // earliest refund_completed
	// rejected is the latest refund_rejected. With refundReq and refunded
	// it tells whether a refund is open, which a priority buyer needs
	// (DESIGN.md §3); no rule reads it yet.
	rejected int64
	// caseClosed is the latest dispute_closed: it closes the cases opened
	// at or before it, including those whose opening arrives later.
	caseClosed int64
	fired      uint8 // shipping timer bits fired and not retracted
	awaiting   bool  // counted in FieldAwaitingShipment
	shipDone   bool  // its shipping alerts were resolved on close
	refundDone bool  // its refund time is counted
	reviewed   bool  // a rated review is counted
	cases      [numCaseKinds]orderCase
}

// orderCase is an order's dispute (平台介入) or complaint (投诉).
type orderCase struct {
	opened, respondBy, closed int64
	fired                     uint8
	counted                   bool // counted in OpenDisputesField
	done                      bool // its alerts were resolved on close
}

// orderStep is one call into the engine.
type orderStep struct {
	b           *OrderBook
	r           *OrderRules
	fx          *Effects
	joinReviews bool
}

// Order applies one cs.orders event at its event time. Timers of the book
// due strictly before the event fire first, so the outcome does not depend
// on how far the partition clock had advanced. Events may arrive in any
// order: an order_shipped read before its order_paid closes the order, and
// the payment, when it arrives, fires only what was due before the
// shipment (a late shipment still breached). A repeated event_id, or a
// repeated order_paid / order_grouped for one order, is a duplicate and
// changes nothing.
func (e *OrderEngine) Order(b *OrderBook, ev *event.Event, fx *Effects) Result {
	if b.seen.seen(xxhash.Sum64String(ev.EventID), orderSeenIDs) {
		return Duplicate
	}
	s := orderStep{b: b, r: e.Rules(b.Shop), fx: fx, joinReviews: e.JoinReviews}
	ts := ev.Ms()
	s.fireAll(ts)
	if ev.Platform != "" {
		b.platform = ev.Platform
	}
	if ev.AgentID != "" && ts >= b.lastTS {
		b.agent = ev.AgentID
	}
	if ts > b.lastTS {
		b.lastTS = ts
	}
	o := s.order(ev.OrderID, ts)
	if ts > o.touched {
		o.touched = ts
	}
	res := Applied
	switch ev.Type {
	case event.TypeOrderCreated:
		s.setShipBy(o, ev)
	case event.TypeOrderPaid, event.TypeOrderGrouped:
		at := &o.paid
		if ev.Type == event.TypeOrderGrouped {
			at = &o.grouped
		}
		if *at != 0 {
			res = Duplicate
			break
		}
		*at = ts
		s.setShipBy(o, ev)
	case event.TypeOrderShipped:
		o.shipped = minSet(o.shipped, ts)
	case event.TypeRefundRequested:
		o.refundReq = minSet(o.refundReq, ts)
	case event.TypeRefundCompleted:
		o.refunded = minSet(o.refunded, ts)
	case event.TypeRefundRejected:
		o.rejected = max(o.rejected, ts)
	case event.TypeDisputeOpened, event.TypeComplaintOpened:
		k := 0
		if ev.Type == event.TypeComplaintOpened {
			k = 1
		}
		s.openCase(o, k, ts, ev.RespondBy)
	case event.TypeDisputeClosed:
		o.caseClosed = max(o.caseClosed, ts)
	case event.TypeReviewPosted:
		s.review(o, ts, ev)
	}
	s.settle(o, ts)
	return res
}

// Advance fires every timer of the book due strictly before now (the
// partition clock).
func (e *OrderEngine) Advance(b *OrderBook, now time.Time, fx *Effects) {
	s := orderStep{b: b, r: e.Rules(b.Shop), fx: fx}
	s.fireAll(now.UnixMilli())
}

// NextDue is the earliest partition clock at which Advance would fire
// something (a timer due at d fires once the clock is past d: d + 1 ms).
func (e *OrderEngine) NextDue(b *OrderBook) (time.Time, bool) {
	s := orderStep{b: b, r: e.Rules(b.Shop)}
	next, ok := int64(0), false
	for i := range b.orders {
		if d, found := s.nextDue(&b.orders[i]); found && (!ok || d < next) {
			next, ok = d, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(next + 1), true
}

func minSet(old, t int64) int64 {
	if old == 0 || t < old {
		return t
	}
	return old
}

// order finds the order id, adding it (and forgetting one beyond maxOrders).
func (s *orderStep) order(id string, ts int64) *order {
	b := s.b
	for i := range b.orders {
		if b.orders[i].id == id {
			return &b.orders[i]
		}
	}
	if len(b.orders) == maxOrders {
		s.forget()
	}
	b.orders = append(b.orders, order{id: id, touched: ts})
	return &b.orders[len(b.orders)-1]
}

// forget drops the least recently touched order, preferring one with
// nothing pending, and takes back the current counters it held.
func (s *orderStep) forget() {
	b := s.b
	victim := -1
	for pass := 0; pass < 2 && victim < 0; pass++ {
		for i := range b.orders {
			o := &b.orders[i]
			if pass == 0 && (o.awaiting || o.cases[0].counted || o.cases[1].counted) {
				continue
			}
			if victim < 0 || o.touched < b.orders[victim].touched {
				victim = i
			}
		}
	}
	o := &b.orders[victim]
	if o.awaiting {
		s.current(FieldAwaitingShipment, -1)
	}
	for k := range o.cases {
		if o.cases[k].counted {
			s.current(OpenDisputesField(DisputeKinds[k]), -1)
		}
	}
	b.orders = append(b.orders[:victim], b.orders[victim+1:]...)
}

// setShipBy takes an event's ship_by as the order's deadline override.
func (s *orderStep) setShipBy(o *order, ev *event.Event) {
	if ev.ShipBy != nil && !ev.ShipBy.IsZero() {
		o.shipBy = ev.ShipBy.UnixMilli()
	}
}

// shipClose is when and why the order stopped awaiting shipment (0 open).
func (o *order) shipClose() (int64, string) {
	switch {
	case o.shipped != 0 && (o.refunded == 0 || o.shipped <= o.refunded):
		return o.shipped, alerting.ReasonShipped
	case o.refunded != 0:
		return o.refunded, alerting.ReasonRefunded
	}
	return 0, ""
}

// wantDeadline is the shipping deadline the order's events give, 0 none:
// ship_by when named, else the later of payment and grouping + ship_within.
func (s *orderStep) wantDeadline(o *order) int64 {
	start := max(o.paid, o.grouped)
	if start == 0 {
		return 0
	}
	if o.shipBy != 0 {
		return o.shipBy
	}
	return start + s.r.ShipWithin.Milliseconds()
}

// shipDue is when shipping timer bit fires; ok is false when there is no
// such timer (a warning that would come at or before payment).
func (s *orderStep) shipDue(o *order, bit uint8) (int64, bool) {
	if o.deadline == 0 {
		return 0, false
	}
	if bit == bitShipBreach {
		return o.deadline, true
	}
	d := o.deadline - s.r.WarnBefore.Milliseconds()
	return d, d > max(o.paid, o.grouped)
}

// caseDue is when case timer bit fires: the warning at respond_by −
// RespondWarnBefore, the critical one at respond_by − DisputeCritical, never
// before the case opened; a warning that would not come before the critical
// one is not sent.
func (s *orderStep) caseDue(c *orderCase, bit uint8) (int64, bool) {
	if c.opened == 0 || c.respondBy == 0 {
		return 0, false
	}
	crit := max(c.respondBy-DisputeCritical.Milliseconds(), c.opened)
	if bit == bitCaseCrit {
		return crit, true
	}
	d := max(c.respondBy-s.r.RespondWarnBefore.Milliseconds(), c.opened)
	return d, d < crit
}

// nextDue is the order's earliest timer that has not fired and can still
// fire (one due before the order closed).
func (s *orderStep) nextDue(o *order) (int64, bool) {
	next, ok := int64(0), false
	consider := func(d int64, exists bool, closed int64) {
		if exists && (closed == 0 || d < closed) && (!ok || d < next) {
			next, ok = d, true
		}
	}
	closed, _ := o.shipClose()
	for _, bit := range []uint8{bitShipWarn, bitShipBreach} {
		if o.fired&bit == 0 {
			d, exists := s.shipDue(o, bit)
			consider(d, exists, closed)
		}
	}
	for k := range o.cases {
		c := &o.cases[k]
		for _, bit := range []uint8{bitCaseWarn, bitCaseCrit} {
			if c.fired&bit == 0 {
				d, exists := s.caseDue(c, bit)
				consider(d, exists, c.closed)
			}
		}
	}
	return next, ok
}

// fireAll fires, for every order, the timers due strictly before now, or,
// for an order that closed, before it closed: its close is known, so what
// was due before it held whatever the clock says.
func (s *orderStep) fireAll(now int64) {
	for i := range s.b.orders {
		s.fire(&s.b.orders[i], now)
	}
}

func (s *orderStep) fire(o *order, now int64) {
	limit := func(closed int64) int64 {
		if closed != 0 {
			return closed
		}
		return now
	}
	closed, _ := o.shipClose()
	for _, bit := range []uint8{bitShipWarn, bitShipBreach} {
		if d, ok := s.shipDue(o, bit); ok && o.fired&bit == 0 && d < limit(closed) {
			o.fired |= bit
			s.fx.Alerts = append(s.fx.Alerts, s.shipAlert(o, bit))
			if bit == bitShipBreach {
				s.daily(d, FieldShipBreached, 1)
			}
		}
	}
	for k := range o.cases {
		c := &o.cases[k]
		for _, bit := range []uint8{bitCaseWarn, bitCaseCrit} {
			if d, ok := s.caseDue(c, bit); ok && c.fired&bit == 0 && d < limit(c.closed) {
				c.fired |= bit
				s.fx.Alerts = append(s.fx.Alerts, s.caseAlert(o, k, bit))
			}
		}
	}
}

// settle brings the order's counters and alerts in line with what its
// events now say, at event time ts: the deadline in force, the timers due
// before ts or before the order (or case) closed, awaiting shipment,
// shipping alerts closed, cases opened and closed, refund time.
func (s *orderStep) settle(o *order, ts int64) {
	if d := s.wantDeadline(o); d != o.deadline {
		// A deadline that moved (grouping after payment, a ship_by named
		// later) retracts what fired for the old one; the new one's timers
		// fire as they fall due.
		s.closeShip(o, 0, "")
		o.fired, o.shipDone = 0, false
		o.deadline = d
	}
	for k := range o.cases {
		if c := &o.cases[k]; c.opened != 0 && c.closed == 0 && o.caseClosed >= c.opened {
			c.closed = o.caseClosed
		}
	}
	s.fire(o, ts)
	closed, reason := o.shipClose()
	if want := o.deadline != 0 && closed == 0; want != o.awaiting {
		o.awaiting = want
		s.current(FieldAwaitingShipment, b2i(want)-b2i(!want))
	}
	if closed != 0 && o.deadline != 0 {
		// Run on every settle: a shipment stamped earlier than the one
		// that closed the order retracts what it shows was in time.
		s.closeShip(o, closed, reason)
	}
	for k := range o.cases {
		c := &o.cases[k]
		want := c.opened != 0 && c.respondBy != 0 && c.closed == 0
		if want != c.counted {
			c.counted = want
			s.current(OpenDisputesField(DisputeKinds[k]), b2i(want)-b2i(!want))
		}
		if c.closed != 0 && !c.done {
			c.done = true
			s.closeCase(o, k)
		}
	}
	if !o.refundDone && o.refundReq != 0 && o.refunded >= o.refundReq {
		o.refundDone = true
		s.daily(o.refunded, FieldRefundMs, o.refunded-o.refundReq)
		s.daily(o.refunded, FieldRefundN, 1)
	}
}

// closeShip ends the order's fired shipping alerts at x: an alert due at or
// after x never held and is retracted (a breach uncounted); the others are
// resolved with reason once. x == 0 retracts every one.
func (s *orderStep) closeShip(o *order, x int64, reason string) {
	for _, bit := range []uint8{bitShipWarn, bitShipBreach} {
		if o.fired&bit == 0 {
			continue
		}
		d, _ := s.shipDue(o, bit)
		a := s.shipAlert(o, bit)
		a.Status = alerting.Resolved
		switch {
		case x == 0 || d >= x:
			a.Reason, a.At = alerting.ReasonRetracted, time.UnixMilli(max(x, d))
			o.fired &^= bit
			if bit == bitShipBreach {
				s.daily(d, FieldShipBreached, -1)
			}
		case o.shipDone:
			continue
		default:
			a.Reason, a.At = reason, time.UnixMilli(x)
		}
		s.fx.Alerts = append(s.fx.Alerts, a)
	}
	if x != 0 {
		o.shipDone = true
	}
}

// closeCase resolves the fired alerts of case k on its close, retracting
// those due at or after it.
func (s *orderStep) closeCase(o *order, k int) {
	c := &o.cases[k]
	for _, bit := range []uint8{bitCaseWarn, bitCaseCrit} {
		if c.fired&bit == 0 {
			continue
		}
		d, _ := s.caseDue(c, bit)
		a := s.caseAlert(o, k, bit)
		a.Status, a.At, a.Reason = alerting.Resolved, time.UnixMilli(c.closed), alerting.ReasonClosed
		if d >= c.closed {
			a.Reason = alerting.ReasonRetracted
			c.fired &^= bit
		}
		s.fx.Alerts = append(s.fx.Alerts, a)
	}
}

// openCase opens case k at ts. A case opened again while open keeps its
// first respond_by; one opened after it closed starts afresh.
func (s *orderStep) openCase(o *order, k int, ts int64, respondBy *event.Time) {
	c := &o.cases[k]
	if c.opened != 0 && (c.closed == 0 || ts <= c.closed) {
		if ts < c.opened {
			c.opened = ts // the earlier opening arrived late
		}
		return
	}
	*c = orderCase{opened: ts}
	if respondBy != nil && !respondBy.IsZero() {
		c.respondBy = respondBy.UnixMilli()
	}
}

// review counts the order's first rated review for its day and raises
// bad_review for a rating at or under BadReviewAt.
func (s *orderStep) review(o *order, ts int64, ev *event.Event) {
	if ev.Rating == 0 || o.reviewed {
		return
	}
	o.reviewed = true
	s.daily(ts, FieldReviews, 1)
	if ev.Rating >= 4 {
		s.daily(ts, FieldReviewsGood, 1)
	}
	if ev.Rating > s.r.BadReviewAt || s.joinReviews {
		return
	}
	agent := ev.AgentID
	if agent == "" {
		agent = s.b.agent
	}
	at := time.UnixMilli(ts)
	a := s.base(o)
	a.ID = alerting.ID(alerting.KindBadReview, s.b.Shop, s.b.Buyer, o.id)
	a.Kind, a.Severity, a.AgentID = alerting.KindBadReview, alerting.Critical, agent
	a.Since, a.Due, a.At = at, at, at
	s.fx.Alerts = append(s.fx.Alerts, a)
}

func (s *orderStep) base(o *order) alerting.Alert {
	a := alerting.Alert{Status: alerting.Firing, Platform: s.b.platform, ShopID: s.b.Shop,
		BuyerID: s.b.Buyer, AgentID: s.b.agent, OrderID: o.id}
	if a.Platform == "" {
		a.Platform = s.r.Platform
	}
	return a
}

// shipAlert is the firing record of shipping timer bit. Its id derives from
// the shop, buyer, order and deadline.
func (s *orderStep) shipAlert(o *order, bit uint8) alerting.Alert {
	a := s.base(o)
	a.Kind, a.Severity = alerting.KindShippingBreach, alerting.Critical
	if bit == bitShipWarn {
		a.Kind, a.Severity = alerting.KindShippingWarning, alerting.Warning
	}
	due, _ := s.shipDue(o, bit)
	a.ID = alerting.ID(a.Kind, s.b.Shop, s.b.Buyer, o.id, strconv.FormatInt(o.deadline, 10))
	a.Since, a.Due, a.At = time.UnixMilli(max(o.paid, o.grouped)), time.UnixMilli(o.deadline), time.UnixMilli(due)
	return a
}

// caseAlert is the firing record of case k's timer bit: dispute_deadline,
// a warning then critical, identified by the case kind, lead and respond_by.
func (s *orderStep) caseAlert(o *order, k int, bit uint8) alerting.Alert {
	c := &o.cases[k]
	a := s.base(o)
	a.Kind, a.Severity = alerting.KindDisputeDeadline, alerting.Critical
	lead := DisputeCritical
	if bit == bitCaseWarn {
		a.Severity, lead = alerting.Warning, s.r.RespondWarnBefore
	}
	a.Threshold = alerting.FormatThreshold(lead)
	due, _ := s.caseDue(c, bit)
	a.ID = alerting.ID(a.Kind, a.Threshold, s.b.Shop, s.b.Buyer, o.id, DisputeKinds[k], strconv.FormatInt(c.respondBy, 10))
	a.Since, a.Due, a.At = time.UnixMilli(c.opened), time.UnixMilli(c.respondBy), time.UnixMilli(due)
	return a
}

// dayOf is the shop-local day of a time in ms.
func (s *orderStep) dayOf(ms int64) string {
	loc := s.r.Loc
	if loc == nil {
		loc = time.UTC
	}
	return time.UnixMilli(ms).In(loc).Format(time.DateOnly)
}

func (s *orderStep) daily(at int64, field string, delta int64) {
	s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: s.b.Shop, Day: s.dayOf(at), Field: field, Delta: delta})
}

func (s *orderStep) current(field string, delta int64) {
	s.fx.Figures = append(s.fx.Figures, FigureDelta{Shop: s.b.Shop, Field: field, Delta: delta})
}
