// The supervisor wall: a tile per shop from /api/v1/shops, the day's trend
// from /api/v1/shops/trend, and the live alert list over SSE.
"use strict";
(() => {
  const { t, kind, pct, num, mmss, localTime, el, dash } = RW;
  document.getElementById("title").textContent = t("wall");
  document.getElementById("alerts-title").textContent = t("alerts");
  document.getElementById("rank-title").textContent = t("rank");
  const conn = document.getElementById("conn");
  let shops = [], trends = {}, zone = "Asia/Shanghai";
  const zoneOf = {};

  const secs = (th) => {
    let s = 0;
    for (const [, n, u] of th.matchAll(/(\d+(?:\.\d+)?)(h|m|s)/g)) s += n * { h: 3600, m: 60, s: 1 }[u];
    return s;
  };
  const thresholds = (r) => Object.keys(r.reply_breached_buyers || {}).sort((a, b) => secs(a) - secs(b));
  const grade = (v, target) => {
    if (typeof v !== "number") return "";
    if (!target) return "ok";
    return v >= target ? "ok" : v >= target - 0.05 ? "warn" : "bad";
  };
  const field = (name, value, text, cls) =>
    el("span", { class: "v" + (cls ? " " + cls : ""), "data-field": name, "data-value": value == null ? "" : String(value), text });

  function trendSVG(points, ths) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "trend");
    svg.setAttribute("viewBox", "0 0 1440 100");
    svg.setAttribute("preserveAspectRatio", "none");
    const colors = ["#3498db", "#9b59b6", "#1abc9c"];
    ths.forEach((th, i) => {
      const pts = (points || []).filter((p) => typeof (p.reply_rate || {})[th] === "number")
        .map((p) => `${p.minute},${(100 - p.reply_rate[th] * 100).toFixed(1)}`);
      if (pts.length === 0) return;
      const line = document.createElementNS(svg.namespaceURI, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("stroke", colors[i % colors.length]);
      line.setAttribute("vector-effect", "non-scaling-stroke");
      line.setAttribute("data-threshold", th);
      svg.append(line);
    });
    return svg;
  }

  // The orders row: awaiting shipment, orders late today, open disputes
  // and complaints with the soonest respond_by among those already warned
  // of (firing dispute_deadline alerts), and inquiry conversion.
  let firingNow = new Map();
  function ordersRow(r) {
    const o = r.orders || {};
    const open = Object.values(o.open_disputes || {}).reduce((a, b) => a + b, 0);
    const due = [...firingNow.values()].filter((a) => a.kind === "dispute_deadline" && a.shop_id === r.shop && a.due)
      .map((a) => a.due).sort((a, b) => new Date(a) - new Date(b))[0];
    return el("div", { class: "small orders" },
      el("div", {}, el("div", { class: "label", text: t("awaiting") }),
        field("orders_awaiting_shipment", o.orders_awaiting_shipment, num(o.orders_awaiting_shipment))),
      el("div", {}, el("div", { class: "label", text: t("late") }),
        field("shipping_breached_orders", o.shipping_breached_orders, num(o.shipping_breached_orders))),
      el("div", {}, el("div", { class: "label", text: t("disputes") }),
        field("open_disputes", open, num(open)), due ? " · " + localTime(due, zoneOf[r.shop]) : ""),
      el("div", {}, el("div", { class: "label", text: t("conversion") }),
        field("inquiry_conversion_rate", o.inquiry_conversion_rate, pct(o.inquiry_conversion_rate))));
  }

  function tile(r) {
    const ths = thresholds(r);
    const worst = ths.map((th) => grade((r.reply_rate || {})[th], r.reply_rate_target));
    const cls = worst.includes("bad") ? "bad" : worst.includes("warn") ? "warn" : worst.includes("ok") ? "ok" : "";
    const seats = r.seats || {};
    return el("article", { class: "tile " + cls, "data-shop": r.shop },
      el("h2", { text: r.shop }),
      el("div", { class: "big" },
        el("div", {}, el("div", { class: "label", text: t("waiting") }), field("waiting_buyers", r.waiting_buyers, num(r.waiting_buyers))),
        el("div", {}, el("div", { class: "label", text: t("oldest") }),
          field("oldest_wait_seconds", r.oldest_wait_seconds, r.waiting_buyers > 0 ? mmss(r.oldest_wait_seconds) : dash))),
      el("div", { class: "rates" }, ...ths.map((th) => {
        const v = (r.reply_rate || {})[th];
        return el("div", { class: "rate" },
          el("div", { class: "label", text: `${th} ${t("rate")}` + (r.reply_rate_target ? ` · ${t("target")} ${pct(r.reply_rate_target)}` : "") }),
          field("reply_rate:" + th, v, pct(v), grade(v, r.reply_rate_target)),
          el("div", { class: "label" }, `${t("breached")} `,
            field("reply_breached_buyers:" + th, r.reply_breached_buyers[th], num(r.reply_breached_buyers[th]))));
      })),
      el("div", { class: "small" },
        el("div", {}, el("div", { class: "label", text: t("r30") }), field("response_30s_rate", r.response_30s_rate, pct(r.response_30s_rate))),
        el("div", {}, el("div", { class: "label", text: t("avg") }),
          field("avg_response_seconds", r.avg_response_seconds,
            typeof r.avg_response_seconds === "number" ? r.avg_response_seconds.toFixed(1) + "s" : dash)),
        el("div", {}, el("div", { class: "label", text: t("seats") + " " + t("online") + "/" + t("busy") }),
          field("seats:online", seats.online, num(seats.online)), " / ", field("seats:busy", seats.busy, num(seats.busy))),
        el("div", {}, el("div", { class: "label", text: t("away") + "/" + t("offline") }),
          field("seats:away", seats.away, num(seats.away)), " / ", field("seats:offline", seats.offline, num(seats.offline)))),
      ordersRow(r),
      el("div", { class: "label", text: t("trend") }),
      trendSVG((trends[r.shop] || {}).points, ths));
  }

  function render() {
    const tiles = document.getElementById("tiles");
    tiles.replaceChildren(...shops.map(tile));
    const first = (r) => (r.reply_rate || {})[thresholds(r)[0]];
    const ranked = [...shops].sort((a, b) => (first(b) ?? -1) - (first(a) ?? -1) || a.waiting_buyers - b.waiting_buyers);
    document.querySelector("#rank tbody").replaceChildren(
      el("tr", {}, el("th", { text: "#" }), el("th", { text: t("shop") }), el("th", { text: thresholds(shops[0] || {})[0] || "" }),
        el("th", { text: t("waiting") })),
      ...ranked.map((r, i) => el("tr", { "data-rank-shop": r.shop }, el("td", { class: "n", text: String(i + 1) }),
        el("td", { text: r.shop }), el("td", { class: "n", text: pct(first(r)) }), el("td", { class: "n", text: num(r.waiting_buyers) }))));
  }

  async function load() {
    try {
      const res = await fetch("/api/v1/shops", { cache: "no-store" });
      if (!res.ok) return;
      const body = await res.json();
      shops = body.shops || [];
      if (shops[0] && shops[0].timezone) zone = shops[0].timezone;
      for (const r of shops) zoneOf[r.shop] = r.timezone;
      render();
    } catch (e) { /* the next tick retries */ }
  }
  async function loadTrend() {
    try {
      const res = await fetch("/api/v1/shops/trend", { cache: "no-store" });
      if (!res.ok) return;
      trends = {};
      for (const s of (await res.json()).shops || []) trends[s.shop] = s;
      render();
    } catch (e) { /* the next tick retries */ }
  }

  function renderAlerts(firing) {
    firingNow = firing;
    const list = [...firing.values()].sort((a, b) => (b.at || "").localeCompare(a.at || "")).slice(0, 30);
    const ol = document.getElementById("alerts");
    if (list.length === 0) { ol.replaceChildren(el("li", { class: "empty", text: t("none") })); return; }
    ol.replaceChildren(...list.map((a) => el("li", { class: a.severity, "data-alert": a.alert_id, "data-kind": a.kind, "data-shop": a.shop_id },
      el("div", { text: `${kind(a.kind)}${a.threshold ? " " + a.threshold : ""} · ${a.shop_id}` }),
      el("div", { class: "meta", text: [localTime(a.at, zoneOf[a.shop_id]), a.buyer_id && `${t("buyer")} ${a.buyer_id}`, a.agent_id].filter(Boolean).join(" · ") }),
      a.summary ? el("div", { class: "meta", text: a.summary }) : null)));
  }

  let pending = null;
  RW.stream("/api/v1/alerts/stream", (firing) => {
    renderAlerts(firing);
    // A new alert usually means the figures moved: read them again soon.
    if (!pending) pending = setTimeout(() => { pending = null; load(); }, 300);
  }, (ok) => { conn.textContent = ok ? t("live") : t("offline_conn"); conn.className = "conn" + (ok ? " live" : ""); });
  renderAlerts(new Map());

  const clock = () => {
    document.getElementById("clock").textContent =
      new Intl.DateTimeFormat(RW.lang === "en" ? "en-GB" : "zh-CN", { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }).format(new Date());
  };
  load(); loadTrend(); clock();
  setInterval(load, 2000);
  setInterval(loadTrend, 10000);
  setInterval(clock, 1000);
})();
