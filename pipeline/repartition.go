package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/event"
)

// RepartitionConfig is what the repartition stage needs.
type RepartitionConfig struct {
	Brokers []string
	// GroupID is the stage's own consumer group (<group_id>-repartition):
	// its offsets on the chat and orders topics are apart from the
	// processor's.
	GroupID     string
	StartOffset string // earliest | latest
	Chat        string
	Orders      string
	Buyers      string
	// Partitions is the partition count the buyers topic is created with
	// when it does not exist.
	Partitions       int
	BatchSize        int
	BatchWait        time.Duration
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// Dialer connects the reader, and Transport the writer and the client,
	// when the brokers need TLS or SASL (nil: plain TCP).
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper
}

// Repartitioner is the repartition stage of the buyer join (DESIGN.md §3,
// as Kafka Streams repartitions through an internal topic): it reads the
// chat and orders topics, keeps the facts the join needs (buyers' and human
// agents' messages, payments, refunds, disputes and complaints), and writes
// them to the buyers topic keyed shop_id/buyer_id, placed by replywatch's
// own partitioner: kafka-go's Hash balancer, FNV-1a of the key modulo the
// partition count. Both sides of a buyer so meet in one partition of the
// buyers topic whatever partitioner the producers of chat and orders used.
// Input offsets are committed only after the broker acknowledged the
// writes: at least once, and the join drops repeated event ids.
//
// A fact is the input event less what the join does not read (message
// text, message id, amounts): a buyer message's text is judged here, once,
// and its complaint intent is written as Intent.
type Repartitioner struct {
	cfg RepartitionConfig
	// Intent reports whether a buyer's message shows complaint intent.
	Intent func(shop, text string) bool
	Log    *zap.Logger
	// Now is the wall clock (time.Now when nil), to reject far-future ts
	// as the processor does.
	Now func() time.Time
}

// NewRepartitioner builds the stage; nothing runs until Run.
func NewRepartitioner(cfg RepartitionConfig, intent func(shop, text string) bool, log *zap.Logger) *Repartitioner {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 20 * time.Millisecond
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = 10 * time.Second
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 12
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Repartitioner{cfg: cfg, Intent: intent, Log: log, Now: time.Now}
}

// EnsureTopic creates topic with the given partition count unless it
// exists, retrying until ctx ends while Kafka does not answer.
func EnsureTopic(ctx context.Context, brokers []string, transport kafka.RoundTripper, topic string, partitions int) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	op := func() error {
		resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
			{Topic: topic, NumPartitions: partitions, ReplicationFactor: -1},
		}})
		if err != nil {
			return err
		}
		if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return backoff.Permanent(err)
		}
		return nil
	}
	b := backoff.NewExponentialBackOff()
	b.MaxElapsedTime = 0
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return fmt.Errorf("creating topic %s with %d partitions: %w", topic, partitions, err)
	}
	return nil
}

// Fact is the buyers-topic record (key and value) the join reads for a
// record of stream s; ok is false when the join does not need the event,
// or it is not usable (the processor dead-letters it from its own topic).
func (r *Repartitioner) Fact(s event.Stream, value []byte) (key string, fact []byte, ok bool) {
	var buf []byte
	f, ok := r.fact(s, value, new(event.Event), &buf)
	if !ok {
		return "", nil, false
	}
	return string(f.Key), f.Value, true
}

// fact is Fact as a message whose key and value are appended to *buf: a
// batch's facts share one buffer, which the next batch reuses once the
// broker took them. The record is decoded into ev, which the caller may
// reuse once fact returned.
func (r *Repartitioner) fact(s event.Stream, value []byte, ev *event.Event, buf *[]byte) (kafka.Message, bool) {
	if s != event.Chat && s != event.Orders {
		return kafka.Message{}, false
	}
	if err := event.DecodeInto(ev, s, value, r.Now()); err != nil || !event.JoinFact(s, ev) {
		return kafka.Message{}, false
	}
	if ev.Type == event.TypeMessage && ev.Sender == event.SenderBuyer && r.Intent != nil && r.Intent(ev.ShopID, ev.Text) {
		ev.Intent = event.IntentComplaint
	}
	ev.Text, ev.MsgID, ev.AmountCents, ev.ShipBy, ev.RespondBy, ev.FromAgentID = "", "", 0, nil, nil, ""
	b := *buf
	start := len(b)
	b = append(append(append(b, ev.ShopID...), '/'), ev.BuyerID...)
	mid := len(b)
	b = ev.AppendJSON(b)
	*buf = b
	// Earlier facts keep the array they were written in if b grew.
	return kafka.Message{Topic: r.cfg.Buyers, Key: b[start:mid:mid], Value: b[mid:len(b):len(b)]}, true
}

