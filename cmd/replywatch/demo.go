package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/replywatch/replywatch/demo"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	d := demo.DefaultOptions()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&d.Shops, "shops", d.Shops, "number of simulated shops")
	fs.IntVar(&d.Agents, "agents", d.Agents, "agents per shop (shops vary around it)")
	fs.Float64Var(&d.Rate, "rate", d.Rate, "traffic multiplier of the simulator's daily curve")
	fs.Uint64Var(&d.Seed, "seed", d.Seed, "simulator seed")
	fs.StringVar(&d.Listen, "listen", d.Listen, "HTTP address of /metrics, /healthz, /readyz (next free port when taken)")
	fs.IntVar(&d.KafkaPort, "kafka-port", d.KafkaPort, "port of the embedded Kafka broker (next free port when taken; 0: any)")
	brokers := fs.String("brokers", "", "comma list of external Kafka brokers to use instead of the embedded one")
	fs.StringVar(&d.RedisURL, "redis-url", "", "external Redis to use instead of the embedded one, redis://host:port/db")
	fs.BoolVar(&d.EmbeddedRedis, "embedded-redis", false, "run the embedded miniredis even when redis-server is on PATH")
	fs.StringVar(&d.Language, "lang", d.Language, "language of alert summaries: zh or en")
	fs.StringVar(&d.Timezone, "tz", d.Timezone, "IANA time zone of the shops (outside its service hours the demo picks one where they are open)")
	fs.DurationVar(&d.Duration, "duration", 0, "stop by itself after this long (0: run until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replywatch demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *brokers != "" {
		for _, b := range strings.Split(*brokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				d.Brokers = append(d.Brokers, b)
			}
		}
	}
	if d.Duration < 0 {
		fmt.Fprintln(stderr, "replywatch demo: --duration must not be negative")
		return exitUsage
	}
	d.Stderr = stderr
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		d.Terminal = true
		d.Size = func() (int, int) {
			w, h, err := term.GetSize(fd)
			if err != nil {
				return 100, 30
			}
			return w, h
		}
	}
	// A closed terminal (SIGHUP) stops the demo as cleanly as Ctrl-C does.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	if err := demo.Run(ctx, d, stdout); err != nil {
		fmt.Fprintf(stderr, "replywatch demo: %v\n", err)
		return exitFailed
	}
	return exitOK
}
