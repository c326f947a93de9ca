// Package state owns where replywatch keeps what it knows: per-partition
// entity state, timers, figures and the alert outbox, in Redis (production)
// or in memory (offline replay), behind one interface. Every write for a
// partition is one atomic step that also records the last applied offset and
// checks the writer's fencing token. It knows nothing of the rules.
package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
)

// ErrFenced means the partition is now owned by a newer consumer generation:
// the caller lost it and must stop writing.
var ErrFenced = errors.New("state: partition is owned by a newer consumer")

// ErrLost means Redis no longer has the partition's state: its owner key,
// which a claim sets and nothing removes, is gone (Redis restarted without
// persistence, or failed over to an empty replica). Nothing was written;
// the owner must claim the partition again and rebuild it from Kafka.
var ErrLost = errors.New("state: the partition's state was lost (its owner key is gone)")

// ErrBehind means the partition's stored offset is below the one the
// writer last applied: Redis went back to an older state (restarted from an
// older snapshot). Nothing was written; the writer must read the records
// after the stored offset again. The error is a *BehindError.
var ErrBehind = errors.New("state: the stored offset is behind the writer's")

// BehindError carries the stored offset of an ErrBehind.
type BehindError struct{ Stored int64 }

func (e *BehindError) Error() string { return fmt.Sprintf("%v (stored %d)", ErrBehind, e.Stored) }
func (e *BehindError) Unwrap() error { return ErrBehind }

// ErrStale means the batch's offset is not beyond the partition's last
// applied offset: it was applied already and nothing was written.
var ErrStale = errors.New("state: batch offset already applied")

// ErrOutboxEntry means Outbox read entries it cannot decode: it returns the
// others with it, and leaves those leased in the outbox, handed out (and
// reported) again when their lease ends.
var ErrOutboxEntry = errors.New("state: unreadable outbox entry")

// Scope names the state of one input partition, e.g. "chat.7". It is the
// Redis hash tag, so everything of one partition lives in one cluster slot.
func Scope(stream string, partition int) string {
	return stream + "." + strconv.Itoa(partition)
}

// Delivery is one alert record waiting in a partition's outbox until the
// alerts topic has accepted it. Key is the alert's id and status
// (alerting.Alert.Key), Payload its JSON.
type Delivery = alerting.Delivery

// OutboxEntry is one batch's alert records in a partition's outbox: they
// are leased, handed out again and acknowledged together, under Key
// (OutboxKey). An entry written by an earlier version holds one record,
// under that record's own key.
type OutboxEntry struct {
	Key     string
	Records []Delivery
}

// OutboxKey is the outbox key of b's records: its offset (or, for a batch
// that covers no record, its wall clock) and its first record's key, so
// that no two batches of a partition share one. Keys of entries start
// with '#', which no record key (an alert's hex id) does.
func OutboxKey(b *Batch) string {
	if len(b.Outbox) == 0 {
		return ""
	}
	if b.Offset >= 0 {
		return "#" + strconv.FormatInt(b.Offset, 10) + ":" + b.Outbox[0].Key
	}
	return "#t" + strconv.FormatInt(b.Now, 10) + ":" + b.Outbox[0].Key
}

// Batch is every change one processed batch (or one timer sweep) makes to a
// partition, written atomically.
type Batch struct {
	// Token is the writer's fencing token (its consumer group generation).
	Token int64
	// Offset is the last input offset the batch covers, stored as the
	// partition's applied offset; -1 for a timer-only batch that covers no
	// record.
	Offset int64
	// States sets entity states (key → encoded state); a nil value deletes.
	States map[string][]byte
	// Timers sets each entity's next due time (Unix ms); 0 removes it.
	Timers map[string]int64
	// Figures are added to the shops' counters.
	Figures []detectors.FigureDelta
	// Waits update the shops' waiting sets, in order.
	Waits []detectors.WaitOp
	// Activity raises each agent's current-counter field
	// AgentField(agent, FieldLastHuman) to At when At is later.
	Activity []detectors.Activity
	// Outbox adds alert records to deliver, leased until Now + Lease, as
	// one outbox entry (OutboxKey).
	Outbox []Delivery
	// Acks removes delivered entries from the outbox (OutboxEntry.Key).
	Acks []string
	// Now is the writer's wall clock (Unix ms) and Lease how long new outbox
	// records stay leased to this writer before they are handed out again.
	Now   int64
	Lease time.Duration
	// Expect is the writer's last applied offset + 1 (0 when it has applied
	// none). A store whose offset is below it went back to an older state
	// and refuses the batch with ErrBehind.
	Expect int64
}

