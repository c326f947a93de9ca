package detectors

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/text"
)

func textEngine(t *testing.T, perfAfter int) *TextEngine {
	t.Helper()
	lex, err := text.Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := text.Compile(lex)
	if err != nil {
		t.Fatal(err)
	}
	tr := &TextRules{Matcher: m, PerfunctoryAlertAfter: perfAfter}
	rules := pddRules()
	return &TextEngine{
		Text:     func(string) *TextRules { return tr },
		Rules:    func(string) *Rules { return rules },
		PerAgent: true,
	}
}

// textMsg is one message of a text rule script and what it must give:
// alerts as "kind/reason:category:term", figures as "field+1".
type textMsg struct {
	sender, agent, at, text string
	alerts, figures         []string
}

var textCases = []struct {
	name      string
	perfAfter int
	msgs      []textMsg
}{
	{"abuse alerts critical with its term", 0, []textMsg{
		{"agent", "a1", "10:00:00", "你是不是傻逼啊", []string{"abusive_reply/:abuse:傻逼"}, []string{"flag:abuse+1", "a:a1:flag:abuse+1"}},
	}},
	{"a threat outranks abuse in one message, both are counted", 0, []textMsg{
		{"agent", "a1", "10:00:00", "傻逼，你给我等着", []string{"abusive_reply/:threat:你给我等着"},
			[]string{"flag:threat+1", "a:a1:flag:threat+1", "flag:abuse+1", "a:a1:flag:abuse+1"}},
	}},
	{"off-platform trade", 0, []textMsg{
		{"agent", "a1", "10:00:00", "加 V 信：abc", []string{"off_platform_trade/:off_platform:加v"}, []string{"flag:off_platform+1", "a:a1:flag:off_platform+1"}},
		{"agent", "a1", "10:01:00", "平台内联系就可以，不用加微信", nil, nil},
	}},
	{"buyer complaint intent, never judged for abuse", 0, []textMsg{
		{"buyer", "a1", "10:00:00", "客服骂我傻逼，我要投诉", []string{"complaint_risk/:complaint_intent:投诉"}, []string{"flag:complaint_intent+1", "a:a1:flag:complaint_intent+1"}},
		{"buyer", "", "10:00:05", "我不会给差评的", nil, nil},
	}},
	{"filler reply is perfunctory", 0, []textMsg{
		{"agent", "a1", "10:00:00", "嗯。", []string{"abusive_reply/perfunctory:perfunctory:嗯"}, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"the third same reply within 10 min is perfunctory", 0, []textMsg{
		{"agent", "a1", "10:00:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:04:00", "亲，请耐心等待！", nil, nil},
		{"agent", "a1", "10:09:59", "亲 请耐心等待", []string{"abusive_reply/perfunctory:perfunctory:(same reply 3 times in 10 min)"},
			[]string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"repeats are judged by event time: a late reply makes an earlier-arrived one the third", 0, []textMsg{
		{"agent", "a1", "10:09:59", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:00:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:04:00", "亲，请耐心等待！", []string{"abusive_reply/perfunctory:perfunctory:(same reply 3 times in 10 min)"},
			[]string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"newer replies read first do not push out the same replies a late one repeats", 0, []textMsg{
		{"agent", "a1", "10:01:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:02:00", "亲，两件包邮的哦", nil, nil},
		{"agent", "a1", "10:00:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:05:00", "亲亲，现货的哦", nil, nil},
		{"agent", "a1", "10:05:30", "亲，两件包邮的哦", nil, nil},
		{"agent", "a1", "10:04:00", "亲，请耐心等待", []string{"abusive_reply/perfunctory:perfunctory:(same reply 3 times in 10 min)"},
			[]string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"other replies between do not hide the third same reply within 10 min", 0, []textMsg{
		{"agent", "a1", "10:00:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:01:00", "亲，两件包邮的哦", nil, nil},
		{"agent", "a1", "10:02:00", "亲亲，现货的哦", nil, nil},
		{"agent", "a1", "10:03:00", "亲，今天下单48小时内发货", nil, nil},
		{"agent", "a1", "10:04:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:05:00", "亲，请耐心等待", []string{"abusive_reply/perfunctory:perfunctory:(same reply 3 times in 10 min)"},
			[]string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"a reply up to the allowed lateness late repeats those before it in event time", 0, []textMsg{
		{"agent", "a1", "10:00:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:01:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:30:00", "亲，两件包邮的哦", nil, nil},
		{"agent", "a1", "10:05:00", "亲，请耐心等待", []string{"abusive_reply/perfunctory:perfunctory:(same reply 3 times in 10 min)"},
			[]string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"the same reply spread over more than 10 min is not", 0, []textMsg{
		{"agent", "a1", "10:00:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:06:00", "亲，请耐心等待", nil, nil},
		{"agent", "a1", "10:16:01", "亲，请耐心等待", nil, nil},
	}},
	{"with an allowance perfunctory replies are only counted, per agent-day", 2, []textMsg{
		{"agent", "a1", "10:00:00", "嗯", nil, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
		{"agent", "a1", "10:01:00", "哦", nil, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
		{"agent", "a1", "10:02:00", "？", nil, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
		{"agent", "a1", "2026-11-25 10:00:00", "嗯", nil, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}}, // a new day
	}},
	{"fillers one after another keep their own terms", 0, []textMsg{
		{"agent", "a1", "10:00:00", "嗯嗯", []string{"abusive_reply/perfunctory:perfunctory:嗯嗯"}, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
		{"agent", "a1", "10:00:01", "哦", []string{"abusive_reply/perfunctory:perfunctory:哦"}, []string{"flag:perfunctory+1", "a:a1:flag:perfunctory+1"}},
	}},
	{"bots and images are not judged", 0, []textMsg{
		{"bot", "", "10:00:00", "嗯", nil, nil},
		{"agent", "a1", "10:00:01", "", nil, nil},
	}},
}

func TestTextRules(t *testing.T) {
	for _, c := range textCases {
		t.Run(c.name, func(t *testing.T) {
			e := textEngine(t, c.perfAfter)
			var st TextState
			var kept []alerting.Alert // every alert of the script, checked again at its end
			var keptWant []string
			for i, m := range c.msgs {
				ts := clockAt(shanghai, m.at)
				ev := &event.Event{EventID: fmt.Sprintf("e%d", i), Type: event.TypeMessage, TS: event.Time{Time: ts},
					ShopID: "s1", BuyerID: "b1", Sender: m.sender, AgentID: m.agent, Text: m.text}
				var fx Effects
				e.Message(&st, "s1", "b1", ev, &fx)
				var alerts, figs []string
				for _, a := range fx.Alerts {
					alerts = append(alerts, a.Kind+"/"+a.Reason+":"+a.Category+":"+a.Term)
					if strings.HasPrefix(a.Term, "(same reply") {
						// A repeat's id and time are those of the message that repeats.
						if a.At.IsZero() || a.ID == alerting.ID(a.Kind, "s1", "b1", ev.EventID, a.Reason) {
							t.Errorf("message %d: repeat alert %+v", i, a)
						}
					} else if a.ID != alerting.ID(a.Kind, "s1", "b1", ev.EventID, a.Reason) || a.AgentID != m.agent || !a.At.Equal(ts) {
						t.Errorf("message %d: alert %+v", i, a)
					}
					if want := map[string]string{alerting.KindAbusiveReply: alerting.Critical, alerting.KindOffPlatformTrade: alerting.Critical,
						alerting.KindComplaintRisk: alerting.Critical}[a.Kind]; a.Reason == "" && a.Severity != want {
						t.Errorf("message %d: %s has severity %s", i, a.Kind, a.Severity)
					}
					if len([]rune(a.Excerpt)) > text.ExcerptRunes || a.Excerpt == "" {
						t.Errorf("message %d: excerpt %q", i, a.Excerpt)
					}
				}
				for _, f := range fx.Figures {
					if f.Shop != "s1" {
						t.Errorf("message %d: figure %+v", i, f)
					}
					figs = append(figs, fmt.Sprintf("%s%+d", f.Field, f.Delta))
				}
				if !slices.Equal(alerts, m.alerts) {
					t.Errorf("message %d %q: alerts %v, want %v", i, m.text, alerts, m.alerts)
				}
				kept, keptWant = append(kept, fx.Alerts...), append(keptWant, m.alerts...)
				slices.Sort(figs)
				want := slices.Clone(m.figures)
				slices.Sort(want)
				if !slices.Equal(figs, want) {
					t.Errorf("message %d %q: figures %v, want %v", i, m.text, figs, want)
				}
			}
			// Later messages leave earlier alerts as they were (no shared buffers).
			var again []string
			for _, a := range kept {
				again = append(again, a.Kind+"/"+a.Reason+":"+a.Category+":"+a.Term)
			}
			if !slices.Equal(again, keptWant) {
				t.Errorf("alerts after the script: %v, want %v", again, keptWant)
			}
		})
	}
}

// TestChatStateCodec: the text state survives encoding; a conversation
// encoded before text rules existed reads back as a ChatState.
func TestChatStateCodec(t *testing.T) {
	e := textEngine(t, 0)
	cs := ChatState{Conv: Conversation{Shop: "s1", Buyer: "b1"}}
	eng := &Engine{Rules: func(string) *Rules { return pddRules() }}
	for i, s := range []string{"亲，请耐心等待", "嗯", "亲，请耐心等待"} {
		ev := &event.Event{EventID: fmt.Sprint(i), Type: event.TypeMessage, TS: event.Time{Time: clockAt(shanghai, "10:00:0"+fmt.Sprint(i))},
			ShopID: "s1", BuyerID: "b1", Sender: "agent", AgentID: "a1", Text: s}
		var fx Effects
		eng.Chat(&cs.Conv, ev, &fx)
		e.Message(&cs.Text, "s1", "b1", ev, &fx)
	}
	b, err := cs.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back := ChatState{Conv: Conversation{Shop: "s1", Buyer: "b1"}}
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back.Text) != fmt.Sprint(cs.Text) {
		t.Errorf("text state %+v, want %+v", back.Text, cs.Text)
	}
	b2, _ := back.MarshalBinary()
	if string(b2) != string(b) {
		t.Error("re-encoding differs")
	}
	// The third same reply is recognised after the round trip.
	ev := &event.Event{EventID: "x", Type: event.TypeMessage, TS: event.Time{Time: clockAt(shanghai, "10:00:05")},
		Sender: "agent", AgentID: "a1", Text: "亲，请耐心等待"}
	var fx Effects
	e.Message(&back.Text, "s1", "b1", ev, &fx)
	if len(fx.Alerts) != 1 || fx.Alerts[0].Reason != alerting.ReasonPerfunctory {
		t.Errorf("after a round trip: %+v", fx.Alerts)
	}

	old, err := cs.Conv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var fromOld ChatState
	if err := fromOld.UnmarshalBinary(old); err != nil || !fromOld.Text.Empty() {
		t.Errorf("a bare conversation encoding: %v, %+v", err, fromOld.Text)
	}
	for _, n := range []int{1, 2, 5, len(b) - len(old) - 1} {
		if err := new(ChatState).UnmarshalBinary(b[:n]); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
}

// TestRepeatOrderFree: the same three replies in any arrival order give
// one repeat alert with the same id, time and figures.
func TestRepeatOrderFree(t *testing.T) {
	e := textEngine(t, 0)
	times := []string{"10:00:00", "10:04:00", "10:09:59"}
	var first string
	for _, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}} {
		var st TextState
		var got []string
		for _, k := range order {
			ev := &event.Event{EventID: fmt.Sprintf("e%d", k), Type: event.TypeMessage, TS: event.Time{Time: clockAt(shanghai, times[k])},
				Sender: "agent", AgentID: "a1", Text: "亲，请耐心等待"}
			var fx Effects
			e.Message(&st, "s1", "b1", ev, &fx)
			for _, a := range fx.Alerts {
				got = append(got, a.ID+"@"+a.At.Format(time.TimeOnly))
			}
		}
		if len(got) != 1 || !strings.HasSuffix(got[0], "@10:09:59") || (first != "" && got[0] != first) {
			t.Errorf("order %v: %v (first order gave %s)", order, got, first)
		}
		if first == "" && len(got) == 1 {
			first = got[0]
		}
	}
}

// TestEvaluatePerfunctory: an agent-day alerts once past the allowance,
// again on a new day; agents within it and an allowance of 0 (every
// message alerts on its own) alert nothing here.
func TestEvaluatePerfunctory(t *testing.T) {
	now := clockAt(shanghai, "12:00:00")
	var sp PerfunctorySpell
	var got []string
	eval := func(day string, counts map[string]int64, after int) {
		var fx Effects
		EvaluatePerfunctory("s1", "pdd", day, counts, after, &sp, now, &fx)
		for _, a := range fx.Alerts {
			if a.ID != alerting.ID(alerting.KindAbusiveReply, "s1", a.AgentID, day, alerting.ReasonPerfunctory) ||
				a.Kind != alerting.KindAbusiveReply || a.Reason != alerting.ReasonPerfunctory || a.BuyerID != "" || a.Status != alerting.Firing {
				t.Errorf("alert %+v", a)
			}
			got = append(got, day+":"+a.AgentID)
		}
	}
	eval(baseDay, map[string]int64{"a1": 3, "a2": 1}, 3)
	eval(baseDay, map[string]int64{"a1": 4, "a2": 4, "a3": 9}, 3)
	eval(baseDay, map[string]int64{"a1": 5, "a2": 4, "a3": 9}, 3)
	eval("2026-11-25", map[string]int64{"a1": 4}, 3)
	eval("2026-11-25", map[string]int64{"a1": 40}, 0)
	want := []string{baseDay + ":a1", baseDay + ":a2", baseDay + ":a3", "2026-11-25:a1"}
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
	if c := PerfunctoryCounts(map[string]int64{"a:a1:flag:perfunctory": 2, "flag:perfunctory": 5, "a:a2:flag:abuse": 1, "a:x:y:flag:perfunctory": 1}); len(c) != 2 || c["a1"] != 2 || c["x:y"] != 1 {
		t.Errorf("counts %v", c)
	}
}

// TestTextStateVersion1: a conversation's text state written before the
// perfunctory count moved to the agent-day reads back, the count dropped.
func TestTextStateVersion1(t *testing.T) {
	st := TextState{recent: []sentReply{{hash: 7, at: 1000}, {hash: 7, at: 2000, repeat: true}}}
	v2 := st.AppendBinary(nil)
	v1 := append([]byte{1}, v2[1:]...)
	v1 = appendTextStr(v1, baseDay)
	v1 = appendTextStr(v1, "a1")
	v1 = append(v1, 2, 0xEE) // count 2, then what follows the state
	var back TextState
	rest, err := DecodeTextState(&back, v1)
	if err != nil || !slices.Equal(rest, []byte{0xEE}) || !slices.Equal(back.recent, st.recent) {
		t.Fatalf("version 1 read back as %+v, rest %v, %v", back, rest, err)
	}
}

// TestTextStateEncodedLen: the length a chat state reserves for the text
// state is the length of its encoding, whatever the times' gaps (varints
// of one to ten bytes).
func TestTextStateEncodedLen(t *testing.T) {
	for _, ats := range [][]int64{
		{},
		{0},
		{1_764_000_000_000},
		{1_764_000_000_000, 1_764_000_000_063, 1_764_000_000_064, 1_764_000_008_192, 1_764_000_600_000},
		{-1, 0, 1 << 40, 1<<62 - 1},
	} {
		var st TextState
		for i, at := range ats {
			st.recent = append(st.recent, sentReply{at: at, hash: uint32(i), repeat: i%2 == 1})
		}
		if got, want := st.encodedLen(), len(st.AppendBinary(nil)); got != want {
			t.Errorf("times %v: encodedLen %d, encoding %d bytes", ats, got, want)
		}
	}
}
