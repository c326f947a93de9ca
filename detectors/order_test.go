package detectors

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// orderRules are the defaults (48 h to ship, warnings 4 h and 2 h ahead, bad
// review at 2) for s1, and a shop with its own 6 h ship_within for s2.
func orderRules(shop string) *OrderRules {
	r := &OrderRules{Platform: "pdd", Loc: shanghai, ShipWithin: 48 * time.Hour, WarnBefore: 4 * time.Hour,
		RespondWarnBefore: 2 * time.Hour, ConversionWindow: 24 * time.Hour, BadReviewAt: 2}
	if shop == "s2" {
		r.ShipWithin = 6 * time.Hour
	}
	return r
}

// ostep is one order event of a script, or "advance" the clock to at.
type ostep struct {
	typ, order, at string
	id             string // event id; generated when empty
	shipBy         string
	respondBy      string
	rating         int
	want           Result
}

func oev(typ, order, at string) ostep { return ostep{typ: typ, order: order, at: at} }
func oadvance(at string) ostep        { return ostep{typ: "advance", at: at} }
func (s ostep) with(f func(*ostep)) ostep {
	f(&s)
	return s
}
func shipBy(t string) func(*ostep)    { return func(s *ostep) { s.shipBy = t } }
func respondBy(t string) func(*ostep) { return func(s *ostep) { s.respondBy = t } }
func rating(n int) func(*ostep)       { return func(s *ostep) { s.rating = n } }
func dup(id string) func(*ostep)      { return func(s *ostep) { s.id, s.want = id, Duplicate } }
func eid(id string) func(*ostep)      { return func(s *ostep) { s.id = id } }

// Days of the scripts (Asia/Shanghai).
const (
	d1 = "2026-11-24 "
	d2 = "2026-11-25 "
	d3 = "2026-11-26 "
)

