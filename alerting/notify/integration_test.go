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
	last   *Notifier
	reg    *prometheus.Registry
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
			time.Sleep(40 * time.Millisecond)
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
	// Let a duplicate, if any, arrive.
	time.Sleep(time.Second)
	e.checkOnce(500)
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
	time.Sleep(time.Second) // nothing more may come
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
	time.Sleep(2 * time.Second)
	if codes := e.robot.Codes(); len(codes) != 1 {
		t.Errorf("the robot was asked %d times (%v); a configuration error waits, it is not retried in a loop", len(codes), codes)
	}
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "replywatch_notify_config_errors_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 1 {
				t.Errorf("config errors counted %v, want 1", v)
			}
		}
	}
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
	time.Sleep(time.Second)
	got := e.robot.Received()
	if len(got) != 2 || !strings.Contains(got[0].Text, "买家 b000") || got[1].Title != "【已解除·回复超时】店铺 s1" ||
		!strings.Contains(got[1].Text, "已获人工回复") || strings.Contains(got[1].Text+got[0].Text, "b001") {
		for _, r := range got {
			t.Logf("%q", r.Text)
		}
		t.Fatalf("%d messages", len(got))
	}
}
