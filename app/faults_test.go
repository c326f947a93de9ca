package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
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
