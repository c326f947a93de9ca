package sim

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

var shanghai = Shanghai()

// day is a whole shop-local day in Shanghai.
var day = time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)

func generate(t testing.TB, opts Options) []Record {
	t.Helper()
	var out []Record
	if err := Generate(opts, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return out
}

func jsonl(recs []Record) []byte {
	var b []byte
	for i := range recs {
		b = AppendJSONL(b, &recs[i])
	}
	return b
}

// Spans and settings the invariants must hold for.
var invariantCases = []struct {
	name string
	opts Options
}{
	{"default day", Options{Seed: 1, Start: day}},
	{"opening to afternoon, busy", Options{Seed: 2, Rate: 8, Start: day.Add(8 * time.Hour), End: day.Add(15*time.Hour + 7*time.Minute)}},
	{"one agent per shop", Options{Seed: 3, Agents: 1, Shops: 2, Start: day}},
	{"many shops, other platforms", Options{Seed: 4, Shops: 7, Agents: 6, Platforms: []string{"taobao", "jd", "tmall"}, Start: day}},
	{"two days in New York", Options{Seed: 5, Start: time.Date(2026, 3, 7, 12, 30, 0, 0, mustLoc("America/New_York")), End: time.Date(2026, 3, 9, 12, 30, 0, 0, mustLoc("America/New_York"))}},
}

func mustLoc(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// TestInvariants checks every record of each case: event-time order, inside
// the span, in the shop's zone, the contract's key, unique ids, and a value
// that event.Decode accepts for its stream.
func TestInvariants(t *testing.T) {
	for _, tc := range invariantCases {
		t.Run(tc.name, func(t *testing.T) {
			recs := generate(t, tc.opts)
			if len(recs) < 1000 {
				t.Fatalf("only %d records", len(recs))
			}
			o, _ := tc.opts.normalize(false)
			ids := map[string]bool{}
			msgIDs := map[string]bool{}
			var prev time.Time
			for i, r := range recs {
				e := r.Event
				if e.TS.Before(prev) {
					t.Fatalf("record %d at %s is before the previous one at %s", i, event.FormatTime(e.TS.Time), event.FormatTime(prev))
				}
				prev = e.TS.Time
				if e.TS.Before(o.Start) || !e.TS.Before(o.End) {
					t.Fatalf("record %d at %s is outside [%s, %s)", i, event.FormatTime(e.TS.Time), event.FormatTime(o.Start), event.FormatTime(o.End))
				}
				if e.TS.Location().String() != o.Location.String() {
					t.Fatalf("record %d is in %s, not the shop's %s", i, e.TS.Location(), o.Location)
				}
				if want := e.Key(r.Topic); r.Key != want {
					t.Fatalf("record %d key %q, the contract says %q", i, r.Key, want)
				}
				if ids[e.EventID] {
					t.Fatalf("event_id %q repeats", e.EventID)
				}
				ids[e.EventID] = true
				if e.MsgID != "" {
					if msgIDs[e.MsgID] {
						t.Fatalf("msg_id %q repeats", e.MsgID)
					}
					msgIDs[e.MsgID] = true
				}
				value := AppendEvent(nil, &e)
				dec, err := event.Decode(r.Topic, value, e.TS.Time)
				if err != nil {
					t.Fatalf("record %d does not decode as %s: %v\n%s", i, r.Topic, err, value)
				}
				if !dec.TS.Equal(e.TS.Time) || dec.Type != e.Type {
					t.Fatalf("record %d changed on the way: %s", i, value)
				}
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	opts := Options{Seed: 42, Rate: 2, Start: day.Add(6 * time.Hour), End: day.Add(18 * time.Hour)}
	a := jsonl(generate(t, opts))
	b := jsonl(generate(t, opts))
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different output")
	}
	opts.Seed = 43
	if c := jsonl(generate(t, opts)); bytes.Equal(a, c) {
		t.Fatal("a different seed gave the same output")
	}
}

// Seat schedules depend on the date, not on the span: a run starting at
// noon sees the afternoon's seat changes of a run starting at midnight.
func TestSchedulesIndependentOfSpan(t *testing.T) {
	presence := func(recs []Record, from time.Time) []string {
		var out []string
		for _, r := range recs {
			if r.Topic == event.Presence && r.Event.TS.After(from) {
				out = append(out, r.Key+" "+event.FormatTime(r.Event.TS.Time)+" "+r.Event.Status)
			}
		}
		return out
	}
	noon := day.Add(12 * time.Hour)
	whole := presence(generate(t, Options{Seed: 9, Start: day}), noon)
	half := presence(generate(t, Options{Seed: 9, Start: noon, End: day.Add(24 * time.Hour)}), noon)
	if len(whole) == 0 || strings.Join(whole, "\n") != strings.Join(half, "\n") {
		t.Fatalf("afternoon seat changes differ by span: %d from midnight, %d from noon", len(whole), len(half))
	}
}

// The mix holds every event type of the contract, every sender and every
// seat status, in one default day.
func TestMix(t *testing.T) {
	seen := map[string]int{}
	for _, r := range generate(t, Options{Seed: 1, Start: day}) {
		e := r.Event
		seen[string(r.Topic)+" "+e.Type]++
		if e.Sender != "" {
			seen["sender "+e.Sender]++
		}
		if e.Status != "" {
			seen["status "+e.Status]++
		}
		if e.RespondBy != nil {
			seen["respond_by "+e.Type]++
		}
		if e.ShipBy != nil {
			seen["ship_by"]++
		}
		if e.Rating != 0 {
			seen["rating "+string(rune('0'+e.Rating))]++
		}
	}
	want := []string{
		"chat message", "chat transfer", "chat buyer_blocked", "chat buyer_reported",
		"orders order_created", "orders order_paid", "orders order_grouped", "orders order_shipped",
		"orders refund_requested", "orders refund_completed", "orders refund_rejected",
		"orders dispute_opened", "orders dispute_closed", "orders complaint_opened", "orders review_posted",
		"presence agent_status",
		"sender buyer", "sender agent", "sender bot", "sender system",
		"status online", "status busy", "status away", "status offline",
		"respond_by dispute_opened", "respond_by complaint_opened", "ship_by",
		"rating 1", "rating 4", "rating 5",
	}
	for _, k := range want {
		if seen[k] == 0 {
			t.Errorf("no %s in a default day", k)
		}
	}
}

// waits replays the reply rule in its simplest form (in-window buyer message
// starts a wait, a human reply ends it) over records in time order.
func waits(recs []Record, inWindow func(time.Time) bool) (durations []time.Duration, open map[string]time.Time) {
	open = map[string]time.Time{}
	for _, r := range recs {
		e := r.Event
		if r.Topic != event.Chat || e.Type != event.TypeMessage {
			continue
		}
		switch e.Sender {
		case event.SenderBuyer:
			if _, ok := open[r.Key]; !ok && inWindow(e.TS.Time) {
				open[r.Key] = e.TS.Time
			}
		case event.SenderAgent:
			if st, ok := open[r.Key]; ok {
				durations = append(durations, e.TS.Sub(st))
				delete(open, r.Key)
			}
		}
	}
	return durations, open
}

func pddWindow(t time.Time) bool { return t.Hour() >= 8 && t.Hour() < 23 }

func TestReplyDelays(t *testing.T) {
	ds, _ := waits(generate(t, Options{Seed: 1, Start: day}), pddWindow)
	var fast, over3, over5 int
	for _, d := range ds {
		if d >= 10*time.Second && d <= 90*time.Second {
			fast++
		}
		if d > 3*time.Minute {
			over3++
		}
		if d > 5*time.Minute {
			over5++
		}
	}
	n := len(ds)
	if n < 1000 {
		t.Fatalf("only %d answered waits", n)
	}
	if fast*2 < n {
		t.Errorf("%d of %d replies in 10–90 s; most should be", fast, n)
	}
	if over3 == 0 || over5 == 0 || over3*4 > n {
		t.Errorf("%d replies after 3 min and %d after 5 min of %d: want a tail, not a majority", over3, over5, n)
	}
}

func TestOutOfHoursAndBlocked(t *testing.T) {
	var early, late int
	blocked := map[string]int{}
	for _, r := range generate(t, Options{Seed: 1, Start: day}) {
		e := r.Event
		if e.Type == event.TypeMessage && e.Sender == event.SenderBuyer {
			if h := e.TS.Hour(); h < 8 {
				early++
			} else if h >= 23 {
				late++
			}
		}
		if e.Type == event.TypeBuyerBlocked || e.Type == event.TypeBuyerReported {
			blocked[e.ShopID]++
		}
	}
	if early == 0 || late == 0 {
		t.Errorf("buyer messages before 08:00: %d, after 23:00: %d; want some of both", early, late)
	}
	for _, s := range []string{"shop-01", "shop-02", "shop-03"} {
		if n := blocked[s]; n < 1 || n > 15 {
			t.Errorf("%s blocked or reported %d buyers in a day; want a few", s, n)
		}
	}
}

func TestDailyCurve(t *testing.T) {
	perHour := [24]int{}
	for _, r := range generate(t, Options{Seed: 1, Shops: 6, Start: day}) {
		if r.Event.Type == event.TypeMessage && r.Event.Sender == event.SenderBuyer {
			perHour[r.Event.TS.Hour()]++
		}
	}
	morning := perHour[8]
	for _, h := range []int{14, 20} {
		if perHour[h] <= morning*3/2 {
			t.Errorf("buyer messages %02d:00–%02d:00: %d, 08:00–09:00: %d; want the peak well above the morning", h, h+1, perHour[h], morning)
		}
	}
	if perHour[4] >= morning/4 {
		t.Errorf("buyer messages 04:00–05:00: %d, 08:00–09:00: %d; want a quiet night", perHour[4], morning)
	}
}

func TestRateScales(t *testing.T) {
	count := func(rate float64) int {
		return len(generate(t, Options{Seed: 1, Rate: rate, Start: day}))
	}
	one, four := count(1), count(4)
	if four < 3*one || four > 5*one {
		t.Fatalf("rate 4 gave %d records, rate 1 gave %d", four, one)
	}
	chat := 0
	for _, r := range generate(t, Options{Seed: 1, Shops: 1, Agents: 4, Start: day}) {
		if r.Topic == event.Chat {
			chat++
		}
	}
	if chat < 1000 || chat > 10000 {
		t.Fatalf("one shop at rate 1 made %d chat events in a day; want a few thousand", chat)
	}
}

// The demo generates from opening to now at a high rate and needs waits
// whose warning and breach fall in the first seconds after now.
func TestHistoryEndsWithWaitsDueSoon(t *testing.T) {
	now := day.Add(15*time.Hour + 12*time.Minute + 7*time.Second)
	var open, warnSoon, breachSoon int
	for seed := uint64(1); seed <= 3; seed++ {
		recs := generate(t, Options{Seed: seed, Rate: 40, Start: day.Add(8 * time.Hour), End: now})
		_, waiting := waits(recs, pddWindow)
		open += len(waiting)
		for _, start := range waiting {
			if d := start.Add(2 * time.Minute).Sub(now); d > 0 && d <= 15*time.Second {
				warnSoon++
			}
			if d := start.Add(3 * time.Minute).Sub(now); d > 0 && d <= 15*time.Second {
				breachSoon++
			}
		}
	}
	if warnSoon < 3 || breachSoon < 3 {
		t.Fatalf("%d open waits; %d warnings and %d breaches due in the 15 s after now, want several of each", open, warnSoon, breachSoon)
	}
}

func TestUrgent(t *testing.T) {
	now := day.Add(10*time.Hour + 30*time.Minute + 123*time.Millisecond)
	opts := Options{Seed: 5}
	recs := Urgent(opts, now, 6)
	if len(recs) != 3*6 {
		t.Fatalf("%d records, want 6 for each of 3 shops", len(recs))
	}
	if again := Urgent(opts, now, 6); !bytes.Equal(jsonl(recs), jsonl(again)) {
		t.Fatal("Urgent is not deterministic")
	}
	var breaches, warnings int
	keys := map[string]bool{}
	for i, r := range recs {
		e := r.Event
		if i > 0 && e.TS.Before(recs[i-1].Event.TS.Time) {
			t.Fatal("records are not in time order")
		}
		if _, err := event.Decode(r.Topic, AppendEvent(nil, &e), now); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if e.Sender != event.SenderBuyer || keys[r.Key] || r.Key != e.Key(r.Topic) {
			t.Fatalf("record %d: want a buyer message from a new buyer: %+v", i, e)
		}
		keys[r.Key] = true
		if d := e.TS.Add(3 * time.Minute).Sub(now); d >= 3*time.Second && d <= 15*time.Second {
			breaches++
		} else if d := e.TS.Add(2 * time.Minute).Sub(now); d >= 3*time.Second && d <= 15*time.Second {
			warnings++
		} else {
			t.Errorf("record %d at %s: neither its warning nor its breach falls 3–15 s after now", i, event.FormatTime(e.TS.Time))
		}
	}
	if breaches != 9 || warnings != 9 {
		t.Fatalf("%d breaches and %d warnings due soon, want 9 and 9", breaches, warnings)
	}
}

func TestShops(t *testing.T) {
	opts := Options{Seed: 8, Shops: 5, Start: day}
	shops, err := Shops(opts)
	if err != nil {
		t.Fatal(err)
	}
	agents := map[string]string{}
	platforms := map[string]string{}
	for _, s := range shops {
		platforms[s.ID] = s.Platform
		for _, a := range s.Agents {
			agents[a] = s.ID
		}
	}
	if len(shops) != 5 || platforms["shop-01"] != "pdd" || platforms["shop-03"] != "taobao" {
		t.Fatalf("shops %+v", shops)
	}
	for _, r := range generate(t, opts) {
		e := r.Event
		if platforms[e.ShopID] != e.Platform {
			t.Fatalf("event of %s says platform %q, Shops says %q", e.ShopID, e.Platform, platforms[e.ShopID])
		}
		for _, a := range []string{e.AgentID, e.FromAgentID} {
			if a != "" && agents[a] != e.ShopID {
				t.Fatalf("agent %q in %s is not one of its agents", a, e.ShopID)
			}
		}
	}
}

var badOptions = []struct {
	name string
	opts Options
	want string
}{
	{"no start", Options{}, "start time is required"},
	{"end before start", Options{Start: day, End: day.Add(-time.Hour)}, "is not after start"},
	{"negative rate", Options{Start: day, Rate: -1}, "rate -1"},
	{"negative shops", Options{Start: day, Shops: -2}, "shops -2"},
	{"unknown platform", Options{Start: day, Platforms: []string{"pdd", "ebay"}}, `platform "ebay"`},
}

func TestBadOptions(t *testing.T) {
	for _, tc := range badOptions {
		t.Run(tc.name, func(t *testing.T) {
			err := Generate(tc.opts, func(Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEmitErrorStops(t *testing.T) {
	stop := errorString("enough")
	n := 0
	err := Generate(Options{Seed: 1, Start: day}, func(Record) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if err != stop || n != 10 {
		t.Fatalf("Generate returned %v after %d records, want the emit error after 10", err, n)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Over a few days orders ship mostly within their promise (ship_by, or 48 h
// from payment or grouping) and some late.
func TestShippingMostlyInTime(t *testing.T) {
	shops, err := Shops(Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	promise := map[string]time.Duration{}
	for _, s := range shops {
		promise[s.ID] = s.ShipPromise
	}
	clock := map[string]time.Time{}  // payment, or grouping on PDD
	shipBy := map[string]time.Time{} // explicit deadlines
	var inTime, late int
	for _, r := range generate(t, Options{Seed: 1, Start: day, End: day.Add(4 * 24 * time.Hour)}) {
		e := r.Event
		switch e.Type {
		case event.TypeOrderPaid, event.TypeOrderGrouped:
			clock[e.OrderID] = e.TS.Time
			if e.ShipBy != nil {
				shipBy[e.OrderID] = e.ShipBy.Time
			}
		case event.TypeOrderShipped:
			start, ok := clock[e.OrderID]
			if !ok {
				continue // ordered before the run
			}
			d, ok := shipBy[e.OrderID]
			if !ok {
				d = start.Add(promise[e.ShopID])
			}
			if e.TS.After(d) {
				late++
			} else {
				inTime++
			}
		}
	}
	t.Logf("%d orders shipped in time, %d late", inTime, late)
	if late == 0 || inTime < 8*late {
		t.Fatalf("%d orders shipped in time, %d late; want mostly in time and some late", inTime, late)
	}
}

// TestFewBuyersLeftWaiting: in the afternoon, with seats online, a shop
// leaves only the buyers real shops leave: the ones being answered now and
// a few overlooked for a while, none for hours (blocked and reported
// buyers, whom the rules exclude, aside).
func TestFewBuyersLeftWaiting(t *testing.T) {
	now := day.Add(14*time.Hour + 35*time.Minute)
	for seed := uint64(1); seed <= 3; seed++ {
		recs := generate(t, Options{Seed: seed, Rate: 5, Agents: 6, Start: day.Add(8 * time.Hour), End: now})
		excluded := map[string]bool{}
		for _, r := range recs {
			if r.Event.Type == event.TypeBuyerBlocked || r.Event.Type == event.TypeBuyerReported {
				excluded[r.Key] = true
			}
		}
		_, open := waits(recs, pddWindow)
		waiting := map[string]int{}
		oldest := map[string]time.Duration{}
		for k, st := range open {
			if excluded[k] {
				continue
			}
			shop, _, _ := strings.Cut(k, "/")
			waiting[shop]++
			oldest[shop] = max(oldest[shop], now.Sub(st))
		}
		for shop, n := range waiting {
			if n > 25 || oldest[shop] > time.Hour {
				t.Errorf("seed %d: %s has %d buyers waiting at 14:35, the oldest for %s; want a handful, none for an hour",
					seed, shop, n, oldest[shop].Round(time.Minute))
			}
		}
		t.Logf("seed %d: waiting %v, oldest %v", seed, waiting, oldest)
	}
}

// TestSeatGaps: shops that send no presence send none; a shop whose agents
// lunch together has nobody on a seat at 11:45; quiet agents leave buyers
// waiting 4 to 8 minutes for some replies.
func TestSeatGaps(t *testing.T) {
	loc := Shanghai()
	start := time.Date(2026, 11, 24, 8, 0, 0, 0, loc)
	o := Options{Seed: 3, Shops: 3, Agents: 3, Start: start, End: start.Add(8 * time.Hour), NoPresence: 1, LunchTogether: 1, Quiet: 0.1}
	var recs []Record
	if err := Generate(o, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	shops, err := Shops(o)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	onAt1145, counted := 0, false
	lastBuyer := map[string]time.Time{}
	quiet := 0
	for _, r := range recs {
		ev := r.Event
		if r.Topic == event.Presence {
			if ev.ShopID == shops[2].ID {
				t.Fatalf("presence-less shop %s sent %+v", ev.ShopID, ev)
			}
			if ev.ShopID == shops[0].ID {
				status[ev.AgentID] = ev.Status
			}
			continue
		}
		if ev.ShopID == shops[0].ID && !counted && !ev.TS.Before(start.Add(225*time.Minute)) {
			counted = true
			for _, st := range status {
				if st == "online" || st == "busy" {
					onAt1145++
				}
			}
		}
		if r.Topic == event.Chat && ev.Type == event.TypeMessage {
			k := ev.ShopID + "/" + ev.BuyerID
			switch ev.Sender {
			case event.SenderBuyer:
				if _, ok := lastBuyer[k]; !ok {
					lastBuyer[k] = ev.TS.Time
				}
			case event.SenderAgent:
				if b, ok := lastBuyer[k]; ok && ev.TS.Sub(b) >= 4*time.Minute {
					quiet++
				}
				delete(lastBuyer, k)
			}
		}
	}
	if !counted || onAt1145 != 0 {
		t.Errorf("%d seats of the lunch-together shop work at 11:45, want none", onAt1145)
	}
	if quiet == 0 {
		t.Error("no reply came after 4 minutes or more of quiet")
	}
	if _, err := (Options{Start: start, Shops: 2, NoPresence: 3}).normalize(false); err == nil {
		t.Error("more presence-less shops than shops accepted")
	}
}

// Disorder holds chat records back by less than Within, sends the share
// asked for twice, and leaves other records in place.
func TestDisorderArrival(t *testing.T) {
	var recs []Record
	err := Generate(Options{Seed: 5, Shops: 2, Agents: 3, Rate: 2, Start: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		End: time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC)}, func(r Record) error { recs = append(recs, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	d := Disorder{Seed: 1, Within: 5 * time.Minute, Duplicates: 0.03}
	got := d.Arrival(recs)
	chat, dups, late := 0, 0, 0
	seen := map[string]bool{}
	var latest time.Time
	for _, r := range got {
		if r.Topic != event.Chat {
			continue
		}
		if seen[r.Event.EventID] {
			dups++
		}
		seen[r.Event.EventID] = true
		chat++
		if r.Event.TS.Before(latest) {
			late++
			if latest.Sub(r.Event.TS.Time) >= 5*time.Minute {
				t.Errorf("%s arrives %s after a later record", r.Event.EventID, latest.Sub(r.Event.TS.Time))
			}
		} else {
			latest = r.Event.TS.Time
		}
	}
	if want := chat - dups; len(seen) != want {
		t.Errorf("%d distinct chat records, want %d", len(seen), want)
	}
	if share := float64(dups) / float64(chat-dups); share < 0.015 || share > 0.05 {
		t.Errorf("%d of %d chat records duplicated (%.3f), want about 0.03", dups, chat-dups, share)
	}
	if late < chat/10 {
		t.Errorf("only %d of %d chat records arrive after a later one", late, chat)
	}
	if slices.Equal(got[:10], recs[:10]) && late == 0 {
		t.Error("nothing reordered")
	}
	if !slices.Equal(d.Arrival(recs), got) {
		t.Error("the same seed gives another order")
	}
}
