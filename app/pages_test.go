package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap/zaptest"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
)

const chromiumMissing = "chromium not found: install it with apt-get install chromium (scripts/test.sh does)"

// browserCtx starts headless Chromium for the test, or skips it (fails on
// CI) when there is none.
func browserCtx(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(chromiumMissing)
		}
		t.Skip(chromiumMissing)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.WindowSize(1600, 1000), chromedp.Flag("lang", "zh-CN"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page into a T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// location is the page's address.
func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tilesJS reads the wall's figures: data-value by data-field, per shop.
const tilesJS = `(() => {
	const out = {};
	for (const tile of document.querySelectorAll("article[data-shop]")) {
		const f = out[tile.dataset.shop] = {};
		for (const v of tile.querySelectorAll("[data-field]")) f[v.dataset.field] = v.dataset.value;
	}
	return out; })()`

// screenshot saves the page to REPLYWATCH_SCREENSHOTS (a directory) or the
// test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("REPLYWATCH_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// alertArrivals follows the alerts topic from its end and notes when each
// record (alert id and status) arrived.
type alertArrivals struct {
	mu sync.Mutex
	at map[string]time.Time
}

func followAlerts(t *testing.T, broker string) *alertArrivals {
	ctx, cancel := context.WithCancel(context.Background())
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "cs.alerts", Partition: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 20 * time.Millisecond})
	a := &alertArrivals{at: map[string]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			var rec alerting.Alert
			if json.Unmarshal(m.Value, &rec) == nil {
				a.mu.Lock()
				a.at[rec.ID+":"+rec.Status] = time.Now()
				a.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return a
}

func (a *alertArrivals) when(key string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[key]
	return t, ok
}

// await is when, waiting up to d for the record to be read.
func (a *alertArrivals) await(key string, d time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(d)
	for {
		if t, ok := a.when(key); ok || time.Now().After(deadline) {
			return t, ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The pages in a real browser against a running replywatch: the wall's
// numbers are those of /api/v1/shops and /metrics, a new breach shows in
// its alert list within 2 s of reaching the alerts topic; the agent page
// shows only that agent's buyers, with a countdown that reaches zero when
// the breach fires, and a browser notification for the warning.
func TestPagesInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	bctx := browserCtx(t)
	e := newEnv(t)
	cfg := testConfig(t, e.broker, e.redis, "pages")
	cfg.ServiceHours = []config.TimeRange{{Start: "00:00", End: "24:00"}}
	cfg.ReplySLA.Thresholds = []time.Duration{20 * time.Second, 40 * time.Second}
	cfg.ReplySLA.WarnBefore = 10 * time.Second
	cfg.Shops = map[string]config.ShopOverride{"s1": {}, "s2": {}, "s3": {}}
	cfg.API.Tokens = []config.Token{
		{Name: "wall", SHA256: hashOf("wall-token"), Role: config.RoleSupervisor, Shops: []string{"s1", "s2", "s3"}},
		{Name: "a1", SHA256: hashOf("a1-token"), Role: config.RoleAgent, Agent: "a1"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Log: zaptest.NewLogger(t), Holder: "pages", TrendEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica: %v", err)
		}
	})
	addr := a.Addr()
	base := "http://" + addr
	eventually(t, 20*time.Second, "joined", func() error {
		if !a.Processor.Joined() {
			return errors.New("not joined")
		}
		return nil
	})
	arrivals := followAlerts(t, e.broker)

	// Some of a day: buyers answered in time, late and not at all.
	now := time.Now().Truncate(time.Second)
	ago := func(s int) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	reply := func(id, shop, buyer, agent string, ts time.Time) event.Event {
		return event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: ts}, ShopID: shop,
			BuyerID: buyer, Sender: "agent", AgentID: agent, Text: "您好,在的"}
	}
	evs := []event.Event{
		buyerMsg("p1", "s1", "b1", "a1", ago(300)), reply("p2", "s1", "b1", "a1", ago(290)),
		buyerMsg("p3", "s1", "b2", "a2", ago(240)), reply("p4", "s1", "b2", "a2", ago(210)),
		buyerMsg("p5", "s1", "b3", "a2", ago(100)),
		buyerMsg("p6", "s1", "b4", "a1", ago(90)),
		buyerMsg("p7", "s2", "b5", "a9", ago(200)), reply("p8", "s2", "b5", "a9", ago(195)),
		buyerMsg("p9", "s2", "b6", "a9", ago(60)), reply("p10", "s2", "b6", "a9", ago(35)),
		buyerMsg("p11", "s3", "b7", "a7", ago(120)),
	}
	produce(t, e.broker, "cs.chat", evs...)
	eventually(t, 15*time.Second, "events applied", func() error {
		if got := scrape(t, addr)["replywatch_events_total{result=applied,topic=cs.chat}"]; got != float64(len(evs)) {
			return fmt.Errorf("applied %v of %d", got, len(evs))
		}
		return nil
	})

	// The wall, opened with its token: the token moves into a cookie.
	do(t, bctx, "open the wall", chromedp.Navigate(base+"/wall?token=wall-token"), chromedp.WaitVisible(`article[data-shop="s3"]`))
	if loc := location(t, bctx); loc != base+"/wall" {
		t.Errorf("the wall's address is %s, want it without the token", loc)
	}
	// Every figure on the wall is the API's and the exported one.
	eventually(t, 20*time.Second, "the wall shows /api/v1/shops and /metrics", func() error {
		return sameFigures(t, addr, eval[map[string]map[string]string](t, bctx, tilesJS))
	})
	// The day's trend is drawn.
	eventually(t, 25*time.Second, "trend lines", func() error {
		if n := eval[int](t, bctx, `document.querySelectorAll('article[data-shop="s1"] svg.trend polyline').length`); n != 2 {
			return fmt.Errorf("%d trend lines for s1, want one per threshold", n)
		}
		return nil
	})

	// A new breach shows in the alert list within 2 s of reaching cs.alerts.
	start := time.Now()
	produce(t, e.broker, "cs.chat", buyerMsg("p12", "s2", "b8", "a9", start))
	breach := alerting.ID(alerting.KindReplyBreach, "20s", "s2", "b8", strconv.FormatInt(start.UnixMilli(), 10))
	var shown time.Time
	deadline := time.Now().Add(60 * time.Second)
	for shown.IsZero() && time.Now().Before(deadline) {
		if eval[bool](t, bctx, fmt.Sprintf(`document.querySelector('#alerts li[data-alert=%q]') !== null`, breach)) {
			shown = time.Now()
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The test's own cs.alerts reader may lag the page under load: wait for it to see the record.
	arrived, ok := arrivals.await(breach+":firing", 30*time.Second)
	if shown.IsZero() || !ok {
		t.Fatalf("breach %s: on cs.alerts %v, on the wall %v", breach, ok, !shown.IsZero())
	}
	if d := shown.Sub(arrived); d > 2*time.Second {
		t.Errorf("the breach showed on the wall %v after it reached cs.alerts, want within 2s", d)
	}
	t.Logf("breach on the wall %v after cs.alerts", shown.Sub(arrived).Round(time.Millisecond))
	eventually(t, 20*time.Second, "the wall after the breach", func() error {
		return sameFigures(t, addr, eval[map[string]map[string]string](t, bctx, tilesJS))
	})
	screenshot(t, bctx, "wall.png")

	// The agent page, with notifications allowed.
	if _, err := chromedp.CallBrowser(bctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted, Origin: base}); err != nil {
		t.Fatalf("allowing notifications: %v", err)
	}
	do(t, bctx, "open the agent page", chromedp.Navigate(base+"/agent?token=a1-token"), chromedp.WaitVisible(`li[data-buyer="b4"]`))
	if loc := location(t, bctx); loc != base+"/agent" {
		t.Errorf("the agent page's address is %s, want it without the token", loc)
	}
	// A new buyer of a1's: the warning brings a countdown to the breach.
	start = time.Now()
	produce(t, e.broker, "cs.chat", buyerMsg("p13", "s1", "b9", "a1", start), buyerMsg("p14", "s1", "b10", "a2", start))
	breach = alerting.ID(alerting.KindReplyBreach, "20s", "s1", "b9", strconv.FormatInt(start.UnixMilli(), 10))
	warning := alerting.ID(alerting.KindReplyWarning, "20s", "s1", "b9", strconv.FormatInt(start.UnixMilli(), 10))
	type row struct {
		Text   string `json:"text"`
		Breach bool   `json:"breach"`
		Due    string `json:"due"`
		Kinds  string `json:"kinds"`
	}
	var seen []row
	var firstSeen, breachSeen time.Time
	deadline = time.Now().Add(60 * time.Second)
	for breachSeen.IsZero() && time.Now().Before(deadline) {
		r := eval[*row](t, bctx, `(() => {
			const li = document.querySelector('li[data-buyer="b9"]');
			if (!li) return null;
			const c = li.querySelector(".countdown");
			return {text: c.textContent, breach: li.classList.contains("breach"), due: c.dataset.due,
				kinds: li.querySelector(".kinds").textContent}; })()`)
		if r != nil {
			if firstSeen.IsZero() {
				firstSeen = time.Now()
			}
			seen = append(seen, *r)
			if r.Breach {
				breachSeen = time.Now()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if breachSeen.IsZero() || len(seen) < 2 {
		t.Fatalf("b9 on the agent page: %+v", seen)
	}
	first := seen[0]
	if first.Breach || !strings.HasPrefix(first.Text, "00:") || first.Text == "00:00" {
		t.Errorf("b9 first showed %+v, want a running countdown", first)
	}
	// b9 is listed from the start of the wait, before any warning: the
	// waiting set, not the first alert, brings the buyer to the page.
	waitStart := "等待自 " + start.In(cfg.Location("s1")).Format("15:04:05")
	if !strings.Contains(first.Kinds, waitStart) || !strings.Contains(first.Kinds, "等待回复") {
		t.Errorf("b9 first showed %q, want the wait start (%s) and no alert yet", first.Kinds, waitStart)
	}
	if warned, ok := arrivals.await(warning+":firing", 30*time.Second); !ok || !firstSeen.Before(warned) {
		t.Errorf("b9 showed on the agent page at %v, its warning reached cs.alerts at %v (%v): want the buyer shown before",
			firstSeen, warned, ok)
	}
	due, _ := strconv.ParseInt(seen[len(seen)-1].Due, 10, 64)
	if want := start.Add(20 * time.Second).UnixMilli(); due != want {
		t.Errorf("countdown to %d, want the breach deadline %d", due, want)
	}
	// Before the breach fired, the countdown reached zero and went no further.
	var zero bool
	for _, r := range seen {
		if r.Breach {
			break
		}
		if strings.HasPrefix(r.Text, "-") {
			t.Errorf("countdown went below zero before the breach: %+v", r)
		}
		zero = zero || r.Text == "00:00" || r.Text == "00:01"
	}
	if !zero {
		t.Errorf("the countdown never reached zero before the breach: %+v", seen)
	}
	if arrived, ok := arrivals.await(breach+":firing", 30*time.Second); !ok || breachSeen.Sub(arrived) > 2*time.Second {
		t.Errorf("the breach showed on the agent page at %v, it reached cs.alerts at %v (%v)", breachSeen, arrived, ok)
	}
	// Only a1's buyers, and a notification for the warning.
	buyers := eval[[]string](t, bctx, `[...document.querySelectorAll("li[data-buyer]")].map(li => li.dataset.buyer).sort()`)
	notified := eval[int](t, bctx, `window.rwNotified`)
	if strings.Join(buyers, ",") != "b4,b9" {
		t.Errorf("a1's page lists buyers %v, want b4 and b9 (a1's waiting buyers)", buyers)
	}
	if notified < 1 {
		t.Errorf("no browser notification for b9's warning")
	}
	screenshot(t, bctx, "agent.png")
}

// sameFigures compares the wall's figures (data-value by data-field, per
// shop) with /api/v1/shops and /metrics.
func sameFigures(t *testing.T, addr string, page map[string]map[string]string) error {
	code, b := get(t, addr, "/api/v1/shops", "wall-token")
	if code != 200 {
		return fmt.Errorf("/api/v1/shops = %d", code)
	}
	var body struct {
		Shops []map[string]any
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return err
	}
	m := scrape(t, addr)
	if len(page) != len(body.Shops) {
		return fmt.Errorf("%d tiles, %d shops", len(page), len(body.Shops))
	}
	var diffs []string
	num := func(s string) (float64, bool) {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	for _, shop := range body.Shops {
		name := shop["shop"].(string)
		tile := page[name]
		check := func(field, metric string, api any) {
			pv, pok := num(tile[field])
			av, aok := api.(float64)
			mv, mok := m[metric]
			if pok != aok || aok != mok || aok && (math.Abs(pv-av) > 1e-9 || math.Abs(mv-av) > 1e-9) {
				diffs = append(diffs, fmt.Sprintf("%s %s: page %q, api %v, metrics %v (%v)", name, field, tile[field], api, mv, mok))
			}
		}
		check("waiting_buyers", "replywatch_waiting_buyers{shop="+name+"}", shop["waiting_buyers"])
		check("response_30s_rate", "replywatch_response_30s_rate{shop="+name+"}", shop["response_30s_rate"])
		check("avg_response_seconds", "replywatch_avg_response_seconds{shop="+name+"}", shop["avg_response_seconds"])
		orders, _ := shop["orders"].(map[string]any)
		check("orders_awaiting_shipment", "replywatch_orders_awaiting_shipment{shop="+name+"}", orders["orders_awaiting_shipment"])
		check("shipping_breached_orders", "replywatch_shipping_breached_orders{shop="+name+"}", orders["shipping_breached_orders"])
		check("inquiry_conversion_rate", "replywatch_inquiry_conversion_rate{shop="+name+"}", orders["inquiry_conversion_rate"])
		for _, th := range []string{"20s", "40s"} {
			rates, _ := shop["reply_rate"].(map[string]any)
			breached, _ := shop["reply_breached_buyers"].(map[string]any)
			check("reply_rate:"+th, "replywatch_reply_rate{shop="+name+",threshold="+th+"}", rates[th])
			check("reply_breached_buyers:"+th, "replywatch_reply_breached_buyers{shop="+name+",threshold="+th+"}", breached[th])
		}
		// The oldest wait grows by the second: the page's is at most one
		// refresh behind.
		if pv, ok := num(tile["oldest_wait_seconds"]); ok {
			if av, _ := shop["oldest_wait_seconds"].(float64); av-pv > 5 || pv > av {
				diffs = append(diffs, fmt.Sprintf("%s oldest wait: page %v, api %v", name, pv, av))
			}
		}
	}
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}
