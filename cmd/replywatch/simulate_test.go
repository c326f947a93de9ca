package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
)

// simulate runs the command and returns its exit code and stderr.
func simulate(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"simulate"}, args...), &stdout, &stderr)
	return code, stderr.String()
}

// The same flags and seed give the same file, byte for byte, plain or
// gzip-compressed; another seed gives another day.
func TestSimulateDeterministic(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{}
	for _, name := range []string{"a.jsonl", "b.jsonl", "a.jsonl.gz", "b.jsonl.gz", "seed8.jsonl"} {
		seed := "7"
		if name == "seed8.jsonl" {
			seed = "8"
		}
		path := filepath.Join(dir, name)
		code, stderr := simulate(t, "--seed", seed, "--day", "2026-11-24", "--out", path)
		if code != exitOK {
			t.Fatalf("simulate --out %s: exit %d\n%s", name, code, stderr)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	if len(files["a.jsonl"]) == 0 || !bytes.Equal(files["a.jsonl"], files["b.jsonl"]) {
		t.Errorf("two runs with seed 7 differ (%d and %d bytes)", len(files["a.jsonl"]), len(files["b.jsonl"]))
	}
	if !bytes.Equal(files["a.jsonl.gz"], files["b.jsonl.gz"]) {
		t.Errorf("two gzip runs with seed 7 differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(files["a.jsonl.gz"]))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, files["a.jsonl"]) {
		t.Errorf("the .gz file does not hold the plain file")
	}
	if bytes.Equal(files["a.jsonl"], files["seed8.jsonl"]) {
		t.Errorf("seeds 7 and 8 gave the same day")
	}
}

// The file holds the whole shop-local day, readable as the processor and
// replay read it, and the summary counts what the file holds.
func TestSimulateDayFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "day.jsonl")
	code, stderr := simulate(t, "--seed", "3", "--shops", "2", "--day", "2026-11-24", "--tz", "Asia/Shanghai", "--out", path)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, loc)
	end := start.AddDate(0, 0, 1)
	counts := map[event.Stream]int{}
	shops := map[string]bool{}
	err = sim.ReadJSONL(f, func(r sim.Record) error {
		counts[r.Topic]++
		shops[r.Event.ShopID] = true
		if r.Event.TS.Before(start) || !r.Event.TS.Before(end) {
			t.Errorf("event %s at %s is outside the day", r.Event.EventID, event.FormatTime(r.Event.TS.Time))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(shops) != 2 || counts[event.Chat] == 0 || counts[event.Orders] == 0 || counts[event.Presence] == 0 {
		t.Errorf("shops %v, counts %v: want 2 shops and every stream", shops, counts)
	}
	total := counts[event.Chat] + counts[event.Orders] + counts[event.Presence]
	want := strconv.Itoa(total) + " records to " + path + ": chat " + strconv.Itoa(counts[event.Chat]) +
		", orders " + strconv.Itoa(counts[event.Orders]) + ", presence " + strconv.Itoa(counts[event.Presence])
	if !strings.Contains(stderr, want) {
		t.Errorf("summary %q lacks %q", stderr, want)
	}
	if !strings.Contains(stderr, "event time 2026-11-24T") {
		t.Errorf("summary lacks the span: %q", stderr)
	}
}

var simulateUsageCases = []struct {
	name string
	args []string
	want string
}{
	{"no destination", []string{"--day", "2026-11-24"}, "exactly one of --brokers LIST or --out FILE"},
	{"two destinations", []string{"--brokers", "127.0.0.1:1", "--out", "x.jsonl"}, "exactly one of"},
	{"day and start", []string{"--out", "x.jsonl", "--day", "2026-11-24", "--start", "2026-11-24T08:00:00+08:00"}, "--day covers a whole day"},
	{"bad day", []string{"--out", "x.jsonl", "--day", "24/11/2026"}, `--day: "24/11/2026" is not YYYY-MM-DD`},
	{"bad start", []string{"--out", "x.jsonl", "--start", "08:00"}, `--start: "08:00" is not an RFC 3339 time`},
	{"end before start", []string{"--out", "x.jsonl", "--start", "2026-11-24T10:00:00+08:00", "--end", "2026-11-24T09:00:00+08:00"}, "is not after the start"},
	{"bad zone", []string{"--out", "x.jsonl", "--tz", "Mars/Olympus"}, `--tz: unknown time zone "Mars/Olympus"`},
	{"stray argument", []string{"--out", "x.jsonl", "extra"}, `unexpected argument "extra"`},
	{"unknown flag", []string{"--colour"}, "flag provided but not defined"},
	{"config and a file", []string{"--config", "replywatch.yml", "--out", "x.jsonl"}, "--config names the Kafka to produce to: give it without --out"},
	{"missing config", []string{"--config", "no-such-replywatch.yml"}, "reading config: open no-such-replywatch.yml"},
}

func TestSimulateUsage(t *testing.T) {
	for _, c := range simulateUsageCases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := simulate(t, c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q lacks %q", stderr, c.want)
			}
		})
	}
}

