package pipeline

import (
	"context"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/kafkasink"
	"github.com/replywatch/replywatch/state"
)

// AlertSink durably accepts alert records taken from a partition's outbox.
// Deliver returns nil only when every record was accepted.
// kafkasink.Sinks is the production one.
type AlertSink interface {
	Deliver(ctx context.Context, ds []alerting.Delivery) error
}

// DeadLetter is one input record that could not be used.
type DeadLetter = kafkasink.DeadLetter

// DeadLetterSink writes unusable records to <topic>.DLT.
type DeadLetterSink interface {
	DeadLetter(ctx context.Context, ds []DeadLetter) error
}

// Store is what the pipeline needs of the state: claiming partitions, the
// one read and write step per batch, and the alert outbox. state.Redis and
// state.Memory are ones.
type Store interface {
	Claim(ctx context.Context, scope string, token int64) (state.Claimed, error)
	Takeover(ctx context.Context, scope string, token int64) (state.Claimed, error)
	Load(ctx context.Context, scope string, keys []string, dueBy int64, limit int) (state.Loaded, error)
	ApplyLoad(ctx context.Context, scope string, b *state.Batch, next *state.LoadRequest) (state.Applied, error)
	Outbox(ctx context.Context, scope string, token int64, now int64, lease time.Duration, limit int) ([]state.Delivery, error)
}
