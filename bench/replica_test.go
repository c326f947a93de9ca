package bench

import (
	"path/filepath"
	"strings"
	"testing"
)

// raceReportCases are replica logs and what the note on them must name.
var raceReportCases = []struct {
	log  string
	want []string
}{
	{"race.log", []string{"Write at", "Previous read", "app.(*App).Run.func3() app.go:237", "pipeline.(*Processor).Run() pipeline.go:192"}},
	{"missing.log", []string{"no log"}},
}

func TestRaceReport(t *testing.T) {
	for _, tc := range raceReportCases {
		got := raceReport(filepath.Join("testdata", tc.log))
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("raceReport(%s) = %q, want it to name %q", tc.log, got, w)
			}
		}
	}
}
