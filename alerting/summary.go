package alerting

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// summaryText is one language's wording of alert summaries.
type summaryText struct {
	titles  map[string]string
	reasons map[string]string
	// bodies of firing alerts, with placeholders {who} (the shop and the
	// buyer, agent or order concerned), {buyer}, {t} the threshold, {due}
	// the deadline, {since} the start, {ctx} agent and start in parentheses.
	bodies   map[string]string
	resolved string // title prefix of resolved records
	open     string // title brackets
	close    string
	shop     string
	buyer    string
	agent    string
	order    string
	join     string // between the shop and the buyer, agent or order
	sep      string // between subject and reason of a resolved record
	lparen   string
	rparen   string
	comma    string
	since    string    // "{}" is the start
	quote    [2]string // around a message excerpt
	duration func(time.Duration) string

	// thresholds caches threshold texts: a configuration has few.
	mu         sync.RWMutex
	thresholds map[string]string
}

// maxThresholds bounds the threshold cache of a language.
const maxThresholds = 64

// threshold is threshold s ("3m") written in the language ("3 分钟"), s
// itself when it is not a duration.
func (tx *summaryText) threshold(s string) string {
	tx.mu.RLock()
	w, ok := tx.thresholds[s]
	tx.mu.RUnlock()
	if ok {
		return w
	}
	w = s
	if d, err := time.ParseDuration(s); err == nil {
		w = tx.duration(d)
	}
	tx.mu.Lock()
	if tx.thresholds == nil {
		tx.thresholds = map[string]string{}
	}
	if len(tx.thresholds) < maxThresholds {
		tx.thresholds[s] = w
	}
	tx.mu.Unlock()
	return w
}

var summaryTexts = map[string]*summaryText{
	"zh": {
		titles: map[string]string{
			KindReplyWarning: "即将超时", KindReplyBreach: "回复超时", KindLongNoReply: "长时间未回复",
			KindIdleSeat: "客服空岗", KindSeatAway: "客服离开", KindShopUncovered: "店铺无人值守",
			KindShippingWarning: "即将发货超时", KindShippingBreach: "发货超时", KindDisputeDeadline: "纠纷待处理", KindBadReview: "差评",
			KindAbusiveReply: "不当回复", KindComplaintRisk: "投诉风险", KindOffPlatformTrade: "站外交易引导",
			KindEffectiveReplyRisk: "有效回复率风险",
		},
		reasons: map[string]string{
			ReasonReplied: "已获人工回复", ReasonRetracted: "回复在时限内，撤回告警",
			ReasonExcluded: "买家已被拉黑或举报，不再计入", ReasonShipped: "订单已发货",
			ReasonRecovered: "预计有效回复率已回升", ReasonRefunded: "订单已退款", ReasonClosed: "纠纷或投诉已关闭",
		},
		bodies: map[string]string{
			KindReplyWarning:    "{who} 尚未获人工回复，将于 {due} 超过 {t}时限{ctx}",
			KindReplyBreach:     "{who} 已等待超过 {t}未获人工回复{ctx}",
			KindLongNoReply:     "{who} 长时间未获人工回复{ctx}",
			KindIdleSeat:        "{who} 有买家等待，但{since}未发送人工消息",
			KindSeatAway:        "{who} {since}处于离开状态",
			KindShopUncovered:   "{who} {since}无在线客服",
			KindShippingWarning: "{who} 须于 {due} 前发货",
			KindShippingBreach:  "{who} 已超过发货时限 {due}",
			KindDisputeDeadline: "{who} 的纠纷或投诉须于 {due} 前处理",
			KindBadReview:       "{who} 收到买家 {buyer} 的差评，请尽快联系挽回{ctx}",
			KindAbusiveReply:    "{who} 对买家 {buyer} 的回复含辱骂、威胁或阴阳怪气内容",
			KindAbusiveReply + "/" + ReasonPerfunctory:          "{who} 对买家 {buyer} 的回复敷衍",
			KindAbusiveReply + "/" + ReasonPerfunctory + "/day": "{who} 今日敷衍回复超过允许的条数",
			KindComplaintRisk:      "{who} 的消息显示投诉或差评意向",
			KindOffPlatformTrade:   "{who} 对买家 {buyer} 的回复疑似引导站外交易",
			KindEffectiveReplyRisk: "{who} 今日有效回复率有低于 50% 的风险",
		},
		resolved: "已解除·", open: "【", close: "】",
		shop: "店铺 ", buyer: "买家 ", agent: "客服 ", order: "订单 ", join: " ", sep: "：",
		lparen: "（", rparen: "）", comma: "，", since: "自 {} 起", quote: [2]string{"“", "”"},
		duration: zhDuration,
	},
	"en": {
		titles: map[string]string{
			KindReplyWarning: "reply warning", KindReplyBreach: "reply breach", KindLongNoReply: "long no reply",
			KindIdleSeat: "idle seat", KindSeatAway: "seat away", KindShopUncovered: "shop uncovered",
			KindShippingWarning: "shipping warning", KindShippingBreach: "shipping breach", KindDisputeDeadline: "dispute deadline", KindBadReview: "bad review",
			KindAbusiveReply: "abusive reply", KindComplaintRisk: "complaint risk", KindOffPlatformTrade: "off-platform trade",
			KindEffectiveReplyRisk: "effective reply risk",
		},
		reasons: map[string]string{
			ReasonReplied: "a human replied", ReasonRetracted: "the reply was in time, alert retracted",
			ReasonExcluded: "buyer blocked or reported, no longer counted", ReasonShipped: "the order shipped",
			ReasonRecovered: "the projected effective reply rate recovered", ReasonRefunded: "the order was refunded", ReasonClosed: "the dispute or complaint was closed",
		},
		bodies: map[string]string{
			KindReplyWarning:    "{who} has no human reply yet and passes the {t} limit at {due}{ctx}",
			KindReplyBreach:     "{who} has waited more than {t} without a human reply{ctx}",
			KindLongNoReply:     "{who} has gone a long time without a human reply{ctx}",
			KindIdleSeat:        "{who} has buyers waiting but has sent no human message {since}",
			KindSeatAway:        "{who} has been away {since}",
			KindShopUncovered:   "{who} has had no seat online {since}",
			KindShippingWarning: "{who} must ship by {due}",
			KindShippingBreach:  "{who} passed its shipping deadline {due}",
			KindDisputeDeadline: "{who} has a dispute or complaint to answer by {due}",
			KindBadReview:       "{who} got a bad review from buyer {buyer}: contact them while it can still be won back{ctx}",
			KindAbusiveReply:    "{who} sent buyer {buyer} a reply with abuse, threats or sarcasm",
			KindAbusiveReply + "/" + ReasonPerfunctory:          "{who} sent buyer {buyer} a perfunctory reply",
			KindAbusiveReply + "/" + ReasonPerfunctory + "/day": "{who} sent more perfunctory replies today than allowed",
			KindComplaintRisk:      "{who} wrote of a complaint or bad review",
			KindOffPlatformTrade:   "{who} sent buyer {buyer} a reply that may lead off the platform",
			KindEffectiveReplyRisk: "{who} may end today with an effective reply rate under 50%",
		},
		resolved: "resolved: ", open: "[", close: "] ",
		shop: "shop ", buyer: "buyer ", agent: "agent ", order: "order ", join: ": ", sep: ": ",
		lparen: " (", rparen: ")", comma: ", ", since: "since {}", quote: [2]string{"\"", "\""},
		duration: FormatThreshold,
	},
}

