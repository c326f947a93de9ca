package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
)

// readyz returns the status code of a replica's /readyz, 0 when it does not answer.
func readyz(addr string) int {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// waitingBuyers produces n buyer messages of shop s1 at `at`, one per buyer
// b0…b(n-1), spread over the chat partitions by their keys.
func waitingBuyers(t *testing.T, broker string, n int, at time.Time) []string {
	t.Helper()
	var evs []event.Event
	var buyers []string
	for i := range n {
		b := fmt.Sprintf("b%d", i)
		buyers = append(buyers, b)
		evs = append(evs, event.Event{EventID: "q-" + b, Type: event.TypeMessage, TS: event.Time{Time: at},
			ShopID: "s1", Platform: "pdd", BuyerID: b, Sender: event.SenderBuyer, Text: "在吗"})
	}
	produce(t, broker, "cs.chat", evs...)
	return buyers
}

// breachedBuyers returns the buyers with a firing reply_breach of threshold
// th on the alerts topic.
func breachedBuyers(t *testing.T, broker, th string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, a := range readAlerts(t, broker) {
		if a.Kind == "reply_breach" && a.Status == alerting.Firing && a.Threshold == th {
			got[a.BuyerID] = true
		}
	}
	return got
}

func missing(want []string, got map[string]bool) []string {
	var out []string
	for _, w := range want {
		if !got[w] {
			out = append(out, w)
		}
	}
	return out
}

// A broker restart does not stop the partition clocks. After the broker
// comes back (same port, data kept) no record arrives, yet every breach due
// after the restart fires; /readyz says not ready while the broker is away;
// the watermark lag never reads the zero-time sentinel (292 years).
func TestBrokerRestartKeepsTheClock(t *testing.T) {
	k := testenv.PersistentKafka(t, testTopics)
	redisURL := testenv.Redis(t)
	at := sh("10:00:00")
	clock := &fakeClock{t: at.Add(10 * time.Second)}
	r := start(t, testConfig(t, k.Addr, redisURL, "g1"), clock, "r1")
	buyers := waitingBuyers(t, k.Addr, 8, at)
	eventually(t, 30*time.Second, "buyers waiting and the replica ready", func() error {
		m := scrape(t, r.app.Addr())
		if v := m["replywatch_waiting_buyers{shop=s1}"]; v != 8 {
			return fmt.Errorf("%v waiting", v)
		}
		if c := readyz(r.app.Addr()); c != http.StatusOK {
			return fmt.Errorf("/readyz %d", c)
		}
		return nil
	})

	k.Stop()
	eventually(t, 20*time.Second, "/readyz not ready while the broker is away", func() error {
		if c := readyz(r.app.Addr()); c != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz %d", c)
		}
		return nil
	})
	k.Start()
	eventually(t, 60*time.Second, "/readyz ready once the broker is back and the group joined", func() error {
		if c := readyz(r.app.Addr()); c != http.StatusOK {
			return fmt.Errorf("/readyz %d", c)
		}
		return nil
	})

	// Every deadline passes after the restart, with no record after it.
	clock.Set(at.Add(4 * time.Minute))
	eventually(t, 60*time.Second, "breaches due after the broker restart", func() error {
		if m := missing(buyers, breachedBuyers(t, k.Addr, "3m")); len(m) > 0 {
			return fmt.Errorf("no 3m breach for %v", m)
		}
		return nil
	})
	for name, v := range scrape(t, r.app.Addr()) {
		if strings.HasPrefix(name, "replywatch_watermark_lag_seconds{") && v > 3600 {
			t.Errorf("%s = %v", name, v)
		}
	}
}

