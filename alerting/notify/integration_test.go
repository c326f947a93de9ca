package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/notify/notifytest"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/internal/testenv"
)

// e2e is a notifier's world: kfake, a real redis-server and a DingTalk
// robot emulator whose minute is shortened to window (the budget the
// notifier is given is the same, so the test runs in seconds while every
// rule is the real one).
type e2e struct {
	t      *testing.T
	broker string
	rdb    *redis.Client
	robot  *notifytest.Robot
	window time.Duration
	// secret is what the notifier signs with (the robot's unless a test
	// changes it).
	secret string
	// configRetry is the notifier's wait after a configuration error
	// (its default when 0).
	configRetry time.Duration
	last        *Notifier
	reg         *prometheus.Registry
}

const alertsTopic = "cs.alerts"

func newE2E(t *testing.T, window time.Duration) *e2e {
	t.Helper()
	broker, _ := testenv.Kafka(t, map[string]int{alertsTopic: 2})
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisServer(t).Addr})
	t.Cleanup(func() { rdb.Close() })
	robot := notifytest.DingTalk(t, "ding-token", "SECding")
	robot.Limits = []notifytest.Limit{{Messages: 20, Per: window}}
	return &e2e{t: t, broker: broker, rdb: rdb, robot: robot, window: window, secret: "SECding"}
}

func (e *e2e) produce(alerts []alerting.Alert) {
	e.t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.broker), Topic: alertsTopic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	msgs := make([]kafka.Message, len(alerts))
	for i, a := range alerts {
		b, err := json.Marshal(a)
		if err != nil {
			e.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(a.ShopID), Value: b}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		e.t.Fatal(err)
	}
}

// start runs a notifier until the returned stop is called.
func (e *e2e) start(groupBy ...string) (stop func()) {
	return e.startGroup("replywatch-notify", groupBy...)
}

// startGroup runs a notifier in the given consumer group.
func (e *e2e) startGroup(groupID string, groupBy ...string) (stop func()) {
	wait, interval := 100*time.Millisecond, 500*time.Millisecond
	e.reg = prometheus.NewRegistry()
	n := New(Options{
		Brokers: []string{e.broker}, Topic: alertsTopic, GroupID: groupID,
		SessionTimeout: time.Second, RebalanceTimeout: time.Second,
		Route:  NewRoute(config.Route{Receiver: "cs-ding", GroupBy: groupBy, GroupWait: &wait, GroupInterval: &interval}),
		People: people,
		Receivers: map[string]Receiver{"cs-ding": &DingTalk{URL: e.robot.URL(), AccessToken: "ding-token", Secret: e.secret,
			Budget: []config.Limit{{Messages: 20, Per: e.window}}, Render: render, Client: httpClient()}},
		Marks:   &Marks{Client: e.rdb, Prefix: "rw", TTL: time.Hour},
		MaxAge:  10 * time.Minute,
		Metrics: NewMetrics(e.reg, nil),
		Tick:    20 * time.Millisecond,
		// The robot's minute is the test's window.
		RateLimitWait: e.window,
		ConfigRetry:   e.configRetry,
	})
	e.last = n
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("notifier: %v", err)
			}
		case <-time.After(30 * time.Second):
			e.t.Fatal("notifier did not stop within 30s")
		}
	}
}

var (
	namedRE = regexp.MustCompile(`买家 (b\d+) `)
	moreRE  = regexp.MustCompile(`另有 (\d+) 条未列出`)
)

// tally counts the alerts the robot was told of: each buyer named, and
// the sum of the "N more" counts.
func (e *e2e) tally() (named map[string]int, counted int) {
	named = map[string]int{}
	for _, r := range e.robot.Received() {
		for _, m := range namedRE.FindAllStringSubmatch(r.Text, -1) {
			named[m[1]]++
		}
		for _, m := range moreRE.FindAllStringSubmatch(r.Text, -1) {
			n, _ := strconv.Atoi(m[1])
			counted += n
		}
	}
	return named, counted
}

