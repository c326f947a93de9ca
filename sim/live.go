package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/event"
)

// Generate calls emit for each record of [opts.Start, opts.End) in
// event-time order, as fast as it can. It stops at the first error emit
// returns, and returns it.
func Generate(opts Options, emit func(Record) error) error {
	o, err := opts.normalize(false)
	if err != nil {
		return fmt.Errorf("simulating: %w", err)
	}
	g := newGen(o)
	for {
		rec, ok := g.next()
		if !ok {
			return nil
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
}

// Live produces records in real time from opts.Start on: records whose
// time has passed (history, when Start is in the past) come at once, later
// ones when the clock reaches their time. It runs until ctx ends (then it
// returns nil), opts.End is reached, or emit fails.
func Live(ctx context.Context, opts Options, now func() time.Time, emit func(Record) error) error {
	return LiveClock(ctx, opts, now, sleepCtx, emit)
}

// LiveClock is Live with an injected sleep, for tests with a fake clock.
// sleep returns an error when ctx ends first.
func LiveClock(ctx context.Context, opts Options, now func() time.Time,
	sleep func(ctx context.Context, d time.Duration) error, emit func(Record) error) error {
	o, err := opts.normalize(true)
	if err != nil {
		return fmt.Errorf("simulating live: %w", err)
	}
	g := newGen(o)
	for ctx.Err() == nil {
		rec, ok := g.next()
		if !ok {
			return nil
		}
		if d := rec.Event.TS.Sub(now()); d > 0 {
			if err := sleep(ctx, d); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("waiting for the next event: %w", err)
			}
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Urgent returns, for each shop, n buyer messages stamped before now that
// nobody answers, whose 3-minute deadline (or, for every other one, the
// warning a minute before it) falls 3–15 s after now: a demo shows warnings
// and breaches at once. Records are in time order and deterministic for the
// seed and now; buyers are new ("u<now>-1", …) so no earlier reply counts.
func Urgent(opts Options, now time.Time, n int) []Record {
	opts.Start = now
	o, err := opts.normalize(true)
	if err != nil || n <= 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(o.Seed, uint64(now.UnixMilli())))
	g := &gen{loc: o.Location, seed: o.Seed}
	shops := buildShops(o)
	base := strconv.FormatUint(o.Seed, 10) + "-u" + strconv.FormatInt(now.Unix(), 10) + "-"
	// New buyers per call: an earlier call's waits must not absorb these.
	buyerBase := "u" + strconv.FormatInt(now.Unix(), 36) + "-"
	const sla, warnBefore = 3 * time.Minute, time.Minute
	var out []Record
	for _, s := range shops {
		a := g.assign(s, now.UnixMilli(), nil)
		agentID := ""
		if a != nil {
			agentID = a.id
		}
		for i := 0; i < n; i++ {
			// The deadline (or the warning) lands 3–15 s after now.
			lead := 3*time.Second + time.Duration(i)*12*time.Second/time.Duration(n) + time.Duration(r.IntN(1000))*time.Millisecond
			start := now.Add(lead - sla)
			if i%2 == 1 {
				start = now.Add(lead - sla + warnBefore)
			}
			buyer := buyerBase + strconv.Itoa(i+1)
			out = append(out, Record{Topic: event.Chat, Key: s.id + "/" + buyer, Event: event.Event{
				Type: event.TypeMessage, TS: event.Time{Time: start.Truncate(time.Millisecond).In(o.Location)},
				ShopID: s.id, Platform: s.platform, BuyerID: buyer, Sender: event.SenderBuyer,
				AgentID: agentID, Text: presaleFirst[r.IntN(len(presaleFirst))],
			}})
		}
	}
	slices.SortStableFunc(out, func(x, y Record) int { return x.Event.TS.Compare(y.Event.TS.Time) })
	for i := range out {
		out[i].Event.EventID = base + strconv.Itoa(i+1)
		out[i].Event.MsgID = "u" + strconv.FormatInt(now.Unix(), 10) + "-" + strconv.Itoa(i+1)
	}
	return out
}
