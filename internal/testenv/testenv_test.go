package testenv

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

func TestRedisRestartKeepsPortLosesData(t *testing.T) {
	srv := RedisServer(t)
	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Addr != srv.Addr || opts.DB != 0 {
		t.Fatalf("URL %q does not name %s db 0", srv.URL, srv.Addr)
	}
	ctx := context.Background()
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	// The client reconnects to the same address; the data is gone.
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("after restart GET k = %v, want redis.Nil", err)
	}
	srv.Kill()
	if _, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
		t.Fatalf("%s still accepts connections after Kill", srv.Addr)
	}
}

func TestKafkaGoProducesAndConsumes(t *testing.T) {
	addr, _ := Kafka(t, map[string]int{"in": 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	parts, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := parts.ReadPartitions("in")
	parts.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("topic in has %d partitions, want 3", len(ps))
	}

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "in", Balancer: &kafka.Hash{}, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	var want []string
	var msgs []kafka.Message
	for i := range 20 {
		v := fmt.Sprintf("m%02d", i)
		want = append(want, v)
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(v)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	// A consumer group reads every partition, which needs the group
	// coordinator as well as fetch.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "g", Topic: "in",
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond, SessionTimeout: time.Second})
	defer r.Close()
	var got []string
	for len(got) < len(want) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		got = append(got, string(m.Value))
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("consumed %v, want %v", got, want)
	}

	// Auto-created topics work too (dead-letter topics rely on it).
	w2 := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "fresh", AllowAutoTopicCreation: true, BatchTimeout: 10 * time.Millisecond}
	defer w2.Close()
	var werr error
	for range 20 {
		if werr = w2.WriteMessages(ctx, kafka.Message{Value: []byte("x")}); werr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if werr != nil {
		t.Fatalf("writing to an auto-created topic: %v", werr)
	}
}