var orderCases = []struct {
	name  string
	shop  string
	steps []ostep
	// alerts are kind[:threshold]/status[/reason], in order.
	alerts []string
	// figures are net changes by "field" (current) or "day field".
	figures map[string]int64
}{
	{"paid then shipped in time", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oev("order_shipped", "o1", d2+"09:00:00"), oadvance(d3 + "12:00:00")},
		nil, map[string]int64{"awaiting_ship": 0}},
	{"paid and not shipped is awaiting", "s1",
		[]ostep{oev("order_created", "o1", d1+"09:59:00"), oev("order_paid", "o1", d1+"10:00:00"), oadvance(d1 + "12:00:00")},
		nil, map[string]int64{"awaiting_ship": 1}},
	{"warning, then shipped", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "06:00:00"), oadvance(d3 + "06:00:00.001"),
			oev("order_shipped", "o1", d3+"07:00:00")},
		[]string{"shipping_warning/firing", "shipping_warning/resolved/shipped"},
		map[string]int64{"awaiting_ship": 0, "2026-11-26 ship_breached": 0}},
	{"breach, then shipped late", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "10:00:00.001"), oev("order_shipped", "o1", d3+"11:00:00")},
		[]string{"shipping_warning/firing", "shipping_breach/firing", "shipping_warning/resolved/shipped", "shipping_breach/resolved/shipped"},
		map[string]int64{"awaiting_ship": 0, "2026-11-26 ship_breached": 1}},
	{"shipped exactly at the deadline is in time", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oev("order_shipped", "o1", d3+"10:00:00")},
		[]string{"shipping_warning/firing", "shipping_warning/resolved/shipped"},
		map[string]int64{"awaiting_ship": 0, "2026-11-26 ship_breached": 0}},
	{"a shipment read after the breach but stamped before the deadline retracts it", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "10:30:00"), oev("order_shipped", "o1", d3+"09:59:00")},
		[]string{"shipping_warning/firing", "shipping_breach/firing", "shipping_warning/resolved/shipped", "shipping_breach/resolved/retracted"},
		map[string]int64{"awaiting_ship": 0, "2026-11-26 ship_breached": 0}},
	{"shipped read before paid, in time", "s1",
		[]ostep{oev("order_shipped", "o1", d2+"09:00:00"), oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "12:00:00")},
		nil, map[string]int64{"awaiting_ship": 0}},
	{"shipped read before paid, late: the breach still counts", "s1",
		[]ostep{oev("order_shipped", "o1", d3+"11:00:00"), oev("order_paid", "o1", d1+"10:00:00")},
		[]string{"shipping_warning/firing", "shipping_breach/firing", "shipping_warning/resolved/shipped", "shipping_breach/resolved/shipped"},
		map[string]int64{"awaiting_ship": 0, "2026-11-26 ship_breached": 1}},
	{"a repeated order_paid and a repeated event_id are duplicates", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00").with(eid("p1")), oev("order_paid", "o1", d1+"10:05:00").with(dup("p2")),
			oev("order_paid", "o1", d1+"10:00:00").with(dup("p1")), oadvance(d1 + "12:00:00")},
		nil, map[string]int64{"awaiting_ship": 1}},
	{"a refund closes the order and times the refund", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oev("refund_requested", "o1", d1+"12:00:00"),
			oev("refund_completed", "o1", d1+"14:00:00"), oadvance(d3 + "12:00:00")},
		nil, map[string]int64{"awaiting_ship": 0, "2026-11-24 refund_ms": 2 * 3600_000, "2026-11-24 refund_n": 1}},
	{"a refund after the warning resolves it", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "07:00:00"), oev("refund_completed", "o1", d3+"08:00:00"),
			oev("refund_requested", "o1", d3+"07:30:00")},
		[]string{"shipping_warning/firing", "shipping_warning/resolved/refunded"},
		map[string]int64{"awaiting_ship": 0, "2026-11-26 refund_ms": 30 * 60_000, "2026-11-26 refund_n": 1}},
	{"a shop's own ship_within, with a deadline across midnight", "s2",
		[]ostep{oev("order_paid", "o1", d1+"22:00:00"), oadvance(d1 + "23:59:59"), oadvance(d2 + "00:00:00.001"),
			oadvance(d2 + "04:00:00.001"), oev("order_shipped", "o1", d2+"08:00:00")},
		[]string{"shipping_warning/firing", "shipping_breach/firing", "shipping_warning/resolved/shipped", "shipping_breach/resolved/shipped"},
		// The breach counts for the day the deadline passed.
		map[string]int64{"awaiting_ship": 0, "2026-11-24 ship_breached": 0, "2026-11-25 ship_breached": 1}},
	{"ship_by overrides ship_within", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00").with(shipBy("2026-11-24T18:00:00+08:00")), oadvance(d1 + "18:00:00.001")},
		[]string{"shipping_warning/firing", "shipping_breach/firing"},
		map[string]int64{"awaiting_ship": 1, "2026-11-24 ship_breached": 1}},
	{"grouping read late moves the deadline: the old warning is retracted", "s1",
		[]ostep{oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "06:30:00"), oev("order_grouped", "o1", d1+"12:00:00"),
			oadvance(d3 + "08:00:00.001")},
		[]string{"shipping_warning/firing", "shipping_warning/resolved/retracted", "shipping_warning/firing"},
		map[string]int64{"awaiting_ship": 1}},
	{"a dispute warns 2 h ahead, then critically 30 min ahead, and closes", "s1",
		[]ostep{oev("dispute_opened", "o1", d1+"10:00:00").with(respondBy("2026-11-25T10:00:00+08:00")),
			oadvance(d2 + "08:00:00.001"), oadvance(d2 + "09:30:00.001"), oev("dispute_closed", "o1", d2+"09:40:00")},
		[]string{"dispute_deadline:2h/firing", "dispute_deadline:30m/firing", "dispute_deadline:2h/resolved/closed", "dispute_deadline:30m/resolved/closed"},
		map[string]int64{"disputes:dispute": 0}},
	{"an open dispute and complaint are counted by kind", "s1",
		[]ostep{oev("dispute_opened", "o1", d1+"10:00:00").with(respondBy("2026-11-26T10:00:00+08:00")),
			oev("complaint_opened", "o2", d1+"10:00:00").with(respondBy("2026-11-26T10:00:00+08:00")),
			oev("dispute_opened", "o3", d1+"10:00:00")}, // no respond_by: not counted
		nil, map[string]int64{"disputes:dispute": 1, "disputes:complaint": 1}},
	{"a complaint due within the hour warns at once", "s1",
		[]ostep{oev("complaint_opened", "o1", d1+"10:00:00").with(respondBy("2026-11-24T11:00:00+08:00")),
			oadvance(d1 + "10:00:00.001"), oadvance(d1 + "10:30:00.001")},
		[]string{"dispute_deadline:2h/firing", "dispute_deadline:30m/firing"},
		map[string]int64{"disputes:complaint": 1}},
	{"dispute_closed read before the opening: what was due before the close fired", "s1",
		[]ostep{oev("dispute_closed", "o1", d1+"12:00:00"),
			oev("dispute_opened", "o1", d1+"10:00:00").with(respondBy("2026-11-24T13:00:00+08:00")), oadvance(d1 + "14:00:00")},
		[]string{"dispute_deadline:2h/firing", "dispute_deadline:2h/resolved/closed"},
		map[string]int64{"disputes:dispute": 0}},
	{"a bad review alerts, a good one counts", "s1",
		[]ostep{oev("review_posted", "o1", d1+"10:00:00").with(rating(1)), oev("review_posted", "o2", d1+"11:00:00").with(rating(5)),
			oev("review_posted", "o2", d1+"12:00:00").with(rating(1))}, // a second review of o2 is not counted
		[]string{"bad_review/firing"},
		map[string]int64{"2026-11-24 reviews": 2, "2026-11-24 reviews_good": 1}},
}

