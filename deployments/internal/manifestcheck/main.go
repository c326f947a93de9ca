// Command manifestcheck reads Kubernetes manifests rendered by "helm
// template" and checks what the replywatch chart promises: every document
// decodes and names its apiVersion, kind and metadata.name; every object
// carries the standard app.kubernetes.io labels; the Deployment probes
// /healthz and /readyz, requests resources, runs as non-root and gives
// SIGTERM at least 15 s; Services, the PodDisruptionBudget and the
// ServiceMonitor select the Deployment's pods; a KEDA ScaledObject never
// scales past the partition count; GOMEMLIMIT leaves a margin under the
// memory limit; a NetworkPolicy admits the http port of the pods; a test
// Pod is a helm test hook the Deployment does not adopt. It can also write each ConfigMap's
// config.yaml out so that "replywatch validate" can check it.
//
//	manifestcheck [-partitions N] [-config-out DIR] FILE...
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manifestcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	partitions := fs.Int("partitions", 0, "partitions per input topic; a ScaledObject may not scale past it (0: not checked)")
	configOut := fs.String("config-out", "", "directory to write each ConfigMap's config.yaml to, as NAME.yaml")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "manifestcheck: no manifest files given")
		return 2
	}
	var objs []object
	for _, f := range fs.Args() {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "manifestcheck: %v\n", err)
			return 2
		}
		o, err := decode(data)
		if err != nil {
			fmt.Fprintf(stderr, "manifestcheck: %s: %v\n", f, err)
			return 1
		}
		objs = append(objs, o...)
	}
	problems := check(objs, *partitions)
	for _, p := range problems {
		fmt.Fprintf(stderr, "manifestcheck: %s\n", p)
	}
	if len(problems) > 0 {
		return 1
	}
	if *configOut != "" {
		if err := writeConfigs(objs, *configOut, stdout); err != nil {
			fmt.Fprintf(stderr, "manifestcheck: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "manifestcheck: %d objects OK\n", len(objs))
	return 0
}

// object is one decoded manifest document.
type object map[string]any

// decode splits a multi-document YAML stream into objects, skipping empty
// documents (helm emits them for disabled templates).
func decode(data []byte) ([]object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []object
	for i := 1; ; i++ {
		// A plain map, so that nested maps decode as map[string]any too.
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decoding document %d: %w", i, err)
		}
		if len(o) > 0 {
			out = append(out, object(o))
		}
	}
}

// get walks a path of map keys; it returns nil when any step is missing.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			if o, ok2 := v.(object); ok2 {
				m = o
			} else {
				return nil
			}
		}
		v = m[k]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func num(v any, path ...string) (int, bool) {
	n, ok := get(v, path...).(int)
	return n, ok
}

func strMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func (o object) id() string {
	return str(o, "kind") + "/" + str(o, "metadata", "name")
}

// standardLabels are the labels every object of the chart carries.
var standardLabels = []string{
	"app.kubernetes.io/name",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/version",
	"app.kubernetes.io/managed-by",
	"helm.sh/chart",
}

// minGrace is the shortest terminationGracePeriodSeconds allowed: replywatch
// exits within 10 s of SIGTERM, plus margin.
const minGrace = 15

