package app

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/sim"
)

// Invariant 6 on a simulated day: `replay` of the day with every
// conversation's records arriving up to 5 minutes late, in any order, and
// 3 % of them sent twice gives the figures and the standing alerts of the
// day in event-time order.
func TestReplayOfReorderedDayEqualsReplay(t *testing.T) {
	var recs []sim.Record
	err := sim.Generate(sim.Options{Seed: 23, Shops: 3, Agents: 3, Rate: 3, Start: sh("09:00:00"), End: sh("12:00:00"),
		Location: shanghai}, func(r sim.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Metrics.PerAgent = true
	at := sh("12:10:00")
	want := replayRecords(t, cfg, recs, at)
	wantAlerts, err := scenario.Outcome(want.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 3; seed++ {
		arrived := sim.Disorder{Seed: seed, Within: 5 * time.Minute, Duplicates: 0.03}.Arrival(recs)
		late := 0
		latest := map[string]time.Time{}
		for _, r := range arrived {
			if r.Topic == event.Chat && r.Event.TS.Before(latest[r.Key]) {
				late++
			}
			if r.Event.TS.After(latest[r.Key]) {
				latest[r.Key] = r.Event.TS.Time
			}
		}
		got := replayRecords(t, cfg, arrived, at)
		if late == 0 || got.Events <= want.Events {
			t.Fatalf("seed %d: %d records arrived after a later one of their conversation, %d events against %d: nothing to show",
				seed, late, got.Events, want.Events)
		}
		if g, w := gaugesOf(got.Shops), gaugesOf(want.Shops); !maps.Equal(g, w) {
			t.Errorf("seed %d: figures in arrival order differ from event-time order:\n%s", seed, gaugeDiff(g, w))
		}
		gotAlerts, err := scenario.Outcome(got.Alerts)
		if err != nil {
			t.Fatal(err)
		}
		if err := scenario.SameOutcome(scenario.Standing(gotAlerts), scenario.Standing(wantAlerts)); err != nil {
			t.Errorf("seed %d: standing alerts: %v", seed, err)
		}
		t.Logf("seed %d: %d records (%d out of order in their conversation), %d alert records (%d in ts order); 3m rate %s",
			seed, got.Events, late, len(got.Alerts), len(want.Alerts), strconv.FormatFloat(got.Shops[0].ReplyRate["3m"], 'f', 3, 64))
	}
}

func gaugeDiff(got, want map[string]float64) string {
	var out []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			out = append(out, fmt.Sprintf("%s = %v, want %v", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s = %v, unexpected", k, v))
		}
	}
	sort.Strings(out)
	return fmt.Sprint(out)
}

// d25 is a shop-local time on the day after the test day.
func d25(hms string) time.Time { return sh(hms).AddDate(0, 0, 1) }

func chatMsg(id, shop, buyer, sender, agent string, ts time.Time) event.Event {
	return event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: ts}, ShopID: shop, BuyerID: buyer,
		Sender: sender, AgentID: agent}
}

// reorderedDay is the minimal reordering cases, each a buyer of shop r on
// 2026-11-25, in arrival order; shop m's buyer has a wait open since the
// evening before. With the figures and standing alerts the rules give.
func reorderedDay() ([]event.Event, map[string]float64, map[string]string) {
	id := func(s string) string { return "ro-" + s }
	evs := []event.Event{
		// b1: a reply read before the message it answers: 3m and 5m breaches, 471 s.
		chatMsg(id("b1-2"), "r", "b1", "agent", "a", d25("10:07:51")),
		chatMsg(id("b1-1"), "r", "b1", "buyer", "", d25("10:00:00")),
		// b2: the earlier message read second: the wait starts at 10:00; a 3m breach, 210 s.
		chatMsg(id("b2-2"), "r", "b2", "buyer", "", d25("10:01:00")),
		chatMsg(id("b2-1"), "r", "b2", "buyer", "", d25("10:00:00")),
		chatMsg(id("b2-3"), "r", "b2", "agent", "a", d25("10:03:30")),
		// b3: the reply that ended the first wait read last: 10:05→10:15 breaches at 3m and 5m; 60 s and 600 s.
		chatMsg(id("b3-1"), "r", "b3", "buyer", "", d25("10:00:00")),
		chatMsg(id("b3-3"), "r", "b3", "buyer", "", d25("10:05:00")),
		chatMsg(id("b3-4"), "r", "b3", "agent", "a", d25("10:15:00")),
		chatMsg(id("b3-2"), "r", "b3", "agent", "a", d25("10:01:00")),
		// b4: the earlier reply read second answers in 20 s.
		chatMsg(id("b4-1"), "r", "b4", "buyer", "", d25("10:00:00")),
		chatMsg(id("b4-3"), "r", "b4", "agent", "a", d25("10:01:00")),
		chatMsg(id("b4-2"), "r", "b4", "agent", "a", d25("10:00:20")),
		// b5: a reply in the same millisecond, read first, answers the message.
		chatMsg(id("b5-2"), "r", "b5", "agent", "a", d25("10:00:00")),
		chatMsg(id("b5-1"), "r", "b5", "buyer", "", d25("10:00:00")),
		// m/b1: waiting since 22:00 the day before; the day's first message starts the day's wait.
		chatMsg(id("m1-1"), "m", "b1", "buyer", "", sh("22:00:00")),
		chatMsg(id("m1-2"), "m", "b1", "buyer", "", d25("10:00:00")),
	}
	// b6: 66 events, then the first id again 65 events later, at another time.
	for i := 0; i < 33; i++ {
		ts := d25("10:20:00").Add(time.Duration(i) * time.Minute)
		evs = append(evs, chatMsg(id("b6-q"+strconv.Itoa(i)), "r", "b6", "buyer", "", ts),
			chatMsg(id("b6-a"+strconv.Itoa(i)), "r", "b6", "agent", "a", ts.Add(5*time.Second)))
	}
	evs = append(evs, chatMsg(id("b6-q0"), "r", "b6", "buyer", "", d25("11:30:00")))

	figures := map[string]float64{
		"replywatch_consulting_buyers{shop=r}":                  6,
		"replywatch_reply_breached_buyers{shop=r,threshold=3m}": 3,
		"replywatch_reply_breached_buyers{shop=r,threshold=5m}": 2,
		"replywatch_reply_rate{shop=r,threshold=3m}":            0.5,
		"replywatch_reply_rate{shop=r,threshold=5m}":            4.0 / 6,
		"replywatch_buyer_messages{shop=r}":                     7 + 33,
		"replywatch_response_30s_rate{shop=r}":                  (2 + 33) / 40.0,
		"replywatch_avg_response_seconds{shop=r}":               (471 + 210 + 60 + 600 + 20 + 0 + 33*5) / 39.0,
		"replywatch_waiting_buyers{shop=r}":                     0,
		"replywatch_consulting_buyers{shop=m}":                  1,
		"replywatch_reply_breached_buyers{shop=m,threshold=3m}": 1,
		"replywatch_reply_breached_buyers{shop=m,threshold=5m}": 1,
		"replywatch_buyer_messages{shop=m}":                     1,
		"replywatch_waiting_buyers{shop=m}":                     1,
	}
	w, b := alerting.KindReplyWarning, alerting.KindReplyBreach
	alert := func(kind, th, shop, buyer string, start time.Time, extra ...string) string {
		return alerting.ID(append([]string{kind, th, shop, buyer, strconv.FormatInt(start.UnixMilli(), 10)}, extra...)...)
	}
	replied := alerting.ReasonReplied
	alerts := map[string]string{}
	for _, c := range []struct {
		buyer string
		start time.Time
		ths   []string
	}{{"b1", d25("10:00:00"), []string{"3m", "5m"}}, {"b2", d25("10:00:00"), []string{"3m"}}, {"b3", d25("10:05:00"), []string{"3m", "5m"}}} {
		for _, th := range c.ths {
			alerts[alert(w, th, "r", c.buyer, c.start)] = replied
			alerts[alert(b, th, "r", c.buyer, c.start)] = replied
		}
	}
	for _, start := range []time.Time{sh("22:00:00"), d25("10:00:00")} {
		for _, th := range []string{"3m", "5m"} {
			alerts[alert(w, th, "m", "b1", start)] = ""
			alerts[alert(b, th, "m", "b1", start)] = ""
		}
	}
	alerts[alert(alerting.KindLongNoReply, "", "m", "b1", sh("22:00:00"), "midnight")] = ""
	return evs, figures, alerts
}

// The minimal reordering cases through the pipeline (kfake, redis-server),
// read as a backlog: the alerts and figures the rules give for the events
// in ts order, and the far repeated id counted as a duplicate.
func TestReorderedCasesThroughPipeline(t *testing.T) {
	e := newEnv(t)
	evs, figures, alerts := reorderedDay()
	produce(t, e.broker, "cs.chat", evs...)
	cfg := testConfig(t, e.broker, e.redis, "g1")
	cfg.Shops = map[string]config.ShopOverride{"r": {}, "m": {}}
	r := start(t, cfg, &fakeClock{t: d25("12:00:00")}, "r1")
	eventually(t, 30*time.Second, "figures", func() error {
		m := scrape(t, r.app.Addr())
		if got := m["replywatch_events_total{result=duplicate,topic=cs.chat}"]; got != 1 {
			return fmt.Errorf("%v duplicates, want 1", got)
		}
		return expectFigures(m, figures)
	})
	eventually(t, 10*time.Second, "alerts", func() error {
		got, err := outcome(readAlerts(t, e.broker))
		if err != nil {
			return err
		}
		return sameOutcome(scenario.Standing(got), alerts)
	})
}

// Invariant 3 with reordered input: the hand-counted day fed live, each
// record arriving up to 90 s after its event time (so replies come after
// breaches they prevent, and messages after later ones), gives the
// hand-counted figures and standing alerts.
func TestLiveReorderedEqualsBacklog(t *testing.T) {
	e := newEnv(t)
	r := rand.New(rand.NewPCG(3, 4))
	type arrival struct {
		at time.Time
		ev event.Event
	}
	var arrivals []arrival
	for _, ev := range day() {
		arrivals = append(arrivals, arrival{ev.TS.Add(time.Duration(r.IntN(90_000)) * time.Millisecond), ev})
	}
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return a.at.Compare(b.at) })
	reordered := 0
	for i := 1; i < len(arrivals); i++ {
		if arrivals[i].ev.TS.Before(arrivals[i-1].ev.TS.Time) {
			reordered++
		}
	}
	if reordered == 0 {
		t.Fatal("nothing arrives out of order")
	}
	clock := &fakeClock{t: arrivals[0].at.Add(-time.Minute)}
	run := start(t, testConfig(t, e.broker, e.redis, "live"), clock, "live")
	eventually(t, 20*time.Second, "joined", func() error {
		if !run.app.Processor.Joined() {
			return errors.New("not joined")
		}
		return nil
	})
	for i, a := range arrivals {
		for clock.Now().Before(a.at) {
			timersFiredAt(t, run, clock, minTime(clock.Now().Add(30*time.Second), a.at))
		}
		produce(t, e.broker, "cs.chat", a.ev)
		want := float64(i + 1)
		eventually(t, 10*time.Second, "event applied", func() error {
			if got := scrape(t, run.app.Addr())["replywatch_events_total{result=applied,topic=cs.chat}"]; got != want {
				return fmt.Errorf("applied %v of %v", got, want)
			}
			return nil
		})
	}
	for clock.Now().Before(endOfDay) {
		timersFiredAt(t, run, clock, minTime(clock.Now().Add(time.Minute), endOfDay))
	}
	waitForDay(t, e.broker, run.app.Addr())
	// The late records did change what was already out: an alert fired
	// before the reply that prevents it was read, and was retracted.
	retracted := 0
	for _, a := range readAlerts(t, e.broker) {
		if a.Reason == alerting.ReasonRetracted {
			retracted++
		}
	}
	if retracted == 0 {
		t.Error("no alert was retracted: the arrival order changed nothing that was out")
	}
}
