package alerting

import (
	"testing"
	"time"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// since is 10:00:00 Shanghai. Times carry their date only when the alert
// spans days.
var since = time.Date(2026, 11, 24, 10, 0, 0, 0, shanghai)

func buyerAlert(kind, status, reason string) Alert {
	return Alert{Kind: kind, Status: status, Reason: reason, Threshold: "3m", ShopID: "s1", BuyerID: "b1", AgentID: "a7",
		Since: since, Due: since.Add(3 * time.Minute), At: since.Add(3 * time.Minute)}
}

func orderAlert(kind, status, reason string) Alert {
	return Alert{Kind: kind, Status: status, Reason: reason, ShopID: "s1", BuyerID: "b1", OrderID: "o1",
		Since: since, Due: since.Add(48 * time.Hour), At: since.Add(47 * time.Hour)}
}

func agentAlert(kind string) Alert {
	return Alert{Kind: kind, Status: Firing, ShopID: "s1", BuyerID: "b1", AgentID: "a7", Since: since, At: since.Add(3 * time.Minute)}
}

func shopAlert(kind string) Alert {
	return Alert{Kind: kind, Status: Firing, ShopID: "s1", Since: since, At: since.Add(time.Minute)}
}

var summaryCases = []struct {
	name   string
	alert  Alert
	zh, en string
}{
	{"warning", buyerAlert(KindReplyWarning, Firing, ""),
		"【即将超时】店铺 s1 买家 b1 尚未获人工回复，将于 10:03:00 超过 3 分钟时限（客服 a7，自 10:00:00 起）",
		"[reply warning] shop s1: buyer b1 has no human reply yet and passes the 3m limit at 10:03:00 (agent a7, since 10:00:00)"},
	{"breach", buyerAlert(KindReplyBreach, Firing, ""),
		"【回复超时】店铺 s1 买家 b1 已等待超过 3 分钟未获人工回复（客服 a7，自 10:00:00 起）",
		"[reply breach] shop s1: buyer b1 has waited more than 3m without a human reply (agent a7, since 10:00:00)"},
	{"breach without agent", func() Alert {
		a := buyerAlert(KindReplyBreach, Firing, "")
		a.AgentID, a.Threshold = "", "1h30m"
		return a
	}(),
		"【回复超时】店铺 s1 买家 b1 已等待超过 1 小时 30 分钟未获人工回复（自 10:00:00 起）",
		"[reply breach] shop s1: buyer b1 has waited more than 1h30m without a human reply (since 10:00:00)"},
	{"breach resolved by reply", buyerAlert(KindReplyBreach, Resolved, ReasonReplied),
		"【已解除·回复超时】店铺 s1 买家 b1：已获人工回复（10:03:00）",
		"[resolved: reply breach] shop s1: buyer b1: a human replied (10:03:00)"},
	{"breach retracted", buyerAlert(KindReplyBreach, Resolved, ReasonRetracted),
		"【已解除·回复超时】店铺 s1 买家 b1：回复在时限内，撤回告警（10:03:00）",
		"[resolved: reply breach] shop s1: buyer b1: the reply was in time, alert retracted (10:03:00)"},
	{"warning excluded", buyerAlert(KindReplyWarning, Resolved, ReasonExcluded),
		"【已解除·即将超时】店铺 s1 买家 b1：买家已被拉黑或举报，不再计入（10:03:00）",
		"[resolved: reply warning] shop s1: buyer b1: buyer blocked or reported, no longer counted (10:03:00)"},
	{"long no reply", func() Alert {
		a := buyerAlert(KindLongNoReply, Firing, "")
		a.Threshold, a.Due, a.At = "", since.Add(14*time.Hour), since.Add(14*time.Hour)
		return a
	}(),
		"【长时间未回复】店铺 s1 买家 b1 长时间未获人工回复（客服 a7，自 2026-11-24 10:00:00 起）",
		"[long no reply] shop s1: buyer b1 has gone a long time without a human reply (agent a7, since 2026-11-24 10:00:00)"},
	{"long no reply resolved", func() Alert { a := buyerAlert(KindLongNoReply, Resolved, ReasonReplied); a.Threshold = ""; return a }(),
		"【已解除·长时间未回复】店铺 s1 买家 b1：已获人工回复（10:03:00）",
		"[resolved: long no reply] shop s1: buyer b1: a human replied (10:03:00)"},
	{"idle seat", agentAlert(KindIdleSeat),
		"【客服空岗】店铺 s1 客服 a7 有买家等待，但自 10:00:00 起未发送人工消息",
		"[idle seat] shop s1: agent a7 has buyers waiting but has sent no human message since 10:00:00"},
	{"seat away", agentAlert(KindSeatAway),
		"【客服离开】店铺 s1 客服 a7 自 10:00:00 起处于离开状态",
		"[seat away] shop s1: agent a7 has been away since 10:00:00"},
	{"shop uncovered", shopAlert(KindShopUncovered),
		"【店铺无人值守】店铺 s1 自 10:00:00 起无在线客服",
		"[shop uncovered] shop s1 has had no seat online since 10:00:00"},
	{"shipping warning", orderAlert(KindShippingWarning, Firing, ""),
		"【即将发货超时】店铺 s1 订单 o1 须于 2026-11-26 10:00:00 前发货",
		"[shipping warning] shop s1: order o1 must ship by 2026-11-26 10:00:00"},
	{"shipping breach", func() Alert { a := orderAlert(KindShippingBreach, Firing, ""); a.At = a.Due; return a }(),
		"【发货超时】店铺 s1 订单 o1 已超过发货时限 2026-11-26 10:00:00",
		"[shipping breach] shop s1: order o1 passed its shipping deadline 2026-11-26 10:00:00"},
	{"shipping resolved", orderAlert(KindShippingBreach, Resolved, ReasonShipped),
		"【已解除·发货超时】店铺 s1 订单 o1：订单已发货（2026-11-26 09:00:00）",
		"[resolved: shipping breach] shop s1: order o1: the order shipped (2026-11-26 09:00:00)"},
	{"dispute deadline", func() Alert { a := orderAlert(KindDisputeDeadline, Firing, ""); a.At = since; return a }(),
		"【纠纷待处理】店铺 s1 订单 o1 的纠纷或投诉须于 2026-11-26 10:00:00 前处理",
		"[dispute deadline] shop s1: order o1 has a dispute or complaint to answer by 2026-11-26 10:00:00"},
	{"shipping refunded", orderAlert(KindShippingWarning, Resolved, ReasonRefunded),
		"【已解除·即将发货超时】店铺 s1 订单 o1：订单已退款（2026-11-26 09:00:00）",
		"[resolved: shipping warning] shop s1: order o1: the order was refunded (2026-11-26 09:00:00)"},
	{"dispute closed", orderAlert(KindDisputeDeadline, Resolved, ReasonClosed),
		"【已解除·纠纷待处理】店铺 s1 订单 o1：纠纷或投诉已关闭（2026-11-26 09:00:00）",
		"[resolved: dispute deadline] shop s1: order o1: the dispute or complaint was closed (2026-11-26 09:00:00)"},
	{"bad review", Alert{Kind: KindBadReview, Status: Firing, ShopID: "s1", BuyerID: "b1", OrderID: "o1", AgentID: "a7",
		Since: since, Due: since, At: since},
		"【差评】店铺 s1 订单 o1 收到买家 b1 的差评，请尽快联系挽回（客服 a7，自 10:00:00 起）",
		"[bad review] shop s1: order o1 got a bad review from buyer b1: contact them while it can still be won back (agent a7, since 10:00:00)"},
	{"abusive reply", agentAlert(KindAbusiveReply),
		"【不当回复】店铺 s1 客服 a7 对买家 b1 的回复含辱骂、威胁或阴阳怪气内容",
		"[abusive reply] shop s1: agent a7 sent buyer b1 a reply with abuse, threats or sarcasm"},
	{"complaint risk", buyerAlert(KindComplaintRisk, Firing, ""),
		"【投诉风险】店铺 s1 买家 b1 的消息显示投诉或差评意向",
		"[complaint risk] shop s1: buyer b1 wrote of a complaint or bad review"},
	{"off-platform trade", agentAlert(KindOffPlatformTrade),
		"【站外交易引导】店铺 s1 客服 a7 对买家 b1 的回复疑似引导站外交易",
		"[off-platform trade] shop s1: agent a7 sent buyer b1 a reply that may lead off the platform"},
	{"effective reply risk", shopAlert(KindEffectiveReplyRisk),
		"【有效回复率风险】店铺 s1 今日有效回复率有低于 50% 的风险",
		"[effective reply risk] shop s1 may end today with an effective reply rate under 50%"},
	{"effective reply risk resolved", func() Alert {
		a := shopAlert(KindEffectiveReplyRisk)
		a.Status, a.Reason = Resolved, "rate_recovered"
		return a
	}(),
		"【已解除·有效回复率风险】店铺 s1：rate_recovered（10:01:00）",
		"[resolved: effective reply risk] shop s1: rate_recovered (10:01:00)"},
}

func TestSummary(t *testing.T) {
	for _, c := range summaryCases {
		for _, l := range []struct{ lang, want string }{{"zh", c.zh}, {"en", c.en}} {
			if got := Summary(&c.alert, l.lang, shanghai); got != l.want {
				t.Errorf("%s, %s:\n got %s\nwant %s", c.name, l.lang, got, l.want)
			}
		}
	}
}

func TestSummaryEveryKindWorded(t *testing.T) {
	if len(Kinds) != 14 {
		t.Errorf("Kinds lists %d kinds, the contract 14", len(Kinds))
	}
	for lang, tx := range summaryTexts {
		for _, k := range Kinds {
			if tx.titles[k] == "" || tx.bodies[k] == "" {
				t.Errorf("%s: kind %s has no title or body", lang, k)
			}
		}
	}
}

func TestSummaryTimeZoneAndDefaultLanguage(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	a := buyerAlert(KindReplyBreach, Firing, "")
	// 10:00 Shanghai is 21:00 the evening before in New York (EST).
	want := "【回复超时】店铺 s1 买家 b1 已等待超过 3 分钟未获人工回复（客服 a7，自 21:00:00 起）"
	if got := Summary(&a, "", ny); got != want {
		t.Errorf("default language in New York:\n got %s\nwant %s", got, want)
	}
}