// agentKinds are about what an agent did rather than a buyer; shopKinds
// about the whole shop.
var (
	agentKinds = map[string]bool{KindIdleSeat: true, KindSeatAway: true, KindAbusiveReply: true, KindOffPlatformTrade: true}
	shopKinds  = map[string]bool{KindShopUncovered: true, KindEffectiveReplyRisk: true}
)

// Placeholders of a body template.
const (
	phWho = iota
	phBuyer
	phThreshold
	phDue
	phSince
	phCtx
)

var placeholders = []string{phWho: "{who}", phBuyer: "{buyer}", phThreshold: "{t}", phDue: "{due}", phSince: "{since}", phCtx: "{ctx}"}

// segment is a piece of a parsed body: literal text, then a placeholder
// (ph < 0: none).
type segment struct {
	lit string
	ph  int
}

// parseBody splits a body template into segments once, so that a summary
// is written by appending and not by a replacer built for every alert.
func parseBody(body string) []segment {
	var segs []segment
	for body != "" {
		at, ph := len(body), -1
		for i, p := range placeholders {
			if j := strings.Index(body, p); j >= 0 && j < at {
				at, ph = j, i
			}
		}
		segs = append(segs, segment{lit: body[:at], ph: ph})
		if ph < 0 {
			break
		}
		body = body[at+len(placeholders[ph]):]
	}
	return segs
}

// parsedBodies are the bodies of every language, parsed.
var parsedBodies = func() map[string]map[string][]segment {
	out := map[string]map[string][]segment{}
	for lang, tx := range summaryTexts {
		m := map[string][]segment{}
		for k, body := range tx.bodies {
			m[k] = parseBody(body)
		}
		out[lang] = m
	}
	return out
}()