// burst is n breaches of shop s1 (buyers b<first>...), emitted now.
func burst(first, n int) []alerting.Alert {
	now := time.Now().In(shanghai)
	var out []alerting.Alert
	for i := first; i < first+n; i++ {
		a := breach(i, fmt.Sprintf("b%03d", i))
		a.ID = fmt.Sprintf("breach-%03d", i)
		a.Since = now.Add(-3*time.Minute - time.Duration(i)*time.Millisecond)
		a.Due = a.Since.Add(3 * time.Minute)
		a.At, a.EmittedAt = a.Due, now
		out = append(out, a)
	}
	return out
}

// checkOnce checks that every one of total alerts was named once or
// counted once, and returns the names.
func (e *e2e) checkOnce(total int) map[string]int {
	e.t.Helper()
	named, counted := e.tally()
	for b, n := range named {
		if n > 1 {
			e.t.Errorf("buyer %s named %d times", b, n)
		}
	}
	if len(named)+counted != total {
		e.t.Errorf("%d named + %d counted, want exactly %d", len(named), counted, total)
	}
	return named
}

func (e *e2e) checkBudget() {
	e.t.Helper()
	for _, c := range e.robot.Codes() {
		e.t.Errorf("the robot answered errcode %d: the budget was exceeded or a message refused", c)
	}
	rs := e.robot.Received()
	for i := range rs {
		n := 0
		for _, r := range rs[i:] {
			if r.At.Sub(rs[i].At) < e.window {
				n++
			}
		}
		if n > 20 {
			e.t.Fatalf("%d messages within one window from message %d", n, i)
		}
	}
}

// counted sums the notifier's counter name over its series that carry
// the given labels.
func (e *e2e) counted(name string, labels map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// settled waits until the notifier has read at least records alert
// records and settled every item they gave: sent or digested (the robot
// accepted the message), stale, duplicate or inhibited. Until it reads
// another record it sends nothing more, so what the robot holds then is
// all it will get.
func (e *e2e) settled(records int) {
	e.t.Helper()
	testenv.Eventually(e.t, 60*time.Second, "every record read settled", func() error {
		routed := e.counted("replywatch_notify_records_total", map[string]string{"result": "routed"})
		var done float64
		for _, how := range []string{resultSent, resultDigested, resultStale, resultDuplicate, resultInhibited} {
			done += e.counted("replywatch_alert_deliveries_total", map[string]string{"sink": "cs-ding", "result": how})
		}
		if routed < float64(records) || done < routed {
			return fmt.Errorf("%v records routed (want at least %d), %v items settled", routed, records, done)
		}
		return nil
	})
}

func TestBurstOfBreachesStaysWithinTheRobotsBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and kfake")
	}
	e := newE2E(t, 2*time.Second)
	stop := e.start("shop_id", "buyer_id")
	defer stop()
	e.produce(burst(0, 500))
	testenv.Eventually(t, 60*time.Second, "every breach named or counted", func() error {
		named, counted := e.tally()
		if len(named)+counted < 500 {
			return fmt.Errorf("%d named, %d counted of 500 in %d messages", len(named), counted, len(e.robot.Received()))
		}
		return nil
	})
	named := e.checkOnce(500)
	e.checkBudget()
	if n := len(e.robot.Received()); n > 40 {
		t.Errorf("%d messages for one burst", n)
	}
	t.Logf("%d messages, %d alerts named", len(e.robot.Received()), len(named))
	// Every breach has its mark.
	keys, err := e.rdb.Keys(context.Background(), "rw:{notify.cs-ding}:sent:firing:*").Result()
	if err != nil || len(keys) != 500 {
		t.Errorf("%d marks (%v), want 500", len(keys), err)
	}
	// Another group reading the whole topic again (a second notifier
	// deployment, or a group reset to earliest) finds the marks.
	before := len(e.robot.Received())
	again := e.startGroup("another-notify-group", "shop_id", "buyer_id")
	testenv.Eventually(t, 30*time.Second, "the redelivered records counted as duplicates", func() error {
		mfs, _ := e.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "replywatch_alert_deliveries_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "duplicate" && m.GetCounter().GetValue() == 500 {
						return nil
					}
				}
			}
		}
		return fmt.Errorf("not yet 500 duplicates")
	})
	again()
	if n := len(e.robot.Received()); n != before {
		t.Errorf("redelivery sent %d more messages", n-before)
	}
}

