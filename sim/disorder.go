package sim

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/replywatch/replywatch/event"
)

// Disorder says how a day's chat records arrive out of order, as they do
// from several producers with retries.
type Disorder struct {
	Seed uint64
	// Within is how far behind its event time a chat record may arrive:
	// each is held back by a uniform delay in [0, Within).
	Within time.Duration
	// Duplicates is the share of chat records sent a second time (the same
	// event_id, a delay of its own).
	Duplicates float64
}

// Arrival reorders recs (in event-time order, as Generate gives them) into
// an arrival order: each chat record is held back by its own delay and
// some are sent twice. Order and presence records keep their place, so
// only conversations change order. recs is not modified.
func (d Disorder) Arrival(recs []Record) []Record {
	r := rand.New(rand.NewPCG(d.Seed, 0x5eed))
	type arrival struct {
		at  int64
		seq int
		rec Record
	}
	out := make([]arrival, 0, len(recs)+int(float64(len(recs))*d.Duplicates)+1)
	delay := func() int64 {
		if d.Within <= 0 {
			return 0
		}
		return r.Int64N(d.Within.Milliseconds())
	}
	for _, rec := range recs {
		at := rec.Event.TS.UnixMilli()
		if rec.Topic != event.Chat {
			out = append(out, arrival{at, len(out), rec})
			continue
		}
		out = append(out, arrival{at + delay(), len(out), rec})
		if d.Duplicates > 0 && r.Float64() < d.Duplicates {
			out = append(out, arrival{at + delay(), len(out), rec})
		}
	}
	slices.SortFunc(out, func(a, b arrival) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.seq - b.seq
	})
	res := make([]Record, len(out))
	for i, a := range out {
		res[i] = a.rec
	}
	return res
}
