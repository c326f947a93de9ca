package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/sim"
)

// A backlog of many small batches, with more buyers than the entity cache
// holds, is read with one Redis round trip per batch: each batch's states
// and due timers are read by the apply of the batch before it. The figures
// and alerts are still those of the offline replay, which reads nothing
// ahead.
func TestBacklogReadsAheadInTheApply(t *testing.T) {
	var recs []sim.Record
	if err := sim.Generate(sim.Options{Seed: 7, Shops: 4, Agents: 3, Rate: 4, Start: sh("09:00:00"), End: sh("11:00:00"),
		Location: shanghai}, func(r sim.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	at := sh("11:10:00")
	e := newEnv(t)
	cfg := testConfig(t, e.broker, e.redis, "g1")
	cfg.Shops = nil
	// Many batches per partition, and batches whose buyers are mostly not
	// cached: without reading ahead nearly every batch needs a load.
	cfg.Kafka.BatchSize = 20
	cfg.Redis.CacheEntries = 16
	// The buyers topic is not what this test measures: few partitions
	// keep its live trickle light on a shared machine.
	cfg.Kafka.BuyersPartitions = 2

	res := replayRecords(t, cfg, recs, at)
	if len(res.Alerts) == 0 {
		t.Fatal("the simulated day fires no alert")
	}
	produceRecords(t, e.broker, recs)
	r := start(t, cfg, &fakeClock{t: at}, "live")
	liveEqualsReplay(t, e.broker, r.app, recs, res)

	// The buyers topic's last facts may still be in flight once the
	// figures agree: read the counters once a batch's apply has followed
	// every batch read.
	var m map[string]float64
	var batches, applies float64
	eventually(t, 10*time.Second, "every batch read applied", func() error {
		batches = batchesWithRecords(t, r.app)
		m = scrape(t, r.app.Addr())
		applies = 0
		for k, v := range m {
			if strings.HasPrefix(k, "replywatch_redis_round_trips_total{op=apply,") {
				applies += v
			}
		}
		if applies < batches || batchesWithRecords(t, r.app) != batches {
			return fmt.Errorf("%v applies for %v batches", applies, batches)
		}
		return nil
	})
	// The buyers topic is written live by the repartition stage while the
	// backlog is read: its partitions follow a trickle, not a backlog, so
	// its loads are not what this test bounds. The input topics' are.
	var loads, inputApplies float64
	for k, v := range m {
		if !strings.HasPrefix(k, "replywatch_redis_round_trips_total{") || strings.Contains(k, "topic="+cfg.Kafka.Topics.Buyers) {
			continue
		}
		switch {
		case strings.Contains(k, "op=load,"):
			loads += v
		case strings.Contains(k, "op=apply,"):
			inputApplies += v
		}
	}
	t.Logf("%d records, %v batches with records, %v applies; input topics: %v applies and %v load round trips",
		len(recs), batches, applies, inputApplies, loads)
	if inputApplies < 100 {
		t.Fatalf("only %v applies on the input topics: the backlog does not exercise reading ahead", inputApplies)
	}
	// Each of the 8 input partitions loads for its first batch, which
	// nothing was read for, and for the timers due once it caught up; a
	// few batches more may find the reader's queue empty.
	if limit := 2*8 + inputApplies/20; loads > limit {
		t.Fatalf("%v load round trips for %v applies on the input topics, want at most %v", loads, inputApplies, limit)
	}
}

// batchesWithRecords is the count of the replica's batch size histogram.
func batchesWithRecords(t *testing.T, a *App) float64 {
	t.Helper()
	fams, err := a.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "replywatch_batch_records" && len(f.Metric) == 1 {
			return float64(f.Metric[0].GetHistogram().GetSampleCount())
		}
	}
	t.Fatal("no replywatch_batch_records histogram")
	return 0
}
