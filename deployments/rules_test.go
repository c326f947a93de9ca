package deployments

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// RunbookURL is where every alert's runbook_url points, plus "#anchor".
const runbookURL = "https://github.com/replywatch/replywatch/blob/main/deployments/RUNBOOK.md"

// recordName is level:metric:operations.
var recordName = regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)

// heading finds second-level Markdown headings.
var heading = regexp.MustCompile(`(?m)^## (.+)$`)

// anchor is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces to dashes.
func anchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ruleTests is the part of a promtool test file the checks read.
type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// checkRules checks a rule file against its promtool tests and runbook:
// every alert routes (team sre or supervisors), has a severity, a summary,
// a description and a runbook_url to an existing runbook section, and is
// tested both firing and not firing; every runbook section belongs to an
// alert; recording rules are named level:metric:operations.
func checkRules(rules, tests, runbook []byte) []string {
	g, err := ParseRules(rules)
	if err != nil {
		return []string{err.Error()}
	}
	var rt ruleTests
	if err := yaml.Unmarshal(tests, &rt); err != nil {
		return []string{"decoding rule tests: " + err.Error()}
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	sections := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(string(runbook), -1) {
		sections[anchor(m[1])] = true
	}

	var p []string
	add := func(name, format string, args ...any) { p = append(p, name+": "+fmt.Sprintf(format, args...)) }
	alerts := map[string]bool{}
	linked := map[string]bool{}
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			if r.Record != "" {
				if !recordName.MatchString(r.Record) {
					add(r.Record, "recording rule name is not level:metric:operations")
				}
				continue
			}
			n := r.Alert
			if alerts[n] {
				add(n, "defined twice")
			}
			alerts[n] = true
			if team := r.Labels["team"]; team != "sre" && team != "supervisors" {
				add(n, "label team is %q, want sre or supervisors (Alertmanager routes on it)", team)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				add(n, "label severity is %q, want critical, warning or info", sev)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					add(n, "annotation %s is missing", a)
				}
			}
			if u := r.Annotations["runbook_url"]; u != "" {
				base, frag, _ := strings.Cut(u, "#")
				switch {
				case base != runbookURL:
					add(n, "runbook_url %s is not in %s", u, runbookURL)
				case !sections[frag]:
					add(n, "runbook_url points to #%s, which is no section of RUNBOOK.md", frag)
				default:
					linked[frag] = true
				}
			}
			if !fires[n] {
				add(n, "no promtool test where it fires")
			}
			if !quiet[n] {
				add(n, "no promtool test where it stays quiet")
			}
		}
	}
	for s := range sections {
		if !linked[s] {
			p = append(p, fmt.Sprintf("RUNBOOK.md section #%s belongs to no alert", s))
		}
	}
	sort.Strings(p)
	return p
}

// ruleCases break the test kit's rules, tests or runbook and list the
// problems checkRules must report.
var ruleCases = []struct {
	name  string
	edits []edit
	want  []string
}{
	{name: "as is"},
	{name: "no team", edits: []edit{{RulesFile, "team: sre", "owner: sre"}},
		want: []string{`ReplywatchNoReporter: label team is ""`}},
	{name: "unknown severity", edits: []edit{{RulesFile, "severity: critical", "severity: page"}},
		want: []string{`ReplywatchNoReporter: label severity is "page"`}},
	{name: "no summary", edits: []edit{{RulesFile, "summary: No reporter", "title: No reporter"}},
		want: []string{"ReplywatchNoReporter: annotation summary is missing"}},
	{name: "runbook elsewhere", edits: []edit{{RulesFile, "https://github.com/replywatch/replywatch/blob/main/deployments/RUNBOOK.md#", "https://wiki.example.com/replywatch#"}},
		want: []string{"ReplywatchNoReporter: runbook_url https://wiki.example.com/replywatch#replywatchnoreporter is not in",
			"RUNBOOK.md section #replywatchnoreporter belongs to no alert"}},
	{name: "runbook section missing", edits: []edit{{"RUNBOOK.md", "## ReplywatchNoReporter", "## No reporter"}},
		want: []string{"ReplywatchNoReporter: runbook_url points to #replywatchnoreporter, which is no section",
			"RUNBOOK.md section #no-reporter belongs to no alert"}},
	{name: "never tested firing", edits: []edit{{"prometheus/rules_test.yml", "      - eval_time: 5m\n        alertname: ReplywatchNoReporter", "      - eval_time: 5m\n        alertname: ReplywatchOther"}},
		want: []string{"ReplywatchNoReporter: no promtool test where it fires"}},
	{name: "never tested quiet", edits: []edit{{"prometheus/rules_test.yml", "      - eval_time: 1m\n        alertname: ReplywatchNoReporter\n        exp_alerts: []\n", ""}},
		want: []string{"ReplywatchNoReporter: no promtool test where it stays quiet"}},
	{name: "recording rule name", edits: []edit{{RulesFile, "record: replywatch:events:rate1m", "record: replywatch_events_rate1m"}},
		want: []string{"replywatch_events_rate1m: recording rule name is not level:metric:operations"}},
}

