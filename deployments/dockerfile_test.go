package deployments

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerfileRules are what the image promises, as patterns over the
// Dockerfile with continuation lines joined.
var dockerfileRules = []struct{ what, pattern string }{
	{"a build stage", `(?m)^FROM \S+ golang:\S+ AS build$`},
	{"a static binary", `CGO_ENABLED=0 `},
	{"no local paths in the binary", ` -trimpath `},
	{"the version in -ldflags", `-X github\.com/replywatch/replywatch/app\.Version=\$\{VERSION\}`},
	{"the revision in -ldflags", `-X github\.com/replywatch/replywatch/app\.Revision=\$\{REVISION\}`},
	{"the command built", `-o /out/replywatch \./cmd/replywatch`},
	{"a small final base", `(?m)^FROM (gcr\.io/distroless/static\S*|alpine:\S+)$`},
	{"a numeric non-root user", `(?m)^USER [1-9][0-9]*:[1-9][0-9]*$`},
	{"a health check through the binary", `(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/replywatch", "healthcheck", "--url", "http://127\.0\.0\.1:8080/healthz"\]$`},
	{"the binary as entrypoint", `(?m)^ENTRYPOINT \["/usr/local/bin/replywatch"\]$`},
	{"run with the config by default", `(?m)^CMD \["run", "--config", "/etc/replywatch/config\.yaml"\]$`},
}

func TestDockerfile(t *testing.T) {
	data := string(readFile(t, "Dockerfile"))
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(data, "")
	for _, r := range dockerfileRules {
		if !regexp.MustCompile(r.pattern).MatchString(joined) {
			t.Errorf("Dockerfile: no %s (%s)", r.what, r.pattern)
		}
	}
	if n := strings.Count(joined, "\nFROM "); n != 2 {
		t.Errorf("Dockerfile has %d stages, want 2", n)
	}
	// What the build copies must exist and must not be ignored.
	var ignore []string
	for _, line := range strings.Split(string(readFile(t, "Dockerfile.dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignore = append(ignore, line)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/replywatch"} {
		if _, err := os.Stat(filepath.Join("..", p)); err != nil {
			t.Errorf("the build needs %s: %v", p, err)
		}
		for _, ig := range ignore {
			if ok, _ := filepath.Match(strings.TrimPrefix(ig, "/"), p); ok || strings.HasPrefix(p, strings.TrimPrefix(ig, "/")+"/") {
				t.Errorf("Dockerfile.dockerignore pattern %s leaves %s out of the build", ig, p)
			}
		}
	}
}
