package deployments

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Schema versions the dashboards may carry: Grafana 10.x to 11.x.
const minSchema, maxSchema = 36, 41

// matcher finds label matchers with a quoted value.
var matcher = regexp.MustCompile(`\w+\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)

// checkDashboard checks a dashboard's JSON model: its uid, a datasource
// variable and platform/shop variables read from replywatch_shop_info,
// every panel and target reading Prometheus by the variable or the fixed
// uid, unique panel ids and refIds, panels inside the 24-column grid, label
// variables only inside regex matchers (they become ".*" for "All"), and
// only series replywatch exports or the rules record.
func checkDashboard(data []byte, uid string, recorded map[string]bool) []string {
	d, err := ParseDashboard(data)
	if err != nil {
		return []string{err.Error()}
	}
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if d.UID != uid {
		add("uid is %q, want %q", d.UID, uid)
	}
	if d.SchemaVersion < minSchema || d.SchemaVersion > maxSchema {
		add("schemaVersion %d is not between %d and %d", d.SchemaVersion, minSchema, maxSchema)
	}
	if d.Title == "" {
		add("no title")
	}
	okDS := func(ds *DataSource) bool {
		return ds != nil && ds.Type == "prometheus" && (ds.UID == "${datasource}" || ds.UID == "prometheus")
	}
	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		if v.Type == "query" && !okDS(v.Datasource) {
			add("variable %s does not read Prometheus by ${datasource} or uid prometheus", v.Name)
		}
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || v.QueryString() != "prometheus" {
		add("no datasource variable of type datasource for prometheus")
	}
	for _, name := range []string{"platform", "shop"} {
		v, ok := vars[name]
		switch {
		case !ok:
			add("no %s variable", name)
		case !strings.Contains(v.QueryString(), "replywatch_shop_info") || !strings.HasSuffix(strings.TrimSpace(v.QueryString()), name+")"):
			add("variable %s is not label_values(replywatch_shop_info..., %s)", name, name)
		case !v.IncludeAll || v.AllValue == nil || *v.AllValue != ".*":
			add("variable %s: All must be .*", name)
		}
	}
	if v, ok := vars["shop"]; ok && !strings.Contains(v.QueryString(), "$platform") {
		add("variable shop does not follow $platform")
	}

	ids := map[int]bool{}
	for _, pn := range d.AllPanels() {
		if ids[pn.ID] {
			add("panel id %d is used twice", pn.ID)
		}
		ids[pn.ID] = true
		if pn.GridPos == nil || pn.GridPos.W <= 0 || pn.GridPos.H <= 0 || pn.GridPos.X < 0 || pn.GridPos.X+pn.GridPos.W > 24 {
			add("panel %q: gridPos missing or outside the 24 columns", pn.Title)
		}
		if pn.Type == "row" {
			if pn.Repeat != "" && vars[pn.Repeat].Name == "" {
				add("row %q repeats by undefined variable %s", pn.Title, pn.Repeat)
			}
			continue
		}
		if !okDS(pn.Datasource) {
			add("panel %q does not read Prometheus by ${datasource} or uid prometheus", pn.Title)
		}
		if pn.Type == "alertlist" {
			// Grafana reads the rules' alerts from the data source itself.
			if len(pn.Targets) > 0 {
				add("alert list %q has queries", pn.Title)
			}
			continue
		}
		if len(pn.Targets) == 0 {
			add("panel %q has no queries", pn.Title)
		}
		refs := map[string]bool{}
		for _, t := range pn.Targets {
			where := fmt.Sprintf("panel %q target %s", pn.Title, t.RefID)
			if t.RefID == "" || refs[t.RefID] {
				add("%s: refId empty or used twice", where)
			}
			refs[t.RefID] = true
			if !okDS(t.Datasource) {
				add("%s does not read Prometheus by ${datasource} or uid prometheus", where)
			}
			// Outside a regex matcher, ".*" for "All" would not match.
			for _, m := range matcher.FindAllStringSubmatch(t.Expr, -1) {
				if varRef.MatchString(m[2]) && m[1] != "=~" && m[1] != "!~" {
					add("%s: variable in %s matcher %q; use =~", where, m[1], m[0])
				}
			}
			for _, ref := range varRef.FindAllStringSubmatch(matcher.ReplaceAllString(t.Expr, ""), -1) {
				if name := ref[1] + ref[2] + ref[3]; !intervalVars[name] {
					add("%s: variable %s outside a label matcher", where, ref[0])
				}
			}
			for _, m := range unknownMetrics(t.Expr, recorded) {
				add("%s: %s is neither exported by replywatch nor recorded", where, m)
			}
		}
	}
	return p
}

// recordedNames returns the recording rules of a rule file.
func recordedNames(t *testing.T, rulesFile string) map[string]bool {
	t.Helper()
	g, err := ParseRules(readFile(t, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out
}

const testBoard = "grafana/dashboards/board.json"

// dashboardCases break the test kit's dashboard and list the problems
// checkDashboard must report.
var dashboardCases = []struct {
	name string
	edit *edit
	want []string
}{
	{name: "as is"},
	{name: "wrong uid", edit: &edit{testBoard, `"uid": "test-board"`, `"uid": "board"`},
		want: []string{`uid is "board", want "test-board"`}},
	{name: "old schema", edit: &edit{testBoard, `"schemaVersion": 39`, `"schemaVersion": 27`},
		want: []string{"schemaVersion 27 is not between"}},
	{name: "data source by name", edit: &edit{testBoard, `"datasource": {"type": "prometheus", "uid": "prometheus"},
        "targets"`, `"datasource": {"type": "prometheus", "uid": "Prometheus"},
        "targets"`},
		want: []string{`panel "Oldest" does not read Prometheus`}},
	{name: "target data source", edit: &edit{testBoard, `{"refId": "A", "datasource": {"type": "prometheus", "uid": "${datasource}"}`, `{"refId": "A", "datasource": {"type": "loki", "uid": "${datasource}"}`},
		want: []string{`panel "Waiting" target A does not read Prometheus`}},
	{name: "no platform variable", edit: &edit{testBoard, `"name": "platform"`, `"name": "plat"`},
		want: []string{"no platform variable"}},
	{name: "platform from another metric", edit: &edit{testBoard, `label_values(replywatch_shop_info, platform)`, `label_values(replywatch_seats, platform)`},
		want: []string{"variable platform is not label_values(replywatch_shop_info..., platform)"}},
	{name: "shop ignores platform", edit: &edit{testBoard, `replywatch_shop_info{platform=~\"$platform\"}, shop`, `replywatch_shop_info, shop`},
		want: []string{"variable shop does not follow $platform"}},
	{name: "all is not a regex", edit: &edit{testBoard, `"includeAll": true, "multi": true, "allValue": ".*"},
      {"name": "shop"`, `"includeAll": true, "multi": true, "allValue": "$__all"},
      {"name": "shop"`},
		want: []string{"variable platform: All must be .*"}},
	{name: "variable in equality matcher", edit: &edit{testBoard, `replywatch_waiting_buyers{shop=~\"$shop\"}`, `replywatch_waiting_buyers{shop=\"$shop\"}`},
		want: []string{`panel "Waiting" target A: variable in = matcher`}},
	{name: "variable outside a matcher", edit: &edit{testBoard, `max by (shop) (replywatch_waiting_buyers`, `topk($shop, replywatch_waiting_buyers`},
		want: []string{`panel "Waiting" target A: variable $shop outside a label matcher`}},
	{name: "duplicate panel id", edit: &edit{testBoard, `"id": 3,`, `"id": 1,`},
		want: []string{"panel id 1 is used twice"}},
	{name: "off the grid", edit: &edit{testBoard, `"w": 12, "x": 0`, `"w": 12, "x": 18`},
		want: []string{`panel "Waiting": gridPos missing or outside the 24 columns`}},
	{name: "duplicate refId", edit: &edit{testBoard, `{"refId": "B", "instant": true`, `{"refId": "A", "instant": true`},
		want: []string{`panel "Oldest" target A: refId empty or used twice`}},
	{name: "misspelt metric", edit: &edit{testBoard, `replywatch_oldest_wait_seconds`, `replywatch_oldest_wait`},
		want: []string{`panel "Oldest" target A: replywatch_oldest_wait is neither exported`}},
	{name: "unrecorded rule name", edit: &edit{testBoard, `replywatch:events:rate1m`, `replywatch:events:rate5m`},
		want: []string{`panel "Oldest" target B: replywatch:events:rate5m is neither exported`}},
}

func TestCheckDashboard(t *testing.T) {
	recorded := recordedNames(t, filepath.Join(testKit, RulesFile))
	for _, tc := range dashboardCases {
		t.Run(tc.name, func(t *testing.T) {
			root := testKit
			if tc.edit != nil {
				root = kitWith(t, *tc.edit)
			}
			data := readFile(t, filepath.Join(root, testBoard))
			assertProblems(t, checkDashboard(data, "test-board", recorded), tc.want)
		})
	}
}

// dashboards are the kit's dashboards and their fixed uids.
var dashboards = []struct{ file, uid string }{
	{"grafana/dashboards/supervisor.json", "replywatch-supervisor"},
	{"grafana/dashboards/sre.json", "replywatch-sre"},
}

func TestDashboards(t *testing.T) {
	recorded := recordedNames(t, RulesFile)
	for _, db := range dashboards {
		t.Run(db.uid, func(t *testing.T) {
			if p := checkDashboard(readFile(t, db.file), db.uid, recorded); len(p) > 0 {
				t.Fatalf("%s:\n%s", db.file, strings.Join(p, "\n"))
			}
		})
	}
}

// supervisorPanels are what the supervisor wall must show for each shop:
// panel title and the series its first query reads.
var supervisorPanels = []struct{ title, metric string }{
	{"Waiting now", "replywatch_waiting_buyers"},
	{"Oldest wait", "replywatch_oldest_wait_seconds"},
	{"$threshold reply rate today", "replywatch_reply_rate"},
	{"Breached buyers today", "replywatch_reply_breached_buyers"},
	{"30 s response rate", "replywatch_response_30s_rate"},
	{"Average response", "replywatch_avg_response_seconds"},
	{"Idle seats", "replywatch_idle_seats"},
	{"Agents", "replywatch_agent_waiting_buyers"},
	{"Working seats", "replywatch_seats"},
	{"Away seats", "replywatch_seats"},
	{"Uncovered today", "replywatch_uncovered_seconds"},
	{"Idle agents", "replywatch_agent_idle_seconds"},
	{"Awaiting shipment", "replywatch_orders_awaiting_shipment"},
	{"Late shipments today", "replywatch_shipping_breached_orders"},
	{"Open disputes", "replywatch_open_disputes"},
	{"Review satisfaction today", "replywatch_review_satisfaction"},
	{"Average refund", "replywatch_avg_refund_seconds"},
}

// TestSupervisorWall checks the wall's content: one row per shop with the
// figures supervisors act on, the oldest wait coloured at 2 and 3 minutes,
// reply rates shown against the shop's target, and the agent table.
func TestSupervisorWall(t *testing.T) {
	data := readFile(t, "grafana/dashboards/supervisor.json")
	d, err := ParseDashboard(data)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Panels []map[string]json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	repeated := false
	inRow := map[string]bool{}
	byTitle := map[string]Panel{}
	rawByTitle := map[string]map[string]json.RawMessage{}
	for i, p := range d.Panels {
		if p.Type == "row" {
			repeated = p.Repeat == "shop"
			continue
		}
		if repeated {
			inRow[p.Title] = true
			byTitle[p.Title] = p
			rawByTitle[p.Title] = raw.Panels[i]
		}
	}
	for _, sp := range supervisorPanels {
		p, ok := byTitle[sp.title]
		if !ok || !inRow[sp.title] {
			t.Errorf("no panel %q in a row repeated by shop", sp.title)
			continue
		}
		if len(p.Targets) == 0 || !strings.Contains(p.Targets[0].Expr, sp.metric+"{") {
			t.Errorf("panel %q does not read %s", sp.title, sp.metric)
		}
	}
	for _, title := range []string{"$threshold reply rate today"} {
		var target bool
		for _, tg := range byTitle[title].Targets {
			target = target || strings.Contains(tg.Expr, "replywatch_reply_rate_target")
		}
		if !target {
			t.Errorf("panel %q does not show the shop's target", title)
		}
	}

	// Any configured thresholds: the panels follow the threshold
	// variable, and no query names one.
	if p := byTitle["$threshold reply rate today"]; p.Repeat != "threshold" {
		t.Errorf("the reply rate panel repeats by %q, want threshold", p.Repeat)
	}
	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["threshold"]; !strings.Contains(v.QueryString(), "replywatch_reply_rate") || !v.IncludeAll {
		t.Errorf("no threshold variable read from replywatch_reply_rate with All")
	}
	for _, db := range dashboards {
		dd, err := ParseDashboard(readFile(t, db.file))
		if err != nil {
			t.Fatal(err)
		}
		hasJob := false
		for _, v := range dd.Templating.List {
			hasJob = hasJob || v.Name == "job" && strings.Contains(v.QueryString(), "label_values(replywatch_build_info, job)")
		}
		if !hasJob {
			t.Errorf("%s: no job variable from replywatch_build_info", db.file)
		}
		for _, pn := range dd.AllPanels() {
			for _, tg := range pn.Targets {
				if regexp.MustCompile(`threshold\s*=\s*"`).MatchString(tg.Expr) {
					t.Errorf("%s panel %q names a threshold: %s", db.file, pn.Title, tg.Expr)
				}
				for _, sel := range regexp.MustCompile(`replywatch[_:][\w:]*\{[^}]*\}`).FindAllString(tg.Expr, -1) {
					if !strings.Contains(sel, `job=~"$job"`) {
						t.Errorf("%s panel %q: %s does not follow $job", db.file, pn.Title, sel)
					}
				}
			}
		}
	}
	// The day's trends, and the alerts firing now.
	kinds := map[string]int{}
	for _, pn := range d.AllPanels() {
		kinds[pn.Type]++
	}
	if kinds["timeseries"] < 2 || kinds["alertlist"] != 1 {
		t.Errorf("panel types %v, want the day's time series and an alert list", kinds)
	}

	var fc struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	}
	if err := json.Unmarshal(rawByTitle["Oldest wait"]["fieldConfig"], &fc); err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range fc.Defaults.Thresholds.Steps {
		v := "base"
		if s.Value != nil {
			v = fmt.Sprint(*s.Value)
		}
		steps = append(steps, s.Color+"@"+v)
	}
	if got := strings.Join(steps, " "); got != "green@base orange@120 red@180" || fc.Defaults.Unit != "s" {
		t.Errorf("oldest wait thresholds %q unit %q, want green@base orange@120 red@180 in seconds", got, fc.Defaults.Unit)
	}
}

// ratioSeries are the ratios and means that are absent while their
// denominator is 0 (CONTRACT.md §4).
var ratioSeries = regexp.MustCompile(`replywatch_(agent_)?(reply_rate|response_30s_rate|avg_response_seconds)\{`)

// TestNoDataShowsDash: a panel reading a ratio or mean shows "—" when the
// series is absent, not Grafana's "No data" or a 0 that reads as a score.
func TestNoDataShowsDash(t *testing.T) {
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		FieldConfig struct {
			Defaults struct {
				NoValue string `json:"noValue"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Panels []json.RawMessage `json:"panels"`
	}
	for _, db := range dashboards {
		var d struct {
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(readFile(t, db.file), &d); err != nil {
			t.Fatal(err)
		}
		seen := 0
		var walk func([]json.RawMessage)
		walk = func(raws []json.RawMessage) {
			for _, r := range raws {
				var p panel
				if err := json.Unmarshal(r, &p); err != nil {
					t.Fatal(err)
				}
				walk(p.Panels)
				for _, tg := range p.Targets {
					if ratioSeries.MatchString(tg.Expr) {
						seen++
						if p.FieldConfig.Defaults.NoValue != "—" {
							t.Errorf("%s: panel %q reads a ratio or mean but shows %q when it is absent, want \"—\"",
								db.file, p.Title, p.FieldConfig.Defaults.NoValue)
						}
						break
					}
				}
			}
		}
		walk(d.Panels)
		if db.uid == "replywatch-supervisor" && seen < 4 {
			t.Errorf("%s: only %d panels read a ratio or mean; the wall shows reply rates, the 30 s rate and response times", db.file, seen)
		}
	}
}

// TestSREDashboardShowsResources: the SRE dashboard shows each replica's
// memory, CPU and garbage collection, and Redis's memory against its limit.
func TestSREDashboardShowsResources(t *testing.T) {
	d, err := ParseDashboard(readFile(t, "grafana/dashboards/sre.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, m := range []string{"process_resident_memory_bytes{", "process_cpu_seconds_total{", "go_gc_duration_seconds_count{",
		"go_gc_duration_seconds_sum{", "replywatch_redis_used_memory_bytes{", "replywatch_redis_maxmemory_bytes{"} {
		if !strings.Contains(all, m) {
			t.Errorf("no SRE panel reads %s}", m)
		}
	}
}
