package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Marks records in Redis which (receiver, alert_id, status) have been
// delivered, so that a redelivered record, a restarted notifier or another
// replica does not send them again. A mark is written only after the
// receiver accepted the message, and lives for the configured TTL. Keys
// are hash-tagged per receiver ({notify.<receiver>}), so each receiver's
// marks share a Redis Cluster slot.
type Marks struct {
	Client redis.UniversalClient
	Prefix string
	TTL    time.Duration
}

func (m *Marks) key(receiver, status, id string) string {
	return m.Prefix + ":{notify." + receiver + "}:sent:" + status + ":" + id
}

// Seen reports, for each item, whether its mark exists: one round trip.
func (m *Marks) Seen(ctx context.Context, items []*Item) ([]bool, error) {
	if len(items) == 0 {
		return nil, nil
	}
	pipe := m.Client.Pipeline()
	cmds := make([]*redis.IntCmd, len(items))
	for i, it := range items {
		cmds[i] = pipe.Exists(ctx, m.key(it.Receiver, it.Alert.Status, it.Alert.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading %d delivery marks: %w", len(items), err)
	}
	out := make([]bool, len(items))
	for i, c := range cmds {
		out[i] = c.Val() > 0
	}
	return out, nil
}

// Mark writes the marks of delivered items: one round trip. The value
// says how the item was delivered (sent, digested, stale, inhibited).
func (m *Marks) Mark(ctx context.Context, items []*Item, how string) error {
	if len(items) == 0 {
		return nil
	}
	pipe := m.Client.Pipeline()
	for _, it := range items {
		pipe.Set(ctx, m.key(it.Receiver, it.Alert.Status, it.Alert.ID), how, m.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing %d delivery marks: %w", len(items), err)
	}
	return nil
}
