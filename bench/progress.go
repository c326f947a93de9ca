package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/state"
)

// keyPrefix is redis.prefix of the benchmark's replicas (the default).
const keyPrefix = "rw"

// offsetKey is where a partition's last applied offset lives (state.Redis).
func offsetKey(stream string, partition int) string {
	return keyPrefix + ":{" + state.Scope(stream, partition) + "}:offset"
}

// watched is one input partition whose applied offset is followed.
type watched struct {
	stream    string
	partition int
	// hwm is the offset the partition must reach (its high-water mark).
	hwm int64
}

// watchList lists every partition of the streams' topics with the
// high-water marks read from the broker.
func watchList(ctx context.Context, broker string, streams ...string) ([]watched, error) {
	var out []watched
	for _, s := range streams {
		topic := "cs." + s
		hwms, err := HighWaterMarks(ctx, broker, topic)
		if err != nil {
			return nil, err
		}
		for p := range Topics[topic] {
			out = append(out, watched{stream: s, partition: p, hwm: hwms[p]})
		}
	}
	return out, nil
}

// readApplied reads the applied offsets of ws in one round trip: -1 where
// nothing was applied yet.
func readApplied(ctx context.Context, c *redis.Client, ws []watched) ([]int64, error) {
	pipe := c.Pipeline()
	cmds := make([]*redis.StringCmd, len(ws))
	for i, w := range ws {
		cmds[i] = pipe.Get(ctx, offsetKey(w.stream, w.partition))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("reading applied offsets: %w", err)
	}
	out := make([]int64, len(ws))
	for i, cmd := range cmds {
		out[i] = -1
		if s, err := cmd.Result(); err == nil {
			out[i], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return out, nil
}

// Rate is the sustained records per second from the first applied batch
// to the last.
func (p Progress) Rate() float64 {
	d := p.Done.Sub(p.First).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(p.Applied-p.FirstApplied) / d
}

// Progress is when a run applied its first record and its last.
type Progress struct {
	First, Done time.Time
	// FirstApplied is the number of records applied at First.
	FirstApplied int64
	// Applied is the number of records applied when polling stopped.
	Applied int64
}

// waitApplied polls Redis until every partition of ws has applied up to its
// high-water mark, or ctx ends. every is called after each poll with the
// records applied so far (for memory sampling and progress lines).
func waitApplied(ctx context.Context, c *redis.Client, ws []watched, poll time.Duration, every func(applied int64)) (Progress, error) {
	var p Progress
	var total int64
	for _, w := range ws {
		total += w.hwm
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		offs, err := readApplied(ctx, c, ws)
		if err != nil {
			return p, err
		}
		now := time.Now()
		var applied int64
		done := true
		for i, o := range offs {
			applied += o + 1
			if o+1 < ws[i].hwm {
				done = false
			}
		}
		if applied > 0 && p.First.IsZero() {
			p.First, p.FirstApplied = now, applied
		}
		p.Applied = applied
		if every != nil {
			every(applied)
		}
		if done {
			p.Done = now
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("waiting for %d of %d records to be applied: %w", total-applied, total, ctx.Err())
		case <-t.C:
		}
	}
}
