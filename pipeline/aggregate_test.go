package pipeline

import (
	"reflect"
	"testing"

	"github.com/replywatch/replywatch/detectors"
)

var aggregateCases = []struct {
	name string
	in   []detectors.FigureDelta
	want []detectors.FigureDelta
}{
	{"empty", nil, []detectors.FigureDelta(nil)},
	{"one", []detectors.FigureDelta{{Shop: "s1", Day: "d", Field: "msgs", Delta: 1}},
		[]detectors.FigureDelta{{Shop: "s1", Day: "d", Field: "msgs", Delta: 1}}},
	{"sums per shop, day and field, first-seen order",
		[]detectors.FigureDelta{
			{Shop: "s1", Day: "d", Field: "msgs", Delta: 1},
			{Shop: "s2", Day: "d", Field: "msgs", Delta: 1},
			{Shop: "s1", Day: "d", Field: "msgs", Delta: 2},
			{Shop: "s1", Day: "e", Field: "msgs", Delta: 5},
			{Shop: "s1", Day: "d", Field: "consulting", Delta: 1},
		},
		[]detectors.FigureDelta{
			{Shop: "s1", Day: "d", Field: "msgs", Delta: 3},
			{Shop: "s2", Day: "d", Field: "msgs", Delta: 1},
			{Shop: "s1", Day: "e", Field: "msgs", Delta: 5},
			{Shop: "s1", Day: "d", Field: "consulting", Delta: 1},
		}},
	{"changes that cancel out are dropped",
		[]detectors.FigureDelta{
			{Shop: "s1", Day: "d", Field: "breached:3m", Delta: 1},
			{Shop: "s1", Day: "d", Field: "msgs", Delta: 1},
			{Shop: "s1", Day: "d", Field: "breached:3m", Delta: -1},
		},
		[]detectors.FigureDelta{{Shop: "s1", Day: "d", Field: "msgs", Delta: 1}}},
}

func TestAggregate(t *testing.T) {
	for _, c := range aggregateCases {
		if got := aggregate(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
