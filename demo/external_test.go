package demo

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/internal/testenv"
)

// TestDemoOnExternalServers points the demo at a Kafka broker (kfake over
// TCP) and a redis-server that hold a deployment's topics and keys: the
// demo writes only to topics, a group and keys of its own, says so, and
// removes them when it stops, leaving the deployment's untouched.
func TestDemoOnExternalServers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1})
	redisURL := testenv.Redis(t)
	ropts, _ := redis.ParseURL(redisURL)
	rc := redis.NewClient(ropts)
	defer rc.Close()
	ctx := context.Background()
	// A deployment's key, which must survive the demo.
	if err := rc.Set(ctx, "rw:lease:reporter", "replica-1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	o := DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.Brokers = []string{broker}
	o.RedisURL = redisURL
	ready := make(chan Info, 1)
	o.OnReady = func(i Info) { ready <- i }
	var out syncBuffer
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, o, &out) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("demo ended before it was ready: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo not ready after 30 s\n%s", out.String())
	}

	demoTopics := func() []string {
		conn, err := kafka.Dial("tcp", broker)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		parts, err := conn.ReadPartitions()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var out []string
		for _, p := range parts {
			if strings.HasPrefix(p.Topic, "rwdemo-") && !seen[p.Topic] {
				seen[p.Topic] = true
				out = append(out, p.Topic)
			}
		}
		return out
	}
	var alerts string
	for _, tp := range demoTopics() {
		if strings.HasSuffix(tp, ".cs.alerts") {
			alerts = tp
		}
	}
	if alerts == "" {
		t.Fatalf("no demo alerts topic among %v", demoTopics())
	}
	// The demo's alerts reach its own topic.
	testenv.Eventually(t, 30*time.Second, "alerts on "+alerts, func() error {
		if n := lastOffset(t, broker, alerts); n == 0 {
			return fmt.Errorf("%s is empty", alerts)
		}
		return nil
	})
	keys, err := rc.Keys(ctx, "rwdemo-*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no demo keys in Redis (%v)", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not stop\n%s", out.String())
	}

	text := out.String()
	for _, want := range []string{"the demo's own topics and consumer group rwdemo-", "the demo's own keys rwdemo-",
		"removed the demo's topics rwdemo-", "Redis keys rwdemo-"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo did not say %q:\n%s", want, text)
		}
	}
	if left := demoTopics(); len(left) > 0 {
		t.Errorf("topics left behind: %v", left)
	}
	if left, _ := rc.Keys(ctx, "rwdemo-*").Result(); len(left) > 0 {
		t.Errorf("%d Redis keys left behind, e.g. %s", len(left), left[0])
	}
	if v, err := rc.Get(ctx, "rw:lease:reporter").Result(); err != nil || v != "replica-1" {
		t.Errorf("the deployment's key is %q (%v), want it untouched", v, err)
	}
	for _, tp := range []string{"cs.chat", "cs.orders", "cs.presence", "cs.alerts"} {
		if n := lastOffset(t, broker, tp); n != 0 {
			t.Errorf("the demo wrote %d records into the deployment's %s", n, tp)
		}
	}
	groups, err := (&kafka.Client{Addr: kafka.TCP(broker)}).ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups {
		if strings.HasPrefix(g.GroupID, "rwdemo-") {
			t.Errorf("consumer group %s left behind", g.GroupID)
		}
	}
}

// lastOffset is the sum of the high-water marks of topic's partitions.
func lastOffset(t *testing.T, broker, topic string) int64 {
	t.Helper()
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		lc, err := kafka.DialLeader(context.Background(), "tcp", net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)), topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += last
	}
	return n
}
