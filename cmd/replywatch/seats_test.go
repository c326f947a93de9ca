package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
)

// seatStep is what producers send at T0 + at seconds: "<agent> online",
// "<buyer> buyer <agent>", "<agent> reply <buyer>", "<buyer> transfer <agent>".
type seatStep struct {
	at         float64
	shop, what string
}

// seatDay has three shops, in seconds so that it runs in real time:
//
//	p1 (presence): a1 online; b1 waits on a1 from T0+1 (idle at T0+4),
//	  a1 replies at T0+6; a1 away at T0+7 leaves p1 uncovered (due T0+9,
//	  seat_away due T0+10); back online at T0+12 ends both.
//	p2 (no presence): a2 answers b0 at T0; b2 waits on a2 from T0+2: a2 is
//	  idle and nobody writes (both due T0+5) until a2 replies at T0+14.
//	p3 (presence): a3 and a4 online; b3 waits on a3 from T0+1 (idle at
//	  T0+4); at T0+5 b3 moves to a4, idle at once on a wait of 4 s; a4
//	  replies at T0+8.
var seatDay = []seatStep{
	{0, "p1", "a1 online"}, {0, "p3", "a3 online"}, {0, "p3", "a4 online"},
	{0, "p2", "b0 buyer a2"}, {0.5, "p2", "a2 reply b0"},
	{1, "p1", "b1 buyer a1"}, {1, "p3", "b3 buyer a3"},
	{2, "p2", "b2 buyer a2"},
	{5, "p3", "b3 transfer a4"},
	{6, "p1", "a1 reply b1"},
	{7, "p1", "a1 away"},
	{8, "p3", "a4 reply b3"},
	{12, "p1", "a1 online"},
	{14, "p2", "a2 reply b2"},
}

// killAt is when the reporter-lease holder is killed: p1's uncovered
// spell is pending then (it began at T0+7, due T0+9).
const killAt = 8.0

func seatRecord(t0 time.Time, n int, s seatStep) (event.Stream, event.Event) {
	f := strings.Fields(s.what)
	ts := t0.Add(time.Duration(s.at * float64(time.Second)))
	ev := event.Event{EventID: "seat-" + strconv.Itoa(n), TS: event.Time{Time: ts}, ShopID: s.shop}
	switch f[1] {
	case "online", "busy", "away", "offline":
		ev.Type, ev.AgentID, ev.Status = event.TypeAgentStatus, f[0], f[1]
		return event.Presence, ev
	case "buyer":
		ev.Type, ev.BuyerID, ev.Sender, ev.AgentID = event.TypeMessage, f[0], event.SenderBuyer, f[2]
	case "reply":
		ev.Type, ev.BuyerID, ev.Sender, ev.AgentID = event.TypeMessage, f[2], event.SenderAgent, f[0]
	case "transfer":
		ev.Type, ev.BuyerID, ev.AgentID = event.TypeTransfer, f[0], f[2]
	}
	ev.Text = "你好"
	return event.Chat, ev
}

