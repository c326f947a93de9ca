package pipeline

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/internal/redisproc"
	"github.com/replywatch/replywatch/internal/testenv"
)

// idleWorker is a worker of topic t/0 that believes it is behind and has
// had no record for a second, on a processor reaching brokers.
func idleWorker(brokers ...string) *worker {
	p := New(Options{Config: Config{Brokers: brokers, IdleAfter: 50 * time.Millisecond}})
	return &worker{p: p, topic: "t", behind: true, applied: -1,
		lastRecord: time.Now().Add(-time.Second), lastAsked: time.Now().Add(-time.Second), log: p.log}
}

// A partition that believes it is behind and gets no records does not hold
// its clock for good (DESIGN.md §5, caught up or idle): it asks the broker
// again, and follows the wall clock when the broker says it has caught up
// or cannot say; records that the broker reports but that never arrive do
// not hold it either, after three times IdleAfter.
func TestIdlePartitionFollowsTheWallClock(t *testing.T) {
	ctx := context.Background()

	// No broker answers (a restart under way).
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w := idleWorker("127.0.0.1:" + strconv.Itoa(port))
	w.checkIdle(ctx)
	if w.behind {
		t.Error("a partition whose broker does not answer stays behind")
	}

	broker, _ := testenv.Kafka(t, map[string]int{"t": 1})
	// Caught up: the broker has no records past the last applied one.
	w = idleWorker(broker)
	w.checkIdle(ctx)
	if w.behind {
		t.Error("a caught-up partition stays behind")
	}

	// Records the broker reports past the last one read: behind while they
	// may still come, not once none came for three times IdleAfter.
	wr := &kafka.Writer{Addr: kafka.TCP(broker), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := wr.WriteMessages(ctx, kafka.Message{Topic: "t", Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	w = idleWorker(broker)
	w.lastRecord = time.Now().Add(-100 * time.Millisecond)
	w.checkIdle(ctx)
	if !w.behind {
		t.Error("a partition with records still to read followed the wall clock after 2 x IdleAfter")
	}
	w = idleWorker(broker)
	w.checkIdle(ctx)
	if w.behind {
		t.Error("a partition whose reported records never came is behind for good")
	}

	// Not idle for IdleAfter yet: nothing is asked, nothing changes.
	w = idleWorker(broker)
	w.lastRecord = time.Now()
	w.checkIdle(ctx)
	if !w.behind {
		t.Error("a partition that got records just now stopped being behind")
	}
}