// header returns the value of a record's header k.
func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// A 1 MiB record does not stall its partition (invariant 5): it is
// dead-lettered as oversize with its value cut to what a dead letter
// carries, saying so in its headers, and the records after it on the same
// partition are applied and their breaches fire.
func TestHugeRecordDoesNotStallItsPartition(t *testing.T) {
	// A broker that takes records of up to 4 MiB, as one must to get such
	// a record at all.
	broker, _ := testenv.Kafka(t, testTopics, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(4 << 20)}))
	e := env{broker: broker, redis: testenv.Redis(t)}
	at := sh("10:00:00")
	huge := []byte(`{"event_id":"huge","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b0","sender":"buyer","text":"`)
	huge = append(huge, bytes.Repeat([]byte("x"), 1<<20)...)
	huge = append(huge, `"}`...)
	// The poison record sits on b0's partition, before b0's message.
	produceRaw(t, e.broker, "cs.chat", "s1/b0", huge)
	buyers := waitingBuyers(t, e.broker, 8, at)
	r := start(t, testConfig(t, e.broker, e.redis, "g1"), &fakeClock{t: at.Add(4 * time.Minute)}, "r1")
	eventually(t, 60*time.Second, "breaches of the records after the huge one", func() error {
		if m := missing(buyers, breachedBuyers(t, e.broker, "3m")); len(m) > 0 {
			return fmt.Errorf("no 3m breach for %v", m)
		}
		return nil
	})
	dl := readTopic(t, e.broker, "cs.chat.DLT", 500*time.Millisecond)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	d := dl[0]
	if !strings.HasPrefix(header(d, "rw-error"), "oversize: ") || string(d.Key) != "s1/b0" {
		t.Errorf("dead letter key %q, rw-error %q", d.Key, header(d, "rw-error"))
	}
	if header(d, "rw-truncated") != "value" || header(d, "rw-original-size") != strconv.Itoa(len(huge)) {
		t.Errorf("dead letter headers rw-truncated %q rw-original-size %q, want value and %d",
			header(d, "rw-truncated"), header(d, "rw-original-size"), len(huge))
	}
	if len(d.Value) != kafkasink.MaxDeadLetterValue || !bytes.Equal(d.Value, huge[:len(d.Value)]) {
		t.Errorf("dead letter value is %d bytes, want the first %d of the record", len(d.Value), kafkasink.MaxDeadLetterValue)
	}
	m := scrape(t, r.app.Addr())
	if v := m["replywatch_dead_letters_total{reason=oversize,topic=cs.chat}"]; v != 1 {
		t.Errorf("dead_letters_total{oversize} = %v, want 1", v)
	}
	if v := m["replywatch_dead_letter_failures_total{topic=cs.chat}"]; v != 0 {
		t.Errorf("dead_letter_failures_total = %v, want 0", v)
	}
}

// Invalid UTF-8 and a ts years old are dead-lettered with their reasons
// (invariant 5): neither is applied, neither alerts, and the records after
// them on the same partition are applied and their breaches fire.
func TestPoisonValuesAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	at := sh("10:00:00")
	poison := [][]byte{
		[]byte(`{"event_id":"p1","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"poison-utf8-` + "\xff\xfe" + `","sender":"buyer"}`),
		[]byte(`{"event_id":"p2","type":"message","ts":"2016-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b0","sender":"buyer"}`),
	}
	produceRaw(t, e.broker, "cs.chat", "s1/b0", poison...)
	buyers := waitingBuyers(t, e.broker, 8, at)
	r := start(t, testConfig(t, e.broker, e.redis, "g1"), &fakeClock{t: at.Add(4 * time.Minute)}, "r1")
	eventually(t, 60*time.Second, "breaches of the records after the poison", func() error {
		if m := missing(buyers, breachedBuyers(t, e.broker, "3m")); len(m) > 0 {
			return fmt.Errorf("no 3m breach for %v", m)
		}
		return nil
	})
	dl := readTopic(t, e.broker, "cs.chat.DLT", 500*time.Millisecond)
	if len(dl) != 2 || !strings.HasPrefix(header(dl[0], "rw-error"), "bad_utf8: ") || !strings.HasPrefix(header(dl[1], "rw-error"), "stale_ts: ") {
		for _, d := range dl {
			t.Logf("dead letter at %s: %s", header(d, "rw-offset"), header(d, "rw-error"))
		}
		t.Fatalf("%d dead letters, want bad_utf8 then stale_ts", len(dl))
	}
	for i, d := range dl {
		if !bytes.Equal(d.Value, poison[i]) {
			t.Errorf("dead letter %d does not keep the record's value", i)
		}
	}
	for _, a := range readAlerts(t, e.broker) {
		if strings.HasPrefix(a.BuyerID, "poison") || a.Since.Year() < 2026 {
			t.Errorf("alert from a poison record: %+v", a)
		}
	}
	m := scrape(t, r.app.Addr())
	for _, reason := range []string{"bad_utf8", "stale_ts"} {
		if v := m["replywatch_dead_letters_total{reason="+reason+",topic=cs.chat}"]; v != 1 {
			t.Errorf("dead_letters_total{%s} = %v, want 1", reason, v)
		}
	}
	if v := m["replywatch_waiting_buyers{shop=s1}"]; v != 8 {
		t.Errorf("waiting buyers %v, want 8", v)
	}
}

