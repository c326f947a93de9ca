package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/sim"
)

// setFlags collects repeated --set key=value overrides.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: replywatch replay [flags] FILE.jsonl[.gz]\n\nRuns the rules over a recorded day with no Kafka and no Redis and prints the figures per shop and per agent, the order figures, and the alert records per kind.\n\nFlags:")
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "config file (YAML); defaults when empty")
	var sets setFlags
	fs.Var(&sets, "set", "override a config key for a what-if run, e.g. --set reply_sla.thresholds=3m,5m,10m (repeatable)")
	format := fs.String("format", "table", "output: table, json or csv")
	atFlag := fs.String("at", "", "wall clock (RFC 3339) at which figures are read; default: just after the last event, within its day")
	alertsOut := fs.String("alerts", "", "also write the alert records to this JSONL file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	if *format != "table" && *format != "json" && *format != "csv" {
		fmt.Fprintf(stderr, "replywatch replay: --format %q is not one of table, json, csv\n", *format)
		return exitUsage
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "replywatch replay: %v\n", err)
			return exitUsage
		}
	}
	cfg.Metrics.PerAgent = true
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			fmt.Fprintf(stderr, "replywatch replay: --set %q is not key=value\n", s)
			return exitUsage
		}
		if err := cfg.Set(k, v); err != nil {
			fmt.Fprintf(stderr, "replywatch replay: --set %s: %v\n", s, err)
			return exitUsage
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "replywatch replay: %v\n", err)
		return exitUsage
	}
	var at time.Time
	if *atFlag != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, *atFlag); err != nil {
			fmt.Fprintf(stderr, "replywatch replay: --at %q is not RFC 3339\n", *atFlag)
			return exitUsage
		}
	}
	path := fs.Arg(0)
	// A bad record does not end the replay: one the processor could read
	// as a record goes to it as it is, to be dead-lettered as live, and a
	// line that is not even that is skipped; both are reported by line.
	var skipped []skippedLine
	lines := map[event.Stream][]int{} // file line of each stream's records, by offset
	src := func(fn func(event.Stream, string, []byte) error) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		skipped, lines = skipped[:0], map[event.Stream][]int{}
		return sim.ReadJSONLLines(f, func(l sim.Line) error {
			if l.Err != nil {
				skipped = append(skipped, skippedLine{l.Number, l.Err})
				return nil
			}
			lines[l.Stream] = append(lines[l.Stream], l.Number)
			return fn(l.Stream, l.RecordKey(), l.Value)
		})
	}
	res, err := app.Replay(context.Background(), cfg, src, at, nil)
	if err != nil {
		fmt.Fprintf(stderr, "replywatch replay: %s: %v\n", path, err)
		return exitFailed
	}
	if *alertsOut != "" {
		if err := writeAlerts(*alertsOut, res); err != nil {
			fmt.Fprintf(stderr, "replywatch replay: %v\n", err)
			return exitFailed
		}
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(map[string]any{"at": res.At.Format(time.RFC3339Nano), "events": res.Events,
			"alerts": len(res.Alerts), "dead_letters": len(res.DeadLetters), "skipped_lines": len(skipped), "shops": res.Shops})
	case "csv":
		err = writeCSV(stdout, res.Shops)
	default:
		writeTable(stdout, res, len(skipped))
	}
	if err != nil {
		fmt.Fprintf(stderr, "replywatch replay: %v\n", err)
		return exitFailed
	}
	t := cfg.Kafka.Topics
	byTopic := map[string][]int{t.Chat: lines[event.Chat], t.Orders: lines[event.Orders], t.Presence: lines[event.Presence]}
	reportBad(stderr, path, res, skipped, byTopic)
	return exitOK
}

// skippedLine is a line that names no stream.
type skippedLine struct {
	line int
	err  error
}

// reportBad lists the records the replay could not use, by file line, the
// first ten of each kind, and how many in all by reason.
func reportBad(w io.Writer, path string, res *app.ReplayResult, skipped []skippedLine, lines map[string][]int) {
	byReason := map[string]int{}
	for i, d := range res.DeadLetters {
		byReason[d.Reason]++
		if i >= 10 {
			continue
		}
		line := int(d.Offset) + 1
		if ls := lines[d.Topic]; d.Offset >= 0 && int(d.Offset) < len(ls) {
			line = ls[d.Offset]
		}
		fmt.Fprintf(w, "%s:%d: dead-lettered: %s: %s\n", path, line, d.Reason, d.Detail)
	}
	for i, s := range skipped {
		if i >= 10 {
			break
		}
		fmt.Fprintf(w, "%s:%d: skipped: %v\n", path, s.line, s.err)
	}
	if n := len(res.DeadLetters) + len(skipped); n > 0 {
		reasons := make([]string, 0, len(byReason))
		for r, k := range byReason {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, k))
		}
		slices.Sort(reasons)
		if len(skipped) > 0 {
			reasons = append(reasons, fmt.Sprintf("not a record %d", len(skipped)))
		}
		fmt.Fprintf(w, "%d unusable records (%s), left out of the figures\n", n, strings.Join(reasons, ", "))
	}
}