func orderEvent(st ostep, shop string, n int) *event.Event {
	id := st.id
	if id == "" {
		id = "e" + string(rune('a'+n))
	}
	ev := &event.Event{EventID: id, Type: st.typ, TS: event.Time{Time: clockAt(shanghai, st.at)}, ShopID: shop,
		BuyerID: "b1", OrderID: st.order, Rating: st.rating, AgentID: "a1"}
	parse := func(s string) *event.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return &event.Time{Time: t}
	}
	if st.shipBy != "" {
		ev.ShipBy = parse(st.shipBy)
	}
	if st.respondBy != "" {
		ev.RespondBy = parse(st.respondBy)
	}
	return ev
}

func alertLabel(a alerting.Alert) string {
	k := a.Kind
	if a.Kind == alerting.KindDisputeDeadline {
		k += ":" + a.Threshold
	}
	k += "/" + a.Status
	if a.Reason != "" {
		k += "/" + a.Reason
	}
	return k
}

// runOrders applies a script, round-tripping the book through its encoding
// after every step as the store does.
func runOrders(t *testing.T, shop string, steps []ostep) (*OrderBook, *Effects) {
	t.Helper()
	e := &OrderEngine{Rules: orderRules}
	b := &OrderBook{Shop: shop, Buyer: "b1"}
	var fx Effects
	for i, st := range steps {
		if st.typ == "advance" {
			e.Advance(b, clockAt(shanghai, st.at), &fx)
		} else if got := e.Order(b, orderEvent(st, shop, i), &fx); got != st.want {
			t.Errorf("step %d (%s %s): result %v, want %v", i, st.typ, st.at, got, st.want)
		}
		blob, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		nb := &OrderBook{Shop: shop, Buyer: "b1"}
		if err := nb.UnmarshalBinary(blob); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		b = nb
	}
	return b, &fx
}

func netFigures(fx *Effects) map[string]int64 {
	got := map[string]int64{}
	for _, f := range fx.Figures {
		k := f.Field
		if f.Day != "" {
			k = f.Day + " " + f.Field
		}
		got[k] += f.Delta
	}
	return got
}

func TestOrders(t *testing.T) {
	for _, c := range orderCases {
		t.Run(c.name, func(t *testing.T) {
			_, fx := runOrders(t, c.shop, c.steps)
			var got []string
			for _, a := range fx.Alerts {
				got = append(got, alertLabel(a))
				if a.ShopID != c.shop || a.BuyerID != "b1" || a.OrderID == "" || a.ID == "" || a.Platform != "pdd" {
					t.Errorf("alert %+v", a)
				}
			}
			if !slices.Equal(got, c.alerts) {
				t.Errorf("alerts\n%v\nwant\n%v", got, c.alerts)
			}
			figs := netFigures(fx)
			for k, v := range c.figures {
				if figs[k] != v {
					t.Errorf("%s = %d, want %d (all: %v)", k, figs[k], v, figs)
				}
			}
		})
	}
}