// TestSeatAlertsAcrossAKilledLeaseHolder runs two `replywatch run` replicas
// fed with kcat in real time. The replica holding the reporter lease is
// killed (SIGKILL) while a shop_uncovered spell is pending: the survivor
// fires it once with the id its start gives, and cs.alerts holds exactly
// the hand-counted idle_seat, seat_away and shop_uncovered records.
func TestSeatAlertsAcrossAKilledLeaseHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a scenario of 20 s in real time")
	}
	kcat := needKcat(t)
	bin := buildBinary(t)
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1})
	redisURL := testenv.Redis(t)
	loc := testenv.NoonZone(time.Now())

	type replica struct {
		*testenv.Process
		addr string
	}
	var replicas []*replica
	for i := range 2 {
		addr := freePort(t)
		cfgPath := filepath.Join(t.TempDir(), "replywatch.yml")
		cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: seats-test
  session_timeout: 2s
  rebalance_timeout: 2s
redis:
  url: %q
http:
  addr: %q
timezone: %s
seats:
  idle_after: 3s
  away_after: 3s
  uncovered_after: 2s
  uncovered_after_inferred: 3s
  inferred_offline_after: 30s
metrics:
  report_interval: 200ms
  reporter_lease: 1s
clock:
  tick: 20ms
  grace: 300ms
log:
  format: json
`, broker, redisURL, addr, loc.String())
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, &replica{testenv.StartProcess(t, fmt.Sprintf("replica %d", i), exec.Command(bin, "run", "--config", cfgPath)), addr})
	}
	leader := func() int {
		for i, r := range replicas {
			if m, err := testenv.Scrape("http://" + r.addr + "/metrics"); err == nil && m["replywatch_reporter_leader{}"] == 1 {
				return i
			}
		}
		return -1
	}
	testenv.Eventually(t, 30*time.Second, "both replicas joined, one holds the lease", func() error {
		for _, r := range replicas {
			m, err := testenv.Scrape("http://" + r.addr + "/metrics")
			if err != nil {
				return err
			}
			if m["replywatch_owned_partitions{topic=cs.chat}"] == 0 {
				return fmt.Errorf("%s owns no chat partition yet", r.addr)
			}
		}
		if leader() < 0 {
			return fmt.Errorf("no lease holder")
		}
		return nil
	})

	t0 := time.Now().Truncate(time.Second).Add(time.Second)
	produce := func(stream event.Stream, evs []event.Event) {
		var in bytes.Buffer
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			fmt.Fprintf(&in, "%s\t%s\n", ev.Key(stream), b)
		}
		topic := map[event.Stream]string{event.Chat: "cs.chat", event.Presence: "cs.presence"}[stream]
		prod := exec.Command(kcat, "-b", broker, "-P", "-t", topic, "-K", "\t")
		prod.Stdin = &in
		if out, err := prod.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce: %v\n%s", err, out)
		}
	}
	killed, survivor := false, -1
	for i := 0; i < len(seatDay); {
		at := seatDay[i].at
		if !killed && at > killAt {
			time.Sleep(time.Until(t0.Add(time.Duration(killAt * float64(time.Second)))))
			l := leader()
			if l < 0 {
				t.Fatal("no lease holder to kill")
			}
			if err := replicas[l].Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed, survivor = true, 1-l
			continue
		}
		time.Sleep(time.Until(t0.Add(time.Duration(at * float64(time.Second)))))
		byStream := map[event.Stream][]event.Event{}
		for ; i < len(seatDay) && seatDay[i].at == at; i++ {
			stream, ev := seatRecord(t0, i, seatDay[i])
			byStream[stream] = append(byStream[stream], ev)
		}
		for stream, evs := range byStream {
			produce(stream, evs)
		}
	}

	ms := func(sec float64) string {
		return strconv.FormatInt(t0.Add(time.Duration(sec*float64(time.Second))).UnixMilli(), 10)
	}
	idle := func(shop, agent string, start float64) string {
		return alerting.ID(alerting.KindIdleSeat, shop, agent, ms(start))
	}
	uncovered := func(shop string, start float64) string {
		return alerting.ID(alerting.KindShopUncovered, shop, "", ms(start))
	}
	want := map[string]string{
		idle("p1", "a1", 1): "replied",
		uncovered("p1", 7):  "covered",
		alerting.ID(alerting.KindSeatAway, "p1", "a1", ms(7)): "returned",
		idle("p2", "a2", 2): "replied",
		uncovered("p2", 2):  "replied",
		idle("p3", "a3", 1): "cleared",
		idle("p3", "a4", 1): "replied",
	}
	var records []string
	testenv.Eventually(t, 30*time.Second, "seat alerts read with kcat", func() error {
		out, err := exec.Command(kcat, "-b", broker, "-C", "-t", "cs.alerts", "-o", "beginning", "-e", "-q").Output()
		if err != nil {
			return err
		}
		got := map[string]string{}
		count := map[string]int{}
		records = records[:0]
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var a alerting.Alert
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				return fmt.Errorf("alert line %q: %w", sc.Text(), err)
			}
			if a.Kind != alerting.KindIdleSeat && a.Kind != alerting.KindSeatAway && a.Kind != alerting.KindShopUncovered {
				continue
			}
			records = append(records, fmt.Sprintf("%s %s %s/%s %s", a.Kind, a.ShopID, a.Status, a.Reason, a.AgentID))
			count[a.Kind+" "+a.ID+" "+a.Status]++
			if a.Status == alerting.Firing {
				if _, ok := got[a.ID]; !ok {
					got[a.ID] = ""
				}
			} else if _, ok := got[a.ID]; !ok {
				return fmt.Errorf("%s resolved before it fired", a.ID)
			} else {
				got[a.ID] = a.Reason
			}
		}
		var diffs []string
		for id, r := range want {
			if g, ok := got[id]; !ok || g != r {
				diffs = append(diffs, fmt.Sprintf("%s: %q (present %v), want %q", id, g, ok, r))
			}
		}
		for id := range got {
			if _, ok := want[id]; !ok {
				diffs = append(diffs, "unexpected "+id)
			}
		}
		for k, n := range count {
			// Shop-level spells fire and resolve once: the survivor took
			// over a pending spell, not one in flight.
			if n > 1 && !strings.HasPrefix(k, alerting.KindSeatAway) {
				diffs = append(diffs, fmt.Sprintf("%s %d times", k, n))
			}
		}
		if len(diffs) > 0 {
			sort.Strings(diffs)
			return fmt.Errorf("%s\nrecords:\n%s", strings.Join(diffs, "\n"), strings.Join(records, "\n"))
		}
		return nil
	})
	if l := leader(); l != survivor {
		t.Errorf("lease holder after the kill: replica %d, want the survivor %d", l, survivor)
	}
	t.Logf("seat records on cs.alerts:\n%s", strings.Join(records, "\n"))
}
