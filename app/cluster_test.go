package app

import (
	"fmt"
	"testing"
	"time"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
)

// replywatch on a real three-master Redis Cluster (each partition's keys
// in one slot, DESIGN.md §5): the day's backlog gives the hand-counted
// figures and alerts; then the master holding the most keys is failed
// over to its replica, and buyers who write after it breach on time with
// nothing lost or rebuilt. The fault suite runs the longer cases (kill -9,
// rebalance, Sentinel).
func TestDayOnRedisCluster(t *testing.T) {
	c := testenv.Cluster(t)
	broker, _ := testenv.Kafka(t, testTopics)
	produce(t, broker, "cs.chat", day()...)
	cfg := testConfig(t, broker, c.URL, "g1")
	cfg.Redis.Mode, cfg.Redis.Addrs = config.RedisCluster, c.Addrs
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: endOfDay}
	r := start(t, cfg, clock, "r1")
	waitForDay(t, broker, r.app.Addr())

	c.Failover()
	now := clock.Now()
	buyers := waitingBuyers(t, broker, 6, now)
	clock.Set(now.Add(3*time.Minute + 3*time.Second))
	eventually(t, 60*time.Second, "breaches of the buyers who wrote after the failover", func() error {
		if m := missing(buyers, breachedBuyers(t, broker, "3m")); len(m) > 0 {
			return fmt.Errorf("no 3m breach for %v", m)
		}
		return nil
	})
	m := scrape(t, r.app.Addr())
	if v := m["replywatch_events_total{result=applied,topic=cs.chat}"]; v != float64(len(day())+len(buyers)) {
		t.Errorf("applied %v chat events, want %d", v, len(day())+len(buyers))
	}
	if v := m["replywatch_state_rebuilds_total{topic=cs.chat}"]; v != 0 {
		t.Errorf("%v partitions rebuilt after a failover that lost nothing", v)
	}
	// The figures are the offline replay's of every event, at the end.
	var recs []sim.Record
	for _, ev := range day() {
		recs = append(recs, sim.Record{Topic: event.Chat, Key: ev.Key(event.Chat), Event: ev})
	}
	for _, b := range buyers {
		recs = append(recs, sim.Record{Topic: event.Chat, Key: "s1/" + b, Event: event.Event{EventID: "q-" + b, Type: event.TypeMessage,
			TS: event.Time{Time: now}, ShopID: "s1", Platform: "pdd", BuyerID: b, Sender: event.SenderBuyer, Text: "在吗"}})
	}
	want := gaugesOf(replayRecords(t, cfg, recs, clock.Now()).Shops)
	eventually(t, 20*time.Second, "the figures with the new buyers", func() error {
		return expectFigures(scrape(t, r.app.Addr()), want)
	})
}
