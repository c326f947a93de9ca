package app

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/text"
)

// corpusEvents are the labelled corpus's messages as chat events of shop
// s1 on the test day, each from its own buyer, one second apart from
// 10:00, agents' messages by agent a1.
func corpusEvents(t *testing.T) []event.Event {
	t.Helper()
	f, err := os.Open("../text/testdata/corpus.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []event.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		parts := strings.SplitN(l, "\t", 3)
		msg := parts[2]
		if strings.Contains(msg, `\u`) {
			if msg, err = strconv.Unquote(`"` + msg + `"`); err != nil {
				t.Fatal(err)
			}
		}
		i := len(evs)
		ev := event.Event{EventID: fmt.Sprintf("t%d", i), Type: event.TypeMessage, TS: event.Time{Time: sh("10:00:00").Add(time.Duration(i) * time.Second)},
			ShopID: "s1", BuyerID: fmt.Sprintf("tb%d", i), Sender: parts[0], AgentID: "a1", Text: msg}
		evs = append(evs, ev)
	}
	return evs
}

var textKinds = []string{alerting.KindAbusiveReply, alerting.KindOffPlatformTrade, alerting.KindComplaintRisk}

// textAlerts keeps the text rules' alerts, by id.
func textAlerts(as []alerting.Alert) map[string]alerting.Alert {
	out := map[string]alerting.Alert{}
	for _, a := range as {
		if slices.Contains(textKinds, a.Kind) {
			out[a.ID] = a
		}
	}
	return out
}

// The corpus produced as chat through Kafka and Redis gives the alerts and
// flagged-message figures the text rules give each message on its own; the
// same events again (new offsets, same ids) and the same records re-read by
// a new group give no new alert and change no figure.
func TestTextRulesOverKafkaAndRedis(t *testing.T) {
	e := newEnv(t)
	evs := corpusEvents(t)
	cfg := testConfig(t, e.broker, e.redis, "text")

	// What the rules give each message, computed without the pipeline.
	textRules, err := cfg.TextRules()
	if err != nil {
		t.Fatal(err)
	}
	te := &detectors.TextEngine{Text: textRules, Rules: cfg.Rules(), PerAgent: true}
	want := map[string]alerting.Alert{}
	wantFig := map[string]float64{}
	for _, c := range text.Categories {
		wantFig["replywatch_flagged_messages{category="+string(c)+",shop=s1}"] = 0
	}
	for i := range evs {
		var fx detectors.Effects
		te.Message(&detectors.TextState{}, "s1", evs[i].BuyerID, &evs[i], &fx)
		for _, a := range fx.Alerts {
			want[a.ID] = a
		}
		for _, f := range fx.Figures {
			if c, ok := strings.CutPrefix(f.Field, "flag:"); ok {
				wantFig["replywatch_flagged_messages{category="+c+",shop=s1}"] += float64(f.Delta)
			} else if c, ok := strings.CutPrefix(f.Field, "a:a1:flag:"); ok {
				wantFig["replywatch_agent_flagged_messages{agent=a1,category="+c+",shop=s1}"] += float64(f.Delta)
			}
		}
	}
	// The corpus holds positives of every category.
	for _, c := range text.Categories {
		if wantFig["replywatch_flagged_messages{category="+string(c)+",shop=s1}"] < 10 {
			t.Fatalf("the corpus flags fewer than 10 messages as %s", c)
		}
	}
	seed := "就这么多点钱，你还想买到多好的"
	seedID := ""
	for i, ev := range evs {
		if ev.Text == seed {
			seedID = alerting.ID(alerting.KindAbusiveReply, "s1", evs[i].BuyerID, ev.EventID, "")
		}
	}
	if a, ok := want[seedID]; !ok || a.Category != "sarcasm" {
		t.Fatalf("the seed example is not flagged as sarcasm: %+v", a)
	}

	produce(t, e.broker, "cs.chat", evs...)
	clock := &fakeClock{t: sh("12:00:00")}
	r := start(t, cfg, clock, "r1")
	check := func(r *running) error {
		if err := expectFigures(scrape(t, r.app.Addr()), wantFig); err != nil {
			return err
		}
		got := textAlerts(readAlerts(t, e.broker))
		if len(got) != len(want) {
			return fmt.Errorf("%d text alerts, want %d", len(got), len(want))
		}
		for id, w := range want {
			g, ok := got[id]
			if !ok {
				return fmt.Errorf("alert %s (%s %s %q) missing", id, w.Kind, w.Category, w.Term)
			}
			if g.Kind != w.Kind || g.Category != w.Category || g.Term != w.Term || g.Excerpt != w.Excerpt ||
				g.Severity != w.Severity || g.Reason != w.Reason || !g.At.Equal(w.At) || g.AgentID != "a1" {
				return fmt.Errorf("alert %s is %+v, want %+v", id, g, w)
			}
			if !strings.Contains(g.Summary, g.Excerpt) {
				return fmt.Errorf("alert %s summary %q does not quote its excerpt", id, g.Summary)
			}
		}
		return nil
	}
	eventually(t, 30*time.Second, "text alerts and figures", func() error { return check(r) })
	// The conversations' alert records; the shop's effective_reply_risk
	// (no one here answers a buyer) is raised again, with the same id, by
	// each replica that takes the reporter lease, and is left out.
	convRecords := func() (n int, ids map[string]bool) {
		ids = map[string]bool{}
		for _, a := range readAlerts(t, e.broker) {
			if a.Kind != alerting.KindEffectiveReplyRisk {
				n++
				ids[a.ID] = true
			}
		}
		return n, ids
	}
	// The reply rules' breaches are written too: wait until nothing more comes.
	var records int
	var ids map[string]bool
	eventually(t, 30*time.Second, "alerts settled", func() error {
		n, _ := convRecords()
		var again int
		if again, ids = convRecords(); again != n {
			return fmt.Errorf("alert records still coming: %d, then %d", n, again)
		}
		records = again
		return nil
	})

	produce(t, e.broker, "cs.chat", evs...) // the same event ids again
	eventually(t, 20*time.Second, "duplicates counted", func() error {
		if got := scrape(t, r.app.Addr())["replywatch_events_total{result=duplicate,topic=cs.chat}"]; got != float64(len(evs)) {
			return fmt.Errorf("duplicates = %v, want %d", got, len(evs))
		}
		return nil
	})
	r.stop(t)
	r2 := start(t, testConfig(t, e.broker, e.redis, "text2"), clock, "r2")
	eventually(t, 20*time.Second, "second group caught up", func() error {
		if scrape(t, r2.app.Addr())["replywatch_owned_partitions{topic=cs.chat}"] != 4 {
			return errors.New("partitions not owned yet")
		}
		return check(r2)
	})
	after, idsAfter := convRecords()
	if after != records {
		t.Errorf("alert records went from %d to %d after redelivery", records, after)
	}
	for id := range idsAfter {
		if !ids[id] {
			t.Errorf("a new alert id %s after redelivery", id)
		}
	}
}
