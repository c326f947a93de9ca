package notify

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/config"
)

//go:embed lua/budget.lua
var budgetLua string

var budgetScript = redis.NewScript(budgetLua)

// Budget is a receiver's sending allowance: at most Messages per Per for
// each limit, over a sliding window (the vendors count per rolling
// minute, and DingTalk blocks a robot for ten minutes past 20). It lives
// in Redis, so that replicas and restarts share one robot's budget.
type Budget struct {
	client  redis.UniversalClient
	key     string
	limits  []config.Limit
	longest time.Duration
	seq     atomic.Int64
	inst    string // tells this process's send ids from other replicas'
}

// NewBudget builds the budget of a receiver; no limits is unlimited.
func NewBudget(client redis.UniversalClient, prefix, receiver string, limits []config.Limit) *Budget {
	var r [6]byte
	_, _ = rand.Read(r[:])
	b := &Budget{client: client, key: prefix + ":{notify." + receiver + "}:sends", limits: limits, inst: hex.EncodeToString(r[:])}
	for _, l := range limits {
		b.longest = max(b.longest, l.Per)
	}
	return b
}

const unlimited = 1 << 30

// check reads the budget at now, and records a send under id when id is
// not empty and one is available.
func (b *Budget) check(ctx context.Context, now time.Time, id string) (taken bool, avail int, wait time.Duration, err error) {
	if len(b.limits) == 0 {
		return id != "", unlimited, 0, nil
	}
	args := []any{now.UnixMilli(), id, b.longest.Milliseconds()}
	for _, l := range b.limits {
		args = append(args, l.Messages, l.Per.Milliseconds())
	}
	res, err := budgetScript.Run(ctx, b.client, []string{b.key}, args...).Int64Slice()
	if err != nil {
		return false, 0, 0, fmt.Errorf("reading the send budget: %w", err)
	}
	return res[0] == 1, int(res[1]), time.Duration(res[2]) * time.Millisecond, nil
}

// Available is how many messages may go out now, and when none may, how
// long until one may.
func (b *Budget) Available(ctx context.Context, now time.Time) (int, time.Duration, error) {
	_, avail, wait, err := b.check(ctx, now, "")
	return avail, wait, err
}

// Take records a send at now if the budget allows it; otherwise it says
// how long to wait.
func (b *Budget) Take(ctx context.Context, now time.Time) (string, time.Duration, error) {
	id := b.inst + "-" + strconv.FormatInt(b.seq.Add(1), 36)
	taken, _, wait, err := b.check(ctx, now, id)
	if err != nil || !taken {
		if wait <= 0 {
			wait = 10 * time.Millisecond
		}
		return "", wait, err
	}
	return id, 0, nil
}

// Touch moves a send to now, when the vendor answered: the vendor counts
// a message when it arrives, after we took it from the budget, so
// counting from the answer keeps our window behind theirs.
func (b *Budget) Touch(ctx context.Context, id string, now time.Time) {
	if len(b.limits) == 0 || id == "" {
		return
	}
	_ = b.client.ZAddXX(ctx, b.key, redis.Z{Score: float64(now.UnixMilli()), Member: id}).Err()
}