// Loaded is what Load read.
type Loaded struct {
	// States of the requested keys that exist, and of the due entities.
	States map[string][]byte
	// Due are the entity keys whose timers are due at or before the given
	// time, earliest first, at most the given limit.
	Due []string
	// NextDue is the earliest timer of the partition (Unix ms), 0 if none.
	NextDue int64
}

// LoadRequest is a Load run by ApplyLoad in the same atomic step as a
// batch, after its writes: the reads the next batch will need.
type LoadRequest struct {
	// Keys are the entities whose states are wanted.
	Keys []string
	// DueBy and Limit ask for the entities whose timers are due at or
	// before DueBy (Unix ms), at most Limit of them, as Load's do.
	DueBy int64
	Limit int
}

// Applied is what ApplyLoad wrote and read.
type Applied struct {
	// NextDue is the earliest timer of the partition after the batch (Unix
	// ms), 0 if none.
	NextDue int64
	// Loaded is what Load would have read right after the batch; empty
	// without a request.
	Loaded Loaded
	// DueAt holds the due time (Unix ms) of each of Loaded.Due, so a caller
	// whose "now" turns out earlier than DueBy can tell which are due.
	DueAt []int64
}

// Claimed is what Claim found.
type Claimed struct {
	// Offset is the last applied offset, -1 when nothing was ever applied.
	Offset int64
	// NextDue is the earliest timer of the partition (Unix ms), 0 if none.
	NextDue int64
}

// ShopFigures are one shop's figures summed over the scopes read.
type ShopFigures struct {
	Shop string
	// Day holds the day's counters (detectors.Field* names) for the day
	// asked for; Now the current counters (per-agent waiting, seats, and
	// agents' latest human message, which is a maximum over scopes, see
	// detectors.IsMaxField).
	Day map[string]int64
	Now map[string]int64
	// Waiting is the number of buyers waiting now; OldestStart the earliest
	// wait start among them (Unix ms), 0 if none.
	Waiting     int64
	OldestStart int64
	// AgentOldest is the earliest wait start (Unix ms) among the buyers
	// waiting on each agent who has any (their waiting set).
	AgentOldest map[string]int64
}

// addAgentWaits folds an agent's waiting set into the shop's figures.
func (f *ShopFigures) addAgentWaits(agent string, count, earliest int64) {
	if count <= 0 {
		return
	}
	if f.AgentOldest == nil {
		f.AgentOldest = map[string]int64{}
	}
	f.AgentOldest[agent] = oldest(f.AgentOldest[agent], earliest)
}

// Store is the state of every partition. The Redis implementation is the
// production one; the memory one serves offline replay and behaves the same.
type Store interface {
	// Claim makes token the owner of scope (refusing with ErrFenced when a
	// newer token owns it) and reports where the partition stands.
	Claim(ctx context.Context, scope string, token int64) (Claimed, error)
	// Takeover is Claim without the fencing check, for a consumer group that
	// was recreated: its generations start again below the stored token.
	Takeover(ctx context.Context, scope string, token int64) (Claimed, error)
	// Load reads the states of keys, and the entities whose timers are due
	// at or before dueBy (at most limit of them) with their states.
	Load(ctx context.Context, scope string, keys []string, dueBy int64, limit int) (Loaded, error)
	// Apply writes the batch atomically after checking the token and the
	// offset. It returns the partition's earliest timer afterwards (0 if none).
	Apply(ctx context.Context, scope string, b *Batch) (nextDue int64, err error)
	// ApplyLoad is Apply followed, in the same atomic step, by the reads of
	// next (none when nil): one round trip where Apply and Load take two.
	// When the batch is fenced or stale nothing is written or read.
	ApplyLoad(ctx context.Context, scope string, b *Batch, next *LoadRequest) (Applied, error)
	// Outbox returns the entries whose lease ended at or before now, at
	// most limit, earliest lease first, and leases them again until now +
	// lease. With ErrOutboxEntry it returns the entries it could read.
	Outbox(ctx context.Context, scope string, token int64, now int64, lease time.Duration, limit int) ([]OutboxEntry, error)
	// Scopes lists every scope that was ever claimed.
	Scopes(ctx context.Context) ([]string, error)
	// Figures sums the figures of every shop seen in scopes; dayOf gives the
	// shop-local "today" of each shop.
	Figures(ctx context.Context, scopes []string, dayOf func(shop string) string) (map[string]*ShopFigures, error)
	// Lease takes or renews the named lease for holder; true when holder has it.
	Lease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}
