package deployments

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestQueriesOfTestKit(t *testing.T) {
	got, err := Queries(testKit)
	if err != nil {
		t.Fatal(err)
	}
	const board = "grafana/dashboards/board.json"
	want := []Query{
		{File: board, Kind: KindVariable, Name: "platform", Expr: `replywatch_shop_info`},
		{File: board, Kind: KindVariable, Name: "shop", Expr: `replywatch_shop_info{platform=~".*"}`},
		{File: board, Kind: KindPanel, Name: "Waiting/A", Expr: `max by (shop) (replywatch_waiting_buyers{shop=~".*"})`},
		{File: board, Kind: KindPanel, Name: "Oldest/A", Expr: `max by (shop) (max_over_time(replywatch_oldest_wait_seconds{shop=~".*"}[5m]))`},
		{File: board, Kind: KindPanel, Name: "Oldest/B", Instant: true,
			Expr: `sum(replywatch:events:rate1m{job=~"replywatch$"}) and on () count(replywatch_shop_info{platform=~".*"})`},
		{File: RulesFile, Kind: KindRecord, Name: "replywatch:events:rate1m", Expr: `sum by (job, topic, result) (rate(replywatch_events_total[1m]))`},
		{File: RulesFile, Kind: KindAlert, Name: "ReplywatchNoReporter", Expr: `sum by (job) (replywatch_reporter_leader) == 0`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Queries:\n%s\nwant:\n%s", dump(got), dump(want))
	}
}

// queryErrorCases break the test kit; Queries must refuse it and say why.
var queryErrorCases = []struct {
	name string
	edit edit
	want string
}{
	{
		name: "undefined variable",
		edit: edit{"grafana/dashboards/board.json", `shop=~\"$shop\"`, `shop=~\"$store\"`},
		want: `panel Waiting/A: variable "$store" is not defined by the dashboard`,
	},
	{
		name: "undefined interval variable",
		edit: edit{"grafana/dashboards/board.json", `[$__rate_interval]`, `[$__interval_ms]`},
		want: `variable "$__interval_ms" is not defined`,
	},
	{
		name: "variable that is not label_values",
		edit: edit{"grafana/dashboards/board.json", `"label_values(replywatch_shop_info, platform)"`, `"query_result(replywatch_shop_info)"`},
		want: `variable platform: query "query_result(replywatch_shop_info)" is not label_values(selector, label)`,
	},
	{
		name: "target without expr",
		edit: edit{"grafana/dashboards/board.json", `"expr": "max by (shop) (replywatch_waiting_buyers{shop=~\"$shop\"})"`, `"expr": ""`},
		want: `panel "Waiting" target A: no expr`,
	},
	{
		name: "broken dashboard JSON",
		edit: edit{"grafana/dashboards/board.json", `"uid": "test-board",`, `"uid": "test-board"`},
		want: `decoding dashboard JSON`,
	},
	{
		name: "unknown rule key",
		edit: edit{"prometheus/rules.yml", `        for: 1m`, `        fur: 1m`},
		want: `field fur not found`,
	},
	{
		name: "rule without expr",
		edit: edit{"prometheus/rules.yml", `        expr: sum by (job) (replywatch_reporter_leader) == 0`, ``},
		want: `group alerts rule 0: needs record or alert, and expr`,
	},
}

func TestQueriesErrors(t *testing.T) {
	for _, tc := range queryErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Queries(kitWith(t, tc.edit))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestQueriesOfKit reads the real dashboards and rules: every expression
// is complete (no variable left), every alert and recording rule is there,
// and, when promtool is installed, every expression parses as PromQL.
func TestQueriesOfKit(t *testing.T) {
	qs, err := Queries(".")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules(readFile(t, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	files := map[string]bool{}
	for _, q := range qs {
		count[q.Kind]++
		files[q.File] = true
		if varRef.MatchString(q.Expr) {
			t.Errorf("%s %s: variable left in %q", q.File, q.Name, q.Expr)
		}
	}
	var nRules int
	for _, g := range rules.Groups {
		nRules += len(g.Rules)
	}
	if count[KindRecord]+count[KindAlert] != nRules {
		t.Errorf("%d rule queries, rules.yml has %d rules", count[KindRecord]+count[KindAlert], nRules)
	}
	for _, f := range []string{"grafana/dashboards/supervisor.json", "grafana/dashboards/sre.json", RulesFile} {
		if !files[f] {
			t.Errorf("no query from %s", f)
		}
	}
	if count[KindPanel] < 30 {
		t.Errorf("only %d panel queries", count[KindPanel])
	}

	promtool := tool(t, "promtool")
	// promtool parses every expression of a rule file: the queries become
	// recording rules of one group.
	var b strings.Builder
	b.WriteString("groups:\n  - name: queries\n    rules:\n")
	for i, q := range qs {
		fmt.Fprintf(&b, "      # %s %s\n      - record: query_%d\n        expr: %q\n", q.File, q.Name, i, q.Expr)
	}
	f := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on every query: %v\n%s\n%s", err, out, b.String())
	}
}

func dump(qs []Query) string {
	var b strings.Builder
	for _, q := range qs {
		fmt.Fprintf(&b, "  %+v\n", q)
	}
	return b.String()
}