func writeAlerts(path string, res *app.ReplayResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, a := range res.Alerts {
		if err := enc.Encode(a); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// noData stands for a ratio or mean whose denominator is 0.
const noData = "—"

func pct(v *float64) string {
	if v == nil {
		return noData
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64) + "%"
}

func secs(v *float64) string {
	if v == nil {
		return noData
	}
	return strconv.FormatFloat(*v, 'f', 1, 64) + "s"
}

// rateOf is a shop's reply rate at threshold t, nil while no one consulted.
func rateOf(s metrics.ShopReport, t string) *float64 {
	if v, ok := s.ReplyRate[t]; ok {
		return &v
	}
	return nil
}

// uncovered is the shop's uncovered time today, "—" when unknown.
func uncovered(s metrics.ShopReport) string { return secs(s.UncoveredSeconds) }

func writeTable(w io.Writer, res *app.ReplayResult, skipped int) {
	fmt.Fprintf(w, "replayed %d events (%d unusable), %d alert records; figures at %s\n\n",
		res.Events+skipped, len(res.DeadLetters)+skipped, len(res.Alerts), res.At.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	ths := thresholdsOf(res.Shops)
	head := "shop\tplatform\tday\tconsulting\t"
	for _, t := range ths {
		head += "breached " + t + "\trate " + t + "\t"
	}
	fmt.Fprintln(tw, head+"messages\t30s rate\tavg response\twaiting\tuncovered\t")
	for _, s := range res.Shops {
		row := fmt.Sprintf("%s\t%s\t%s\t%d\t", s.Shop, s.Platform, s.Day, s.Consulting)
		for _, t := range ths {
			row += fmt.Sprintf("%d\t%s\t", s.Breached[t], pct(rateOf(s, t)))
		}
		fmt.Fprintln(tw, row+fmt.Sprintf("%d\t%s\t%s\t%d\t%s\t", s.Messages, pct(s.Response30sRate), secs(s.AvgResponseSeconds), s.Waiting, uncovered(s)))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head = "shop\tagent\tconsulting\tmessages\t"
	for _, t := range ths {
		head += "breached " + t + "\t"
	}
	fmt.Fprintln(tw, head+"30s rate\tavg response\twaiting\t")
	for _, s := range res.Shops {
		for _, a := range s.Agents {
			row := fmt.Sprintf("%s\t%s\t%d\t%d\t", s.Shop, a.Agent, a.Consulting, a.Messages)
			for _, t := range ths {
				row += fmt.Sprintf("%d\t", a.Breached[t])
			}
			fmt.Fprintln(tw, row+fmt.Sprintf("%s\t%s\t%d\t", pct(a.Response30sRate), secs(a.AvgResponseSeconds), a.Waiting))
		}
	}
	tw.Flush()
	writeOrders(w, res)
}

// writeOrders prints the order figures per shop (noData where a ratio has
// nothing to divide by) and the alert records per kind and status.
func writeOrders(w io.Writer, res *app.ReplayResult) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shop\tawaiting shipment\tshipping breached\topen disputes\topen complaints\treviews\tsatisfaction\trefunds\tavg refund\tconverted\tconversion\t")
	for _, s := range res.Shops {
		o := s.Orders
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t%s\t\n", s.Shop, o.AwaitingShipment, o.ShippingBreached,
			o.OpenDisputes[detectors.DisputeKindDispute], o.OpenDisputes[detectors.DisputeKindComplaint],
			o.Reviews, pct(o.ReviewSatisfaction), o.Refunds, secs(o.AvgRefundSeconds), o.Converted, pct(o.InquiryConversionRate))
	}
	tw.Flush()
	counts := map[string]int{}
	for _, a := range res.Alerts {
		counts[a.Kind+" "+a.Status]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "\nalert records:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-28s %d\n", k, counts[k])
	}
}

func thresholdsOf(shops []metrics.ShopReport) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range shops {
		for _, t := range s.Thresholds {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	return out
}

func writeCSV(w io.Writer, shops []metrics.ShopReport) error {
	cw := csv.NewWriter(w)
	ths := thresholdsOf(shops)
	head := []string{"shop", "agent", "day", "consulting_buyers", "buyer_messages"}
	for _, t := range ths {
		head = append(head, "breached_"+t, "reply_rate_"+t)
	}
	head = append(head, "response_30s_rate", "avg_response_seconds", "waiting_buyers", "uncovered_seconds")
	if err := cw.Write(head); err != nil {
		return err
	}
	// A ratio or mean without data is an empty field.
	f := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, s := range shops {
		row := []string{s.Shop, "", s.Day, i(s.Consulting), i(s.Messages)}
		for _, t := range ths {
			row = append(row, i(s.Breached[t]), f(rateOf(s, t)))
		}
		row = append(row, f(s.Response30sRate), f(s.AvgResponseSeconds), i(s.Waiting), f(s.UncoveredSeconds))
		if err := cw.Write(row); err != nil {
			return err
		}
		for _, a := range s.Agents {
			row := []string{s.Shop, a.Agent, s.Day, i(a.Consulting), i(a.Messages)}
			for _, t := range ths {
				row = append(row, i(a.Breached[t]), "")
			}
			row = append(row, f(a.Response30sRate), f(a.AvgResponseSeconds), i(a.Waiting), "")
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
