//go:build faults

package app

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
)

// The fault suite (make faults): a busy simulated morning of four shops is
// read from Kafka as a backlog, and a fault strikes a third of the way in.
// After recovery the figures are exactly the offline replay's, every alert
// of the replay is on cs.alerts with its outcome (every breach alerted), and
// no alert id stands for two conditions. Each case logs a FAULT line with
// the breaches expected and seen and the time from the fault to exact
// figures, which BENCHMARKS.md records.

// faultEnv is what a fault acts on.
type faultEnv struct {
	kafka *testenv.KafkaBroker
	redis *testenv.RedisProc
	// proxy, for the cases that slow Redis down, stands between the
	// replica and redis-server.
	proxy *testenv.LatencyProxy
	// rest produces the records held back for after the fault, if any.
	rest func()
	// afterSnapshot waits until every record, held ones too, was applied.
	afterSnapshot func()
}

var faultCases = []struct {
	name      string
	redisArgs []string
	// hold keeps the second half of the records back until the fault has
	// struck (rest produces them).
	hold bool
	// proxy puts a LatencyProxy between the replica and Redis.
	proxy  bool
	inject func(t *testing.T, f *faultEnv)
}{
	{name: "redis stopped (SIGSTOP) 10 s", inject: func(t *testing.T, f *faultEnv) {
		f.redis.Pause()
		time.Sleep(10 * time.Second) // the length of the fault, not a wait for a condition
		f.redis.Resume()
	}},
	{name: "redis restarted with AOF", redisArgs: []string{"--appendonly", "yes", "--appendfsync", "everysec"}, inject: func(t *testing.T, f *faultEnv) {
		f.redis.Restart()
	}},
	{name: "redis restarted without persistence", inject: func(t *testing.T, f *faultEnv) {
		f.redis.Restart()
	}},
	{name: "redis restarted from an older snapshot", hold: true, inject: func(t *testing.T, f *faultEnv) {
		opts, err := redis.ParseURL(f.redis.URL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opts)
		defer c.Close()
		if err := c.Save(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		f.rest()
		f.afterSnapshot()
		f.redis.Restart() // loads the snapshot: the batches since are gone
	}},
	{name: "SCRIPT FLUSH three times", inject: func(t *testing.T, f *faultEnv) {
		opts, err := redis.ParseURL(f.redis.URL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opts)
		defer c.Close()
		for range 3 {
			if err := c.ScriptFlush(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // spacing of the faults
		}
	}},
	{name: "redis 50 ms slower each way under the backlog", proxy: true, inject: func(t *testing.T, f *faultEnv) {
		// Every round trip takes 100 ms more from now on, until the end:
		// the rest of the backlog is read against a slow Redis.
		f.proxy.SetDelay(50 * time.Millisecond)
	}},
	{name: "broker restarted, no traffic after", inject: func(t *testing.T, f *faultEnv) {
		f.kafka.Restart()
	}},
	{name: "broker restarted, traffic after", hold: true, inject: func(t *testing.T, f *faultEnv) {
		f.kafka.Restart()
		f.rest()
	}},
}

func TestFaults(t *testing.T) {
	for _, c := range faultCases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			recs := busyMorning(t)
			k := testenv.PersistentKafka(t, testTopics)
			f := &faultEnv{kafka: k, redis: testenv.RedisServerArgs(t, c.redisArgs...)}
			// The backlog is read at 11:10; after the fault the clock moves
			// on to 11:14, past the deadlines of buyers who write at 11:10.
			at, after := sh("11:10:00"), sh("11:14:00")
			extra := newBuyers(at)
			cfg := testConfig(t, k.Addr, f.redis.URL, "g1")
			cfg.Shops = nil
			if c.proxy {
				f.proxy = testenv.Latency(t, f.redis.Addr)
				cfg.Redis.URL = "redis://" + f.proxy.Addr + "/0"
			}
			res := replayRecords(t, cfg, append(append([]sim.Record(nil), recs...), extra...), after)

			held := extra
			if !c.hold {
				recs, held = append(recs, extra...), nil
			}
			f.rest = func() { produceRecords(t, k.Addr, held) }
			produceRecords(t, k.Addr, recs)
			clock := &fakeClock{t: at}
			r := start(t, cfg, clock, "r1")
			chat := 0
			for _, rec := range recs {
				if rec.Topic == event.Chat {
					chat++
				}
			}
			// Strike a third of the way into the backlog (or, when traffic
			// is held back, once the backlog is read).
			strikeAt := chat / 3
			if c.hold {
				strikeAt = chat
			}
			eventually(t, 60*time.Second, "backlog under way", func() error {
				if v := scrape(t, r.app.Addr())["replywatch_events_total{result=applied,topic=cs.chat}"]; v < float64(strikeAt) {
					return fmt.Errorf("%v of %d chat events applied", v, strikeAt)
				}
				return nil
			})
			f.afterSnapshot = func() {
				eventually(t, 60*time.Second, "records applied after the snapshot", func() error {
					if v := scrape(t, r.app.Addr())["replywatch_events_total{result=applied,topic=cs.chat}"]; v < float64(chat+len(held)) {
						return fmt.Errorf("%v chat events applied", v)
					}
					return nil
				})
			}
			struck := time.Now()
			c.inject(t, f)
			clock.Set(after)
			want := gaugesOf(res.Shops)
			// peak is the most chat records seen behind while recovering.
			peak := 0.0
			eventually(t, 180*time.Second, "figures exact after the fault", func() error {
				m := scrape(t, r.app.Addr())
				lag := 0.0
				for name, v := range m {
					if strings.HasPrefix(name, "replywatch_consumer_lag_messages{") && strings.Contains(name, "topic=cs.chat") {
						lag += v
					}
				}
				peak = max(peak, lag)
				return expectFigures(m, want)
			})
			recovery := time.Since(struck)
			var alerts []alerting.Alert
			// Alerts fired and retracted that the replay never raised are
			// counted, not compared (scenario.Withdrawn): on a busy machine
			// a backlog fires a few that a later record withdraws.
			var withdrawn map[string]bool
			eventually(t, 60*time.Second, "every alert of the replay", func() error {
				alerts = readAlerts(t, k.Addr)
				live, err := outcome(alerts)
				if err != nil {
					return err
				}
				replayed, err := outcome(res.Alerts)
				if err != nil {
					return err
				}
				withdrawn = scenario.Withdrawn(live, replayed)
				for id := range withdrawn {
					delete(live, id)
				}
				return sameOutcome(live, replayed)
			})
			if err := scenario.OneConditionPerID(alerts); err != nil {
				t.Error(err)
			}
			// The buyer join's clock waits for the repartition stage: none
			// of its escalations may be among the withdrawn.
			if esc := scenario.Escalations(alerts, withdrawn); len(esc) > 0 {
				t.Errorf("priority escalations fired and retracted that the replay never raised: %v", esc)
			}
			expected, seen := scenario.Breaches(res.Alerts), scenario.Breaches(alerts)
			if seen != expected {
				t.Errorf("breaches seen %d, expected %d", seen, expected)
			}
			var kept []alerting.Alert
			for _, a := range alerts {
				if !withdrawn[a.ID] {
					kept = append(kept, a)
				}
			}
			live, replayed := countRecords(kept), countRecords(res.Alerts)
			if err := sameRecords(live.distinct, replayed.distinct); err != nil {
				t.Errorf("partition-level alert records: %v", err)
			}
			m := scrape(t, r.app.Addr())
			t.Logf("FAULT %s: %d events, breaches expected %d seen %d, alert records %d (replay %d): partition-level %d (replay %d), %d of them sent again; seat records %d (replay %d); %d alerts fired and retracted that the replay never raised; figures exact %.1f s after the fault, chat lag at most %.0f records meanwhile, state rebuilds %v",
				c.name, len(recs)+len(held), expected, seen, len(alerts), len(res.Alerts), live.partition, replayed.partition,
				live.partition-len(live.distinct), live.seat, replayed.seat, len(withdrawn), recovery.Seconds(), peak,
				m["replywatch_state_rebuilds_total{topic=cs.chat}"])
		})
	}
}

