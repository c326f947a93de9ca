package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/state"
)

// A partition writes its next batches while the alerts topic has not yet
// acknowledged the alerts of the one before: the alerts wait in the outbox
// (written with their batch), the topic gets each once when it answers,
// and the write after that removes them from the outbox. Invariant 2: until
// the topic acknowledged them, the outbox holds them with their ids.
func TestAlertsDoNotHoldThePartition(t *testing.T) {
	broker, cluster := testenv.Kafka(t, map[string]int{"cs.chat": 1, "cs.alerts": 1})
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if len(pr.Topics) > 0 && pr.Topics[0].Topic == "cs.alerts" {
			cluster.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sinks := kafkasink.New([]string{broker}, "cs.alerts")
	defer sinks.Close()
	store := state.NewMemory()
	p := New(Options{
		Config:   Config{Brokers: []string{broker}, Topics: map[event.Stream]string{event.Chat: "cs.chat"}},
		Store:    store,
		Handlers: map[event.Stream]Handler{event.Chat: stepRules()},
		Alerts:   sinks, DLT: sinks,
		Metrics: NewMetrics(prometheus.NewRegistry(), metrics.NewProcess(prometheus.NewRegistry())),
		Now:     func() time.Time { return stepStart.Add(time.Hour) },
	})
	w := p.newWorker(nil, "cs.chat", event.Chat, 0, 1)
	if _, err := store.Claim(ctx, w.scope, w.token); err != nil {
		t.Fatal(err)
	}
	w.behind = true
	w.courier.start(ctx)
	defer w.courier.stop()
	defer open() // before the courier stops, should the test fail

	// b1 writes, and b2 ten minutes later: b1's deadlines pass in the batch.
	batch := func(offset int64, at time.Duration, buyer string) {
		t.Helper()
		ev := event.Event{EventID: buyer, Type: event.TypeMessage, TS: event.Time{Time: stepStart.Add(at)},
			ShopID: "s1", BuyerID: buyer, Sender: event.SenderBuyer}
		v, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		w.cur.reset()
		w.cur.msgs = append(w.cur.msgs, kafka.Message{Topic: "cs.chat", Offset: offset, HighWaterMark: offset + 2, Value: v, Time: stepStart.Add(at)})
		done := make(chan error, 1)
		go func() { done <- w.process(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("batch at offset %d waits for the alerts topic", offset)
		}
	}
	batch(0, 0, "b1")
	batch(1, 10*time.Minute, "b2")
	batch(2, 11*time.Minute, "b3") // written while b1's alerts are not acknowledged yet
	pending, entries := outboxKeys(t, store, w)
	if len(pending) < 3 || entries < 1 {
		t.Fatalf("outbox holds %v, want b1's warning and breaches", pending)
	}
	if n := len(alertRecords(t, broker)); n != 0 {
		t.Fatalf("the alerts topic has %d records while it does not answer", n)
	}

	open()
	testenv.Eventually(t, 30*time.Second, "the alerts topic acknowledged", func() error {
		w.courier.mu.Lock()
		defer w.courier.mu.Unlock()
		if len(w.courier.acks) < entries {
			return fmt.Errorf("%d of %d outbox entries acknowledged", len(w.courier.acks), entries)
		}
		return nil
	})
	w.cur.reset()
	if err := w.process(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := outboxKeys(t, store, w); len(left) != 0 {
		t.Errorf("outbox still holds %v after the topic acknowledged them", left)
	}
	got := alertRecords(t, broker)
	slices.Sort(got)
	if !slices.Equal(got, pending) {
		t.Errorf("alerts topic got %v, want each of %v once", got, pending)
	}
}

// outboxKeys reads the whole outbox (leasing it again): the keys of its
// records, sorted, and the number of its entries (batches).
func outboxKeys(t *testing.T, s *state.Memory, w *worker) (keys []string, entries int) {
	t.Helper()
	es, err := s.Outbox(context.Background(), w.scope, w.token, stepStart.Add(1000*time.Hour).UnixMilli(), time.Millisecond, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		for _, d := range e.Records {
			keys = append(keys, d.Key)
		}
	}
	slices.Sort(keys)
	return keys, len(es)
}

// alertRecords reads the alerts topic: each record's alert key.
func alertRecords(t *testing.T, broker string) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "cs.alerts", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var keys []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			ID     string `json:"alert_id"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.ID+":"+a.Status)
	}
}
