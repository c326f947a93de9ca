package state

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"
)

// ShopRulesState is what the shop-level rules keep between evaluations:
// each shop's encoded spells, and alert records not yet delivered.
type ShopRulesState struct {
	Spells map[string][]byte
	Outbox []Delivery
}

// ShopRulesWrite is one evaluation's changes: spells to set (nil deletes
// a shop's), records to deliver and delivered records to remove.
type ShopRulesWrite struct {
	Spells map[string][]byte
	Outbox []Delivery
	Acks   []string
}

var (
	//go:embed lua/shopclaim.lua
	shopClaimLua string
	//go:embed lua/shopwrite.lua
	shopWriteLua string

	shopClaimScript = redis.NewScript(shopClaimLua)
	shopWriteScript = redis.NewScript(shopWriteLua)
)

// shopRulesBase is the start of the shop-level rules' keys: one hash tag,
// so a script touches one cluster slot.
func (r *Redis) shopRulesBase() string { return r.prefix + ":{shoprules}:" }

// ClaimShopRules makes the caller, which has just taken the reporter
// lease, the only writer of the shop-level rules' state and returns its
// fencing token.
func (r *Redis) ClaimShopRules(ctx context.Context) (int64, error) {
	b := r.shopRulesBase()
	t, err := shopClaimScript.Run(ctx, r.client, []string{b + "owner", b + "token"}).Int64()
	if err != nil {
		return 0, r.fail("shoprules claim", "", err)
	}
	return t, nil
}

// ShopRules reads the shop-level rules' state.
func (r *Redis) ShopRules(ctx context.Context) (ShopRulesState, error) {
	b := r.shopRulesBase()
	pipe := r.client.Pipeline()
	spells := pipe.HGetAll(ctx, b+"state")
	outbox := pipe.HGetAll(ctx, b+"outbox")
	if _, err := pipe.Exec(ctx); err != nil {
		return ShopRulesState{}, r.fail("shoprules read", "", err)
	}
	st := ShopRulesState{Spells: map[string][]byte{}}
	for k, v := range spells.Val() {
		st.Spells[k] = []byte(v)
	}
	for _, k := range slices.Sorted(maps.Keys(outbox.Val())) {
		st.Outbox = append(st.Outbox, Delivery{Key: k, Payload: []byte(outbox.Val()[k])})
	}
	return st, nil
}

// WriteShopRules writes w atomically if token still owns the state, else
// returns ErrFenced and writes nothing.
func (r *Redis) WriteShopRules(ctx context.Context, token int64, w *ShopRulesWrite) error {
	b := r.shopRulesBase()
	args := []any{token, len(w.Spells)}
	for _, shop := range slices.Sorted(maps.Keys(w.Spells)) {
		args = append(args, shop, w.Spells[shop])
	}
	args = append(args, len(w.Outbox))
	for _, d := range w.Outbox {
		args = append(args, d.Key, d.Payload)
	}
	args = append(args, len(w.Acks))
	for _, k := range w.Acks {
		args = append(args, k)
	}
	res, err := shopWriteScript.Run(ctx, r.client, []string{b + "owner", b + "state", b + "outbox"}, args...).Int64Slice()
	if err != nil {
		return r.fail("shoprules write", "", err)
	}
	if len(res) == 0 || res[0] != 1 {
		return fmt.Errorf("%w: shop-level rules owned by token %v, not %d", ErrFenced, res[1:], token)
	}
	return nil
}

// memShopRules is the memory store's shop-level rules' state.
type memShopRules struct {
	owner, last int64
	spells      map[string][]byte
	outbox      map[string][]byte
}

// ClaimShopRules implements what Redis.ClaimShopRules does.
func (m *Memory) ClaimShopRules(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shopRules.last++
	m.shopRules.owner = m.shopRules.last
	return m.shopRules.owner, nil
}

// ShopRules implements what Redis.ShopRules does.
func (m *Memory) ShopRules(ctx context.Context) (ShopRulesState, error) {
	if err := ctx.Err(); err != nil {
		return ShopRulesState{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := ShopRulesState{Spells: map[string][]byte{}}
	for k, v := range m.shopRules.spells {
		st.Spells[k] = slices.Clone(v)
	}
	for _, k := range slices.Sorted(maps.Keys(m.shopRules.outbox)) {
		st.Outbox = append(st.Outbox, Delivery{Key: k, Payload: slices.Clone(m.shopRules.outbox[k])})
	}
	return st, nil
}

// WriteShopRules implements what Redis.WriteShopRules does.
func (m *Memory) WriteShopRules(ctx context.Context, token int64, w *ShopRulesWrite) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.shopRules
	if s.owner != token {
		return fmt.Errorf("%w: shop-level rules owned by token %d, not %d", ErrFenced, s.owner, token)
	}
	if s.spells == nil {
		s.spells, s.outbox = map[string][]byte{}, map[string][]byte{}
	}
	for k, v := range w.Spells {
		if len(v) == 0 {
			delete(s.spells, k)
		} else {
			s.spells[k] = slices.Clone(v)
		}
	}
	for _, d := range w.Outbox {
		s.outbox[d.Key] = slices.Clone(d.Payload)
	}
	for _, k := range w.Acks {
		delete(s.outbox, k)
	}
	return nil
}
