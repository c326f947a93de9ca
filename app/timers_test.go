package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/event"
)

// A conversation that never had a timer costs no timer removal in Redis:
// agents writing first, with no buyer waiting, send no ZREM. Removals
// happen for the waits that had a timer and ended.
func TestOnlyExistingTimersAreRemoved(t *testing.T) {
	e := newEnv(t)
	opts, err := redis.ParseURL(e.redis)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	zrem := func() int64 {
		t.Helper()
		info, err := rc.Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_zrem:calls="); ok {
				n, _, _ := strings.Cut(rest, ",")
				v, _ := strconv.ParseInt(n, 10, 64)
				return v
			}
		}
		return 0
	}
	msg := func(id, buyer string, sender string, at time.Time) event.Event {
		return event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: at}, ShopID: "s1", Platform: "pdd",
			BuyerID: buyer, Sender: sender, AgentID: "a1", Text: "亲，在的"}
	}
	at := sh("10:00:00")
	r := start(t, testConfig(t, e.broker, e.redis, "g1"), &fakeClock{t: at.Add(time.Minute)}, "r1")
	applied := func(n int) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("%d chat events applied", n), func() error {
			m := scrape(t, r.app.Addr())
			if got := m["replywatch_events_total{result=applied,topic=cs.chat}"]; got != float64(n) {
				return fmt.Errorf("%v applied", got)
			}
			return nil
		})
	}

	var first []event.Event
	for i := range 100 {
		first = append(first, msg(fmt.Sprintf("o%d", i), fmt.Sprintf("n%d", i), event.SenderAgent, at.Add(time.Duration(i)*time.Millisecond)))
	}
	before := zrem()
	produce(t, e.broker, "cs.chat", first...)
	applied(100)
	if n := zrem() - before; n != 0 {
		t.Fatalf("100 conversations without a timer cost %d ZREM calls, want 0", n)
	}

	// Control: waits with a timer, answered in later batches, are removed.
	var asks, replies []event.Event
	for i := range 20 {
		asks = append(asks, msg(fmt.Sprintf("q%d", i), fmt.Sprintf("w%d", i), event.SenderBuyer, at))
		replies = append(replies, msg(fmt.Sprintf("a%d", i), fmt.Sprintf("w%d", i), event.SenderAgent, at.Add(20*time.Second)))
	}
	produce(t, e.broker, "cs.chat", asks...)
	applied(120)
	before = zrem()
	produce(t, e.broker, "cs.chat", replies...)
	applied(140)
	if n := zrem() - before; n == 0 {
		t.Fatal("20 answered waits removed no timer")
	}
}