func TestNotifierKilledMidBurstSendsNothingTwiceAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and kfake")
	}
	e := newE2E(t, 2*time.Second)
	stop := e.start("shop_id", "buyer_id")
	// The burst trickles in over about two seconds, so the notifier is
	// killed while sending it.
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < 500; i += 10 {
			e.produce(burst(i, 10))
			time.Sleep(40 * time.Millisecond) // the pace of the burst, not a wait for a condition
		}
	}()
	testenv.Eventually(t, 30*time.Second, "the first messages", func() error {
		if n := len(e.robot.Received()); n < 5 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	stop() // abrupt: queued alerts are dropped uncommitted, sends under way finish and are marked
	before := len(e.robot.Received())
	stop = e.start("shop_id", "buyer_id")
	defer stop()
	<-produced
	testenv.Eventually(t, 60*time.Second, "every breach named or counted", func() error {
		named, counted := e.tally()
		if len(named)+counted < 500 {
			return fmt.Errorf("%d named, %d counted of 500", len(named), counted)
		}
		return nil
	})
	// A last breach after the burst: once it is delivered, the notifier
	// has read every record before it (one partition, the shop's), and
	// once all it read is settled, any duplicate has reached the robot.
	e.produce(burst(500, 1))
	barrier := "rw:{notify.cs-ding}:sent:firing:breach-500"
	testenv.Eventually(t, 60*time.Second, "the last breach delivered", func() error {
		if n, err := e.rdb.Exists(context.Background(), barrier).Result(); err != nil || n != 1 {
			return fmt.Errorf("no mark %s (%v)", barrier, err)
		}
		return nil
	})
	e.settled(1)
	e.checkOnce(501)
	e.checkBudget()
	t.Logf("%d messages before the kill, %d in all", before, len(e.robot.Received()))
}

func TestBacklogGivesOneStaleDigestPerShop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and kfake")
	}
	e := newE2E(t, 2*time.Second)
	day := time.Now().In(shanghai).Add(-24 * time.Hour)
	var backlog []alerting.Alert
	for i := range 600 {
		a := breach(i, fmt.Sprintf("b%03d", i))
		a.ID = fmt.Sprintf("old-%03d", i)
		a.ShopID = fmt.Sprintf("shop-%d", i%3)
		a.Since = day.Add(time.Duration(i) * 10 * time.Second)
		a.Due = a.Since.Add(3 * time.Minute)
		a.At, a.EmittedAt = a.Due, a.Due
		backlog = append(backlog, a)
	}
	e.produce(backlog)
	stop := e.start("shop_id", "kind")
	defer stop()
	testenv.Eventually(t, 60*time.Second, "three digests", func() error {
		if n := len(e.robot.Received()); n < 3 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	// Nothing more may come once all 600 records are settled.
	e.settled(600)
	rs := e.robot.Received()
	if len(rs) != 3 {
		t.Fatalf("%d messages, want one per shop", len(rs))
	}
	shops := map[string]bool{}
	for _, r := range rs {
		if !strings.Contains(r.Title, "【积压告警】") || !strings.Contains(r.Title, "共 200 条告警") {
			t.Errorf("title %q", r.Title)
		}
		shops[r.Title[strings.Index(r.Title, "店铺 "):strings.Index(r.Title, "：")]] = true
	}
	if len(shops) != 3 {
		t.Errorf("digests for %v", shops)
	}
	named, counted := e.tally()
	if len(named)+counted != 600 {
		t.Errorf("%d named + %d counted, want 600", len(named), counted)
	}
}

func TestWrongSecretIsReportedOnceAndNotRetriedInALoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and kfake")
	}
	e := newE2E(t, 2*time.Second)
	e.secret = "SECwrong"
	e.configRetry = 1500 * time.Millisecond
	stop := e.start("shop_id", "kind")
	defer stop()
	e.produce(burst(0, 30))
	testenv.Eventually(t, 30*time.Second, "the refusal on /readyz", func() error {
		return e.errOrNil(e.last.Check(context.Background()))
	})
	err := e.last.Check(context.Background())
	if want := "receiver cs-ding: configuration error (errcode 310000: sign not match)"; err.Error() != want {
		t.Errorf("check says %q, want %q", err, want)
	}
	// The message is asked again only when the configuration retry is
	// over: the second refusal ends the wait, and comes a whole retry
	// after the first, not at the backoff of a failed send (1 s) nor at
	// once.
	testenv.Eventually(t, 30*time.Second, "the message tried again", func() error {
		if n := len(e.robot.Refused()); n < 2 {
			return fmt.Errorf("the robot was asked %d times", n)
		}
		return nil
	})
	asks := e.robot.Refused()
	for i := 1; i < len(asks); i++ {
		if gap := asks[i].Sub(asks[i-1]); gap < e.configRetry {
			t.Errorf("ask %d came %v after the one before; a configuration error waits %v, it is not retried in a loop", i+1, gap, e.configRetry)
		}
	}
	testenv.Eventually(t, 10*time.Second, "each refusal counted", func() error {
		if v, n := e.counted("replywatch_notify_config_errors_total", nil), len(e.robot.Refused()); v != float64(n) {
			return fmt.Errorf("config errors counted %v, the robot refused %d", v, n)
		}
		return nil
	})
	if n := len(e.robot.Received()); n != 0 {
		t.Errorf("%d messages accepted with a wrong secret", n)
	}
}

