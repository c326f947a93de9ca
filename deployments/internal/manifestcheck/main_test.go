package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkCases mutate the good rendering and list the problems check must
// report (substrings, one per problem); nil mutate is the rendering as is.
var checkCases = []struct {
	name       string
	partitions int
	mutate     func(objs []object)
	want       []string
}{
	{name: "good", partitions: 12},
	{name: "partitions not checked", partitions: 0, mutate: func(o []object) {
		find(o, "ScaledObject")["spec"].(map[string]any)["maxReplicaCount"] = 40
	}},
	{name: "keda past the partitions", partitions: 12, mutate: func(o []object) {
		find(o, "ScaledObject")["spec"].(map[string]any)["maxReplicaCount"] = 13
	}, want: []string{"ScaledObject/rw-replywatch: maxReplicaCount 13 exceeds the 12 partitions"}},
	{name: "replicas set under keda", partitions: 12, mutate: func(o []object) {
		find(o, "Deployment")["spec"].(map[string]any)["replicas"] = 2
	}, want: []string{"Deployment/rw-replywatch: spec.replicas is set while a ScaledObject scales it"}},
	{name: "short grace", partitions: 12, mutate: func(o []object) {
		podSpec(o)["terminationGracePeriodSeconds"] = 10
	}, want: []string{"terminationGracePeriodSeconds must be at least 15"}},
	{name: "probes swapped", partitions: 12, mutate: func(o []object) {
		c := container(o)
		c["livenessProbe"], c["readinessProbe"] = c["readinessProbe"], c["livenessProbe"]
	}, want: []string{"livenessProbe must GET /healthz", "readinessProbe must GET /readyz"}},
	{name: "no requests", partitions: 12, mutate: func(o []object) {
		delete(container(o), "resources")
	}, want: []string{"resources.requests.cpu is not set", "resources.requests.memory is not set"}},
	{name: "root", partitions: 12, mutate: func(o []object) {
		delete(podSpec(o), "securityContext")
	}, want: []string{"must run as non-root"}},
	{name: "service selects nothing", partitions: 12, mutate: func(o []object) {
		find(o, "Service")["spec"].(map[string]any)["selector"] = map[string]any{"app": "other"}
	}, want: []string{"Service/rw-replywatch: spec.selector does not select"}},
	{name: "service monitor selects nothing", partitions: 12, mutate: func(o []object) {
		find(o, "ServiceMonitor")["spec"].(map[string]any)["selector"] = map[string]any{"matchLabels": map[string]any{"app": "other"}}
	}, want: []string{"ServiceMonitor/rw-replywatch: spec.selector selects no rendered Service"}},
	{name: "label missing", partitions: 12, mutate: func(o []object) {
		labels := map[string]any{}
		for k, v := range find(o, "PodDisruptionBudget")["metadata"].(map[string]any)["labels"].(map[string]any) {
			labels[k] = v
		}
		delete(labels, "app.kubernetes.io/version")
		find(o, "PodDisruptionBudget")["metadata"].(map[string]any)["labels"] = labels
	}, want: []string{"PodDisruptionBudget/rw-replywatch: label app.kubernetes.io/version is missing"}},
	{name: "no name", partitions: 12, mutate: func(o []object) {
		delete(find(o, "ServiceMonitor")["metadata"].(map[string]any), "name")
	}, want: []string{"document 5: apiVersion, kind and metadata.name are required"}},
	{name: "GOMEMLIMIT at the whole limit", partitions: 12, mutate: func(o []object) {
		container(o)["env"] = []any{map[string]any{"name": "GOMEMLIMIT", "value": "512MiB"}}
	}, want: []string{`GOMEMLIMIT "512MiB" is not 80-95% of the memory limit 512Mi`}},
	{name: "GOMEMLIMIT missing", partitions: 12, mutate: func(o []object) {
		delete(container(o), "env")
	}, want: []string{`GOMEMLIMIT "" is not 80-95% of the memory limit`}},
	{name: "network policy for other pods", partitions: 12, mutate: func(o []object) {
		find(o, "NetworkPolicy")["spec"].(map[string]any)["podSelector"] = map[string]any{"matchLabels": map[string]any{"app": "other"}}
	}, want: []string{"NetworkPolicy/rw-replywatch: spec.podSelector does not select"}},
	{name: "network policy shuts the probes out", partitions: 12, mutate: func(o []object) {
		find(o, "NetworkPolicy")["spec"].(map[string]any)["ingress"] = []any{}
	}, want: []string{"NetworkPolicy/rw-replywatch: no ingress rule admits the http port"}},
	{name: "test pod the deployment adopts", partitions: 12, mutate: func(o []object) {
		find(o, "Pod")["metadata"].(map[string]any)["labels"].(map[string]any)["app.kubernetes.io/name"] = "replywatch"
	}, want: []string{"Pod/rw-replywatch-test-readyz: the Deployment's selector matches it"}},
	{name: "bare pod", partitions: 12, mutate: func(o []object) {
		delete(find(o, "Pod")["metadata"].(map[string]any), "annotations")
	}, want: []string{"Pod/rw-replywatch-test-readyz: a bare Pod that is not a helm test hook"}},
	{name: "missing config map", partitions: 12, mutate: func(o []object) {
		find(o, "ConfigMap")["metadata"].(map[string]any)["name"] = "other"
	}, want: []string{"volume config uses ConfigMap rw-replywatch, which is not rendered"}},
}

func TestCheck(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			objs := load(t)
			if tc.mutate != nil {
				tc.mutate(objs)
			}
			got := check(objs, tc.partitions)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for _, w := range tc.want {
				if !containsOne(got, w) {
					t.Errorf("no problem mentions %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestRunWritesConfigs(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"-partitions", "12", "-config-out", dir, filepath.Join("testdata", "good.yaml")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "rw-replywatch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "brokers: [kafka:9092]") {
		t.Errorf("config written is %q", data)
	}
}

func TestRunRejectsUndecodable(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte("kind: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{f}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "decoding document 1") {
		t.Errorf("stderr %q does not say which document", stderr.String())
	}
}

func load(t *testing.T) []object {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []object, kind string) object {
	for _, o := range objs {
		if o["kind"] == kind {
			return o
		}
	}
	panic("no " + kind)
}

func podSpec(objs []object) map[string]any {
	return get(find(objs, "Deployment"), "spec", "template", "spec").(map[string]any)
}

func container(objs []object) map[string]any {
	return podSpec(objs)["containers"].([]any)[0].(map[string]any)
}

func containsOne(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