// check returns every problem found, each naming the object.
func check(objs []object, partitions int) []string {
	var p []string
	add := func(o object, format string, args ...any) {
		p = append(p, o.id()+": "+fmt.Sprintf(format, args...))
	}
	seen := map[string]bool{}
	byKind := map[string][]object{}
	for i, o := range objs {
		if str(o, "apiVersion") == "" || str(o, "kind") == "" || str(o, "metadata", "name") == "" {
			p = append(p, fmt.Sprintf("document %d: apiVersion, kind and metadata.name are required", i+1))
			continue
		}
		if seen[o.id()] {
			add(o, "defined twice")
		}
		seen[o.id()] = true
		labels := strMap(get(o, "metadata", "labels"))
		for _, l := range standardLabels {
			if labels[l] == "" {
				add(o, "label %s is missing", l)
			}
		}
		byKind[str(o, "kind")] = append(byKind[str(o, "kind")], o)
	}

	deployments := byKind["Deployment"]
	if len(deployments) != 1 {
		p = append(p, fmt.Sprintf("want one Deployment, found %d", len(deployments)))
		return p
	}
	d := deployments[0]
	podLabels := strMap(get(d, "spec", "template", "metadata", "labels"))
	pod := get(d, "spec", "template", "spec")
	if !selects(strMap(get(d, "spec", "selector", "matchLabels")), podLabels) {
		add(d, "spec.selector.matchLabels does not match the pod template's labels")
	}
	if g, ok := num(pod, "terminationGracePeriodSeconds"); !ok || g < minGrace {
		add(d, "terminationGracePeriodSeconds must be at least %d", minGrace)
	}
	if get(pod, "securityContext", "runAsNonRoot") != true {
		add(d, "the pod must run as non-root (securityContext.runAsNonRoot)")
	}
	ports := map[string]bool{}
	containers := list(pod, "containers")
	if len(containers) == 0 {
		add(d, "no containers")
	}
	for _, c := range containers {
		name := str(c, "name")
		for _, pt := range list(c, "ports") {
			ports[str(pt, "name")] = true
		}
		for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if got := str(c, probe, "httpGet", "path"); got != want {
				add(d, "container %s: %s must GET %s, has %q", name, probe, want, got)
			}
		}
		for _, r := range []string{"cpu", "memory"} {
			if get(c, "resources", "requests", r) == nil {
				add(d, "container %s: resources.requests.%s is not set", name, r)
			}
		}
		if get(c, "securityContext", "allowPrivilegeEscalation") != false {
			add(d, "container %s: allowPrivilegeEscalation must be false", name)
		}
		if limit, ok := quantity(str(c, "resources", "limits", "memory")); ok {
			gml := ""
			for _, e := range list(c, "env") {
				if str(e, "name") == "GOMEMLIMIT" {
					gml = str(e, "value")
				}
			}
			if v, ok := quantity(strings.TrimSuffix(gml, "B")); !ok || v < limit*8/10 || v > limit*95/100 {
				add(d, "container %s: GOMEMLIMIT %q is not 80-95%% of the memory limit %s", name, gml, str(c, "resources", "limits", "memory"))
			}
		}
	}
	for _, v := range list(pod, "volumes") {
		if cm := str(v, "configMap", "name"); cm != "" && !seen["ConfigMap/"+cm] {
			add(d, "volume %s uses ConfigMap %s, which is not rendered", str(v, "name"), cm)
		}
	}

	for _, s := range byKind["Service"] {
		if !selects(strMap(get(s, "spec", "selector")), podLabels) {
			add(s, "spec.selector does not select the Deployment's pods")
		}
		for _, pt := range list(s, "spec", "ports") {
			if tp := str(pt, "targetPort"); tp != "" && !ports[tp] {
				add(s, "targetPort %s is not a container port name", tp)
			}
		}
	}
	for _, b := range byKind["PodDisruptionBudget"] {
		if !selects(strMap(get(b, "spec", "selector", "matchLabels")), podLabels) {
			add(b, "spec.selector does not select the Deployment's pods")
		}
	}
	for _, m := range byKind["ServiceMonitor"] {
		sel := strMap(get(m, "spec", "selector", "matchLabels"))
		found := false
		for _, s := range byKind["Service"] {
			if selects(sel, strMap(get(s, "metadata", "labels"))) {
				found = true
			}
		}
		if !found {
			add(m, "spec.selector selects no rendered Service")
		}
	}
	for _, r := range byKind["PrometheusRule"] {
		if len(list(r, "spec", "groups")) == 0 {
			add(r, "spec.groups is empty")
		}
	}
	for _, s := range byKind["ScaledObject"] {
		if target := str(s, "spec", "scaleTargetRef", "name"); target != str(d, "metadata", "name") {
			add(s, "scaleTargetRef.name %q is not the Deployment", target)
		}
		if get(d, "spec", "replicas") != nil {
			add(d, "spec.replicas is set while a ScaledObject scales it (every upgrade would reset the scale)")
		}
		maxR, ok := num(s, "spec", "maxReplicaCount")
		if !ok {
			add(s, "spec.maxReplicaCount is not set")
		} else if partitions > 0 && maxR > partitions {
			add(s, "maxReplicaCount %d exceeds the %d partitions", maxR, partitions)
		}
		if len(list(s, "spec", "triggers")) == 0 {
			add(s, "no triggers")
		}
		for _, t := range list(s, "spec", "triggers") {
			if str(t, "type") != "kafka" || str(t, "metadata", "consumerGroup") == "" || str(t, "metadata", "topic") == "" {
				add(s, "every trigger must be a kafka trigger naming consumerGroup and topic")
			}
		}
	}
	for _, n := range byKind["NetworkPolicy"] {
		if !selects(strMap(get(n, "spec", "podSelector", "matchLabels")), podLabels) {
			add(n, "spec.podSelector does not select the Deployment's pods")
		}
		http := false
		for _, rule := range list(n, "spec", "ingress") {
			for _, pt := range list(rule, "ports") {
				http = http || str(pt, "port") == "http"
			}
		}
		if !http {
			add(n, "no ingress rule admits the http port (probes, metrics)")
		}
	}
	for _, pod := range byKind["Pod"] {
		if str(pod, "metadata", "annotations", "helm.sh/hook") != "test" {
			add(pod, "a bare Pod that is not a helm test hook")
		}
		if selects(strMap(get(d, "spec", "selector", "matchLabels")), strMap(get(pod, "metadata", "labels"))) {
			add(pod, "the Deployment's selector matches it: its ReplicaSet would adopt it")
		}
	}
	for _, c := range byKind["ConfigMap"] {
		if cfg := str(c, "data", "config.yaml"); cfg != "" {
			var v map[string]any
			if err := yaml.Unmarshal([]byte(cfg), &v); err != nil {
				add(c, "config.yaml does not decode: %v", err)
			}
		}
	}
	sort.Strings(p)
	return p
}

// quantity reads a Kubernetes memory quantity (512Mi, 1Gi, 500M, bytes)
// or Go's GOMEMLIMIT syntax without its B (460Mi), in bytes.
func quantity(q string) (int64, bool) {
	units := []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}
	if q == "" {
		return 0, false
	}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			q, mult = n, u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(q, &n); err != nil || fmt.Sprint(n) != q {
		return 0, false
	}
	return n * mult, true
}

// selects reports whether a non-empty selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// writeConfigs writes each ConfigMap's config.yaml to dir/NAME.yaml.
func writeConfigs(objs []object, dir string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating config directory: %w", err)
	}
	for _, o := range objs {
		cfg := str(o, "data", "config.yaml")
		if str(o, "kind") != "ConfigMap" || cfg == "" {
			continue
		}
		name := filepath.Join(dir, strings.ReplaceAll(str(o, "metadata", "name"), "/", "_")+".yaml")
		if err := os.WriteFile(name, []byte(cfg), 0o644); err != nil {
			return fmt.Errorf("writing config: %w", err)
		}
		fmt.Fprintf(stdout, "manifestcheck: wrote %s\n", name)
	}
	return nil
}
