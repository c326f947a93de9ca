package detectors

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
)

var (
	shanghai = mustLoad("Asia/Shanghai")
	newYork  = mustLoad("America/New_York")
)

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// baseDay is the day test times without a date fall on.
const baseDay = "2026-11-24"

// clockAt parses "10:00:00", "10:00:00.999" or "2026-11-25 00:00:01" in loc.
func clockAt(loc *time.Location, s string) time.Time {
	if !strings.Contains(s, " ") {
		s = baseDay + " " + s
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999", s, loc)
	if err != nil {
		panic(err)
	}
	return t
}

// pddRules are the PDD defaults: 08:00–23:00 Shanghai, 3m and 5m, warnings
// 60 s before each.
func pddRules() *Rules {
	return &Rules{Platform: "pdd", Hours: hours.MustNew(shanghai, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
}

// step kinds of a test script.
type op struct {
	kind   string // buyer agent bot system transfer block report advance
	at     string
	agent  string
	id     string // event id; generated when empty
	result Result // expected result of a chat event
}

func buyer(at string) op           { return op{kind: "buyer", at: at} }
func buyerOf(at, agent string) op  { return op{kind: "buyer", at: at, agent: agent} }
func human(at, agent string) op    { return op{kind: "agent", at: at, agent: agent} }
func bot(at, agent string) op      { return op{kind: "bot", at: at, agent: agent} }
func system(at string) op          { return op{kind: "system", at: at} }
func transfer(at, agent string) op { return op{kind: "transfer", at: at, agent: agent} }
func block(at string) op           { return op{kind: "block", at: at} }
func report(at string) op          { return op{kind: "report", at: at} }
func advance(at string) op         { return op{kind: "advance", at: at} }
func again(o op, id string) op     { o.id, o.result = id, Duplicate; return o }
func withID(o op, id string) op    { o.id = id; return o }
func alerts(as ...string) []string { return as }

// figs builds expected figures from "day field", value pairs.
func figs(kv ...any) map[string]int64 {
	m := map[string]int64{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = int64(kv[i+1].(int))
	}
	return m
}

// harness runs a script against one conversation and collects what came out.
type harness struct {
	t    *testing.T
	e    *Engine
	loc  *time.Location
	c    Conversation
	fx   Effects
	seq  int
	plat string
}

func newHarness(t *testing.T, r *Rules, perAgent bool) *harness {
	return &harness{t: t, e: &Engine{Rules: func(string) *Rules { return r }, PerAgent: perAgent}, loc: r.Hours.Loc,
		c: Conversation{Shop: "s1", Buyer: "b1"}}
}

func (h *harness) event(o op) *event.Event {
	h.seq++
	id := o.id
	if id == "" {
		id = "e" + strconv.Itoa(h.seq)
	}
	ev := &event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: clockAt(h.loc, o.at)},
		ShopID: "s1", BuyerID: "b1", AgentID: o.agent, Platform: h.plat}
	switch o.kind {
	case "buyer", "agent", "bot", "system":
		ev.Sender = o.kind
	case "transfer":
		ev.Type = event.TypeTransfer
	case "block":
		ev.Type = event.TypeBuyerBlocked
	case "report":
		ev.Type = event.TypeBuyerReported
	}
	return ev
}

func (h *harness) run(ops []op) {
	h.t.Helper()
	for i, o := range ops {
		if o.kind == "advance" {
			h.e.Advance(&h.c, clockAt(h.loc, o.at), &h.fx)
			continue
		}
		if got := h.e.Chat(&h.c, h.event(o), &h.fx); got != o.result {
			h.t.Errorf("step %d (%s %s): result %d, want %d", i, o.kind, o.at, got, o.result)
		}
	}
}

// figures sums the figure deltas per "day field" ("now field" for current
// counters), dropping zero sums.
func (h *harness) figures() map[string]int64 {
	m := map[string]int64{}
	for _, f := range h.fx.Figures {
		if f.Shop != "s1" {
			h.t.Errorf("figure for shop %q", f.Shop)
		}
		day := f.Day
		if day == "" {
			day = "now"
		}
		m[day+" "+f.Field] += f.Delta
	}
	maps.DeleteFunc(m, func(_ string, v int64) bool { return v == 0 })
	return m
}

// render writes an alert as "kind[:threshold] status[/reason] agent @at".
func (h *harness) render(a alerting.Alert) string {
	s := a.Kind
	if a.Threshold != "" {
		s += ":" + a.Threshold
	}
	s += " " + a.Status
	if a.Reason != "" {
		s += "/" + a.Reason
	}
	agent := a.AgentID
	if agent == "" {
		agent = "-"
	}
	return s + " " + agent + " @" + h.clock(a.At)
}

func (h *harness) clock(t time.Time) string {
	l := t.In(h.loc)
	s := l.Format("15:04:05")
	if ms := l.Nanosecond() / 1e6; ms != 0 {
		s += fmt.Sprintf(".%03d", ms)
	}
	if d := l.Format(time.DateOnly); d != baseDay {
		s = d + " " + s
	}
	return s
}

func (h *harness) rendered() []string {
	var out []string
	for _, a := range h.fx.Alerts {
		out = append(out, h.render(a))
	}
	return out
}

func (h *harness) waits() []string {
	var out []string
	for _, w := range h.fx.Waits {
		if w.Agent != "" {
			continue // the agent's set follows the shop's; TestAgentWaitingSet checks it
		}
		s := "remove"
		if w.Add {
			s = "add " + h.clock(time.UnixMilli(w.Start))
		}
		out = append(out, s)
	}
	return out
}

func nyRules() *Rules {
	r := pddRules()
	r.Hours = hours.MustNew(newYork, hours.Range{Start: 9 * 60, End: 12 * 60}, hours.Range{Start: 13 * 60, End: 18 * 60})
	return r
}

func lateRules() *Rules {
	r := pddRules()
	r.Hours = hours.MustNew(shanghai, hours.Range{Start: 8 * 60, End: 24 * 60})
	return r
}

func openAtRules() *Rules {
	r := pddRules()
	r.StartAtOpen = true
	return r
}

const (
	d24 = "2026-11-24 "
	d25 = "2026-11-25 "
)

var replyCases = []struct {
	name     string
	rules    func() *Rules
	perAgent bool
	ops      []op
	alerts   []string
	figures  map[string]int64
	waits    []string // checked when not nil
}{
	{
		name:    "buyer message a millisecond before opening starts nothing and counts nowhere",
		ops:     []op{buyer("07:59:59.999"), advance("09:00:00")},
		figures: figs(),
		waits:   []string{},
	},
	{
		name:    "buyer message at opening starts a wait; the breach fires once the clock is past the deadline",
		ops:     []op{buyer("08:00:00"), advance("08:03:00"), advance("08:03:00.001")},
		alerts:  alerts("reply_warning:3m firing - @08:02:00", "reply_breach:3m firing - @08:03:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1),
		waits:   []string{"add 08:00:00"},
	},
	{
		name:    "last instant of the window starts a wait that a reply after closing ends",
		ops:     []op{buyer("22:59:59.999"), human("23:00:10", "a7")},
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"ans30", 1, d24+"resp_ms", 10001, d24+"resp_n", 1),
		waits:   []string{"add 22:59:59.999", "remove"},
	},
	{
		name:    "buyer message at closing starts nothing",
		ops:     []op{buyer("23:00:00"), human("23:10:00", "a7"), advance("23:59:00")},
		figures: figs(),
		waits:   []string{},
	},
	{
		name:    "reply exactly at the threshold is in time",
		ops:     []op{buyer("10:00:00"), human("10:03:00", "a7"), advance("12:00:00")},
		alerts:  alerts("reply_warning:3m firing - @10:02:00", "reply_warning:3m resolved/replied a7 @10:03:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"resp_ms", 180000, d24+"resp_n", 1),
	},
	{
		name: "reply a millisecond after the threshold breaches, then resolves",
		ops:  []op{buyer("10:00:00"), human("10:03:00.001", "a7")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:3m resolved/replied a7 @10:03:00.001", "reply_breach:3m resolved/replied a7 @10:03:00.001"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"resp_ms", 180001, d24+"resp_n", 1),
	},
	{
		name: "bot and system messages never end a wait, but a bot's agent_id assigns the agent",
		ops:  []op{buyer("10:00:00"), bot("10:00:05", "a7"), system("10:01:00"), advance("10:05:00.001")},
		alerts: alerts("reply_warning:3m firing a7 @10:02:00", "reply_breach:3m firing a7 @10:03:00",
			"reply_warning:5m firing a7 @10:04:00", "reply_breach:5m firing a7 @10:05:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			"now a:a7:waiting", 1), // kept without per-agent figures: idle seats need it
	},
	{
		name:    "several buyer messages make one wait from the first",
		ops:     []op{buyer("10:00:00"), buyer("10:01:00"), buyer("10:02:30"), human("10:02:40", "a7")},
		alerts:  alerts("reply_warning:3m firing - @10:02:00", "reply_warning:3m resolved/replied a7 @10:02:40"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 3, d24+"ans30", 1, d24+"resp_ms", 160000, d24+"resp_n", 1),
		waits:   []string{"add 10:00:00", "remove"},
	},
	{
		name:    "a human reply stamped before the wait start ends nothing, but its agent was assigned first",
		ops:     []op{buyer("10:00:00"), human("09:59:00", "a7"), advance("10:03:00.001")},
		alerts:  alerts("reply_warning:3m firing a7 @10:02:00", "reply_breach:3m firing a7 @10:03:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, "now a:a7:waiting", 1),
	},
	{
		name: "blocked buyer leaves the day: figures net to zero, alerts resolved as excluded, the rest of the day ignored",
		ops: []op{buyer("10:00:00"), human("10:00:10", "a7"), buyer("10:30:00"), advance("10:33:00.001"),
			block("10:34:00"), buyer("11:00:00"), human("11:00:05", "a7"), advance("12:00:00")},
		alerts: alerts("reply_warning:3m firing a7 @10:32:00", "reply_breach:3m firing a7 @10:33:00",
			"reply_warning:3m resolved/excluded a7 @10:34:00", "reply_breach:3m resolved/excluded a7 @10:34:00"),
		figures: figs(),
		waits:   []string{"add 10:00:00", "remove", "add 10:30:00", "remove"},
	},
	{
		name:     "reported buyer leaves the day's per-agent figures too, and counts again the next day",
		perAgent: true,
		ops: []op{buyerOf("10:00:00", "a7"), advance("10:03:00.001"), human("10:04:00", "a7"), buyerOf("10:10:00", "a7"),
			report("10:11:00"), buyerOf(d25+"10:00:00", "a7"), human(d25+"10:00:20", "a8")},
		alerts: alerts("reply_warning:3m firing a7 @10:02:00", "reply_breach:3m firing a7 @10:03:00",
			"reply_warning:3m resolved/replied a7 @10:04:00", "reply_breach:3m resolved/replied a7 @10:04:00"),
		figures: figs("2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 ans30", 1, "2026-11-25 resp_ms", 20000,
			"2026-11-25 resp_n", 1, "2026-11-25 a:a7:consulting", 1, "2026-11-25 a:a7:msgs", 1, "2026-11-25 a:a8:ans30", 1,
			"2026-11-25 a:a8:resp_ms", 20000, "2026-11-25 a:a8:resp_n", 1),
	},
	{
		name:    "a block stamped before fired alerts' times retracts them instead of excluding them",
		ops:     []op{buyer("10:00:00"), advance("10:10:00"), block("10:02:30")},
		alerts:  alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00", "reply_warning:5m firing - @10:04:00", "reply_breach:5m firing - @10:05:00", "reply_warning:3m resolved/excluded - @10:02:30", "reply_breach:3m resolved/retracted - @10:02:30", "reply_warning:5m resolved/retracted - @10:02:30", "reply_breach:5m resolved/retracted - @10:02:30"),
		figures: figs(),
	},
	{
		name:     "transfer: the clock keeps running and later alerts and waiting go to the new agent",
		perAgent: true,
		ops:      []op{buyerOf("10:00:00", "a7"), transfer("10:02:30", "a8"), advance("10:05:00.001")},
		alerts: alerts("reply_warning:3m firing a7 @10:02:00", "reply_breach:3m firing a8 @10:03:00",
			"reply_warning:5m firing a8 @10:04:00", "reply_breach:5m firing a8 @10:05:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"a:a7:consulting", 1, d24+"a:a7:msgs", 1, d24+"a:a8:breached:3m", 1, d24+"a:a8:breached:5m", 1,
			"now a:a8:waiting", 1),
	},
	{
		name:     "a transfer read after the clock fired a breach due after it moves the agent's breach credit",
		perAgent: true,
		ops:      []op{buyerOf("10:00:00", "a7"), advance("10:05:00.001"), transfer("10:04:30", "a8")},
		alerts: alerts("reply_warning:3m firing a7 @10:02:00", "reply_breach:3m firing a7 @10:03:00",
			"reply_warning:5m firing a7 @10:04:00", "reply_breach:5m firing a7 @10:05:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"a:a7:consulting", 1, d24+"a:a7:msgs", 1, d24+"a:a7:breached:3m", 1, d24+"a:a8:breached:5m", 1,
			"now a:a8:waiting", 1),
	},
	{
		name: "a late reply retracts breaches while the wait is still open",
		ops:  []op{buyer("10:00:00"), advance("10:06:00"), human("10:02:59", "a7")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:5m firing - @10:04:00", "reply_breach:5m firing - @10:05:00",
			"reply_warning:3m resolved/replied a7 @10:02:59", "reply_breach:3m resolved/retracted a7 @10:02:59",
			"reply_warning:5m resolved/retracted a7 @10:02:59", "reply_breach:5m resolved/retracted a7 @10:02:59"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"resp_ms", 179000, d24+"resp_n", 1),
	},
	{
		name:     "a late reply inside a wait a later reply already ended corrects it",
		perAgent: true,
		ops:      []op{buyer("10:00:00"), human("10:06:00", "a7"), human("10:02:30", "a8")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:5m firing - @10:04:00", "reply_breach:5m firing - @10:05:00",
			"reply_warning:3m resolved/replied a7 @10:06:00", "reply_breach:3m resolved/replied a7 @10:06:00",
			"reply_warning:5m resolved/replied a7 @10:06:00", "reply_breach:5m resolved/replied a7 @10:06:00",
			"reply_breach:3m resolved/retracted a7 @10:02:30", "reply_warning:5m resolved/retracted a7 @10:02:30",
			"reply_breach:5m resolved/retracted a7 @10:02:30"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"resp_ms", 150000, d24+"resp_n", 1,
			d24+"a:a8:resp_ms", 150000, d24+"a:a8:resp_n", 1),
	},
	{
		name: "a buyer breached twice a day counts once; retracting one of the two keeps the count",
		ops: []op{buyer("10:00:00"), human("10:04:00", "a7"), buyer("11:00:00"), human("11:04:00", "a7"),
			human("11:02:30", "a7")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:3m resolved/replied a7 @10:04:00", "reply_breach:3m resolved/replied a7 @10:04:00",
			"reply_warning:3m firing a7 @11:02:00", "reply_breach:3m firing a7 @11:03:00",
			"reply_warning:3m resolved/replied a7 @11:04:00", "reply_breach:3m resolved/replied a7 @11:04:00",
			"reply_breach:3m resolved/retracted a7 @11:02:30"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 2, d24+"breached:3m", 1, d24+"resp_ms", 240000+150000, d24+"resp_n", 2),
	},
	{
		name: "a late reply leaves later messages waiting: they start the next wait",
		ops:  []op{buyer("10:00:00"), buyer("10:04:00"), advance("10:10:00"), human("10:02:00", "a7"), advance("10:10:00")},
		alerts: alerts("reply_warning:3m firing - @10:02:00", "reply_breach:3m firing - @10:03:00",
			"reply_warning:5m firing - @10:04:00", "reply_breach:5m firing - @10:05:00",
			"reply_warning:3m resolved/retracted - @10:02:00", "reply_breach:3m resolved/retracted - @10:02:00",
			"reply_warning:5m resolved/retracted - @10:02:00", "reply_breach:5m resolved/retracted - @10:02:00",
			"reply_warning:3m firing a7 @10:06:00", "reply_breach:3m firing a7 @10:07:00",
			"reply_warning:5m firing a7 @10:08:00", "reply_breach:5m firing a7 @10:09:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 2, d24+"breached:3m", 1, d24+"breached:5m", 1, d24+"resp_ms", 120000, d24+"resp_n", 1,
			"now a:a7:waiting", 1),
		waits: []string{"add 10:00:00", "remove", "add 10:04:00"},
	},
	{
		name:    "a late buyer message a reply already followed starts nothing",
		ops:     []op{buyer("10:00:00"), human("10:00:20", "a7"), buyer("10:00:10"), advance("11:00:00")},
		figures: figs(d24+"consulting", 1, d24+"msgs", 2, d24+"ans30", 2, d24+"resp_ms", 20000, d24+"resp_n", 1),
		waits:   []string{"add 10:00:00", "remove"},
	},
	{
		name: "today rolls over at shop-local midnight",
		ops:  []op{buyer("22:50:00"), human("22:50:10", "a7"), buyer(d25 + "08:10:00"), human(d25+"08:10:40", "a7")},
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"ans30", 1, d24+"resp_ms", 10000, d24+"resp_n", 1,
			"2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 resp_ms", 40000, "2026-11-25 resp_n", 1),
	},
	{
		name:   "a wait open at midnight fires long_no_reply and its response time counts on the start day",
		rules:  lateRules,
		ops:    []op{buyer("23:59:00"), human(d25+"00:00:30", "a7"), buyer(d25 + "08:05:00"), human(d25+"08:05:10", "a7")},
		alerts: alerts("long_no_reply firing - @2026-11-25 00:00:00", "long_no_reply resolved/replied a7 @2026-11-25 00:00:30"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"resp_ms", 90000, d24+"resp_n", 1,
			"2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 ans30", 1, "2026-11-25 resp_ms", 10000, "2026-11-25 resp_n", 1),
	},
	{
		name: "long no-reply at midnight and again after 24 h",
		ops:  []op{buyerOf("22:00:00", "a7"), advance(d25 + "21:59:59"), advance(d25 + "22:00:00.001"), human(d25+"22:10:00", "a8")},
		alerts: alerts("reply_warning:3m firing a7 @22:02:00", "reply_breach:3m firing a7 @22:03:00",
			"reply_warning:5m firing a7 @22:04:00", "reply_breach:5m firing a7 @22:05:00",
			"long_no_reply firing a7 @2026-11-25 00:00:00", "long_no_reply firing a7 @2026-11-25 22:00:00",
			"reply_warning:3m resolved/replied a8 @2026-11-25 22:10:00", "reply_breach:3m resolved/replied a8 @2026-11-25 22:10:00",
			"reply_warning:5m resolved/replied a8 @2026-11-25 22:10:00", "reply_breach:5m resolved/replied a8 @2026-11-25 22:10:00",
			"long_no_reply resolved/replied a8 @2026-11-25 22:10:00", "long_no_reply resolved/replied a8 @2026-11-25 22:10:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"breached:5m", 1,
			d24+"resp_ms", (24*60+10)*60000, d24+"resp_n", 1),
	},
	{
		name:  "New York split shift: the lunch gap starts nothing, the afternoon does",
		rules: nyRules,
		ops: []op{buyer("08:59:59.999"), buyer("12:30:00"), human("12:31:00", "a7"), buyer("13:00:00"),
			advance("13:03:00.001"), human("13:04:00", "a7"), buyer("18:00:00"), human("18:30:00", "a7")},
		alerts: alerts("reply_warning:3m firing a7 @13:02:00", "reply_breach:3m firing a7 @13:03:00",
			"reply_warning:3m resolved/replied a7 @13:04:00", "reply_breach:3m resolved/replied a7 @13:04:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1, d24+"resp_ms", 240000, d24+"resp_n", 1),
	},
	{
		name:    "start_at_open: a message before opening starts the clock at the opening and counts for that day",
		rules:   openAtRules,
		ops:     []op{buyer("07:00:00"), advance("07:30:00"), advance("08:00:00.001"), advance("08:03:00.001")},
		alerts:  alerts("reply_warning:3m firing - @08:02:00", "reply_breach:3m firing - @08:03:00"),
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"breached:3m", 1),
		waits:   []string{"add 08:00:00"},
	},
	{
		name:    "start_at_open: a reply before the opening answers the message and cancels the wait",
		rules:   openAtRules,
		ops:     []op{buyer("23:30:00"), human("23:31:00", "a7"), advance(d25 + "09:00:00")},
		figures: figs("2026-11-25 consulting", 1, "2026-11-25 msgs", 1, "2026-11-25 ans30", 1),
		waits:   []string{},
	},
	{
		name:    "30-second rate counts messages the first human reply answers within 30 s",
		ops:     []op{buyer("10:00:00"), buyer("10:00:20"), bot("10:00:21", ""), buyer("10:00:40"), human("10:00:50", "a7"), buyer("10:01:00"), human("10:01:31", "a7")},
		figures: figs(d24+"consulting", 1, d24+"msgs", 4, d24+"ans30", 2, d24+"resp_ms", 50000+31000, d24+"resp_n", 2),
	},
	{
		name:     "average response and per-agent figures",
		perAgent: true,
		ops:      []op{buyerOf("10:00:00", "a7"), human("10:01:00", "a7"), buyerOf("11:00:00", "a7"), human("11:00:30", "a8")},
		figures: figs(d24+"consulting", 1, d24+"msgs", 2, d24+"ans30", 1, d24+"resp_ms", 90000, d24+"resp_n", 2,
			d24+"a:a7:consulting", 1, d24+"a:a7:msgs", 2, d24+"a:a7:resp_ms", 60000, d24+"a:a7:resp_n", 1,
			d24+"a:a8:ans30", 1, d24+"a:a8:resp_ms", 30000, d24+"a:a8:resp_n", 1),
	},
	{
		name: "a repeated event id is a duplicate and changes nothing",
		ops: []op{withID(buyer("10:00:00"), "m1"), again(buyer("10:00:00"), "m1"), withID(human("10:00:10", "a7"), "r1"),
			again(human("10:00:10", "a7"), "r1"), again(buyer("10:00:30"), "m1")},
		figures: figs(d24+"consulting", 1, d24+"msgs", 1, d24+"ans30", 1, d24+"resp_ms", 10000, d24+"resp_n", 1),
		waits:   []string{"add 10:00:00", "remove"},
	},
}

func TestReplyRules(t *testing.T) {
	for _, c := range replyCases {
		t.Run(c.name, func(t *testing.T) {
			rules := pddRules
			if c.rules != nil {
				rules = c.rules
			}
			h := newHarness(t, rules(), c.perAgent)
			h.run(c.ops)
			if got := h.rendered(); !slices.Equal(got, c.alerts) {
				t.Errorf("alerts:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.alerts, "\n     "))
			}
			if got := h.figures(); !maps.Equal(got, c.figures) {
				t.Errorf("figures:\n got %v\nwant %v", sorted(got), sorted(c.figures))
			}
			if c.waits != nil {
				if got := h.waits(); !slices.Equal(got, c.waits) {
					t.Errorf("waits: got %q, want %q", got, c.waits)
				}
			}
			var anchors []string
			for _, o := range c.ops {
				if o.kind == "buyer" {
					anchors = append(anchors, strconv.FormatInt(clockAt(h.loc, o.at).UnixMilli(), 10))
				}
			}
			checkAlertFields(t, h, anchors)
		})
	}
}

func sorted(m map[string]int64) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}

// checkAlertFields checks what every alert must carry: an id derived from
// the condition (with the starting message's time among anchors when it is
// not the wait start), the firing severity on resolved records, and the
// shop's platform.
func checkAlertFields(t *testing.T, h *harness, anchors []string) {
	t.Helper()
	firing := map[string]alerting.Alert{}
	for _, a := range h.fx.Alerts {
		if a.ShopID != "s1" || a.BuyerID != "b1" || a.Platform != "pdd" || a.Since.IsZero() || a.Due.IsZero() || a.At.IsZero() {
			t.Errorf("alert %s lacks fields: %+v", h.render(a), a)
		}
		parts := []string{a.Kind, a.Threshold, "s1", "b1", strconv.FormatInt(a.Since.UnixMilli(), 10)}
		if a.Kind == alerting.KindLongNoReply {
			suffix := "24h"
			if a.Due.Sub(a.Since) != 24*time.Hour {
				suffix = "midnight"
			}
			parts = append(parts, suffix)
		}
		ok := a.ID == alerting.ID(parts...)
		for _, anchor := range anchors {
			ok = ok || (anchor != parts[4] && a.ID == alerting.ID(append(parts, "from", anchor)...))
		}
		if !ok {
			t.Errorf("alert %s: id %s is not derived from its condition", h.render(a), a.ID)
		}
		wantSev := alerting.Critical
		if a.Kind == alerting.KindReplyWarning {
			wantSev = alerting.Warning
		}
		if a.Severity != wantSev {
			t.Errorf("alert %s: severity %s, want %s", h.render(a), a.Severity, wantSev)
		}
		switch a.Status {
		case alerting.Firing:
			if !a.At.Equal(a.Due) && a.Kind != alerting.KindReplyWarning {
				t.Errorf("firing %s: at %s, due %s", h.render(a), a.At, a.Due)
			}
			firing[a.ID] = a
		case alerting.Resolved:
			f, ok := firing[a.ID]
			if !ok {
				t.Errorf("resolved %s has no firing record before it", h.render(a))
			} else if f.Kind != a.Kind || f.Threshold != a.Threshold || !f.Due.Equal(a.Due) || a.Reason == "" {
				t.Errorf("resolved %s does not match its firing record %s", h.render(a), h.render(f))
			}
		}
	}
}

var nextDueCases = []struct {
	name  string
	rules func() *Rules
	ops   []op
	want  string // "" when nothing is pending
}{
	{"new conversation", nil, nil, ""},
	{"waiting: the first warning", nil, []op{buyer("10:00:00")}, "10:02:00.001"},
	{"after the first warning: the first breach", nil, []op{buyer("10:00:00"), advance("10:02:00.001")}, "10:03:00.001"},
	{"clock exactly at a due time fires nothing", nil, []op{buyer("10:00:00"), advance("10:02:00")}, "10:02:00.001"},
	{"after every breach: midnight", nil, []op{buyer("10:00:00"), advance("10:05:00.001")}, "2026-11-25 00:00:00.001"},
	{"after midnight: 24 h", nil, []op{buyer("10:00:00"), advance(d25 + "00:00:00.001")}, "2026-11-25 10:00:00.001"},
	{"after 24 h: nothing more", nil, []op{buyer("10:00:00"), advance(d25 + "10:00:00.001")}, ""},
	{"replied: nothing", nil, []op{buyer("10:00:00"), human("10:01:00", "a7")}, ""},
	{"outside hours: nothing", nil, []op{buyer("23:30:00")}, ""},
	{"start_at_open: the opening", openAtRules, []op{buyer("07:00:00")}, "08:00:00.001"},
	{"start_at_open, clock started: the first warning", openAtRules, []op{buyer("07:00:00"), advance("08:00:00.001")}, "08:02:00.001"},
	{"a threshold no longer than warn_before has no warning", func() *Rules {
		r := pddRules()
		r.Thresholds = []time.Duration{30 * time.Second}
		return r
	}, []op{buyer("10:00:00")}, "10:00:30.001"},
}

func TestNextDue(t *testing.T) {
	for _, c := range nextDueCases {
		rules := pddRules
		if c.rules != nil {
			rules = c.rules
		}
		h := newHarness(t, rules(), false)
		h.run(c.ops)
		due, ok := h.e.NextDue(&h.c)
		got := ""
		if ok {
			got = h.clock(due)
		}
		if got != c.want {
			t.Errorf("%s: NextDue %q, want %q", c.name, got, c.want)
		}
		// Advancing to the reported time must do something; just before it, nothing.
		if ok {
			var fx Effects
			before := h.c
			h.e.Advance(&before, due.Add(-time.Millisecond), &fx)
			if len(fx.Alerts)+len(fx.Waits) != 0 {
				t.Errorf("%s: Advance before NextDue did something", c.name)
			}
			h.e.Advance(&h.c, due, &fx)
			if len(fx.Alerts)+len(fx.Waits) == 0 {
				t.Errorf("%s: Advance at NextDue did nothing", c.name)
			}
		}
	}
}

// script is a generated event sequence for one conversation.
type script struct {
	rules    *Rules
	perAgent bool
	events   []*event.Event
}

// genScript makes a random but plausible conversation over about two days:
// buyer messages inside and outside hours, human replies (some stamped
// earlier than events already sent), bot and system messages, transfers,
// the odd block or report, and repeated event ids.
func genScript(r *rand.Rand) script {
	var s script
	switch r.IntN(3) {
	case 0:
		s.rules = pddRules()
	case 1:
		s.rules = openAtRules()
	default:
		s.rules = lateRules()
	}
	s.perAgent = r.IntN(2) == 0
	agents := []string{"", "a7", "a8", "a9"}
	cur := clockAt(shanghai, "07:50:00")
	n := 20 + r.IntN(40)
	for i := 0; i < n; i++ {
		switch x := r.IntN(100); {
		case x < 3:
			cur = cur.Add(time.Duration(1+r.IntN(12)) * time.Hour)
		case x < 60:
			cur = cur.Add(time.Duration(r.IntN(90_000)) * time.Millisecond)
		default:
			cur = cur.Add(time.Duration(r.IntN(400_000)) * time.Millisecond)
		}
		ts := cur
		if r.IntN(100) < 20 {
			ts = cur.Add(-time.Duration(r.IntN(600_000)) * time.Millisecond)
		}
		ev := &event.Event{EventID: "e" + strconv.Itoa(i), Type: event.TypeMessage, TS: event.Time{Time: ts}, ShopID: "s1", BuyerID: "b1"}
		switch x := r.IntN(100); {
		case x < 4 && i > 0:
			dup := *s.events[r.IntN(len(s.events))]
			s.events = append(s.events, &dup)
			continue
		case x < 50:
			ev.Sender, ev.AgentID = event.SenderBuyer, agents[r.IntN(len(agents))]
		case x < 78:
			ev.Sender, ev.AgentID = event.SenderAgent, agents[1+r.IntN(len(agents)-1)]
		case x < 84:
			ev.Sender, ev.AgentID = event.SenderBot, agents[r.IntN(len(agents))]
		case x < 88:
			ev.Sender = event.SenderSystem
		case x < 97:
			ev.Type, ev.AgentID = event.TypeTransfer, agents[1+r.IntN(len(agents)-1)]
		case x < 99:
			ev.Type = event.TypeBuyerBlocked
		default:
			ev.Type = event.TypeBuyerReported
		}
		s.events = append(s.events, ev)
	}
	return s
}

// outcome is what a run leaves behind that must not depend on the clock.
type outcome struct {
	figures map[string]int64
	alerts  []string // alerts that stand (fired and not retracted) as "id=how it ended", sorted
	waiting string   // the buyer's final place in the waiting set: "out" or "in since <start>"
}

// play runs a script; advance, when not nil, picks partition clocks to
// advance to before each event (zero for none); encode passes the state
// through MarshalBinary and UnmarshalBinary after every step, as the
// pipeline does between batches.
func play(t testing.TB, s script, advance func(last time.Time) time.Time, encode bool) outcome {
	e := &Engine{Rules: func(string) *Rules { return s.rules }, PerAgent: s.perAgent}
	c := Conversation{Shop: "s1", Buyer: "b1"}
	var fx Effects
	var last time.Time
	for _, ev := range s.events {
		if advance != nil {
			if now := advance(last); !now.IsZero() {
				e.Advance(&c, now, &fx)
			}
		}
		e.Chat(&c, ev, &fx)
		if ev.TS.After(last) {
			last = ev.TS.Time
		}
		if encode {
			b, err := c.MarshalBinary()
			if err != nil {
				t.Fatalf("encoding after %s: %v", ev.EventID, err)
			}
			c = Conversation{Shop: "s1", Buyer: "b1"}
			if err := c.UnmarshalBinary(b); err != nil {
				t.Fatalf("decoding after %s: %v", ev.EventID, err)
			}
		}
	}
	e.Advance(&c, last.Add(72*time.Hour), &fx)

	o := outcome{figures: map[string]int64{}, waiting: "out"}
	for _, f := range fx.Figures {
		o.figures[f.Day+" "+f.Field] += f.Delta
	}
	maps.DeleteFunc(o.figures, func(_ string, v int64) bool { return v == 0 })
	// An alert stands when its last record is not a retraction: a wait
	// rebuilt from a re-sent old message may fire a retracted id again.
	lastReason := map[string]string{}
	for _, a := range fx.Alerts {
		lastReason[a.ID] = a.Reason
	}
	for id, reason := range lastReason {
		if reason != alerting.ReasonRetracted {
			o.alerts = append(o.alerts, id+"="+reason)
		}
	}
	slices.Sort(o.alerts)
	for _, w := range fx.Waits {
		if w.Agent != "" {
			continue
		}
		o.waiting = "out"
		if w.Add {
			o.waiting = "in since " + strconv.FormatInt(w.Start, 10)
		}
	}
	return o
}

// TestClockDoesNotChangeOutcome feeds the same events in one pass and with
// Advance calls at arbitrary clocks in between (behind, at or far ahead of
// the events): the figures and the alerts that stand must be the same. This
// is what makes a backlog replayed from Kafka equal to the live run. Every
// other run also passes the state through its encoding after each event.
// propertySeeds is how many generated scripts the property test runs.
var propertySeeds = uint64(2000)

func TestClockDoesNotChangeOutcome(t *testing.T) {
	for seed := uint64(0); seed < propertySeeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		s := genScript(r)
		want := play(t, s, nil, false)
		got := play(t, s, func(last time.Time) time.Time {
			if last.IsZero() || r.IntN(2) == 0 {
				return time.Time{}
			}
			if r.IntN(10) == 0 {
				return last.Add(time.Duration(r.IntN(30)) * time.Hour)
			}
			return last.Add(time.Duration(r.IntN(1_200_000)-120_000) * time.Millisecond)
		}, seed%2 == 0)
		if !maps.Equal(got.figures, want.figures) {
			t.Errorf("seed %d: figures with clock advances\n%v\nin one pass\n%v", seed, sorted(got.figures), sorted(want.figures))
		}
		if !slices.Equal(got.alerts, want.alerts) {
			t.Errorf("seed %d: standing alerts with clock advances %v, in one pass %v", seed, got.alerts, want.alerts)
		}
		if got.waiting != want.waiting {
			t.Errorf("seed %d: waiting set %q with clock advances, %q in one pass", seed, got.waiting, want.waiting)
		}
		if t.Failed() {
			for _, ev := range s.events {
				t.Logf("%s %s %s %s %s", ev.EventID, ev.TS.In(shanghai).Format("01-02 15:04:05.000"), ev.Type, ev.Sender, ev.AgentID)
			}
			t.Logf("rules: start_at_open=%v hours=%v per-agent=%v", s.rules.StartAtOpen, s.rules.Hours.Ranges, s.perAgent)
			return
		}
	}
}

func BenchmarkChatMessage(b *testing.B) {
	r := pddRules()
	e := &Engine{Rules: func(string) *Rules { return r }, PerAgent: true}
	start := clockAt(shanghai, "10:00:00")
	evs := []*event.Event{
		{Type: event.TypeMessage, Sender: event.SenderBuyer, AgentID: "a7", ShopID: "s1", BuyerID: "b1"},
		{Type: event.TypeMessage, Sender: event.SenderAgent, AgentID: "a7", ShopID: "s1", BuyerID: "b1"},
	}
	ids := make([]string, 1<<16) // more than a conversation remembers: never a duplicate
	for i := range ids {
		ids[i] = "evt-" + strconv.Itoa(i)
	}
	c := Conversation{Shop: "s1", Buyer: "b1"}
	var fx Effects
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%2]
		ev.EventID = ids[i%len(ids)]
		ev.TS = event.Time{Time: start.Add(time.Duration(i) * 20 * time.Second)}
		e.Chat(&c, ev, &fx)
		fx.Reset()
	}
}

// BenchmarkChatLate is a conversation of 40 events in which every fourth
// one arrives a minute late, so that the conversation is derived again.
func BenchmarkChatLate(b *testing.B) {
	r := pddRules()
	e := &Engine{Rules: func(string) *Rules { return r }, PerAgent: true}
	start := clockAt(shanghai, "10:00:00")
	evs := make([]*event.Event, 40)
	for i := range evs {
		ev := &event.Event{EventID: "evt-" + strconv.Itoa(i), Type: event.TypeMessage, Sender: event.SenderBuyer, ShopID: "s1", BuyerID: "b1",
			TS: event.Time{Time: start.Add(time.Duration(i) * 20 * time.Second)}}
		if i%2 == 1 {
			ev.Sender, ev.AgentID = event.SenderAgent, "a7"
		}
		evs[i] = ev
	}
	for i := 3; i < len(evs); i += 4 {
		evs[i-1], evs[i] = evs[i], evs[i-1]
		evs[i-2], evs[i-1] = evs[i-1], evs[i-2]
	}
	var fx Effects
	b.ReportAllocs()
	for b.Loop() {
		c := Conversation{Shop: "s1", Buyer: "b1"}
		for _, ev := range evs {
			e.Chat(&c, ev, &fx)
		}
		fx.Reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
