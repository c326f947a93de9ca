package notify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/internal/testenv"
)

var shanghai = time.FixedZone("CST", 8*3600)

// t0 is 10:00:00 shop time.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, shanghai)

func ptrD(d time.Duration) *time.Duration { return &d }

// testRoute is CONTRACT.md §7's example tree.
var testRoute = config.Route{
	Receiver: "cs-ding", GroupBy: []string{"shop_id", "kind"}, GroupWait: ptrD(5 * time.Second), GroupInterval: ptrD(time.Minute),
	Routes: []config.Route{
		{Match: map[string][]string{"kind": {"reply_warning"}}, Receiver: "shop-wecom", Mention: "agent"},
		{Match: map[string][]string{"severity": {"critical"}}, Receiver: "cs-ding", Mention: "supervisor", Continue: true},
		{Match: map[string][]string{"audience": {"supervisor"}}, Receiver: "leads-feishu"},
	},
}

var routeCases = []struct {
	name  string
	alert alerting.Alert
	want  []string // receiver@route id
}{
	{"warning to the shop's WeCom", alerting.Alert{Kind: "reply_warning", Severity: "warning"}, []string{"shop-wecom@0.0"}},
	{"breach to the supervisors' route", alerting.Alert{Kind: "reply_breach", Severity: "warning"}, []string{"leads-feishu@0.2"}},
	{"critical continues to the next match", alerting.Alert{Kind: "shop_uncovered", Severity: "critical"}, []string{"cs-ding@0.1", "leads-feishu@0.2"}},
	{"critical warning stops at the first match", alerting.Alert{Kind: "reply_warning", Severity: "critical"}, []string{"shop-wecom@0.0"}},
	{"nothing matches: the root", alerting.Alert{Kind: "seat_away", Severity: "warning"}, []string{"cs-ding@0"}},
}