// TestOrderAlertTimes checks what the records say: ids from the condition,
// a resolution carrying its firing's id, times of the deadline.
func TestOrderAlertTimes(t *testing.T) {
	_, fx := runOrders(t, "s1", []ostep{oev("order_paid", "o1", d1+"10:00:00"), oadvance(d3 + "10:00:00.001"),
		oev("order_shipped", "o1", d3+"11:00:00")})
	if len(fx.Alerts) != 4 {
		t.Fatalf("alerts %v", fx.Alerts)
	}
	w, b, wr, br := fx.Alerts[0], fx.Alerts[1], fx.Alerts[2], fx.Alerts[3]
	deadline := clockAt(shanghai, d3+"10:00:00")
	if b.ID != alerting.ID(alerting.KindShippingBreach, "s1", "b1", "o1", strconv.FormatInt(deadline.UnixMilli(), 10)) ||
		!b.Due.Equal(deadline) || !b.At.Equal(deadline) || b.Severity != alerting.Critical {
		t.Errorf("breach %+v", b)
	}
	if !w.Due.Equal(deadline) || !w.At.Equal(deadline.Add(-4*time.Hour)) || w.Severity != alerting.Warning || w.ID == b.ID {
		t.Errorf("warning %+v", w)
	}
	if wr.ID != w.ID || br.ID != b.ID || !br.At.Equal(clockAt(shanghai, d3+"11:00:00")) {
		t.Errorf("resolutions %+v %+v", wr, br)
	}
}

// TestOrderNextDue: the book's next timer is the earliest of its orders',
// 1 ms past it, and none once everything closed.
func TestOrderNextDue(t *testing.T) {
	e := &OrderEngine{Rules: orderRules}
	b, _ := runOrders(t, "s1", []ostep{oev("order_paid", "o1", d1+"10:00:00"),
		oev("dispute_opened", "o2", d1+"11:00:00").with(respondBy("2026-11-24T15:00:00+08:00"))})
	if d, ok := e.NextDue(b); !ok || !d.Equal(clockAt(shanghai, d1+"13:00:00.001")) {
		t.Errorf("next due %v %v, want the dispute warning", d, ok)
	}
	b, _ = runOrders(t, "s1", []ostep{oev("order_paid", "o1", d1+"10:00:00"), oev("order_shipped", "o1", d1+"11:00:00")})
	if d, ok := e.NextDue(b); ok {
		t.Errorf("a shipped order has a timer at %v", d)
	}
}

// TestOrderArrivalOrder: any arrival order of an order's events gives the
// same figures and the same alerts that were not retracted, with the same
// final status, as event-time order.
func TestOrderArrivalOrder(t *testing.T) {
	scripts := [][]ostep{
		{oev("order_paid", "o1", d1+"10:00:00"), oev("order_shipped", "o1", d3+"11:00:00"),
			oev("order_paid", "o2", d1+"11:00:00"), oev("order_shipped", "o2", d2+"11:00:00"),
			oev("order_paid", "o3", d1+"12:00:00"), oev("refund_requested", "o3", d3+"08:00:00"), oev("refund_completed", "o3", d3+"09:00:00"),
			oev("dispute_opened", "o2", d2+"12:00:00").with(respondBy("2026-11-26T12:00:00+08:00")), oev("dispute_closed", "o2", d3+"11:45:00"),
			oev("complaint_opened", "o4", d2+"13:00:00").with(respondBy("2026-11-26T10:00:00+08:00")),
			oev("review_posted", "o1", d3+"12:00:00").with(rating(2))},
		{oev("order_paid", "o1", d1+"22:00:00"), oev("order_grouped", "o1", d1+"23:30:00"), oev("order_shipped", "o1", d3+"23:00:00"),
			oev("dispute_opened", "o1", d2+"10:00:00").with(respondBy("2026-11-25T11:00:00+08:00")), oev("dispute_closed", "o1", d2+"10:40:00")},
	}
	end := oadvance("2026-11-27 00:00:00")
	for si, script := range scripts {
		sorted := slices.Clone(script)
		slices.SortStableFunc(sorted, func(a, b ostep) int { return strings.Compare(a.at, b.at) })
		for i := range sorted {
			sorted[i].id = "x" + sorted[i].order + sorted[i].typ
		}
		_, want := runOrders(t, "s1", append(slices.Clone(sorted), end))
		rng := rand.New(rand.NewPCG(uint64(si), 7))
		for trial := 0; trial < 50; trial++ {
			perm := slices.Clone(sorted)
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			// The clock runs ahead with the latest event read.
			var steps []ostep
			latest := ""
			for _, st := range perm {
				steps = append(steps, st)
				if st.at > latest {
					latest = st.at
				}
				steps = append(steps, oadvance(latest))
			}
			_, got := runOrders(t, "s1", append(steps, end))
			if g, w := netFigures(got), netFigures(want); !maps.Equal(nonZero(g), nonZero(w)) {
				t.Fatalf("script %d order %v: figures %v, want %v", si, perm, g, w)
			}
			if g, w := standing(got), standing(want); !maps.Equal(g, w) {
				t.Fatalf("script %d order %v: alerts %v, want %v", si, perm, g, w)
			}
		}
	}
}