var defaultBody = parseBody("{who}{ctx}")

// Summary is the alert's one human-readable line, in Chinese for lang "zh"
// (and any unknown language), in English for "en", with times in loc.
func Summary(a *Alert, lang string, loc *time.Location) string {
	tx, ok := summaryTexts[lang]
	if !ok {
		lang = "zh"
		tx = summaryTexts[lang]
	}
	if loc == nil {
		loc = time.UTC
	}
	c := clocker{loc: loc, refs: [2]time.Time{a.Since, a.At}}

	title, ok := tx.titles[a.Kind]
	if !ok {
		title = a.Kind
	}
	b := make([]byte, 0, 192)
	b = append(b, tx.open...)
	if a.Status == Resolved {
		b = append(b, tx.resolved...)
	}
	b = append(b, title...)
	b = append(b, tx.close...)

	appendWho := func(b []byte) []byte {
		b = append(b, tx.shop...)
		b = append(b, a.ShopID...)
		switch {
		case shopKinds[a.Kind]:
		case agentKinds[a.Kind]:
			if a.AgentID != "" {
				b = append(append(append(b, tx.join...), tx.agent...), a.AgentID...)
			}
		case a.OrderID != "":
			b = append(append(append(b, tx.join...), tx.order...), a.OrderID...)
		case a.BuyerID != "":
			b = append(append(append(b, tx.join...), tx.buyer...), a.BuyerID...)
		}
		return b
	}

	if a.Status == Resolved {
		reason, ok := tx.reasons[a.Reason]
		if !ok {
			reason = a.Reason
		}
		b = appendWho(b)
		b = append(append(b, tx.sep...), reason...)
		if !a.At.IsZero() {
			b = append(b, tx.lparen...)
			b = c.append(b, a.At)
			b = append(b, tx.rparen...)
		}
		return string(b)
	}

	segs, ok := parsedBodies[lang][a.Kind+"/"+a.Reason]
	if a.BuyerID == "" {
		// An agent's day rather than one conversation (perfunctory replies
		// past the day's allowance).
		if day, isDay := parsedBodies[lang][a.Kind+"/"+a.Reason+"/day"]; isDay {
			segs, ok = day, true
		}
	}
	if !ok {
		segs, ok = parsedBodies[lang][a.Kind]
	}
	if !ok {
		segs = defaultBody
	}
	appendSince := func(b []byte) []byte {
		pre, post, _ := strings.Cut(tx.since, "{}")
		b = append(b, pre...)
		b = c.append(b, a.Since)
		return append(b, post...)
	}
	for _, s := range segs {
		b = append(b, s.lit...)
		switch s.ph {
		case phWho:
			b = appendWho(b)
		case phBuyer:
			b = append(b, a.BuyerID...)
		case phThreshold:
			b = append(b, tx.threshold(a.Threshold)...)
		case phDue:
			b = c.append(b, a.Due)
		case phSince:
			if !a.Since.IsZero() {
				b = appendSince(b)
			}
		case phCtx:
			if a.AgentID == "" && a.Since.IsZero() {
				break
			}
			b = append(b, tx.lparen...)
			if a.AgentID != "" {
				b = append(append(b, tx.agent...), a.AgentID...)
				if !a.Since.IsZero() {
					b = append(b, tx.comma...)
				}
			}
			if !a.Since.IsZero() {
				b = appendSince(b)
			}
			b = append(b, tx.rparen...)
		}
	}
	if a.Excerpt != "" {
		b = append(append(append(append(b, tx.sep...), tx.quote[0]...), a.Excerpt...), tx.quote[1]...)
	}
	return string(b)
}

// clocker writes clock times in loc, with the date when the alert spans
// days (the time is not on the day of each of refs).
type clocker struct {
	loc  *time.Location
	refs [2]time.Time
}

func (c *clocker) append(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, '?')
	}
	t = t.In(c.loc)
	y, m, d := t.Date()
	for _, r := range c.refs {
		if r.IsZero() {
			continue
		}
		if ry, rm, rd := r.In(c.loc).Date(); ry != y || rm != m || rd != d {
			return t.AppendFormat(b, time.DateTime)
		}
	}
	return t.AppendFormat(b, time.TimeOnly)
}

// zhDuration writes a duration as "1 小时 30 分钟", "3 分钟", "30 秒".
func zhDuration(d time.Duration) string {
	var parts []string
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "小时"}, {time.Minute, "分钟"}, {time.Second, "秒"}} {
		if n := d / u.unit; n > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+" "+u.name)
			d -= n * u.unit
		}
	}
	if len(parts) == 0 {
		return FormatThreshold(d)
	}
	return strings.Join(parts, " ")
}
