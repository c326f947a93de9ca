// Command rwbench runs replywatch's benchmark suite on this machine: an
// in-process kfake broker, a redis-server child, simulated traffic, and
// every figure of BENCHMARKS.md with its target. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/replywatch/replywatch/bench"
)

func main() {
	bench.MaybeReplica()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command with its arguments; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	def := bench.DefaultSettings()
	// A flag set of its own: a dependency (opencc) registers "-dir" on the
	// process-wide flag.CommandLine, which would clash with ours.
	fs := flag.NewFlagSet("rwbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		smoke    = fs.Bool("smoke", false, "tiny sizes: check that every part runs and reports (a few seconds each)")
		only     = fs.String("only", strings.Join(bench.AllParts, ","), "parts to run, comma separated: "+strings.Join(bench.AllParts, ","))
		events   = fs.Int("events", 0, fmt.Sprintf("chat events of the end-to-end backlog (default %d)", def.Events))
		day      = fs.Int("day-events", 0, fmt.Sprintf("least events of the simulated day of the backlog part (default %d)", def.DayEvents))
		storm    = fs.Int("storm-events", 0, fmt.Sprintf("chat events of the bad-day backlog of the storm part (default %d)", def.StormEvents))
		rate     = fs.Int("live-rate", 0, fmt.Sprintf("live chat events/s of the delay and rebalance runs and of the delivery part's live phases (default %d)", def.LiveRate))
		delayFor = fs.Duration("delay-for", 0, fmt.Sprintf("length of each delay run (default %s)", def.DelayFor))
		warm     = fs.Duration("warm", 0, fmt.Sprintf("memory part: steady traffic before the RSS is sampled (default %s)", def.Warm))
		out      = fs.String("out", "", "write the report as JSON here (e.g. bench/results/2026-11-24.json); profiles go beside it")
		keep     = fs.String("dir", "", "keep configs, logs and profiles in this directory (default: a temporary one)")
		clients  = fs.Int("sse-clients", 0, fmt.Sprintf("delivery part: SSE clients held open in a process of their own (default %d)", def.SSEClients))
		hold     = fs.Duration("sse-hold", 0, fmt.Sprintf("delivery part: least time the SSE clients are held open (default %s)", def.SSEHold))
		repEnv   = fs.String("replica-env", "", "KEY=VALUE,... added to the environment of replica child processes (e.g. GOMEMLIMIT=64MiB)")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	s := def
	if *smoke {
		s = bench.SmokeSettings()
	}
	s.Only = nil
	for _, p := range strings.Split(*only, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		valid := false
		for _, a := range bench.AllParts {
			valid = valid || a == p
		}
		if !valid {
			fmt.Fprintf(stderr, "rwbench: unknown part %q (parts: %s)\n", p, strings.Join(bench.AllParts, ","))
			return 2
		}
		s.Only = append(s.Only, p)
	}
	if *events > 0 {
		s.Events = *events
	}
	if *day > 0 {
		s.DayEvents = *day
	}
	if *storm > 0 {
		s.StormEvents = *storm
	}
	if *rate > 0 {
		s.LiveRate = *rate
	}
	if *delayFor > 0 {
		s.DelayFor = *delayFor
	}
	if *warm > 0 {
		s.Warm = *warm
	}
	if *clients > 0 {
		s.SSEClients = *clients
	}
	if *hold > 0 {
		s.SSEHold = *hold
	}
	s.Dir = *keep
	for _, kv := range strings.Split(*repEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				fmt.Fprintf(stderr, "rwbench: --replica-env %q is not KEY=VALUE\n", kv)
				return 2
			}
			s.ReplicaEnv = append(s.ReplicaEnv, kv)
		}
	}
	if *out != "" {
		base := strings.TrimSuffix(*out, filepath.Ext(*out))
		s.ProfileDir = base
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := bench.Run(ctx, s, stderr)
	if rep == nil {
		fmt.Fprintf(stderr, "rwbench: %v\n", err)
		return 1
	}
	rep.Command = "rwbench " + strings.Join(args, " ")
	fmt.Fprintf(stderr, "run took %s\n\n", time.Since(start).Round(time.Second))
	rep.Markdown(stdout)
	if *out != "" {
		if err := rep.WriteJSON(*out); err != nil {
			fmt.Fprintf(stderr, "rwbench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "wrote %s\n", *out)
	}
	if err != nil || len(rep.Errors) > 0 {
		return 1
	}
	return 0
}