func TestCheckRules(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			root := kitWith(t, tc.edits...)
			got := checkRules(readFile(t, filepath.Join(root, RulesFile)),
				readFile(t, filepath.Join(root, "prometheus", "rules_test.yml")),
				readFile(t, filepath.Join(root, "RUNBOOK.md")))
			assertProblems(t, got, tc.want)
		})
	}
}

var anchorCases = []struct{ heading, want string }{
	{"ReplywatchNoReporter", "replywatchnoreporter"},
	{"Changing the partition count", "changing-the-partition-count"},
	{"Redis memory (per million conversations)", "redis-memory-per-million-conversations"},
	{"What happens during a rebalance?", "what-happens-during-a-rebalance"},
}

func TestAnchor(t *testing.T) {
	for _, tc := range anchorCases {
		if got := anchor(tc.heading); got != tc.want {
			t.Errorf("anchor(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

func TestRules(t *testing.T) {
	got := checkRules(readFile(t, RulesFile), readFile(t, "prometheus/rules_test.yml"), readFile(t, "RUNBOOK.md"))
	if len(got) > 0 {
		t.Fatalf("rules:\n%s", strings.Join(got, "\n"))
	}
}

// TestRulesWithPromtool runs promtool's own checks and the unit tests of
// every alert.
func TestRulesWithPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", RulesFile},
		{"test", "rules", "prometheus/rules_test.yml"},
		{"check", "config", "prometheus/prometheus.yml"},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// receiverFor is where Alertmanager must send an alert with these labels:
// an SRE alert also goes to the on-call DingTalk group through replywatch.
func receiverFor(team, severity string) string {
	switch {
	case team == "supervisors":
		return "supervisors-wecom"
	case severity == "critical":
		return "sre-dingtalk,sre-page"
	default:
		return "sre-dingtalk,sre-default"
	}
}

// TestAlertRouting asks amtool where each alert of rules.yml goes.
func TestAlertRouting(t *testing.T) {
	amtool := tool(t, "amtool")
	const cfg = "alertmanager/alertmanager.yml"
	if out, err := exec.Command(amtool, "check-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	g, err := ParseRules(readFile(t, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			if r.Alert == "" {
				continue
			}
			want := receiverFor(r.Labels["team"], r.Labels["severity"])
			args := []string{"config", "routes", "test", "--config.file=" + cfg, "--verify.receivers=" + want, "alertname=" + r.Alert}
			for _, k := range sortedKeys(r.Labels) {
				args = append(args, k+"="+r.Labels[k])
			}
			// stdout is the receiver; stderr only warns about flags.
			if out, err := exec.Command(amtool, args...).Output(); err != nil {
				t.Errorf("%s goes to %s, want %s (%v)", r.Alert, bytes.TrimSpace(firstLine(out)), want, err)
			}
		}
	}
}

// TestChartCopies keeps the chart's copies of the rules and dashboards
// (charts cannot read files outside their directory) identical to the
// originals that the other tests check.
func TestChartCopies(t *testing.T) {
	copies := map[string]string{RulesFile: "helm/replywatch/files/rules.yml"}
	for _, db := range dashboards {
		copies[db.file] = "helm/replywatch/files/dashboards/" + filepath.Base(db.file)
	}
	for orig, cp := range copies {
		if !bytes.Equal(readFile(t, orig), readFile(t, cp)) {
			t.Errorf("%s differs from %s: cp deployments/%s deployments/%s", cp, orig, orig, cp)
		}
	}
	extra, err := filepath.Glob("helm/replywatch/files/dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) != len(dashboards) {
		t.Errorf("the chart ships %d dashboards, the kit has %d", len(extra), len(dashboards))
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstLine(b []byte) []byte {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return line
}
