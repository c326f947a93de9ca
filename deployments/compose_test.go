package deployments

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeService is the part of a Compose service the checks read.
type composeService struct {
	Image       string    `yaml:"image"`
	Build       any       `yaml:"build"`
	Command     any       `yaml:"command"`
	Hostname    string    `yaml:"hostname"`
	Restart     string    `yaml:"restart"`
	Ports       []string  `yaml:"ports"`
	Volumes     []any     `yaml:"volumes"`
	DependsOn   any       `yaml:"depends_on"`
	Healthcheck *struct { // nil when the service defines none
		Test    any  `yaml:"test"`
		Disable bool `yaml:"disable"`
	} `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]*composeService `yaml:"services"`
	Volumes  map[string]any             `yaml:"volumes"`
}

// pinned reports whether an image names a digest or a tag other than
// latest (a registry's ":port" is not a tag).
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	return i > 0 && i < len(last)-1 && last[i+1:] != "latest"
}

// checkCompose checks a Compose file structurally, reading the files it
// mounts: every image is pinned, every service waited for or publishing
// ports has a health check, depends_on names existing services with
// conditions they can meet, bind-mounted files exist, named volumes are
// declared, replywatch replicas mount the config they are told to read, the
// topic init creates the topics that config names, and Prometheus scrapes
// every replica.
func checkCompose(file string) []string {
	dir := filepath.Dir(file)
	data, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		return []string{"decoding compose file: " + err.Error()}
	}
	var p []string
	add := func(svc, format string, args ...any) {
		p = append(p, "service "+svc+": "+fmt.Sprintf(format, args...))
	}
	if len(c.Services) == 0 {
		return []string{"no services"}
	}
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	sort.Strings(names)

	hasHealth := func(s *composeService) bool {
		return s.Healthcheck != nil && !s.Healthcheck.Disable && s.Healthcheck.Test != nil
	}
	// mounts maps each service's mount targets to their source on the host
	// (empty for named volumes).
	mounts := map[string]map[string]string{}
	hostPorts := map[string]string{}
	var runners []string // services running "replywatch run"
	for _, n := range names {
		s := c.Services[n]
		switch {
		case s.Image == "":
			add(n, "no image")
		case !pinned(s.Image):
			add(n, "image %q is not pinned to a version", s.Image)
		}
		if len(s.Ports) > 0 && !hasHealth(s) {
			add(n, "publishes ports but has no healthcheck")
		}
		for _, port := range s.Ports {
			parts := strings.Split(port, ":")
			if len(parts) < 2 {
				add(n, "port %q publishes a random host port", port)
				continue
			}
			host := parts[len(parts)-2]
			if other, ok := hostPorts[host]; ok {
				add(n, "host port %s is also published by %s", host, other)
			}
			hostPorts[host] = n
		}
		if b, ok := s.Build.(map[string]any); ok {
			ctx, _ := b["context"].(string)
			df, _ := b["dockerfile"].(string)
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(dir, ctx, df)); err != nil {
				add(n, "build: no Dockerfile %s in context %s", df, ctx)
			}
		}
		mounts[n] = map[string]string{}
		for _, v := range s.Volumes {
			src, dst := volumeParts(v)
			if dst == "" {
				add(n, "volume %v has no target", v)
				continue
			}
			switch {
			case strings.HasPrefix(src, "/"):
				add(n, "volume %s mounts an absolute host path", src)
			case strings.HasPrefix(src, "."):
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					add(n, "volume %s: no such file or directory next to the compose file", src)
				}
				mounts[n][dst] = src
			default:
				if _, ok := c.Volumes[src]; !ok {
					add(n, "named volume %s is not declared under volumes", src)
				}
				mounts[n][dst] = ""
			}
		}
		args := stringList(s.Command)
		if len(args) > 0 && args[0] == "run" {
			runners = append(runners, n)
			cfg := flagValue(args, "--config")
			if cfg == "" {
				add(n, "runs replywatch without --config")
			} else if src, ok := mounts[n][cfg]; !ok || src == "" {
				add(n, "reads config %s, which is not mounted from the repository", cfg)
			}
		}
	}

	for _, n := range names {
		for dep, cond := range dependencies(c.Services[n].DependsOn) {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				add(n, "depends on %s, which is not a service", dep)
			case cond == "service_healthy" && !hasHealth(target):
				add(n, "waits for %s to be healthy, but it has no healthcheck", dep)
			case cond == "service_completed_successfully" && target.Restart != "no":
				add(n, "waits for %s to complete, but it restarts (restart is not \"no\")", dep)
			case cond != "service_started" && cond != "service_healthy" && cond != "service_completed_successfully":
				add(n, "depends on %s with unknown condition %q", dep, cond)
			}
		}
	}

	// The replicas' config names the topics; whatever creates topics must
	// create each of them.
	for _, n := range runners {
		cfgSrc := mounts[n][flagValue(stringList(c.Services[n].Command), "--config")]
		if cfgSrc == "" {
			continue
		}
		var cfg struct {
			Kafka struct {
				Topics map[string]string `yaml:"topics"`
			} `yaml:"kafka"`
		}
		data, err := os.ReadFile(filepath.Join(dir, cfgSrc))
		if err == nil {
			err = yaml.Unmarshal(data, &cfg)
		}
		if err != nil {
			add(n, "reading config %s: %v", cfgSrc, err)
			continue
		}
		for _, init := range names {
			cmd := strings.Join(stringList(c.Services[init].Command), " ")
			if c.Services[init].Restart != "no" || !strings.Contains(cmd, "cs.") {
				continue
			}
			for _, topic := range sortedValues(cfg.Kafka.Topics) {
				if !strings.Contains(cmd, topic) {
					add(init, "does not create topic %s that %s reads from its config", topic, n)
				}
			}
		}
	}

	// Prometheus must scrape every replica.
	for _, n := range names {
		if !strings.HasPrefix(c.Services[n].Image, "prom/prometheus:") {
			continue
		}
		src := mounts[n]["/etc/prometheus/prometheus.yml"]
		if src == "" {
			add(n, "prometheus.yml is not mounted from the repository")
			continue
		}
		targets, err := scrapeTargets(filepath.Join(dir, src), "replywatch")
		if err != nil {
			add(n, "%v", err)
			continue
		}
		for _, r := range runners {
			host := c.Services[r].Hostname
			if host == "" {
				host = r
			}
			if !targets[host+":8080"] {
				add(n, "job replywatch does not scrape %s:8080", host)
			}
		}
	}
	return p
}

// volumeParts returns a volume's source and target, from the short
// ("src:dst[:mode]") or the long syntax.
func volumeParts(v any) (src, dst string) {
	switch v := v.(type) {
	case string:
		parts := strings.Split(v, ":")
		if len(parts) == 1 {
			return "", parts[0]
		}
		return parts[0], parts[1]
	case map[string]any:
		s, _ := v["source"].(string)
		d, _ := v["target"].(string)
		return s, d
	}
	return "", ""
}

// dependencies returns depends_on as service to condition, from the list
// or the map syntax.
func dependencies(v any) map[string]string {
	out := map[string]string{}
	switch v := v.(type) {
	case []any:
		for _, d := range v {
			out[fmt.Sprint(d)] = "service_started"
		}
	case map[string]any:
		for name, spec := range v {
			cond := "service_started"
			if m, ok := spec.(map[string]any); ok {
				if c, ok := m["condition"].(string); ok {
					cond = c
				}
			}
			out[name] = cond
		}
	}
	return out
}

// stringList returns a command as words: a list as is, a string split on
// spaces.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprint(x)
		}
		return out
	}
	return nil
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// scrapeTargets returns the static targets of a job in a Prometheus config.
func scrapeTargets(file, job string) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading Prometheus config: %w", err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("decoding Prometheus config %s: %w", path.Base(file), err)
	}
	out := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != job {
			continue
		}
		for _, s := range sc.StaticConfigs {
			for _, t := range s.Targets {
				out[t] = true
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("Prometheus config %s has no static targets for job %s", path.Base(file), job)
	}
	return out, nil
}

// composeCases break the test kit's compose file (or a file it reads) and
// list the problems checkCompose must report.
var composeCases = []struct {
	name  string
	edits []edit
	want  []string
}{
	{name: "as is"},
	{
		name:  "unknown dependency",
		edits: []edit{{"compose/compose.yaml", "depends_on: [app]", "depends_on: [api]"}},
		want:  []string{"service prometheus: depends on api, which is not a service"},
	},
	{
		name:  "waits for health that is never reported",
		edits: []edit{{"compose/compose.yaml", "    healthcheck:\n      test: [\"CMD\", \"redis-cli\", \"ping\"]\n", ""}},
		want:  []string{"service app: waits for redis to be healthy, but it has no healthcheck"},
	},
	{
		name:  "waits for a job that never completes",
		edits: []edit{{"compose/compose.yaml", `    restart: "no"`, `    restart: unless-stopped`}},
		want:  []string{"service app: waits for init to complete, but it restarts"},
	},
	{
		name:  "mounted file missing",
		edits: []edit{{"compose/compose.yaml", "../prometheus/prometheus.yml:/etc", "../prometheus/prom.yml:/etc"}},
		want: []string{
			"service prometheus: volume ../prometheus/prom.yml: no such file or directory",
			"service prometheus: reading Prometheus config",
		},
	},
	{
		name:  "unpinned image",
		edits: []edit{{"compose/compose.yaml", "redis:7.4-alpine", "redis"}},
		want:  []string{`service redis: image "redis" is not pinned`},
	},
	{
		name:  "latest image",
		edits: []edit{{"compose/compose.yaml", "redis:7.4-alpine", "redis:latest"}},
		want:  []string{`service redis: image "redis:latest" is not pinned`},
	},
	{
		name:  "undeclared volume",
		edits: []edit{{"compose/compose.yaml", "volumes:\n  data:\n", ""}},
		want:  []string{"service redis: named volume data is not declared"},
	},
	{
		name:  "config not mounted",
		edits: []edit{{"compose/compose.yaml", `"--config", "/etc/replywatch/config.yaml"`, `"--config", "/config.yaml"`}},
		want:  []string{"service app: reads config /config.yaml, which is not mounted"},
	},
	{
		name:  "topic not created",
		edits: []edit{{"compose/compose.yaml", "cs.orders cs.presence", "cs.presence"}},
		want:  []string{"service init: does not create topic cs.orders that app reads"},
	},
	{
		name:  "replica not scraped",
		edits: []edit{{"prometheus/prometheus.yml", `"app:8080"`, `"app-1:8080"`}},
		want:  []string{"service prometheus: job replywatch does not scrape app:8080"},
	},
	{
		name:  "ports without healthcheck",
		edits: []edit{{"compose/compose.yaml", "    healthcheck:\n      test: [\"CMD\", \"wget\"", "    x-healthcheck:\n      test: [\"CMD\", \"wget\""}},
		want:  []string{"service prometheus: publishes ports but has no healthcheck"},
	},
	{
		name:  "host port twice",
		edits: []edit{{"compose/compose.yaml", `"9090:9090"`, `"8081:9090"`}},
		want:  []string{"service prometheus: host port 8081 is also published by app"},
	},
	{
		name:  "dockerfile missing",
		edits: []edit{{"compose/compose.yaml", "dockerfile: Dockerfile", "dockerfile: deployments/Dockerfile"}},
		want:  []string{"service app: build: no Dockerfile deployments/Dockerfile in context ."},
	},
}

func TestCheckCompose(t *testing.T) {
	for _, tc := range composeCases {
		t.Run(tc.name, func(t *testing.T) {
			root := kitWith(t, tc.edits...)
			assertProblems(t, checkCompose(filepath.Join(root, "compose", "compose.yaml")), tc.want)
		})
	}
}

// TestComposeStack checks the real Compose stack: structurally sound, with
// every part the README promises, and the partition count it documents.
func TestComposeStack(t *testing.T) {
	file := filepath.Join("compose", "compose.yaml")
	if p := checkCompose(file); len(p) > 0 {
		t.Fatalf("compose.yaml:\n%s", strings.Join(p, "\n"))
	}
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, file), &c); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"kafka", "kafka-init", "redis", "replywatch-1", "replywatch-2", "simulator", "prometheus", "alertmanager", "grafana"} {
		if c.Services[n] == nil {
			t.Errorf("no service %s", n)
		}
	}
	if got := strings.Join(stringList(c.Services["simulator"].Command), " "); !strings.HasPrefix(got, "simulate --brokers kafka:9092") {
		t.Errorf("simulator runs %q", got)
	}
	var raw struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Command     []string          `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(readFile(t, file), &raw); err != nil {
		t.Fatal(err)
	}
	if got := raw.Services["kafka-init"].Environment["PARTITIONS"]; got != "12" {
		t.Errorf("kafka-init creates %q partitions, the README documents 12", got)
	}
	if redis := strings.Join(raw.Services["redis"].Command, " "); !strings.Contains(redis, "--appendonly yes --appendfsync everysec") ||
		!strings.Contains(redis, "--maxmemory-policy noeviction") || !strings.Contains(redis, "--lazyfree-lazy-expire yes") {
		t.Errorf("redis runs %q: want AOF fsync everysec, noeviction and lazy expiry", redis)
	}
}