// Run reads, repartitions and commits until ctx ends. The batch in hand
// when ctx ends is still written and committed.
func (r *Repartitioner) Run(ctx context.Context) error {
	if err := EnsureTopic(ctx, r.cfg.Brokers, r.cfg.Transport, r.cfg.Buyers, r.cfg.Partitions); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	start := kafka.FirstOffset
	if r.cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           r.cfg.Brokers,
		GroupID:           r.cfg.GroupID,
		GroupTopics:       []string{r.cfg.Chat, r.cfg.Orders},
		StartOffset:       start,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    r.cfg.SessionTimeout,
		RebalanceTimeout:  r.cfg.RebalanceTimeout,
		HeartbeatInterval: r.cfg.SessionTimeout / 5,
		JoinGroupBackoff:  time.Second,
		Dialer:            r.cfg.Dialer,
		ErrorLogger:       kafkaLogger(r.Log.Warn),
	})
	defer reader.Close()
	writer := &kafka.Writer{
		Addr:         kafka.TCP(r.cfg.Brokers...),
		Balancer:     &kafka.Hash{},
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    r.cfg.BatchSize,
		BatchBytes:   16 << 20,
		RequiredAcks: kafka.RequireAll,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  5,
		Transport:    r.cfg.Transport,
	}
	defer writer.Close()
	streamOf := map[string]event.Stream{r.cfg.Chat: event.Chat, r.cfg.Orders: event.Orders}
	in := make([]kafka.Message, 0, r.cfg.BatchSize)
	out := make([]kafka.Message, 0, r.cfg.BatchSize)
	// The batch's facts, written by flush before the next batch reuses it.
	buf := make([]byte, 0, 256*r.cfg.BatchSize)
	var ev event.Event
	for ctx.Err() == nil {
		in, out, buf = in[:0], out[:0], buf[:0]
		// The first record of a batch may wait as long as it takes; the
		// rest at most BatchWait.
		msg, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.Log.Warn("fetching chat and orders for the buyers topic", zap.Error(err))
			continue
		}
		in = append(in, msg)
		wctx, cancel := context.WithTimeout(ctx, r.cfg.BatchWait)
		for len(in) < r.cfg.BatchSize {
			m, err := reader.FetchMessage(wctx)
			if err != nil {
				break
			}
			in = append(in, m)
		}
		cancel()
		for _, m := range in {
			if f, ok := r.fact(streamOf[m.Topic], m.Value, &ev, &buf); ok {
				out = append(out, f)
			}
		}
		// Write and commit even when ctx ended meanwhile: what was read
		// is finished, not left half done.
		if err := r.flush(reader, writer, in, out); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the facts of a batch, retrying until the broker takes
// them, then commits the batch's input offsets.
func (r *Repartitioner) flush(reader *kafka.Reader, writer *kafka.Writer, in, out []kafka.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.MaxElapsedTime = 0
	op := func() error {
		if len(out) == 0 {
			return nil
		}
		err := writer.WriteMessages(ctx, out...)
		if err != nil {
			r.Log.Warn("writing facts to the buyers topic; retrying", zap.String("topic", r.cfg.Buyers), zap.Int("records", len(out)), zap.Error(err))
		}
		return err
	}
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return fmt.Errorf("writing %d facts to %s: %w", len(out), r.cfg.Buyers, err)
	}
	if err := reader.CommitMessages(ctx, in...); err != nil {
		// Not fatal: the batch is read again after a rebalance, and the
		// join drops the repeated facts.
		r.Log.Warn("committing repartitioned offsets", zap.Error(err))
	}
	return nil
}

// UseSecurity has the stage connect with dialer and transport (TLS, SASL).
func (r *Repartitioner) UseSecurity(dialer *kafka.Dialer, transport kafka.RoundTripper) {
	r.cfg.Dialer, r.cfg.Transport = dialer, transport
}
