package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/state"
)

// TestReadFigures reads what the real reporter exports from a store with
// known figures: the demo must show exactly the exported values.
func TestReadFigures(t *testing.T) {
	now := at("2026-11-24 14:00", shanghai)
	cfg := config.Default()
	cfg.Shops["s1"] = config.ShopOverride{Platform: "taobao"}
	cfg.Shops["s2"] = config.ShopOverride{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rules := cfg.Rules()
	store := state.NewMemory()
	day := "2026-11-24"
	figs := []detectors.FigureDelta{
		{Shop: "s1", Day: day, Field: detectors.FieldConsulting, Delta: 40},
		{Shop: "s1", Day: day, Field: detectors.ThresholdField(detectors.FieldBreached, 3*time.Minute), Delta: 4},
		{Shop: "s1", Day: day, Field: detectors.ThresholdField(detectors.FieldBreached, 5*time.Minute), Delta: 2},
		{Shop: "s1", Day: day, Field: detectors.FieldMessages, Delta: 100},
		{Shop: "s1", Day: day, Field: detectors.FieldAnswered30, Delta: 75},
		{Shop: "s1", Day: day, Field: detectors.FieldRespMs, Delta: 90_000},
		{Shop: "s1", Day: day, Field: detectors.FieldRespN, Delta: 3},
	}
	waits := []detectors.WaitOp{
		{Shop: "s1", Buyer: "b1", Start: now.Add(-150 * time.Second).UnixMilli(), Add: true},
		{Shop: "s1", Buyer: "b2", Start: now.Add(-10 * time.Second).UnixMilli(), Add: true},
	}
	if _, err := store.Claim(context.Background(), "chat.0", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(context.Background(), "chat.0", &state.Batch{Token: 1, Offset: 1, Figures: figs, Waits: waits}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	pm := metrics.NewProcess(reg)
	rep := &metrics.Reporter{Source: store, Shops: []string{"s1", "s2"}, Now: func() time.Time { return now }, Log: zap.NewNop(),
		Info: func(shop string) metrics.ShopInfo { return metrics.ShopInfo{Rules: rules(shop)} }, Process: pm}
	rep.Register(reg)
	if err := rep.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	plm := pipeline.NewMetrics(reg, pm)
	plm.Events.WithLabelValues("cs.chat", "applied").Add(7)
	plm.ConsumerLag.WithLabelValues("cs.chat", "0").Set(3)

	snap, err := ReadFigures(reg)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Events != 7 || !snap.LagKnown || snap.Lag != 3 {
		t.Errorf("events %v, lag %v (known %v); want 7, 3", snap.Events, snap.Lag, snap.LagKnown)
	}
	if len(snap.Shops) != 2 || snap.Shops[0].Shop != "s1" || snap.Shops[1].Shop != "s2" {
		t.Fatalf("shops = %+v, want s1 and s2 in order", snap.Shops)
	}
	s1 := snap.Shop("s1")
	checks := []struct {
		name      string
		got, want float64
	}{
		{"waiting", s1.Waiting, 2},
		{"oldest", s1.Oldest, 150},
		{"consulting", s1.Consulting, 40},
		{"rate 3m", s1.Rate["3m"], 0.9},
		{"rate 5m", s1.Rate["5m"], 0.95},
		{"breached 3m", s1.Breached["3m"], 4},
		{"breached 5m", s1.Breached["5m"], 2},
		{"30s rate", deref(s1.Rate30), 0.75},
		{"avg response", deref(s1.AvgResp), 30},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("s1 %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s1.Platform != "taobao" || !s1.InHours {
		t.Errorf("s1 platform %q, in hours %v; want taobao, true", s1.Platform, s1.InHours)
	}
	// No data is not a perfect score: the ratios and means are absent.
	s2 := snap.Shop("s2")
	if s2 == nil || s2.Consulting != 0 || len(s2.Rate) != 0 || s2.Rate30 != nil || s2.AvgResp != nil {
		t.Fatalf("s2 (configured, no data) = %+v, want zero consulting and no rates", s2)
	}
	v := &view{loc: shanghai, zone: "UTC+8", thresholds: []string{"3m", "5m"}, snap: snap}
	row := v.table()[2]
	if strings.Count(row, noData) != 5 || strings.Contains(row, "100.0%") {
		t.Errorf("s2's row shows %q; want %s for both reply rates, the target (none configured), the 30 s rate and the mean response", row, noData)
	}
}

// deref reads a figure that must be present.
func deref(f *float64) float64 {
	if f == nil {
		return -1
	}
	return *f
}

func ptr(f float64) *float64 { return &f }

var fitCases = []struct {
	in    string
	width int
	want  string
}{
	{"short", 10, "short"},
	{"exactly10!", 10, "exactly10!"},
	{"a bit too long", 10, "a bit too…"},
	{"【回复超时】店铺", 10, "【回复超…"}, // wide characters take two columns
	{"ab回复", 4, "ab…"},
	{"anything", 0, "anything"}, // unknown width: leave it
}

func TestFit(t *testing.T) {
	for _, c := range fitCases {
		got := fit(c.in, c.width)
		if got != c.want {
			t.Errorf("fit(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
		if c.width > 0 && width(got) > c.width {
			t.Errorf("fit(%q, %d) is %d columns wide", c.in, c.width, width(got))
		}
	}
}

var formatCases = []struct {
	got, want string
}{
	{count(0), "0"},
	{count(999), "999"},
	{count(1000), "1,000"},
	{count(156128), "156,128"},
	{count(-1234567), "-1,234,567"},
	{seconds(41.4), "41s"},
	{seconds(161), "2m41s"},
	{seconds(50760), "14h06m"},
	{percent(0.8071), "80.7%"},
	{percent(1), "100.0%"},
}

func TestFormats(t *testing.T) {
	for _, c := range formatCases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestFrameFitsTheScreen: a short terminal keeps the header, the shops and
// the connection line, and drops the oldest alerts.
func TestFrameFitsTheScreen(t *testing.T) {
	start := at("2026-11-24 14:00", shanghai)
	v := &view{loc: shanghai, zone: "Asia/Shanghai", thresholds: []string{"3m", "5m"}, started: start, terminal: true,
		footer: "kafka 127.0.0.1:9092   redis redis://127.0.0.1:6379/0   metrics http://127.0.0.1:8080/metrics"}
	v.snap = &Snapshot{Events: 1000, LagKnown: true, Shops: []*ShopFigures{
		{Shop: "shop-01", Platform: "pdd", Waiting: 3, Oldest: 161, Consulting: 812, Rate: map[string]float64{"3m": 0.962, "5m": 0.981},
			Breached: map[string]float64{"3m": 31, "5m": 15}, Rate30: ptr(0.784), AvgResp: ptr(41), Seats: map[string]float64{"online": 2, "busy": 1}},
	}}
	for i := 0; i < 12; i++ {
		v.alert(alerting.Alert{Kind: alerting.KindReplyBreach, Status: alerting.Firing, ShopID: "shop-01",
			BuyerID: "u" + string(rune('a'+i)), At: start.Add(time.Duration(i) * time.Second), Summary: "s"})
	}
	v.alert(alerting.Alert{Kind: alerting.KindReplyBreach, Status: alerting.Firing, ShopID: "shop-01", At: start.Add(-time.Hour)})
	if v.live != 12 || v.past != 1 || len(v.recent) != maxAlerts {
		t.Fatalf("live %d, past %d, listed %d; want 12, 1, %d", v.live, v.past, len(v.recent), maxAlerts)
	}
	full := v.frame(start.Add(time.Minute), 100)
	short := v.frame(start.Add(time.Minute), 16)
	if len(short) > 15 {
		t.Errorf("frame for 16 rows has %d lines", len(short))
	}
	text := strings.Join(full, "\n")
	for _, want := range []string{"shop-01", "96.2%", "2m41s", "31 / 15", "78.4%", "41s", "2/1/0/0",
		"1 more from earlier today", "  uk  ", "metrics http://127.0.0.1:8080/metrics"} {
		if !strings.Contains(text, want) {
			t.Errorf("frame lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "  ua  ") || strings.Contains(text, "  ub  ") {
		t.Errorf("frame lists more than the last %d alerts:\n%s", maxAlerts, text)
	}
	if short[len(short)-1] != v.footer || !strings.HasPrefix(short[0], "replywatch demo") {
		t.Errorf("short frame lost its header or footer:\n%s", strings.Join(short, "\n"))
	}
	// The newest alert comes first.
	if i, j := strings.Index(text, "  ul  "), strings.Index(text, "  uk  "); i < 0 || i > j {
		t.Errorf("alerts not newest first:\n%s", text)
	}
}

// TestDraw: the terminal screen is redrawn from the top left, every line
// cleared to its end and cut to the terminal's width, and the rest of the
// screen cleared, so nothing of an earlier frame shows through.
func TestDraw(t *testing.T) {
	start := at("2026-11-24 14:00", shanghai)
	var out strings.Builder
	v := &view{out: &out, loc: shanghai, zone: "Asia/Shanghai", thresholds: []string{"3m", "5m"}, started: start,
		terminal: true, size: func() (int, int) { return 40, 20 }, footer: "kafka 127.0.0.1:9092"}
	v.alert(alerting.Alert{Kind: alerting.KindReplyWarning, Status: alerting.Firing, ShopID: "shop-01", BuyerID: "u1",
		At: start, Summary: "【即将超时】店铺 shop-01 买家 u1 尚未获人工回复"})
	v.draw(start.Add(10 * time.Second))
	s := out.String()
	if !strings.HasPrefix(s, home) || !strings.HasSuffix(s, clearEOS) {
		t.Fatalf("frame does not start at home and end clearing the screen: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(s, home), clearEOS), "\r\n")
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasSuffix(l, clearEOL) {
			t.Errorf("line not cleared to its end: %q", l)
		}
		if w := width(strings.TrimSuffix(l, clearEOL)); w > 40 {
			t.Errorf("line %q is %d columns in a 40-column terminal", l, w)
		}
	}
	if !strings.Contains(s, "reply_warning  firing") {
		t.Errorf("the alert is not on the screen: %q", s)
	}
}

// TestTableAgainstTarget: the terminal table shows each shop's target and
// colours its reply rates against it (84% under a 90% target is red, not
// plain); the colour takes no columns; a shifted zone's explanation is on
// the screen, under the header.
func TestTableAgainstTarget(t *testing.T) {
	v := &view{loc: shanghai, zone: "UTC−7", zoneNote: "it is 01:00 in Asia/Shanghai, outside service hours (08:00–23:00); the demo shops run at UTC−7",
		thresholds: []string{"3m", "5m"}, terminal: true, started: at("2026-11-24 14:00", shanghai)}
	v.snap = &Snapshot{Shops: []*ShopFigures{
		{Shop: "shop-01", Platform: "pdd", Rate: map[string]float64{"3m": 0.84, "5m": 0.95}, Target: 0.9},
		{Shop: "shop-02", Platform: "pdd", Rate: map[string]float64{}, Target: 0.9},
	}}
	rows := v.table()
	if !strings.Contains(rows[0], "TARGET") || !strings.Contains(rows[1], "90.0%") {
		t.Fatalf("no target column:\n%s", strings.Join(rows, "\n"))
	}
	if !strings.Contains(rows[1], red+"84.0%"+reset) || !strings.Contains(rows[1], green+"95.0%"+reset) {
		t.Errorf("rates not coloured against the target: %q", rows[1])
	}
	if strings.Contains(rows[2], "\x1b[") {
		t.Errorf("a shop without rates is coloured: %q", rows[2])
	}
	// Columns line up: colour codes take no width.
	if width(rows[1]) != width(rows[2]) {
		t.Errorf("rows are %d and %d columns wide:\n%s", width(rows[1]), width(rows[2]), strings.Join(rows, "\n"))
	}
	if cut := fit(rows[1], 40); width(cut) > 40 || strings.Count(cut, "\x1b[") > 0 && !strings.Contains(cut, reset) {
		t.Errorf("fit leaves %q (%d columns)", cut, width(cut))
	}
	frame := v.frame(at("2026-11-24 14:00", shanghai), 40)
	if !strings.Contains(frame[0], "UTC−7") || !strings.HasPrefix(frame[1], "time: it is 01:00 in Asia/Shanghai") {
		t.Errorf("header and zone note:\n%s", strings.Join(frame[:2], "\n"))
	}
	// Plain output has no colour.
	v.terminal = false
	if strings.Contains(strings.Join(v.table(), ""), "\x1b[") {
		t.Error("plain mode table is coloured")
	}
}