// Invariant 8: Redis restarted without persistence loses every partition's
// state while the group has committed offsets. Each partition finds its
// owner key gone, says so, counts a rebuild and reads Kafka again from the
// start of yesterday: the figures are exact again, and the alerts of the
// rebuild carry the ids already sent, marked as a replay.
func TestRedisRestartedEmptyIsRebuilt(t *testing.T) {
	broker, _ := testenv.Kafka(t, testTopics)
	srv := testenv.RedisServer(t)
	produce(t, broker, "cs.chat", day()...)
	r := start(t, testConfig(t, broker, srv.URL, "g1"), &fakeClock{t: endOfDay}, "r1")
	waitForDay(t, broker, r.app.Addr())
	before := readAlerts(t, broker)
	sent := map[string]bool{}
	for _, a := range before {
		sent[a.ID+"/"+a.Status] = true
	}
	// Let the offsets be committed (every second) before Redis goes.
	eventually(t, 20*time.Second, "offsets committed", func() error {
		lag, err := groupLag(broker, "g1", "cs.chat")
		if err != nil {
			return err
		}
		if lag != 0 {
			return fmt.Errorf("%d records past the committed offsets", lag)
		}
		return nil
	})

	srv.Restart()
	eventually(t, 60*time.Second, "every chat partition rebuilt and the figures exact again", func() error {
		m := scrape(t, r.app.Addr())
		if v := m["replywatch_state_rebuilds_total{topic=cs.chat}"]; v < float64(testTopics["cs.chat"]) {
			return fmt.Errorf("%v chat partitions rebuilt", v)
		}
		return expectFigures(m, wantFigures)
	})
	waitForAlerts(t, broker, 20*time.Second)
	after := readAlerts(t, broker)[len(before):]
	if len(after) == 0 {
		t.Fatal("the rebuild emitted no alert: the day's alerts should come again, as a replay")
	}
	for _, a := range after {
		if scenario.ShopLevel(a.Kind) {
			// The lease holder's spells were lost with the rest of Redis: it
			// raises the open ones again with the same ids, from the present,
			// not from re-reading Kafka.
			continue
		}
		if !a.Replay || !sent[a.ID+"/"+a.Status] {
			t.Errorf("alert of the rebuild %s %s %s: replay %v, sent before %v", a.ID, a.Kind, a.Status, a.Replay, sent[a.ID+"/"+a.Status])
		}
	}
}

// groupLag is the number of records of topic past group's committed offsets.
func groupLag(broker, group, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(broker)}
	n := testTopics[topic]
	parts := make([]int, n)
	reqs := make([]kafka.OffsetRequest, n)
	for i := range n {
		parts[i] = i
		reqs[i] = kafka.LastOffsetOf(i)
	}
	committed, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return 0, err
	}
	ends, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return 0, err
	}
	end := map[int]int64{}
	for _, p := range ends.Topics[topic] {
		end[p.Partition] = p.LastOffset
	}
	var lag int64
	for _, p := range committed.Topics[topic] {
		if p.CommittedOffset < 0 {
			lag += end[p.Partition]
		} else {
			lag += end[p.Partition] - p.CommittedOffset
		}
	}
	return lag, nil
}

// Redis restarted empty while no replica runs: the next replica finds no
// state for partitions the group has committed offsets for, and rebuilds
// them from Kafka before going on.
func TestEmptyRedisAtStartIsRebuilt(t *testing.T) {
	broker, _ := testenv.Kafka(t, testTopics)
	srv := testenv.RedisServer(t)
	produce(t, broker, "cs.chat", day()...)
	cfg := testConfig(t, broker, srv.URL, "g1")
	r := start(t, cfg, &fakeClock{t: endOfDay}, "r1")
	waitForDay(t, broker, r.app.Addr())
	r.stop(t) // commits and leaves the group
	srv.Restart()
	r2 := start(t, cfg, &fakeClock{t: endOfDay}, "r2")
	eventually(t, 60*time.Second, "partitions rebuilt and the figures exact again", func() error {
		m := scrape(t, r2.app.Addr())
		if v := m["replywatch_state_rebuilds_total{topic=cs.chat}"]; v != float64(testTopics["cs.chat"]) {
			return fmt.Errorf("%v chat partitions rebuilt", v)
		}
		if v := m["replywatch_state_rebuilds_total{topic=cs.presence}"]; v != 0 {
			return fmt.Errorf("%v presence partitions rebuilt, but none ever had a record", v)
		}
		return expectFigures(m, wantFigures)
	})
}