var spanCases = []struct {
	name       string
	now        string
	flags      simulateFlags
	start, end string // RFC 3339; end "" for an open end
}{
	{"file: today's opening to now", "2026-11-24T14:30:00+08:00", simulateFlags{out: "x"},
		"2026-11-24T08:00:00+08:00", "2026-11-24T14:30:00+08:00"},
	{"file before opening: from yesterday's opening", "2026-11-24T06:00:00+08:00", simulateFlags{out: "x"},
		"2026-11-23T08:00:00+08:00", "2026-11-24T06:00:00+08:00"},
	{"kafka: live from now", "2026-11-24T14:30:00+08:00", simulateFlags{brokers: "b"},
		"2026-11-24T14:30:00+08:00", ""},
	{"kafka: history then live", "2026-11-24T14:30:00+08:00", simulateFlags{brokers: "b", start: "2026-11-24T08:00:00+08:00"},
		"2026-11-24T08:00:00+08:00", ""},
	{"a whole day", "2026-11-24T14:30:00+08:00", simulateFlags{out: "x", day: "2026-11-23"},
		"2026-11-23T00:00:00+08:00", "2026-11-24T00:00:00+08:00"},
	{"file from a future start: one day", "2026-11-24T14:30:00+08:00", simulateFlags{out: "x", start: "2026-11-25T00:00:00+08:00"},
		"2026-11-25T00:00:00+08:00", "2026-11-26T00:00:00+08:00"},
}

func TestSimulateSpan(t *testing.T) {
	for _, c := range spanCases {
		t.Run(c.name, func(t *testing.T) {
			now, err := time.Parse(time.RFC3339, c.now)
			if err != nil {
				t.Fatal(err)
			}
			f := c.flags
			f.tz = "Asia/Shanghai"
			if err := f.resolve(now); err != nil {
				t.Fatal(err)
			}
			if got := f.opts.Start.Format(time.RFC3339); !sameTime(got, c.start) {
				t.Errorf("start = %s, want %s", got, c.start)
			}
			gotEnd := ""
			if !f.opts.End.IsZero() {
				gotEnd = f.opts.End.Format(time.RFC3339)
			}
			if !sameTime(gotEnd, c.end) {
				t.Errorf("end = %q, want %q", gotEnd, c.end)
			}
		})
	}
}

func sameTime(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	ta, _ := time.Parse(time.RFC3339, a)
	tb, _ := time.Parse(time.RFC3339, b)
	return ta.Equal(tb)
}

