package pipeline

import (
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/hours"
	"github.com/replywatch/replywatch/sim"
	"github.com/replywatch/replywatch/text"
)

// BenchmarkBatchBuild500Text is BenchmarkBatchBuild500 with the text rules
// on (default lexicons): with it, the two give the text rules' share of the
// worker's CPU per batch.
func BenchmarkBatchBuild500Text(b *testing.B) {
	loc := sim.Shanghai()
	rules := &detectors.Rules{Platform: "pdd", Hours: hours.MustNew(loc, hours.Range{Start: 8 * 60, End: 23 * 60}),
		Thresholds: []time.Duration{3 * time.Minute, 5 * time.Minute}, WarnBefore: time.Minute}
	rf := func(string) *detectors.Rules { return rules }
	lex, err := text.Default()
	if err != nil {
		b.Fatal(err)
	}
	m, err := text.Compile(lex)
	if err != nil {
		b.Fatal(err)
	}
	text.Warm()
	tr := &detectors.TextRules{Matcher: m}
	h := ChatHandler{Engine: &detectors.Engine{Rules: rf}, Text: &detectors.TextEngine{Text: func(string) *detectors.TextRules { return tr }, Rules: rf}}
	benchStep(b, h)
}
