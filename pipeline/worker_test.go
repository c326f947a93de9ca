package pipeline

import (
	"slices"
	"testing"
)

// dueForCases: timers read ahead up to dueBy 1000, limit 3, against the
// time the batch finally fires timers up to.
var dueForCases = []struct {
	name   string
	due    []string
	dueAt  []int64
	t      int64
	limit  int
	want   []string
	wantOK bool
}{
	{"later read, some due", []string{"a", "b", "c"}, []int64{100, 500, 900}, 600, 3, []string{"a", "b"}, true},
	{"later read, none due", []string{"a"}, []int64{700}, 600, 3, []string{}, true},
	{"read up to exactly t", []string{"a", "b"}, []int64{100, 1000}, 1000, 3, []string{"a", "b"}, true},
	{"earlier read, full: the first timers whatever t", []string{"a", "b", "c"}, []int64{100, 200, 300}, 5000, 3, []string{"a", "b", "c"}, true},
	{"earlier read, not full: timers after it unknown", []string{"a"}, []int64{100}, 5000, 3, nil, false},
	{"another limit", []string{"a"}, []int64{100}, 600, 10, nil, false},
}

func TestReadAheadDueFor(t *testing.T) {
	for _, c := range dueForCases {
		t.Run(c.name, func(t *testing.T) {
			r := &readAhead{due: c.due, dueAt: c.dueAt, dueBy: 1000, limit: 3}
			got, ok := r.dueFor(c.t, c.limit)
			if ok != c.wantOK || (ok && !slices.Equal(got, c.want)) {
				t.Fatalf("dueFor(%d, %d) = %v, %v; want %v, %v", c.t, c.limit, got, ok, c.want, c.wantOK)
			}
		})
	}
}
