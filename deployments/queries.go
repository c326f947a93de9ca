// Package deployments owns replywatch's deployment and observability kit:
// the container image, the Compose stack, the Helm chart, the Prometheus
// rules, the Alertmanager routing and the Grafana dashboards. The files are
// written for users; this package reads them back so that tests can check
// them with the tools that run here. Queries lists every PromQL expression
// the kit evaluates, so that a test can run each one against a real
// Prometheus scraping replywatch.
package deployments

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Where Queries looks, relative to the deployments directory.
const (
	DashboardsDir = "grafana/dashboards"
	RulesFile     = "prometheus/rules.yml"
)

// Kinds of Query.
const (
	KindPanel    = "panel"    // a dashboard panel target
	KindVariable = "variable" // a dashboard template variable's label_values() selector
	KindRecord   = "record"   // a recording rule
	KindAlert    = "alert"    // an alerting rule
)

// SampleInterval stands in for Grafana's interval variables ($__interval,
// $__rate_interval, $__range): long enough for rate() over a 15 s scrape.
const SampleInterval = "5m"

// Query is one PromQL expression found in the kit.
type Query struct {
	// File is the slash-separated path of the file the expression comes
	// from, relative to the deployments directory.
	File string
	// Kind is KindPanel, KindVariable, KindRecord or KindAlert.
	Kind string
	// Name says where the expression sits: "panel title/refId" for a panel
	// target, the variable name, or the rule's record or alert name.
	Name string
	// Expr is the expression, with the dashboard's variables replaced: a
	// label variable by ".*" (they are used in =~ matchers), an interval
	// variable by SampleInterval.
	Expr string
	// Instant is true for panel targets Grafana runs as instant queries.
	Instant bool
}

// Queries returns every panel target and template variable expression of
// every dashboard under root/grafana/dashboards, then every rule of
// root/prometheus/rules.yml, in file order. root is the deployments
// directory. A dashboard that uses a variable it does not define is an
// error, so that no expression reaches Prometheus with a "$" left in it.
func Queries(root string) ([]Query, error) {
	dashboards, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(DashboardsDir), "*.json"))
	if err != nil {
		return nil, fmt.Errorf("listing dashboards: %w", err)
	}
	sort.Strings(dashboards)
	var out []Query
	for _, f := range dashboards {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading dashboard: %w", err)
		}
		qs, err := DashboardQueries(data)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", f, err)
		}
		for i := range qs {
			qs[i].File = path.Join(DashboardsDir, filepath.Base(f))
		}
		out = append(out, qs...)
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(RulesFile)))
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	qs, err := RuleQueries(data)
	if err != nil {
		return nil, fmt.Errorf("rules %s: %w", RulesFile, err)
	}
	for i := range qs {
		qs[i].File = RulesFile
	}
	return append(out, qs...), nil
}

// Dashboard is the part of a Grafana dashboard's JSON model the checks read.
type Dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel; rows hold their panels when collapsed.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Repeat     string      `json:"repeat"`
	Datasource *DataSource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Instant    bool        `json:"instant"`
	Datasource *DataSource `json:"datasource"`
}

// DataSource is a data source reference by uid.
type DataSource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable. Query is a string in old dashboards and
// an object with a "query" field in new ones.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *DataSource     `json:"datasource"`
	AllValue   *string         `json:"allValue"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
}

// QueryString is the variable's query text.
func (v Variable) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &obj) == nil && obj.Query != "" {
		return obj.Query
	}
	return v.Definition
}

// AllPanels returns the dashboard's panels with the panels of collapsed rows
// flattened in, in order.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// ParseDashboard decodes a dashboard's JSON model.
func ParseDashboard(data []byte) (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decoding dashboard JSON: %w", err)
	}
	return &d, nil
}

// varRef matches Grafana's variable syntaxes: $name, ${name}, ${name:fmt}
// and [[name]]. A "$" followed by no word character (a regex anchor in a
// matcher, say) is not a reference.
var varRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

// intervalVars are Grafana's built-in duration variables.
var intervalVars = map[string]bool{"__interval": true, "__rate_interval": true, "__range": true}

// labelValues matches label_values(selector, label) in a variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$`)

// DashboardQueries returns the dashboard's panel targets and the selectors
// of its label_values() variables, with variables substituted (see Query).
// File is left empty.
func DashboardQueries(data []byte) ([]Query, error) {
	d, err := ParseDashboard(data)
	if err != nil {
		return nil, err
	}
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	var errs []error
	subst := func(where, expr string) string {
		return varRef.ReplaceAllStringFunc(expr, func(ref string) string {
			m := varRef.FindStringSubmatch(ref)
			name := m[1] + m[2] + m[3]
			switch {
			case intervalVars[name]:
				return SampleInterval
			case defined[name]:
				return ".*"
			default:
				errs = append(errs, fmt.Errorf("%s: variable %q is not defined by the dashboard", where, ref))
				return ref
			}
		})
	}
	var out []Query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.QueryString()
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			errs = append(errs, fmt.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q))
			continue
		}
		where := "variable " + v.Name
		out = append(out, Query{Kind: KindVariable, Name: v.Name, Expr: subst(where, m[1])})
	}
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if strings.TrimSpace(t.Expr) == "" {
				errs = append(errs, fmt.Errorf("panel %q target %s: no expr", p.Title, t.RefID))
				continue
			}
			name := p.Title + "/" + t.RefID
			out = append(out, Query{Kind: KindPanel, Name: name, Expr: subst("panel "+name, t.Expr), Instant: t.Instant})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// RuleGroups is a Prometheus rule file.
type RuleGroups struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one group of a rule file.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is a recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ParseRules decodes a Prometheus rule file, refusing unknown keys.
func ParseRules(data []byte) (*RuleGroups, error) {
	var g RuleGroups
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("decoding rule file: %w", err)
	}
	return &g, nil
}

// RuleQueries returns the expression of every recording and alerting rule
// in a rule file. File is left empty.
func RuleQueries(data []byte) ([]Query, error) {
	g, err := ParseRules(data)
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, grp := range g.Groups {
		for i, r := range grp.Rules {
			q := Query{Kind: KindRecord, Name: r.Record, Expr: strings.TrimSpace(r.Expr)}
			if r.Alert != "" {
				q.Kind, q.Name = KindAlert, r.Alert
			}
			if q.Name == "" || q.Expr == "" {
				return nil, fmt.Errorf("group %s rule %d: needs record or alert, and expr", grp.Name, i)
			}
			out = append(out, q)
		}
	}
	return out, nil
}
