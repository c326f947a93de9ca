package pipeline

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/state"
)

var stepStart = time.Date(2026, 11, 11, 10, 0, 0, 0, sim.Shanghai())

// stepDay is a shop's half hour in batches of records: buyers write, some
// are answered in time, some late, some never.
func stepDay() [][]Record {
	var recs []Record
	add := func(at time.Duration, buyer, sender string) {
		ev := &event.Event{EventID: fmt.Sprint("e", len(recs)), Type: event.TypeMessage, TS: event.Time{Time: stepStart.Add(at)},
			ShopID: "s1", BuyerID: buyer, Sender: sender, AgentID: "a1"}
		recs = append(recs, Record{Event: ev, Offset: int64(len(recs)), Key: "s1/" + buyer})
	}
	for i := range 12 {
		b := fmt.Sprint("b", i)
		add(time.Duration(i)*40*time.Second, b, event.SenderBuyer)
		switch i % 3 {
		case 0: // answered within a minute
			add(time.Duration(i)*40*time.Second+50*time.Second, b, event.SenderAgent)
		case 1: // answered after the first deadline
			add(time.Duration(i)*40*time.Second+4*time.Minute, b, event.SenderAgent)
		}
	}
	slices.SortStableFunc(recs, func(x, y Record) int { return x.Event.TS.Compare(y.Event.TS.Time) })
	for i := range recs {
		recs[i].Offset = int64(i)
	}
	var batches [][]Record
	for i := 0; i < len(recs); i += 5 {
		batches = append(batches, recs[i:min(i+5, len(recs))])
	}
	return batches
}

func stepRules() Handler {
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(sim.Shanghai(), hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	return ChatHandler{Engine: &detectors.Engine{Rules: func(string) *detectors.Rules { return rules }}}
}

func newStep(cacheSize int) *Step {
	cache, _ := lru.New[string, Entity](cacheSize)
	return &Step{Handler: stepRules(), Cache: cache, Language: "zh",
		Location: func(string) *time.Location { return sim.Shanghai() }, Log: zap.NewNop()}
}

// stepRun drives a Step over batches as the worker does, against a memory
// store: read what the cache lacks and the due timers, run the step, write
// the batch. The clock is the batch's last event time; a last run at the
// end fires what is due an hour later. It returns the alert keys in order.
func stepRun(t *testing.T, s *Step, m *state.Memory, batches [][]Record) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := m.Claim(ctx, "chat.0", 1); err != nil {
		t.Fatal(err)
	}
	var keys []string
	offset := int64(-1)
	batches = append(batches, nil)
	for i, recs := range batches {
		now := stepStart.Add(time.Hour)
		if len(recs) > 0 {
			now = recs[len(recs)-1].Event.TS.Time
			offset = recs[len(recs)-1].Offset
		}
		loaded, err := m.Load(ctx, "chat.0", s.Uncached(recs, nil), now.UnixMilli()-1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Run(&Input{Records: recs, Stored: loaded.States, Due: loaded.Due, Now: now, Wall: now})
		if err != nil {
			t.Fatal(err)
		}
		b := &out.Batch
		b.Token, b.Offset, b.Now, b.Lease = 1, offset, now.UnixMilli(), time.Minute
		if i == len(batches)-1 {
			b.Offset = -1
		}
		if _, err := m.ApplyLoad(ctx, "chat.0", b, nil); err != nil {
			t.Fatal(err)
		}
		for j, a := range out.Alerts {
			if out.Batch.Outbox[j].Key != a.Key() {
				t.Fatalf("outbox record %d is %s, alert %s", j, out.Batch.Outbox[j].Key, a.Key())
			}
			keys = append(keys, a.Key())
		}
	}
	return keys
}

func stepFigures(t *testing.T, m *state.Memory) map[string]*state.ShopFigures {
	t.Helper()
	f, err := m.Figures(context.Background(), []string{"chat.0"}, func(string) string { return stepStart.Format(time.DateOnly) })
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A step whose cache holds one conversation reads every other one back
// from the store: it must give the same alerts and figures as a step that
// keeps them all in memory. The run fires breaches and warnings, and a
// conversation answered in time fires none.
func TestStepColdCacheEqualsWarm(t *testing.T) {
	warmStore, coldStore := state.NewMemory(), state.NewMemory()
	warm := stepRun(t, newStep(1024), warmStore, stepDay())
	cold := stepRun(t, newStep(1), coldStore, stepDay())
	if !slices.Equal(warm, cold) {
		t.Errorf("alerts with a cold cache:\n%v\nwith a warm one:\n%v", cold, warm)
	}
	firing, resolved := 0, 0
	for _, k := range warm {
		switch {
		case strings.HasSuffix(k, ":firing"):
			firing++
		case strings.HasSuffix(k, ":resolved:replied"):
			resolved++
		}
	}
	// Four buyers answered after four minutes: a warning and a breach
	// each, both resolved by the reply; four never answered: two warnings
	// and two breaches each; four answered in time: nothing.
	if firing != 24 || resolved != 8 {
		t.Errorf("%d firing and %d resolved alerts, want 24 and 8: %v", firing, resolved, warm)
	}
	wf, cf := stepFigures(t, warmStore), stepFigures(t, coldStore)
	if !reflect.DeepEqual(wf, cf) {
		t.Errorf("figures with a cold cache %+v, with a warm one %+v", cf["s1"], wf["s1"])
	}
	if wf["s1"] == nil || wf["s1"].Day[detectors.FieldConsulting] != 12 {
		t.Errorf("figures of s1: %+v, want 12 buyers consulting", wf["s1"])
	}
}

// Invariant 1 at the step: records applied again to the states they made
// are duplicates, change no figure and emit no alert.
func TestStepAgainChangesNothing(t *testing.T) {
	m := state.NewMemory()
	s := newStep(1024)
	day := stepDay()
	stepRun(t, s, m, day)
	before := stepFigures(t, m)
	for _, fresh := range []*Step{s, newStep(1024)} { // from the cache, and from the store
		for _, recs := range day {
			loaded, err := m.Load(context.Background(), "chat.0", fresh.Uncached(recs, nil), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			now := recs[len(recs)-1].Event.TS.Time
			out, err := fresh.Run(&Input{Records: recs, Stored: loaded.States, Now: now, Wall: now})
			if err != nil {
				t.Fatal(err)
			}
			if out.Duplicates != len(recs) || len(out.Alerts) > 0 || len(out.Batch.Figures) > 0 {
				t.Fatalf("records applied again: %d of %d duplicates, %d alerts, figure deltas %v",
					out.Duplicates, len(recs), len(out.Alerts), out.Batch.Figures)
			}
		}
	}
	if after := stepFigures(t, m); !maps.EqualFunc(before, after, func(a, b *state.ShopFigures) bool { return reflect.DeepEqual(a, b) }) {
		t.Errorf("figures changed")
	}
}
