package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
)

// Item is one alert on its way to one receiver.
type Item struct {
	Alert    alerting.Alert
	Receiver string
	Route    *Route
	Mentions []Person
	// rec is the Kafka record the item came from (nil in unit tests).
	rec *record
	// cancelled is set when inhibition took the item out of its queue.
	cancelled bool
}

func (it *Item) revoked() bool { return it.rec != nil && it.rec.part.revoked.Load() }

// Message is what one send carries: one alert, a group or a digest.
type Message struct {
	Receiver string
	Items    []*Item
	// Stale marks a digest of alerts older than notify.max_age.
	Stale bool
	// Shown is set by the receiver: how many items the message names one
	// by one (the rest are counted).
	Shown int
}

// urgent orders items most urgent first: critical before warning, then
// firing before resolved, then the longest wait (earliest start) first.
func urgent(items []*Item) {
	rank := func(a *alerting.Alert) int {
		switch {
		case a.Status == alerting.Resolved:
			return 3
		case a.Severity == alerting.Critical:
			return 0
		case breachKinds[a.Kind]:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(items, func(x, y *Item) int {
		if d := rank(&x.Alert) - rank(&y.Alert); d != 0 {
			return d
		}
		return startOf(&x.Alert).Compare(startOf(&y.Alert))
	})
}

func startOf(a *alerting.Alert) time.Time {
	for _, t := range []time.Time{a.Since, a.Due, a.At, a.EmittedAt} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// Text is a rendered message before a vendor encodes it: a title, one line
// per alert (most urgent first), and the people to mention.
type Text struct {
	Title    string
	Lines    []string
	Mentions []Person
	// More formats the line that counts the alerts left out.
	More func(n int) string
	// Count is how many alerts the lines stand for (a single alert's
	// message has several lines).
	Count int
}

// wording is one language's message text.
type wording struct {
	digestTitle string // "{n}" alerts of several kinds
	groupTitle  string // "{title}", "{shop}", "{n}"
	staleTitle  string // "{shop}", "{n}", "{from}", "{to}"
	shop        string
	buyer       string
	agent       string
	start       string
	due         string
	left        string
	over        string
	more        string
	resolved    string
	dot         string
	duration    func(time.Duration) string
}

var wordings = map[string]wording{
	"zh": {
		digestTitle: "【告警汇总】共 {n} 条",
		groupTitle:  "【{title}】店铺 {shop} 共 {n} 条",
		staleTitle:  "【积压告警】店铺 {shop}：{from}–{to} 共 {n} 条告警，产生于 replywatch 追赶积压期间，未逐条发送",
		shop:        "店铺 ", buyer: "买家 ", agent: "客服 ", start: "开始等待 ", due: "时限 ",
		left: "剩余 ", over: "已超时 ", more: "……另有 %d 条未列出", resolved: "已解除", dot: " · ",
		duration: zhDur,
	},
	"en": {
		digestTitle: "[alert digest] {n} alerts",
		groupTitle:  "[{title}] shop {shop}: {n} alerts",
		staleTitle:  "[backlog] shop {shop}: {n} alerts from {from}–{to} while replywatch caught up, not sent one by one",
		shop:        " shop ", buyer: "buyer ", agent: "agent ", start: "waiting since ", due: "due ",
		left: "due in ", over: "overdue by ", more: "... and %d more", resolved: "resolved", dot: " · ",
		duration: enDur,
	},
}

func zhDur(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%d小时%d分", h, m)
	case m > 0 && s > 0:
		return fmt.Sprintf("%d分%d秒", m, s)
	case m > 0:
		return fmt.Sprintf("%d分钟", m)
	}
	return fmt.Sprintf("%d秒", s)
}

func enDur(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0 && s > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", s)
}

// Renderer writes messages in one language, with names from the
// directory; times are shown in the shop's own offset, as alerts carry
// them.
type Renderer struct {
	Language string
	People   Directory
	// Location is a shop's time zone (the times' own offset when nil).
	Location func(shop string) *time.Location
}

// local is t in the shop's time zone.
func (r Renderer) local(shop string, t time.Time) time.Time {
	if r.Location == nil {
		return t
	}
	return t.In(r.Location(shop))
}

func (r Renderer) words() wording {
	if w, ok := wordings[r.Language]; ok {
		return w
	}
	return wordings["zh"]
}

// Render turns a message into text at now (for countdowns).
func (r Renderer) Render(m *Message, now time.Time) Text {
	w := r.words()
	items := slices.Clone(m.Items)
	urgent(items)
	t := Text{More: func(n int) string { return fmt.Sprintf(w.more, n) }, Count: len(items)}
	var mentions [][]Person
	for _, it := range items {
		mentions = append(mentions, it.Mentions)
	}
	t.Mentions = unionPeople(mentions...)
	switch {
	case m.Stale:
		from, to := startOf(&items[0].Alert), startOf(&items[0].Alert)
		for _, it := range items {
			s := startOf(&it.Alert)
			if s.Before(from) {
				from = s
			}
			if s.After(to) {
				to = s
			}
		}
		shop := items[0].Alert.ShopID
		t.Title = fill(w.staleTitle, "{shop}", shop, "{n}", fmt.Sprint(len(items)),
			"{from}", r.local(shop, from).Format("01-02 15:04"), "{to}", r.local(shop, to).Format("01-02 15:04"))
		t.Mentions = nil // a backlog is for the record, not a call to act now
		for _, it := range items {
			t.Lines = append(t.Lines, r.line(&it.Alert, now, true))
		}
	case len(items) == 1:
		a := &items[0].Alert
		t.Title = r.title(a)
		if a.ShopID != "" { // an Alertmanager alert may name no shop
			t.Title += w.shop + a.ShopID
		}
		t.Lines = r.detail(a, now)
		t.Count = 1
	default:
		sameKind, sameShop := true, true
		for _, it := range items {
			sameKind = sameKind && it.Alert.Kind == items[0].Alert.Kind && it.Alert.Status == items[0].Alert.Status
			sameShop = sameShop && it.Alert.ShopID == items[0].Alert.ShopID
		}
		if sameKind && sameShop {
			title := strings.Trim(r.title(&items[0].Alert), "【】[]")
			t.Title = fill(w.groupTitle, "{title}", title, "{shop}", items[0].Alert.ShopID, "{n}", fmt.Sprint(len(items)))
		} else {
			t.Title = fill(w.digestTitle, "{n}", fmt.Sprint(len(items)))
		}
		for _, it := range items {
			t.Lines = append(t.Lines, r.line(&it.Alert, now, !(sameKind && sameShop)))
		}
	}
	return t
}

func fill(s string, kv ...string) string { return strings.NewReplacer(kv...).Replace(s) }

// title is the alert kind's name in brackets, e.g. 【回复超时】.
func (r Renderer) title(a *alerting.Alert) string {
	t := alerting.Title(r.Language, a.Kind)
	if a.Status == alerting.Resolved {
		t = r.words().resolved + "·" + t
	}
	if r.Language == "en" {
		return "[" + t + "]"
	}
	return "【" + t + "】"
}

// detail is a single alert's message body: who, the wait and its clock.
func (r Renderer) detail(a *alerting.Alert, now time.Time) []string {
	w := r.words()
	if a.Status == alerting.Resolved || a.BuyerID == "" || a.Due.IsZero() {
		lines := []string{a.Summary}
		if a.AgentID != "" && a.Status == alerting.Firing {
			lines = append(lines, w.agent+r.agentName(a))
		}
		return lines
	}
	who := w.buyer + a.BuyerID
	if a.AgentID != "" {
		who += w.dot + w.agent + r.agentName(a)
	}
	return []string{who, r.clock(a, now)}
}

// line is one alert in a group or digest. Alerts without a wait are
// their summary, which names its kind and shop already.
func (r Renderer) line(a *alerting.Alert, now time.Time, withTitle bool) string {
	w := r.words()
	if a.Status == alerting.Resolved || a.BuyerID == "" || a.Due.IsZero() {
		return a.Summary
	}
	var b strings.Builder
	if withTitle {
		b.WriteString(r.title(a))
		b.WriteString(strings.TrimSpace(w.shop) + " " + a.ShopID + w.dot)
	}
	b.WriteString(w.buyer + a.BuyerID)
	if a.AgentID != "" {
		b.WriteString(w.dot + w.agent + r.agentName(a))
	}
	b.WriteString(w.dot + r.clock(a, now))
	return b.String()
}

// clock is "开始等待 10:00:00 · 时限 10:03:00 · 已超时 1分20秒".
func (r Renderer) clock(a *alerting.Alert, now time.Time) string {
	w := r.words()
	var parts []string
	if !a.Since.IsZero() {
		parts = append(parts, w.start+r.local(a.ShopID, a.Since).Format("15:04:05"))
	}
	parts = append(parts, w.due+r.local(a.ShopID, a.Due).Format("15:04:05"))
	if d := a.Due.Sub(now); d > 0 {
		parts = append(parts, w.left+w.duration(d))
	} else {
		parts = append(parts, w.over+w.duration(-d))
	}
	return strings.Join(parts, w.dot)
}

func (r Renderer) agentName(a *alerting.Alert) string {
	p, _ := r.People.Agent(a)
	return p.Name
}

// Fit returns the most lines of t, from the first, whose encoding (with a
// line counting the rest) is within max bytes, and how many lines it kept.
// The title and at least the count line always go out: a digest never
// drops an alert, it only names fewer of them.
func Fit(t Text, max int, encode func(title string, lines []string) []byte) ([]byte, int) {
	lines := func(k int) []string {
		out := slices.Clone(t.Lines[:k])
		if k < len(t.Lines) {
			out = append(out, t.More(t.Count-k))
		}
		return out
	}
	body := encode(t.Title, t.Lines)
	if len(body) <= max {
		return body, len(t.Lines)
	}
	// Binary search for the largest k that fits.
	lo, hi := 0, len(t.Lines)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if len(encode(t.Title, lines(mid))) <= max {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return encode(t.Title, lines(lo)), lo
}
