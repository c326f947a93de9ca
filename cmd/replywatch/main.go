// Command replywatch watches e-commerce customer service live: it reads chat,
// order and seat events from Kafka, keeps every conversation's reply timers in
// Redis, alerts before and when a platform reply-time rule is breached, and
// exports exact live figures to Prometheus.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `replywatch: live reply-time, seat and order watch for e-commerce customer service

Usage:
  replywatch run --config FILE        run the processor (Kafka in, Redis state, alerts out)
  replywatch notify --config FILE     run the notifier alone (alerts to WeCom, DingTalk, Feishu, webhooks, Alertmanager)
  replywatch validate --config FILE   check a config file; print the effective config or every error
  replywatch demo [flags]             everything embedded on this machine, no set-up
  replywatch simulate [flags]         produce realistic traffic into Kafka, or to a JSONL file
  replywatch replay [flags] FILE      run the rules over a JSONL day with no Kafka or Redis
  replywatch healthcheck [--url URL]  exit 0 when the replica's /healthz answers (for containers)
  replywatch version                  print the version

Run 'replywatch COMMAND -h' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stdout, stderr)
	case "notify":
		return cmdNotify(rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "demo":
		return cmdDemo(rest, stdout, stderr)
	case "simulate":
		return cmdSimulate(rest, stdout, stderr)
	case "replay":
		return cmdReplay(rest, stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(rest, stdout, stderr)
	case "version", "--version":
		return cmdVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "replywatch: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
