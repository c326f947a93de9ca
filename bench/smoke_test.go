package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a replica child of the harness.
func TestMain(m *testing.M) {
	MaybeReplica()
	os.Exit(m.Run())
}

// smokeFigures are the figures every run must report with a positive
// value: one per measurement the benchmark promises (part, name prefix).
var smokeFigures = []struct{ part, name string }{
	{PartCeiling, "bare kafka-go consumption"},
	{PartCeiling, "minimal pipeline"},
	{PartE2E, "sustained chat events/s"},
	{PartE2E, "share of the minimal-pipeline ceiling"},
	{PartE2E, "share of the bare-consumption ceiling"},
	{PartE2E, "Redis round trips per batch"},
	{PartE2E, "Redis commands per event"},
	{PartE2E, "processor CPU per event"},
	{PartJoin, "events/s, chat only"},
	{PartJoin, "events/s, orders 20 % of events"},
	{PartE2E, "Redis CPU per event"},
	{"scaling 1", "chat events/s"},
	{"scaling 1", "CPU per replica"},
	{"scaling 2", "chat events/s"},
	{"rebalance", "pause when a third replica joins"},
	{"rebalance", "pause when it leaves"},
	{"live 2000/s (grace 500ms)", "Redis round trips per batch"},
	{"live 2000/s (grace 500ms)", "Redis commands per event"},
	{"live 2000/s (grace 500ms)", "processor CPU per event"},
	{"delay grace 500ms", "live chat rate achieved"},
	{"delay grace 500ms", "probe alerts received"},
	{"delay grace 500ms", "configured grace"},
	{"delay grace 250ms", "probe alerts received"},
	{"delay grace 250ms", "total delay after the deadline"},
	{PartMemory, "Redis bytes per waiting conversation"},
	{PartMemory, "Redis bytes per finished conversation-day"},
	{PartMemory, "processor RSS at 500 active"},
	{PartMemory, "processor RSS at 5,000 active"},
	{PartBacklog, "time to catch up"},
	{PartBacklog, "catch-up rate"},
	{PartBacklog, "processor peak RSS"},
	{PartStorm, "bare kafka-go consumption"},
	{PartStorm, "sustained chat events/s on the bad day"},
	{PartStorm, "share of bare consumption"},
	{PartStorm, "alert records per event"},
	{PartStorm, "distinct conversations per million events"},
	{PartStorm, "processor CPU per event"},
	{PartFloor, "bare kafka-go consumption"},
	{PartFloor, "repartition and alerts: chat events/s"},
	{PartFloor, "repartition and alerts: share of bare consumption"},
	{PartFloor, "repartition and alerts: consumer CPU per event"},
	{PartFloor, "repartition and alerts: kfake broker CPU per event"},
	{PartFloor, "repartition and alerts: Redis CPU per event"},
	{PartFloor, "repartition and alerts: Redis commands per event"},
	{PartFloor, "without the repartition: chat events/s"},
	{PartFloor, "without the repartition: consumer CPU per event"},
	{PartFloor, "without the alerts: chat events/s"},
	{PartFloor, "without the alerts: consumer CPU per event"},
	{PartDelivery, "notifier off, no SSE clients: chat events/s"},
	{PartDelivery, "notifier on (webhook answering in 50 ms), no SSE clients: alert records the notifier read and routed"},
	{PartDelivery, "20 SSE clients scoped (agents' pages 19, walls of every shop 1): SSE records received"},
	{PartDelivery, "20 SSE clients scoped (agents' pages 19, walls of every shop 1): clients that received exactly"},
	{PartDelivery, "20 SSE clients each taking every record: SSE records received"},
	{PartDelivery, "live 2,000/s, no SSE clients: processor CPU per event"},
	{PartDelivery, "live 2,000/s, 20 SSE clients scoped (agents' pages 19, walls of every shop 1): clients that received exactly"},
}

// smokeMeasured are figures that must be present and finite but may be
// zero in a tiny run (a delay can round to 0 ms).
var smokeMeasured = []struct{ part, name string }{
	{"delay grace 500ms", "delay beyond grace at the alerts reader, p99"},
	{"delay grace 250ms", "delay beyond grace at the alerts reader, p99"},
	{PartMemory, "processor RSS change"},
	// Restamped onto the wall clock, a second of live traffic may fire
	// nothing.
	{PartDelivery, "live 2,000/s, no SSE clients: alert records per chat event"},
}

// testLog shows progress lines as the test runs (go test -v).
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func findFigure(r *Report, part, prefix string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Part == part && strings.HasPrefix(f.Name, prefix) {
			return f, true
		}
	}
	return Figure{}, false
}

// TestSmoke runs every part with tiny sizes and checks that the run
// completes and reports every figure: that the harness works, not how
// fast anything is.
func TestSmoke(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found on PATH")
		}
		t.Skip("redis-server not found on PATH")
	}
	if testing.Short() {
		t.Skip("the smoke run takes tens of seconds")
	}
	s := SmokeSettings()
	s.Dir = t.TempDir()
	// Every part, under -race, on a machine the other packages' tests share:
	// the budget is for a stalled run, not a measure of speed.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, s, io.MultiWriter(&progress, testLog{t}))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	for _, n := range rep.Notes {
		t.Log("note: " + n)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("parts failed: %v\n%s", rep.Errors, progress.String())
	}
	for _, f := range rep.Figures {
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			t.Errorf("%s / %s is %v", f.Part, f.Name, f.Value)
		}
	}
	for _, want := range smokeFigures {
		f, ok := findFigure(rep, want.part, want.name)
		if !ok {
			t.Errorf("no figure %q in part %q", want.name, want.part)
			continue
		}
		if !(f.Value > 0) {
			t.Errorf("%s / %s = %v, want a positive value", f.Part, f.Name, f.Value)
		}
	}
	for _, want := range smokeMeasured {
		if _, ok := findFigure(rep, want.part, want.name); !ok {
			t.Errorf("no figure %q in part %q", want.name, want.part)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("the report does not encode as JSON: %v", err)
	}
	var md bytes.Buffer
	rep.Markdown(&md)
	if !strings.Contains(md.String(), "| part | figure | value | target | met |") {
		t.Errorf("the markdown report has no table:\n%s", md.String())
	}
	if t.Failed() {
		t.Logf("report:\n%s", md.String())
	}
}