func TestRoute(t *testing.T) {
	root := NewRoute(testRoute)
	for _, c := range routeCases {
		var got []string
		for _, r := range root.For(&c.alert) {
			got = append(got, r.Receiver+"@"+r.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: routes %v, want %v", c.name, got, c.want)
		}
	}
	// Children inherit what they do not set.
	child := root.Routes[0]
	if child.GroupWait != 5*time.Second || child.GroupInterval != time.Minute || !slices.Equal(child.GroupBy, []string{"shop_id", "kind"}) {
		t.Errorf("child settings %v %v %v, want the parent's", child.GroupWait, child.GroupInterval, child.GroupBy)
	}
	if root.Mention != config.MentionAuto || child.Mention != config.MentionAgent {
		t.Errorf("mentions %q %q", root.Mention, child.Mention)
	}
}

var people = Directory{
	"a1":            {Name: "小王", Mobile: "13800000001", WeCom: "wangxiao", DingTalk: "dwx", Feishu: "ou_wx", Supervisor: "lead"},
	"s2/a1":         {Name: "小张", Mobile: "13800000002", Supervisor: "s2/lead"},
	"lead":          {Name: "老李", Mobile: "13800000009", WeCom: "lili", Feishu: "ou_li"},
	"s2/lead":       {Name: "老周", Mobile: "13800000008"},
	"s3/supervisor": {Name: "店长", Mobile: "13800000007"},
}

var mentionCases = []struct {
	name  string
	alert alerting.Alert
	mode  string
	want  []string
}{
	{"warning mentions the agent", alerting.Alert{Kind: "reply_warning", Severity: "warning", ShopID: "s1", AgentID: "a1", Status: "firing"}, "auto", []string{"小王"}},
	{"breach mentions agent and supervisor", alerting.Alert{Kind: "reply_breach", Severity: "warning", ShopID: "s1", AgentID: "a1", Status: "firing"}, "auto", []string{"小王", "老李"}},
	{"critical mentions the supervisor", alerting.Alert{Kind: "reply_warning", Severity: "critical", ShopID: "s1", AgentID: "a1", Status: "firing"}, "auto", []string{"老李"}},
	{"shop-scoped entry wins", alerting.Alert{Kind: "reply_breach", Severity: "warning", ShopID: "s2", AgentID: "a1", Status: "firing"}, "auto", []string{"小张", "老周"}},
	{"shop alert goes to the shop's supervisor", alerting.Alert{Kind: "shop_uncovered", Severity: "critical", ShopID: "s3", Status: "firing"}, "auto", []string{"店长"}},
	{"unknown agent named by id", alerting.Alert{Kind: "reply_warning", Severity: "warning", ShopID: "s1", AgentID: "a9", Status: "firing"}, "agent", []string{"a9"}},
	{"resolved mentions nobody", alerting.Alert{Kind: "reply_breach", Severity: "warning", ShopID: "s1", AgentID: "a1", Status: "resolved"}, "both", nil},
	{"none", alerting.Alert{Kind: "reply_breach", ShopID: "s1", AgentID: "a1", Status: "firing"}, "none", nil},
}

func TestMentions(t *testing.T) {
	for _, c := range mentionCases {
		var got []string
		for _, p := range people.Mentions(&c.alert, c.mode) {
			got = append(got, p.Name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// breach is a reply breach of buyer b waiting since 10:00+i s.
func breach(i int, buyer string) alerting.Alert {
	since := t0.Add(time.Duration(i) * time.Second)
	return alerting.Alert{ID: fmt.Sprintf("br-%s-%d", buyer, i), Kind: "reply_breach", Status: "firing", Severity: "warning",
		Threshold: "3m", ShopID: "s1", BuyerID: buyer, AgentID: "a1", Since: since, Due: since.Add(3 * time.Minute),
		At: since.Add(3 * time.Minute), EmittedAt: since.Add(3*time.Minute + 2*time.Second),
		Summary: "【回复超时】店铺 s1 买家 " + buyer + " 已等待超过 3分钟未获人工回复"}
}

func warning(i int, buyer string) alerting.Alert {
	a := breach(i, buyer)
	a.ID = fmt.Sprintf("wa-%s-%d", buyer, i)
	a.Kind = "reply_warning"
	a.At = a.Due.Add(-time.Minute)
	a.EmittedAt = a.At
	a.Summary = "【即将超时】店铺 s1 买家 " + buyer
	return a
}

func item(a alerting.Alert, r *Route) *Item {
	return &Item{Alert: a, Receiver: r.Receiver, Route: r, Mentions: people.Mentions(&a, r.Mention)}
}

var renderCases = []struct {
	name  string
	lang  string
	items []alerting.Alert
	stale bool
	now   time.Time
	want  string
}{
	{"one breach", "zh", []alerting.Alert{breach(0, "b1")}, false, t0.Add(3*time.Minute + 20*time.Second),
		"【回复超时】店铺 s1\n买家 b1 · 客服 小王\n开始等待 10:00:00 · 时限 10:03:00 · 已超时 20秒\n@小王 @老李"},
	{"one warning counts down", "zh", []alerting.Alert{warning(0, "b1")}, false, t0.Add(2*time.Minute + 15*time.Second),
		"【即将超时】店铺 s1\n买家 b1 · 客服 小王\n开始等待 10:00:00 · 时限 10:03:00 · 剩余 45秒\n@小王"},
	{"a group, longest wait first", "zh", []alerting.Alert{breach(30, "b2"), breach(0, "b1")}, false, t0.Add(4 * time.Minute),
		"【回复超时】店铺 s1 共 2 条\n买家 b1 · 客服 小王 · 开始等待 10:00:00 · 时限 10:03:00 · 已超时 1分钟\n买家 b2 · 客服 小王 · 开始等待 10:00:30 · 时限 10:03:30 · 已超时 30秒\n@小王 @老李"},
	{"mixed kinds", "zh", []alerting.Alert{warning(60, "b2"), breach(0, "b1")}, false, t0.Add(3 * time.Minute),
		"【告警汇总】共 2 条\n【回复超时】店铺 s1 · 买家 b1 · 客服 小王 · 开始等待 10:00:00 · 时限 10:03:00 · 已超时 0秒\n【即将超时】店铺 s1 · 买家 b2 · 客服 小王 · 开始等待 10:01:00 · 时限 10:04:00 · 剩余 1分钟\n@小王 @老李"},
	{"stale digest", "zh", []alerting.Alert{breach(0, "b1"), breach(3600, "b2")}, true, t0.Add(5 * time.Hour),
		"【积压告警】店铺 s1：11-24 10:00–11-24 11:00 共 2 条告警，产生于 replywatch 追赶积压期间，未逐条发送\n【回复超时】店铺 s1 · 买家 b1 · 客服 小王 · 开始等待 10:00:00 · 时限 10:03:00 · 已超时 4小时57分\n【回复超时】店铺 s1 · 买家 b2 · 客服 小王 · 开始等待 11:00:00 · 时限 11:03:00 · 已超时 3小时57分"},
	{"english", "en", []alerting.Alert{breach(0, "b1")}, false, t0.Add(4 * time.Minute),
		"[reply breach] shop s1\nbuyer b1 · agent 小王\nwaiting since 10:00:00 · due 10:03:00 · overdue by 1m\n@小王 @老李"},
}

func plain(t Text) string {
	lines := append([]string{t.Title}, t.Lines...)
	var names []string
	for _, p := range t.Mentions {
		names = append(names, "@"+p.Name)
	}
	if len(names) > 0 {
		lines = append(lines, strings.Join(names, " "))
	}
	return strings.Join(lines, "\n")
}

func TestRender(t *testing.T) {
	root := NewRoute(testRoute)
	for _, c := range renderCases {
		m := &Message{Stale: c.stale}
		for _, a := range c.items {
			m.Items = append(m.Items, item(a, root))
		}
		got := plain(Renderer{Language: c.lang, People: people}.Render(m, c.now))
		if got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
}

func TestFitNamesWhatFitsAndCountsTheRest(t *testing.T) {
	txt := Text{Title: "T", Count: 100, More: func(n int) string { return fmt.Sprintf("+%d", n) }}
	for i := range 100 {
		txt.Lines = append(txt.Lines, fmt.Sprintf("line %03d", i))
	}
	enc := func(title string, lines []string) []byte { return []byte(title + "\n" + strings.Join(lines, "\n")) }
	body, k := Fit(txt, 100, enc)
	if len(body) > 100 {
		t.Fatalf("%d bytes, want at most 100", len(body))
	}
	// "T\n" + k lines of 9 bytes with newlines + "+N": k = 10 fits (2+90+3=95), 11 does not.
	if k != 10 || !strings.HasSuffix(string(body), "line 009\n+90") {
		t.Errorf("kept %d lines: %q", k, body)
	}
	if _, k := Fit(txt, 10000, enc); k != 100 {
		t.Errorf("everything fits, kept %d", k)
	}
}

func TestBudgetSlidingWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisServer(t).Addr})
	defer rdb.Close()
	ctx := context.Background()
	limits := []config.Limit{{Messages: 5, Per: time.Second}, {Messages: 20, Per: time.Minute}}
	// Two replicas share one robot's budget.
	a, b := NewBudget(rdb, "rw", "cs-ding", limits), NewBudget(rdb, "rw", "cs-ding", limits)
	now := t0
	var sent []time.Time
	for step := 0; step < 300; step++ { // 30 s in 100ms steps
		for _, bud := range []*Budget{a, b} {
			if id, _, err := bud.Take(ctx, now); err != nil {
				t.Fatal(err)
			} else if id != "" {
				sent = append(sent, now)
			}
		}
		now = now.Add(100 * time.Millisecond)
	}
	if len(sent) != 20 {
		t.Errorf("sent %d in 30 s, want 20", len(sent))
	}
	for i := range sent {
		n := 0
		for _, s := range sent[i:] {
			if s.Sub(sent[i]) < time.Second {
				n++
			}
		}
		if n > 5 {
			t.Fatalf("%d sends within a second from %v", n, sent[i])
		}
	}
	// The first send of the minute leaves the window at t0+60s.
	if avail, wait, err := a.Available(ctx, now); avail != 0 || wait != 30*time.Second || err != nil {
		t.Errorf("available %d, wait %v (%v) once the minute's budget is spent, want 0, 30s", avail, wait, err)
	}
	// A minute on, the sends at t0 itself have left the window.
	atT0 := 0
	for _, s := range sent {
		if s.Equal(t0) {
			atT0++
		}
	}
	if avail, _, _ := a.Available(ctx, t0.Add(time.Minute)); avail != atT0 || atT0 == 0 {
		t.Errorf("a minute on, %d available, want %d", avail, atT0)
	}
}

// window is a sliding-window budget for the lane tests.
type window struct {
	n    int
	per  time.Duration
	sent []time.Time
}

func (w *window) avail(now time.Time) int {
	c := 0
	for _, s := range w.sent {
		if now.Sub(s) < w.per {
			c++
		}
	}
	return w.n - c
}

func TestGroupWaitThenInterval(t *testing.T) {
	root := NewRoute(testRoute)
	r := root.For(&alerting.Alert{Kind: "seat_away"})[0]
	l := newTestLane()
	now := t0.Add(4 * time.Minute)
	l.add(item(breach(0, "b1"), r), now)
	l.flush(now.Add(4 * time.Second))
	if len(l.ready) != 0 {
		t.Fatal("flushed before group_wait")
	}
	l.add(item(breach(1, "b2"), r), now.Add(4*time.Second))
	l.flush(now.Add(5 * time.Second))
	if len(l.ready) != 1 || len(l.ready[0].Items) != 2 {
		t.Fatalf("after group_wait: %d ready", len(l.ready))
	}
	l.take(unlimited)
	l.add(item(breach(2, "b3"), r), now.Add(6*time.Second))
	l.flush(now.Add(64 * time.Second))
	if len(l.ready) != 0 {
		t.Fatal("flushed again before group_interval")
	}
	l.flush(now.Add(65 * time.Second))
	if len(l.ready) != 1 || l.ready[0].Items[0].Alert.BuyerID != "b3" {
		t.Fatalf("after group_interval: %+v", l.ready)
	}
}

func TestInhibit(t *testing.T) {
	root := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id", "kind"}})
	r := root
	now := t0.Add(2*time.Minute + 30*time.Second)
	l := newTestLane()
	w1, w2 := item(warning(0, "b1"), r), item(warning(0, "b2"), r)
	l.add(w1, now)
	l.add(w2, now)
	out := l.add(item(breach(0, "b1"), r), now.Add(time.Second))
	if len(out) != 1 || out[0].item != w1 || out[0].how != resultInhibited {
		t.Fatalf("a breach must supersede its queued warning only: %+v", out)
	}
	// A resolved record cancels its queued firing one, and itself.
	res := breach(0, "b1")
	res.Status, res.Reason = alerting.Resolved, alerting.ReasonReplied
	out = l.add(item(res, r), now.Add(2*time.Second))
	if len(out) != 2 || out[0].item.Alert.Status != "firing" || out[1].item.Alert.Status != "resolved" {
		t.Fatalf("resolved did not cancel the queued breach: %+v", out)
	}
	if l.pending() != 1 {
		t.Errorf("pending %d, want only b2's warning", l.pending())
	}
	// A resolved whose firing was already sent is queued after it.
	res2 := warning(0, "b9")
	res2.Status = alerting.Resolved
	if out := l.add(item(res2, r), now); len(out) != 0 || l.pending() != 2 {
		t.Errorf("resolved of a sent alert: %+v, pending %d", out, l.pending())
	}
}

func TestStaleBacklogIsOneDigestPerShop(t *testing.T) {
	root := NewRoute(testRoute)
	r := root.For(&alerting.Alert{Kind: "seat_away"})[0]
	l := newTestLane()
	now := t0.Add(6 * time.Hour)
	for i := range 300 {
		a := breach(i*60, fmt.Sprintf("b%d", i))
		if i%2 == 1 {
			a.ShopID = "s2"
		}
		l.add(item(a, r), now.Add(time.Duration(i)*time.Millisecond))
	}
	fresh := breach(0, "now")
	fresh.At, fresh.EmittedAt = now, now
	l.add(item(fresh, r), now)
	l.flush(now.Add(5300 * time.Millisecond))
	var stale, live []*Message
	for _, m := range l.ready {
		if m.Stale {
			stale = append(stale, m)
		} else {
			live = append(live, m)
		}
	}
	if len(stale) != 2 || len(stale[0].Items)+len(stale[1].Items) != 300 || len(live) != 1 {
		t.Fatalf("%d stale digests, %d live messages", len(stale), len(live))
	}
}

func TestOverBudgetMergesIntoOneDigest(t *testing.T) {
	root := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id"}, GroupWait: ptrD(0)})
	l := newTestLane()
	budget := &window{n: 20, per: time.Minute}
	now := t0.Add(4 * time.Minute)
	var sent []*Message
	var times []time.Time
	for i := range 500 {
		at := now.Add(time.Duration(i) * 100 * time.Millisecond) // 50 s of breaches
		l.add(item(breach(i, fmt.Sprintf("b%03d", i)), root), at)
		l.flush(at)
		for {
			m := l.take(budget.avail(at))
			if m == nil {
				break
			}
			budget.sent = append(budget.sent, at)
			sent = append(sent, m)
			times = append(times, at)
		}
	}
	for s := 0; s < 120; s++ {
		at := now.Add(50*time.Second + time.Duration(s)*time.Second)
		l.flush(at)
		if m := l.take(budget.avail(at)); m != nil {
			budget.sent = append(budget.sent, at)
			sent = append(sent, m)
			times = append(times, at)
		}
	}
	if l.pending() != 0 {
		t.Fatalf("%d alerts still pending", l.pending())
	}
	total := 0
	for _, m := range sent {
		total += len(m.Items)
	}
	if total != 500 {
		t.Errorf("%d alerts sent, want every one of 500", total)
	}
	if len(sent) > 40 { // two minutes of budget
		t.Errorf("%d messages in under two minutes", len(sent))
	}
	// No minute holds more than 20.
	for i := range times {
		n := 0
		for _, x := range times[i:] {
			if x.Sub(times[i]) < time.Minute {
				n++
			}
		}
		if n > 20 {
			t.Fatalf("%d messages within a minute from %v", n, times[i])
		}
	}
	if len(sent) < 21 || len(sent[20].Items) < 2 {
		t.Errorf("the 21st message should be a digest: %d messages", len(sent))
	}
}

func newTestLane() *lane { return newLane("cs-ding", 10*time.Minute) }

func TestReceiverWithoutBudgetGetsBatches(t *testing.T) {
	root := NewRoute(config.Route{Receiver: "wb", GroupBy: []string{"buyer_id"}, GroupWait: ptrD(0)})
	l := newTestLane()
	now := t0.Add(4 * time.Minute)
	for i := range 1500 {
		l.add(item(breach(i, fmt.Sprintf("b%04d", i)), root), now)
	}
	l.flush(now)
	first, second := l.take(unlimited), l.take(unlimited)
	if len(first.Items) != maxBatch || len(second.Items) != 500 || l.take(unlimited) != nil || l.pending() != 0 {
		t.Errorf("batches of %d and %d, %d pending", len(first.Items), len(second.Items), l.pending())
	}
}

func TestSameRecordTwiceIsQueuedOnce(t *testing.T) {
	r := NewRoute(config.Route{Receiver: "cs-ding"})
	l := newTestLane()
	now := t0.Add(4 * time.Minute)
	a := breach(0, "b1")
	if out := l.add(item(a, r), now); len(out) != 0 {
		t.Fatal(out)
	}
	// The processor wrote the alert twice (at least once after a crash).
	out := l.add(item(a, r), now.Add(time.Second))
	if len(out) != 1 || out[0].how != resultDuplicate || l.pending() != 1 {
		t.Fatalf("second copy: %+v, pending %d", out, l.pending())
	}
	// Its resolution is another delivery.
	res := a
	res.Status = alerting.Resolved
	l.flush(now.Add(time.Minute))
	m := l.take(unlimited)
	if out := l.add(item(res, r), now.Add(time.Minute)); len(out) != 0 || l.pending() != 1 {
		t.Fatalf("resolved after the firing was taken: %+v", out)
	}
	// A message that was not delivered is forgotten: a re-read sends it.
	l.forget(m.Items)
	if out := l.add(item(a, r), now.Add(2*time.Minute)); len(out) != 0 {
		t.Fatalf("re-read after an undelivered message: %+v", out)
	}
}

// A priority buyer's escalation (a critical reply_warning, reason
// priority) supersedes the ordinary warning of the same wait: queued
// before it or arriving after it, the ordinary one is not sent, nor its
// resolution; another wait's warning still is.
func TestPriorityEscalationSupersedesWarning(t *testing.T) {
	r := NewRoute(config.Route{Receiver: "cs-ding", GroupBy: []string{"buyer_id", "kind"}})
	now := t0.Add(2*time.Minute + 30*time.Second)
	escalation := func(buyer string) alerting.Alert {
		a := warning(0, buyer)
		a.ID, a.Severity, a.Reason = "pr-"+buyer, alerting.Critical, alerting.ReasonPriority
		a.At = a.Due.Add(-90 * time.Second)
		return a
	}
	l := newTestLane()
	queued := item(warning(0, "b1"), r)
	l.add(queued, now)
	out := l.add(item(escalation("b1"), r), now.Add(time.Second))
	if len(out) != 1 || out[0].item != queued || out[0].how != resultInhibited {
		t.Fatalf("the escalation must supersede the queued warning of its wait: %+v", out)
	}
	l2 := newTestLane()
	if out := l2.add(item(escalation("b2"), r), now); len(out) != 0 {
		t.Fatalf("escalation: %+v", out)
	}
	late := item(warning(0, "b2"), r)
	if out := l2.add(late, now.Add(30*time.Second)); len(out) != 1 || out[0].item != late || out[0].how != resultInhibited {
		t.Fatalf("the warning after the escalation of its wait: %+v, want inhibited", out)
	}
	res := warning(0, "b2")
	res.Status, res.Reason = alerting.Resolved, alerting.ReasonReplied
	if out := l2.add(item(res, r), now.Add(40*time.Second)); len(out) != 1 || out[0].how != resultInhibited {
		t.Fatalf("the resolution of an inhibited warning: %+v, want inhibited", out)
	}
	other := item(warning(0, "b3"), r)
	if out := l2.add(other, now.Add(30*time.Second)); len(out) != 0 {
		t.Fatalf("another wait's warning: %+v, want queued", out)
	}
	if l2.pending() != 2 {
		t.Errorf("pending %d, want the escalation and b3's warning", l2.pending())
	}
}
