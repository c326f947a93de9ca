package sim

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// fakeClock advances only when Live sleeps.
type fakeClock struct {
	now    time.Time
	sleeps int
	slept  time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sleeps++
	c.slept += d
	c.now = c.now.Add(d)
	return nil
}

// Live replays the history up to now at once, then emits each record when
// the clock reaches it, and yields exactly what Generate yields.
func TestLiveFakeClock(t *testing.T) {
	opts := Options{Seed: 1, Rate: 2, Start: day.Add(9 * time.Hour)}
	clock := &fakeClock{now: day.Add(9*time.Hour + 30*time.Minute)}
	stopAt := day.Add(11 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var got []Record
	history := 0
	err := LiveClock(ctx, opts, clock.Now, clock.Sleep, func(r Record) error {
		if r.Event.TS.After(clock.now) {
			t.Fatalf("record at %s emitted at %s, before its time", event.FormatTime(r.Event.TS.Time), event.FormatTime(clock.now))
		}
		if clock.sleeps == 0 {
			history++
		}
		if !r.Event.TS.Before(stopAt) {
			cancel()
			return nil
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Live returned %v after its context ended, want nil", err)
	}
	if history < 100 || history >= len(got) {
		t.Fatalf("%d records of %d came before the first sleep; want the half hour of history at once", history, len(got))
	}
	if want := stopAt.Sub(clock.now); want > 0 || clock.slept < 85*time.Minute {
		t.Fatalf("slept %s in %d sleeps to reach %s", clock.slept, clock.sleeps, event.FormatTime(clock.now))
	}
	opts.End = stopAt
	if want := generate(t, opts); !bytes.Equal(jsonl(got), jsonl(want)) {
		t.Fatalf("Live emitted %d records, Generate %d, or they differ", len(got), len(want))
	}
}

func TestLiveStartsInTheFuture(t *testing.T) {
	clock := &fakeClock{now: day.Add(7 * time.Hour)}
	start := day.Add(8 * time.Hour)
	var first time.Time
	err := LiveClock(context.Background(), Options{Seed: 1, Start: start, End: start.Add(time.Hour)}, clock.Now, clock.Sleep, func(r Record) error {
		if first.IsZero() {
			first = clock.now
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Live to its end: %v", err)
	}
	if first.Before(start) || clock.now.After(start.Add(time.Hour)) {
		t.Fatalf("first record emitted at %s, clock at the end %s", event.FormatTime(first), event.FormatTime(clock.now))
	}
}

func TestLiveErrors(t *testing.T) {
	clock := &fakeClock{now: day}
	broken := errors.New("clock broke")
	err := LiveClock(context.Background(), Options{Seed: 1, Start: day.Add(time.Hour)}, clock.Now,
		func(context.Context, time.Duration) error { return broken }, func(Record) error { return nil })
	if !errors.Is(err, broken) {
		t.Fatalf("got %v, want the sleep error", err)
	}
	stop := errorString("emit failed")
	if err := LiveClock(context.Background(), Options{Seed: 1, Start: day}, (&fakeClock{now: day.Add(time.Hour)}).Now,
		clock.Sleep, func(Record) error { return stop }); err != stop {
		t.Fatalf("got %v, want the emit error", err)
	}
	if err := Live(context.Background(), Options{Seed: 1}, time.Now, func(Record) error { return nil }); err == nil {
		t.Fatal("Live without a start returned no error")
	}
}

// With the real clock, Live waits for each record's time.
func TestLiveRealClock(t *testing.T) {
	now := time.Now()
	// Shops in a zone where it is now mid-afternoon, near the daily peak, so
	// the next 300 ms have records whatever the hour the test runs at.
	afternoon := time.FixedZone("afternoon", ((14-now.UTC().Hour()+36)%24-12)*3600)
	opts := Options{Seed: 1, Rate: 300, Start: now.Add(-time.Minute), End: now.Add(300 * time.Millisecond), Location: afternoon}
	history, waited, early := 0, 0, 0
	err := Live(context.Background(), opts, time.Now, func(r Record) error {
		if r.Event.TS.After(time.Now()) {
			early++
		}
		if r.Event.TS.After(now) {
			waited++
		} else {
			history++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if history == 0 || waited == 0 || early > 0 {
		t.Fatalf("%d records of history, %d waited for, %d emitted before their time", history, waited, early)
	}
}
