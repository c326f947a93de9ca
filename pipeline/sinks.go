package pipeline

import (
	"context"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/kafkasink"
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
