package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/demo"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/sim"
)

// simulateFlags are the parsed flags of the simulate command.
type simulateFlags struct {
	brokers, out       string
	config             string
	start, end, day    string
	tz                 string
	chat, orders, pres string
	opts               sim.Options
}

func cmdSimulate(args []string, stdout, stderr io.Writer) int {
	var f simulateFlags
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.brokers, "brokers", "", "produce into this Kafka (comma list of host:port), keyed and hash-partitioned")
	fs.StringVar(&f.out, "out", "", "write JSONL to this file instead (.gz: gzip-compressed; -: stdout)")
	fs.StringVar(&f.config, "config", "", "replywatch's config file: produce to its kafka.brokers (unless --brokers) and topics (unless named) with its kafka.tls and kafka.sasl")
	fs.Uint64Var(&f.opts.Seed, "seed", 1, "seed: the same flags and seed give the same events")
	fs.IntVar(&f.opts.Shops, "shops", sim.DefaultShops, "number of shops")
	fs.IntVar(&f.opts.Agents, "agents", sim.DefaultAgents, "agents per shop (shops vary around it)")
	fs.Float64Var(&f.opts.Rate, "rate", 1, "traffic multiplier of the daily curve (1: about 3,000 chat events per 4-agent shop a day)")
	fs.IntVar(&f.opts.NoPresence, "no-presence", 0, "this many shops (the last ones) send no presence events: seats are inferred")
	fs.IntVar(&f.opts.LunchTogether, "lunch-together", 0, "this many shops (the first ones) lunch together and leave the seats uncovered")
	fs.Float64Var(&f.opts.Quiet, "quiet", 0, "share of replies sent only after the agent went quiet for 4 to 8 minutes")
	fs.StringVar(&f.start, "start", "", "first event time, RFC 3339 (default: --out today's opening; --brokers now)")
	fs.StringVar(&f.end, "end", "", "end of event time, RFC 3339, exclusive (default: --out now; --brokers never)")
	fs.StringVar(&f.day, "day", "", "simulate one whole shop-local day, YYYY-MM-DD (instead of --start/--end)")
	fs.StringVar(&f.tz, "tz", "Asia/Shanghai", "IANA time zone of the shops")
	fs.StringVar(&f.chat, "topic-chat", "cs.chat", "chat topic (with --brokers)")
	fs.StringVar(&f.orders, "topic-orders", "cs.orders", "orders topic (with --brokers)")
	fs.StringVar(&f.pres, "topic-presence", "cs.presence", "presence topic (with --brokers)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replywatch simulate: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	var transport kafka.RoundTripper
	if f.config != "" {
		var err error
		if transport, err = f.fromConfig(fs); err != nil {
			fmt.Fprintf(stderr, "replywatch simulate: %v\n", err)
			return exitUsage
		}
	}
	if err := f.resolve(time.Now()); err != nil {
		fmt.Fprintf(stderr, "replywatch simulate: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sum := &simSummary{counts: map[event.Stream]int64{}}
	var err error
	if f.out != "" {
		err = simulateToFile(f, stdout, sum)
	} else {
		err = simulateToKafka(ctx, f, transport, stderr, sum)
	}
	sum.print(stderr, f)
	if err != nil {
		fmt.Fprintf(stderr, "replywatch simulate: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// fromConfig takes from replywatch's config file the brokers and topics
// the flags do not name, and the transport that reaches the brokers with
// its kafka.tls and kafka.sasl (nil when it sets neither).
func (f *simulateFlags) fromConfig(fs *flag.FlagSet) (kafka.RoundTripper, error) {
	if f.out != "" {
		return nil, errors.New("--config names the Kafka to produce to: give it without --out")
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if !set["brokers"] {
		f.brokers = strings.Join(cfg.Kafka.Brokers, ",")
	}
	for name, dst := range map[string]struct {
		flag *string
		v    string
	}{"topic-chat": {&f.chat, cfg.Kafka.Topics.Chat}, "topic-orders": {&f.orders, cfg.Kafka.Topics.Orders},
		"topic-presence": {&f.pres, cfg.Kafka.Topics.Presence}} {
		if !set[name] {
			*dst.flag = dst.v
		}
	}
	_, transport, err := app.KafkaSecurity(cfg, os.Getenv)
	return transport, err
}

// resolve checks the flags and settles the span of event time.
func (f *simulateFlags) resolve(now time.Time) error {
	if (f.brokers == "") == (f.out == "") {
		return errors.New("give exactly one of --brokers LIST or --out FILE")
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return fmt.Errorf("--tz: unknown time zone %q", f.tz)
	}
	f.opts.Location = loc
	if f.day != "" {
		if f.start != "" || f.end != "" {
			return errors.New("--day covers a whole day: give it or --start/--end, not both")
		}
		d, err := time.ParseInLocation(time.DateOnly, f.day, loc)
		if err != nil {
			return fmt.Errorf("--day: %q is not YYYY-MM-DD", f.day)
		}
		f.opts.Start, f.opts.End = d, time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		return nil
	}
	for _, p := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--start", f.start, &f.opts.Start}, {"--end", f.end, &f.opts.End}} {
		if p.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, p.v)
		if err != nil {
			return fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-11-24T08:00:00+08:00", p.flag, p.v)
		}
		*p.dst = t
	}
	switch {
	case f.brokers != "" && f.opts.Start.IsZero():
		f.opts.Start = now // live from now; the end stays open unless given
	case f.out != "" && f.opts.Start.IsZero():
		if f.opts.Start, err = todaysOpening(now, loc); err != nil {
			return err
		}
	}
	if f.out != "" && f.opts.End.IsZero() {
		f.opts.End = now
		if !now.After(f.opts.Start) {
			f.opts.End = f.opts.Start.Add(24 * time.Hour)
		}
	}
	if !f.opts.End.IsZero() && !f.opts.End.After(f.opts.Start) {
		return fmt.Errorf("--end %s is not after the start %s", event.FormatTime(f.opts.End), event.FormatTime(f.opts.Start))
	}
	return nil
}

// todaysOpening is when the default service window opened today, or
// yesterday when it has not opened yet today.
func todaysOpening(now time.Time, loc *time.Location) (time.Time, error) {
	sh := config.Default().ServiceHours[0]
	r, err := hours.ParseRange(sh.Start, sh.End)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the default service hours: %w", err)
	}
	l := now.In(loc)
	open := time.Date(l.Year(), l.Month(), l.Day(), r.Start/60, r.Start%60, 0, 0, loc)
	if open.After(now) {
		open = time.Date(l.Year(), l.Month(), l.Day()-1, r.Start/60, r.Start%60, 0, 0, loc)
	}
	return open, nil
}

// simSummary counts what was written.
type simSummary struct {
	counts      map[event.Stream]int64
	first, last time.Time
}

func (s *simSummary) add(r sim.Record) {
	s.counts[r.Topic]++
	if s.first.IsZero() {
		s.first = r.Event.TS.Time
	}
	s.last = r.Event.TS.Time
}

func (s *simSummary) print(w io.Writer, f simulateFlags) {
	var total int64
	for _, n := range s.counts {
		total += n
	}
	dest := f.out
	topics := map[event.Stream]string{event.Chat: "chat", event.Orders: "orders", event.Presence: "presence"}
	if f.brokers != "" {
		dest = "Kafka at " + f.brokers
		topics = map[event.Stream]string{event.Chat: f.chat, event.Orders: f.orders, event.Presence: f.pres}
	}
	fmt.Fprintf(w, "simulate: %d records to %s: %s %d, %s %d, %s %d\n", total, dest,
		topics[event.Chat], s.counts[event.Chat], topics[event.Orders], s.counts[event.Orders],
		topics[event.Presence], s.counts[event.Presence])
	if total > 0 {
		fmt.Fprintf(w, "simulate: event time %s to %s\n", event.FormatTime(s.first), event.FormatTime(s.last))
	}
}

// simulateToFile writes [Start, End) as JSONL.
func simulateToFile(f simulateFlags, stdout io.Writer, sum *simSummary) (err error) {
	var dst io.Writer = stdout
	if f.out != "-" {
		file, err := os.Create(f.out)
		if err != nil {
			return fmt.Errorf("creating %s: %w", f.out, err)
		}
		defer func() {
			if cerr := file.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing %s: %w", f.out, cerr)
			}
		}()
		dst = file
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	w := io.Writer(bw)
	var zw *gzip.Writer
	if strings.HasSuffix(f.out, ".gz") {
		// No name or time in the header: the same flags give the same bytes.
		zw = gzip.NewWriter(bw)
		w = zw
	}
	err = sim.Generate(f.opts, func(r sim.Record) error {
		sum.add(r)
		return sim.WriteJSONL(w, r)
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.out, err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", f.out, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", f.out, err)
	}
	return nil
}

// simulateToKafka produces from Start on: records whose time has passed at
// once, later ones as their time comes, until End or Ctrl-C.
func simulateToKafka(ctx context.Context, f simulateFlags, transport kafka.RoundTripper, stderr io.Writer, sum *simSummary) error {
	var brokers []string
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	w := sim.NewWriter(brokers...)
	if transport != nil {
		w.Transport = transport
	}
	defer w.Close()
	p := sim.NewProducer(ctx, w, map[event.Stream]string{event.Chat: f.chat, event.Orders: f.orders, event.Presence: f.pres})
	until := "until Ctrl-C"
	if !f.opts.End.IsZero() {
		until = "until " + event.FormatTime(f.opts.End)
	}
	fmt.Fprintf(stderr, "simulate: producing to %s from %s %s (past events at once, later ones live)\n",
		strings.Join(brokers, ","), event.FormatTime(f.opts.Start), until)
	err := demo.LiveProduce(ctx, f.opts, p, sum.add, nil)
	if err != nil {
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("%w (create the topics first, or name others with --topic-chat, --topic-orders, --topic-presence)", err)
		}
		return err
	}
	return nil
}
