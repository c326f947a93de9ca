package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The built binary's demo, run as in CI (no terminal, CI=true), shows
// alerts about the buyers it left waiting within 15 s, and Ctrl-C (SIGINT)
// stops it within a few seconds with exit 0, leaving no redis-server behind.
func TestDemoBinaryStopsOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo binary")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH: the child-process check needs it")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin, "demo", "--kafka-port", "0", "--listen", "127.0.0.1:0", "--lang", "en")
	cmd.Env = append(os.Environ(), "CI=true")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()

	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	pidRE := regexp.MustCompile(`redis-server child process \(.*, pid (\d+),`)
	pid := 0
	var seen []string
	deadline := time.After(15 * time.Second)
	breach := false
	for !breach {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended early\nstdout:\n%s\nstderr:\n%s", strings.Join(seen, "\n"), stderr.String())
			}
			seen = append(seen, l)
			if m := pidRE.FindStringSubmatch(l); m != nil {
				pid, _ = strconv.Atoi(m[1])
			}
			// A breach about one of the buyers the demo left waiting.
			breach = strings.Contains(l, " alert reply_breach firing ") && strings.Contains(l, " buyer=u")
		case <-deadline:
			t.Fatalf("no breach of a waiting buyer within 15 s\nstdout:\n%s\nstderr:\n%s", strings.Join(seen, "\n"), stderr.String())
		}
	}
	t.Logf("first breach of a waiting buyer %s after the start", time.Since(start).Round(100*time.Millisecond))
	if pid == 0 {
		t.Fatalf("start-up text does not give the redis-server pid:\n%s", strings.Join(seen, "\n"))
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	go func() {
		for l := range lines {
			seen = append(seen, l)
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("demo exited with %v after SIGINT, want exit 0\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("demo still running 10 s after SIGINT")
	}
	t.Logf("stopped %s after SIGINT", time.Since(stopped).Round(100*time.Millisecond))
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("redis-server pid %d still exists after the demo exited (kill -0: %v)", pid, err)
	}
}