func nonZero(m map[string]int64) map[string]int64 {
	maps.DeleteFunc(m, func(_ string, v int64) bool { return v == 0 })
	return m
}

// standing is each alert id's last record, without retracted ones.
func standing(fx *Effects) map[string]string {
	m := map[string]string{}
	for _, a := range fx.Alerts {
		m[a.ID] = alertLabel(a)
	}
	maps.DeleteFunc(m, func(_, v string) bool { return strings.HasSuffix(v, "/retracted") })
	return m
}

// TestOrderBookBounded: a buyer's book keeps at most maxOrders orders and
// takes back the counters of one it forgets.
func TestOrderBookBounded(t *testing.T) {
	var steps []ostep
	for i := 0; i < maxOrders+4; i++ {
		steps = append(steps, oev("order_paid", "o"+string(rune('A'+i)), d1+"10:00:00"))
	}
	b, fx := runOrders(t, "s1", steps)
	if len(b.orders) != maxOrders {
		t.Errorf("%d orders kept", len(b.orders))
	}
	if got := netFigures(fx)["awaiting_ship"]; got != maxOrders {
		t.Errorf("awaiting %d, want %d (the kept orders)", got, maxOrders)
	}
}

func TestOrderBookDecodingGarbage(t *testing.T) {
	good, _ := runOrders(t, "s1", []ostep{oev("order_paid", "o1", d1+"10:00:00"),
		oev("dispute_opened", "o1", d1+"11:00:00").with(respondBy("2026-11-25T11:00:00+08:00"))})
	blob, _ := good.MarshalBinary()
	cases := [][]byte{nil, {2}, blob[:len(blob)-1], append(slices.Clone(blob), 0)}
	for i := 1; i < len(blob); i += 3 {
		cases = append(cases, blob[:i])
	}
	for _, c := range cases {
		b := OrderBook{Shop: "s1", agent: "keep"}
		if err := b.UnmarshalBinary(c); !errors.Is(err, ErrCorrupt) || b.agent != "keep" {
			t.Errorf("%x: %v (changed: %v)", c, err, b.agent != "keep")
		}
	}
}

// TestOrderHistoryResentChangesNothing: a buyer's whole order history sent
// again with the same ids, more than the book remembers ids of, emits no
// figure and no alert: every order event is idempotent by what it says.
func TestOrderHistoryResentChangesNothing(t *testing.T) {
	var history []ostep
	for _, o := range []string{"o1", "o2", "o3", "o4", "o5", "o6"} {
		history = append(history,
			oev("order_created", o, d1+"09:00:00"), oev("order_paid", o, d1+"09:01:00"), oev("order_grouped", o, d1+"09:30:00"),
			oev("refund_requested", o, d2+"08:00:00"), oev("refund_rejected", o, d2+"09:00:00"),
			oev("dispute_opened", o, d2+"10:00:00").with(respondBy("2026-11-25T12:00:00+08:00")),
			oev("order_shipped", o, d3+"11:00:00"), oev("dispute_closed", o, d3+"12:00:00"),
			oev("review_posted", o, d3+"13:00:00").with(rating(1)))
	}
	for i := range history {
		history[i].id = "h" + strconv.Itoa(i)
	}
	if len(history) <= orderSeenIDs {
		t.Fatalf("a history of %d events is within the %d remembered ids", len(history), orderSeenIDs)
	}
	once, fx := runOrders(t, "s1", history)
	nFigures, nAlerts := len(fx.Figures), len(fx.Alerts)
	if nAlerts == 0 {
		t.Fatal("the history raised no alert")
	}
	e := &OrderEngine{Rules: orderRules}
	for i, st := range history {
		e.Order(once, orderEvent(st, "s1", i), fx)
	}
	if len(fx.Figures) != nFigures || len(fx.Alerts) != nAlerts {
		t.Errorf("sent again: %d more figures %v, %d more alerts %v", len(fx.Figures)-nFigures, fx.Figures[nFigures:],
			len(fx.Alerts)-nAlerts, fx.Alerts[nAlerts:])
	}
}