// simulate --brokers produces into a real Kafka-protocol broker: every
// record of the span, keyed, each key on one partition, into the topics the
// flags name; records whose time is still ahead go out when it comes.
func TestSimulateBrokers(t *testing.T) {
	topics := map[event.Stream]string{event.Chat: "t.chat", event.Orders: "t.orders", event.Presence: "t.presence"}
	broker, _ := testenv.Kafka(t, map[string]int{"t.chat": 4, "t.orders": 4, "t.presence": 2})
	now := time.Now()
	start, end := now.Add(-30*time.Minute).Truncate(time.Second), now.Add(3*time.Second).Truncate(time.Second)
	// The shops keep the hours of a zone where it is now afternoon, so the
	// span carries traffic whatever the time of day the test runs.
	zone := testenv.NoonZone(now)
	opts := sim.Options{Seed: 11, Shops: 2, Rate: 200, Start: start, End: end, Location: zone}
	want := map[string]int{}
	var last time.Time
	if err := sim.Generate(opts, func(r sim.Record) error {
		want[topics[r.Topic]]++
		last = r.Event.TS.Time
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if last.Before(now.Add(time.Second)) {
		t.Fatalf("the span has no record after now: raise the rate")
	}

	code, stderr := simulate(t, "--brokers", broker, "--seed", "11", "--shops", "2", "--rate", "200", "--tz", zone.String(),
		"--start", start.Format(time.RFC3339), "--end", end.Format(time.RFC3339),
		"--topic-chat", "t.chat", "--topic-orders", "t.orders", "--topic-presence", "t.presence")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if done := time.Now(); done.Before(last) {
		t.Errorf("returned at %s, before the last record's time %s: records still ahead were not produced live",
			done.Format(time.StampMilli), last.Format(time.StampMilli))
	}

	for topic, n := range want {
		got, keys := readAll(t, broker, topic)
		if got != n {
			t.Errorf("%s holds %d records, want %d", topic, got, n)
		}
		for k, parts := range keys {
			if len(parts) > 1 {
				t.Errorf("%s key %q is on partitions %v: not hash-partitioned", topic, k, parts)
			}
		}
	}
	if !strings.Contains(stderr, "to Kafka at "+broker+": t.chat ") {
		t.Errorf("summary does not name the broker and topics: %s", stderr)
	}
}

// readAll reads every record of a topic: how many, and the partitions each
// key is on.
func readAll(t *testing.T, broker, topic string) (int, map[string]map[int]bool) {
	t.Helper()
	return readAllWith(t, kafka.DefaultDialer, broker, topic)
}

// readAllWith is readAll through dialer (TLS and SASL).
func readAllWith(t *testing.T, dialer *kafka.Dialer, broker, topic string) (int, map[string]map[int]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	keys := map[string]map[int]bool{}
	for _, p := range parts {
		lc, err := dialer.DialLeader(ctx, "tcp", broker, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p.ID, Dialer: dialer,
			MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("reading %s/%d: %v", topic, p.ID, err)
			}
			n++
			if keys[string(m.Key)] == nil {
				keys[string(m.Key)] = map[int]bool{}
			}
			keys[string(m.Key)][p.ID] = true
			if m.Offset == last-1 {
				break
			}
		}
		r.Close()
	}
	return n, keys
}

// --no-presence leaves the last shops without presence events, and a run
// with seat gaps is still the plain run's shops and conversations.
func TestSimulateSeatGaps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gaps.jsonl")
	code, stderr := simulate(t, "--seed", "7", "--day", "2026-11-24", "--shops", "2", "--no-presence", "1",
		"--lunch-together", "1", "--quiet", "0.1", "--out", path)
	if code != exitOK {
		t.Fatalf("simulate: exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	presence := map[string]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var rec struct {
			Value struct {
				Type   string `json:"type"`
				ShopID string `json:"shop_id"`
			} `json:"value"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %s: %v", line, err)
		}
		if rec.Value.Type == "agent_status" {
			presence[rec.Value.ShopID]++
		}
	}
	if presence["shop-01"] == 0 || presence["shop-02"] != 0 {
		t.Errorf("presence events per shop %v, want some for shop-01 and none for shop-02", presence)
	}
	if code, _ := simulate(t, "--day", "2026-11-24", "--shops", "2", "--no-presence", "3", "--out", filepath.Join(dir, "x")); code == exitOK {
		t.Error("more presence-less shops than shops accepted")
	}
}

// The README's `replywatch simulate --config` line produces, over TLS with
// SCRAM, into the brokers and topics of replywatch's config file, with its
// kafka.tls and kafka.sasl: the same records as the same flags write to a
// file. Without the settings the broker lets nothing in.
func TestSimulateSecuredKafka(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile("`(replywatch simulate --config [^`]+)`").FindStringSubmatch(string(readme))
	if line == nil {
		t.Fatal("README.md shows no `replywatch simulate --config FILE ...` line")
	}
	args := strings.Fields(line[1])[2:]
	certs := testenv.NewCerts(t)
	broker, _ := testenv.Kafka(t, map[string]int{"shop.chat": 4, "shop.orders": 2, "shop.presence": 2},
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "rw-sim", "k-s3cret"), kfake.TLS(certs.Server))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "replywatch.yml")
	cfg := fmt.Sprintf("kafka:\n  brokers: [%q]\n  topics: {chat: shop.chat, orders: shop.orders, presence: shop.presence}\n"+
		"  tls: {enabled: true, ca_file: %q}\n  sasl: {mechanism: scram-sha-512, username: rw-sim, password: \"${RW_TEST_KAFKA_PASSWORD}\"}\n",
		broker, certs.CAFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RW_TEST_KAFKA_PASSWORD", "k-s3cret")
	var file []string
	for _, a := range args {
		if a == "replywatch.yml" {
			a = cfgPath
		}
		file = append(file, a)
	}

	// Plain Kafka is refused.
	code, stderr := simulate(t, "--brokers", broker, "--day", "2026-11-24", "--shops", "1", "--topic-chat", "shop.chat",
		"--topic-orders", "shop.orders", "--topic-presence", "shop.presence")
	if code != exitFailed {
		t.Errorf("without TLS and SASL: exit %d, want %d\n%s", code, exitFailed, stderr)
	}

	code, stderr = simulate(t, file...)
	if code != exitOK {
		t.Fatalf("%s: exit %d\n%s", line[1], code, stderr)
	}
	if strings.Contains(stderr, "k-s3cret") {
		t.Error("simulate printed the Kafka password")
	}

	// The same flags to a file give the records expected.
	out := filepath.Join(dir, "day.jsonl")
	var toFile []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--config" {
			i++
			continue
		}
		toFile = append(toFile, args[i])
	}
	if code, stderr := simulate(t, append(toFile, "--out", out)...); code != exitOK {
		t.Fatalf("to a file: exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct{ Topic string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		want["shop."+rec.Topic]++
	}
	tlsCfg, err := (config.TLS{Enabled: true, CAFile: certs.CAFile}).Config()
	if err != nil {
		t.Fatal(err)
	}
	mech, err := scram.Mechanism(scram.SHA512, "rw-sim", "k-s3cret")
	if err != nil {
		t.Fatal(err)
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, TLS: tlsCfg, SASLMechanism: mech}
	for topic, n := range want {
		if got, _ := readAllWith(t, dialer, broker, topic); got != n {
			t.Errorf("%s holds %d records, want %d (the file's)", topic, got, n)
		}
	}
	if len(want) != 3 {
		t.Errorf("the simulated day has records of %d streams, want 3: %v", len(want), want)
	}
}
