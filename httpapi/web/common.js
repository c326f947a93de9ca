// Shared by /wall and /agent: texts (Chinese by default, ?lang=en for
// English), number formats, and the alert stream.
"use strict";
const RW = (() => {
  const lang = new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh";
  const T = {
    zh: { wall: "客服实时看板", agent: "我的待回复买家", waiting: "等待中", oldest: "最长等待", rate: "回复率", target: "目标",
      breached: "超时买家", r30: "30秒应答率", avg: "平均响应", seats: "坐席", online: "在线", busy: "忙碌", away: "离开",
      offline: "离线", alerts: "实时告警", rank: "店铺排名", shop: "店铺", none: "暂无", live: "实时", offline_conn: "连接中断，重连中",
      buyer: "买家", overdue: "已超时", left: "剩余", notify: "开启浏览器通知", trend: "今日回复率", since: "等待自", waiting_reply: "等待回复",
      awaiting: "待发货", late: "今日发货超时", disputes: "纠纷/投诉·最近时限", conversion: "询单转化率",
      kinds: { reply_warning: "即将超时", reply_breach: "回复超时", long_no_reply: "长时间未回复", idle_seat: "坐席空闲",
        seat_away: "坐席离开", shop_uncovered: "店铺无人值守", shipping_warning: "即将发货超时", shipping_breach: "发货超时",
        dispute_deadline: "纠纷即将超时", bad_review: "差评", abusive_reply: "不当回复", complaint_risk: "投诉风险",
        off_platform_trade: "站外交易", effective_reply_risk: "有效回复率风险" } },
    en: { wall: "Customer service wall", agent: "My waiting buyers", waiting: "Waiting", oldest: "Oldest wait", rate: "reply rate",
      target: "target", breached: "Breached", r30: "30 s rate", avg: "Avg response", seats: "Seats", online: "online", busy: "busy",
      away: "away", offline: "offline", alerts: "Live alerts", rank: "Shop ranking", shop: "Shop", none: "None",
      live: "live", offline_conn: "disconnected, reconnecting", buyer: "buyer", overdue: "overdue", left: "left",
      notify: "Enable notifications", trend: "Reply rate today", since: "waiting since",
      waiting_reply: "waiting for a reply", awaiting: "Awaiting shipment", late: "Shipped late today",
      disputes: "Disputes · due soonest", conversion: "Inquiry conversion", kinds: {} },
  };
  const t = (k) => T[lang][k] ?? T.zh[k] ?? k;
  const kind = (k) => T[lang].kinds[k] ?? (lang === "en" ? k.replaceAll("_", " ") : T.zh.kinds[k] ?? k);
  const dash = "—";
  const pct = (v) => (typeof v === "number" && isFinite(v)) ? (v * 100).toFixed(1) + "%" : dash;
  const num = (v) => (typeof v === "number" && isFinite(v)) ? String(v) : dash;
  const mmss = (s) => {
    if (typeof s !== "number" || !isFinite(s)) return dash;
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    const p = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + p(m) : p(m)) + ":" + p(x);
  };
  // Alert times are written with the shop's own offset (CONTRACT §3): the
  // clock part of the text is the shop-local time.
  // With the shop's IANA zone, the time is shown in it; without, the clock
  // part of the text is (records carry the shop's own offset).
  const localTime = (s, zone) => {
    if (typeof s !== "string" || s.length < 19) return "";
    if (zone) {
      const d = new Date(s);
      if (!isNaN(d)) return new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }).format(d);
    }
    return s.slice(11, 19);
  };
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  };
  // stream follows the alert stream: firing records are kept by alert_id,
  // resolved ones remove them. EventSource resumes with Last-Event-ID by
  // itself after a dropped connection.
  function stream(path, onChange, onState) {
    const firing = new Map();
    const es = new EventSource(path);
    es.onopen = () => onState(true);
    es.onerror = () => onState(false);
    es.onmessage = (m) => {
      let a;
      try { a = JSON.parse(m.data); } catch { return; }
      const isNew = a.status === "firing" && !firing.has(a.alert_id);
      if (a.status === "firing") firing.set(a.alert_id, a); else firing.delete(a.alert_id);
      onChange(firing, a, isNew);
    };
    return firing;
  }
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  return { lang, t, kind, pct, num, mmss, localTime, el, stream, dash };
})();