// recordCounts break a list of alert records down. The fault suite
// guarantees per alert id the outcome and, for partition-level alerts, the
// distinct records (id, status, reason): every one the replay writes is on
// cs.alerts and no other. It does not guarantee record counts: delivery is
// at least once, so a record may be sent again with its id (an outbox
// lease ran out while Redis was stopped, a rebuild's replay), and
// shop-level seat alerts are raised by the reporter-lease holder only for
// the spells still open once a backlog is read, while the replay raises
// every spell of the day.
type recordCounts struct {
	partition, seat int
	distinct        map[string]bool
}

func countRecords(alerts []alerting.Alert) recordCounts {
	c := recordCounts{distinct: map[string]bool{}}
	for _, a := range alerts {
		if scenario.ShopLevel(a.Kind) {
			c.seat++
			continue
		}
		c.partition++
		c.distinct[a.ID+" "+a.Kind+" "+a.Status+" "+a.Reason] = true
	}
	return c
}

// sameRecords compares two sets of distinct records.
func sameRecords(live, replayed map[string]bool) error {
	var missing, unexpected []string
	for r := range replayed {
		if !live[r] {
			missing = append(missing, r)
		}
	}
	for r := range live {
		if !replayed[r] {
			unexpected = append(unexpected, r)
		}
	}
	if len(missing)+len(unexpected) > 0 {
		sort.Strings(missing)
		sort.Strings(unexpected)
		return fmt.Errorf("missing %v, unexpected %v", missing, unexpected)
	}
	return nil
}

// newBuyers are buyers of every simulated shop who write at at and get no
// reply: their warnings and breaches fall due after it.
func newBuyers(at time.Time) []sim.Record {
	var out []sim.Record
	for s := 1; s <= 4; s++ {
		for b := range 3 {
			shop, buyer := fmt.Sprintf("shop-%02d", s), fmt.Sprintf("late-%d", b)
			out = append(out, sim.Record{Topic: event.Chat, Key: shop + "/" + buyer, Event: event.Event{
				EventID: shop + "-" + buyer, Type: event.TypeMessage, TS: event.Time{Time: at}, ShopID: shop,
				BuyerID: buyer, Sender: event.SenderBuyer, Text: "在吗"}})
		}
	}
	return out
}

// busyMorning is two busy hours of four simulated shops, every stream.
func busyMorning(t *testing.T) []sim.Record {
	t.Helper()
	var recs []sim.Record
	err := sim.Generate(sim.Options{Seed: 29, Shops: 4, Agents: 4, Rate: 3, Start: sh("09:00:00"), End: sh("11:00:00"),
		Location: shanghai}, func(r sim.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
