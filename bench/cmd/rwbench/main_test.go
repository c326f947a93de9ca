package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The command starts and parses its flags on a set of its own: a
// dependency's flag on the process-wide set once made it panic at start.
func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "-storm-events"},
		{[]string{"--only", "ceiling,nope"}, 2, `unknown part "nope"`},
		{[]string{"--replica-env", "GOMEMLIMIT"}, 2, `--replica-env "GOMEMLIMIT" is not KEY=VALUE`},
		{[]string{"--events", "many"}, 2, `invalid value "many" for flag -events`},
		{[]string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(c.args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("rwbench %s: exit %d, want %d; stderr %q, want it to say %q", strings.Join(c.args, " "), code, c.code, stderr.String(), c.want)
		}
	}
}

// TestSmokeStorm runs the command as make bench-smoke does, on its
// quickest part, and checks the table it prints.
func TestSmokeStorm(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found on PATH")
		}
		t.Skip("redis-server not found on PATH")
	}
	if testing.Short() {
		t.Skip("a smoke run of the storm part takes seconds")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--smoke", "--only", "storm", "--dir", t.TempDir()}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"| part | figure | value | target | met |", "| storm | sustained chat events/s on the bad day",
		"| storm | alert records per event", "command: `rwbench --smoke --only storm --dir "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestSmokeFloor runs the floor part as BENCHMARKS.md shows it, at the
// smoke sizes, and checks that the table has each of its runs.
func TestSmokeFloor(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found on PATH")
		}
		t.Skip("redis-server not found on PATH")
	}
	if testing.Short() {
		t.Skip("a smoke run of the floor part takes seconds")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--smoke", "--only", "floor", "--dir", t.TempDir()}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"| floor | bare kafka-go consumption + event.Decode of the bad day",
		"| floor | repartition and alerts: chat events/s", "| floor | repartition and alerts: consumer CPU per event",
		"| floor | without the repartition: chat events/s", "| floor | without the alerts: chat events/s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, stdout.String())
		}
	}
}
