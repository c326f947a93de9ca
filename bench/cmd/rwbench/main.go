// Command rwbench runs replywatch's benchmark suite on this machine: an
// in-process kfake broker, a redis-server child, simulated traffic, and
// every figure of BENCHMARKS.md with its target. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
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
	os.Exit(run())
}

func run() int {
	def := bench.DefaultSettings()
	// A flag set of its own: a dependency (opencc) registers "-dir" on the
	// process-wide flag.CommandLine, which would clash with ours.
	flag := flag.NewFlagSet("rwbench", flag.ExitOnError)
	var (
		smoke    = flag.Bool("smoke", false, "tiny sizes: check that every part runs and reports (a few seconds each)")
		only     = flag.String("only", strings.Join(bench.AllParts, ","), "parts to run, comma separated: "+strings.Join(bench.AllParts, ","))
		events   = flag.Int("events", 0, fmt.Sprintf("chat events of the end-to-end backlog (default %d)", def.Events))
		day      = flag.Int("day-events", 0, fmt.Sprintf("least events of the simulated day of the backlog part (default %d)", def.DayEvents))
		rate     = flag.Int("live-rate", 0, fmt.Sprintf("live chat events/s of the delay and rebalance runs (default %d)", def.LiveRate))
		delayFor = flag.Duration("delay-for", 0, fmt.Sprintf("length of each delay run (default %s)", def.DelayFor))
		warm     = flag.Duration("warm", 0, fmt.Sprintf("memory part: steady traffic before the RSS is sampled (default %s)", def.Warm))
		out      = flag.String("out", "", "write the report as JSON here (e.g. bench/results/2026-11-24.json); profiles go beside it")
		keep     = flag.String("dir", "", "keep configs, logs and profiles in this directory (default: a temporary one)")
		clients  = flag.Int("sse-clients", 0, fmt.Sprintf("delivery part: SSE clients held open in a process of their own (default %d)", def.SSEClients))
		hold     = flag.Duration("sse-hold", 0, fmt.Sprintf("delivery part: least time the SSE clients are held open (default %s)", def.SSEHold))
		repEnv   = flag.String("replica-env", "", "KEY=VALUE,... added to the environment of replica child processes (e.g. GOMEMLIMIT=64MiB)")
	)
	flag.Parse(os.Args[1:]) //nolint:errcheck // ExitOnError
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
			fmt.Fprintf(os.Stderr, "rwbench: unknown part %q (parts: %s)\n", p, strings.Join(bench.AllParts, ","))
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
				fmt.Fprintf(os.Stderr, "rwbench: --replica-env %q is not KEY=VALUE\n", kv)
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
	rep, err := bench.Run(ctx, s, os.Stderr)
	if rep == nil {
		fmt.Fprintf(os.Stderr, "rwbench: %v\n", err)
		return 1
	}
	rep.Command = "rwbench " + strings.Join(os.Args[1:], " ")
	fmt.Fprintf(os.Stderr, "run took %s\n\n", time.Since(start).Round(time.Second))
	rep.Markdown(os.Stdout)
	if *out != "" {
		if err := rep.WriteJSON(*out); err != nil {
			fmt.Fprintf(os.Stderr, "rwbench: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	}
	if err != nil || len(rep.Errors) > 0 {
		return 1
	}
	return 0
}
