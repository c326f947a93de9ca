// An agent's page: their waiting buyers from the moment each wait starts
// (/api/v1/waiting) and their alerts (the API lets an agent token see only
// its own), a countdown to each deadline, and a browser notification when
// a warning comes in.
"use strict";
(() => {
  const { t, kind, mmss, localTime, el } = RW;
  document.getElementById("title").textContent = t("agent");
  const conn = document.getElementById("conn");
  const btn = document.getElementById("notify");
  let firing = new Map();
  let waiting = [];
  window.rwNotified = 0;

  if ("Notification" in window && Notification.permission === "default") {
    btn.hidden = false;
    btn.textContent = t("notify");
    btn.onclick = () => Notification.requestPermission().then(() => { btn.hidden = true; });
  }
  function notify(a) {
    window.rwNotified++;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    new Notification(`${kind(a.kind)} · ${t("buyer")} ${a.buyer_id || ""}`, { body: a.summary || "", tag: a.alert_id });
  }

  // buyers groups the waiting buyers and the firing alerts by buyer: the
  // deadline is the earliest due among the buyer's alerts, or the wait's
  // first deadline while it has none; a buyer past a breach sorts first.
  function buyers() {
    const by = new Map();
    for (const w of waiting) {
      const key = w.shop_id + "/" + w.buyer_id;
      by.set(key, { key, shop: w.shop_id, buyer: w.buyer_id, alerts: [], due: w.deadline ? Date.parse(w.deadline) : Infinity,
        start: w.wait_start, breach: false });
    }
    for (const a of firing.values()) {
      const key = (a.shop_id || "") + "/" + (a.buyer_id || a.order_id || a.alert_id);
      const b = by.get(key) || { key, shop: a.shop_id, buyer: a.buyer_id || a.order_id || "", alerts: [], due: Infinity, breach: false };
      b.alerts.push(a);
      if (a.due) b.due = Math.min(b.due, Date.parse(a.due));
      if (a.kind === "reply_breach" || a.kind === "long_no_reply" || a.kind === "shipping_breach") b.breach = true;
      by.set(key, b);
    }
    return [...by.values()].sort((x, y) => x.due - y.due);
  }

  function render() {
    const now = Date.now();
    const list = buyers();
    document.getElementById("empty").textContent = list.length ? "" : t("none");
    document.getElementById("buyers").replaceChildren(...list.map((b) => {
      const left = (b.due - now) / 1000;
      const text = b.due === Infinity ? "" : left > 0 ? mmss(left) : b.breach ? "-" + mmss(-left) : "00:00";
      return el("li", { class: b.breach ? "breach" : "", "data-buyer": b.buyer, "data-shop": b.shop },
        el("span", { class: "countdown", "data-due": String(b.due), text }),
        el("div", {},
          el("div", { class: "who", text: `${t("buyer")} ${b.buyer} · ${b.shop}` }),
          el("div", { class: "kinds", text: [
            ...(b.start ? [`${t("since")} ${localTime(b.start)}`] : []),
            ...(b.alerts.length ? b.alerts.map((a) => `${kind(a.kind)}${a.threshold ? " " + a.threshold : ""} ${localTime(a.due || a.at)}`) : [t("waiting_reply")]),
          ].join(" · ") })));
    }));
  }

  firing = RW.stream("/api/v1/alerts/stream", (f, a, isNew) => {
    if (isNew && (a.kind === "reply_warning" || a.severity === "critical")) notify(a);
    render();
  }, (ok) => { conn.textContent = ok ? t("live") : t("offline_conn"); conn.className = "conn" + (ok ? " live" : ""); });
  // The waiting buyers change with every message and reply: read them
  // again every two seconds.
  async function poll() {
    try {
      const r = await fetch("/api/v1/waiting", { cache: "no-store" });
      if (r.ok) { waiting = (await r.json()).buyers || []; render(); }
    } catch { /* the next poll tries again */ }
  }
  poll();
  setInterval(poll, 2000);
  const clock = () => { document.getElementById("clock").textContent = new Date().toLocaleTimeString(RW.lang === "en" ? "en-GB" : "zh-CN", { hour12: false }); };
  render(); clock();
  setInterval(() => { render(); clock(); }, 250);
})();