// errOrNil turns "a check failed" into nil (the condition waited for).
func (e *e2e) errOrNil(err error) error {
	if err == nil {
		return fmt.Errorf("no receiver reported")
	}
	return nil
}

func TestResolvedFollowsItsFiringOnTheSameReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and kfake")
	}
	e := newE2E(t, 2*time.Second)
	stop := e.start("shop_id", "kind")
	defer stop()
	fire := burst(0, 1)
	e.produce(fire)
	testenv.Eventually(t, 30*time.Second, "the breach", func() error {
		if n := len(e.robot.Received()); n != 1 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	res := fire[0]
	res.Status, res.Reason, res.At, res.EmittedAt = alerting.Resolved, alerting.ReasonReplied, time.Now(), time.Now()
	res.Summary = "【已解除·回复超时】店铺 s1 买家 b000：已获人工回复"
	// A resolved record whose firing one is still queued cancels it: the
	// second breach and its resolution come in one batch, neither is sent.
	fire2 := burst(1, 1)[0]
	res2 := fire2
	res2.Status, res2.Reason = alerting.Resolved, alerting.ReasonReplied
	e.produce([]alerting.Alert{res, fire2, res2})
	testenv.Eventually(t, 30*time.Second, "the resolution", func() error {
		if n := len(e.robot.Received()); n != 2 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	// The four records settled (two sent, the second pair inhibited):
	// nothing more may come.
	e.settled(4)
	got := e.robot.Received()
	if len(got) != 2 || !strings.Contains(got[0].Text, "买家 b000") || got[1].Title != "【已解除·回复超时】店铺 s1" ||
		!strings.Contains(got[1].Text, "已获人工回复") || strings.Contains(got[1].Text+got[0].Text, "b001") {
		for _, r := range got {
			t.Logf("%q", r.Text)
		}
		t.Fatalf("%d messages", len(got))
	}
}
