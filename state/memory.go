package state

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/replywatch/replywatch/detectors"
)

// Memory is the Store kept in process, for replaying a day offline with no
// Redis. It behaves as Redis does (fencing, stale offsets, timers, outbox,
// figures, leases) except that entity states and day figures never expire.
// It is safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	scopes map[string]*memScope
	leases map[string]memLease
	// now is the clock of the named leases.
	now       func() time.Time
	shopRules memShopRules
}

type memLease struct {
	holder string
	until  time.Time
}

// memScope is one partition, laid out as the Redis keys are.
type memScope struct {
	claimed  bool
	owner    int64
	hasOwner bool
	offset   int64
	states   map[string][]byte
	timers   map[string]int64
	due      timerHeap             // may hold outdated entries; timers decides
	outbox   map[string][]Delivery // entry key → records
	leased   map[string]int64
	day      map[string]map[string]int64 // "<shop>\x00<day>" → counters
	current  map[string]map[string]int64 // shop → counters
	waiting  map[string]map[string]int64 // shop → buyer → start
	shops    map[string]struct{}
}

// NewMemory returns an empty in-process store.
func NewMemory() *Memory {
	return &Memory{scopes: map[string]*memScope{}, leases: map[string]memLease{}, now: time.Now}
}

var _ Store = (*Memory)(nil)

func (m *Memory) scope(name string) *memScope {
	s := m.scopes[name]
	if s == nil {
		s = &memScope{
			offset:  -1,
			states:  map[string][]byte{},
			timers:  map[string]int64{},
			outbox:  map[string][]Delivery{},
			leased:  map[string]int64{},
			day:     map[string]map[string]int64{},
			current: map[string]map[string]int64{},
			waiting: map[string]map[string]int64{},
			shops:   map[string]struct{}{},
		}
		m.scopes[name] = s
	}
	return s
}

// fenced tells whether a newer token than token owns s.
func (s *memScope) fenced(token int64) bool { return s.hasOwner && s.owner > token }

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, scope string, token int64) (Claimed, error) {
	return m.claim(ctx, scope, token, false)
}

// Takeover implements Store.
func (m *Memory) Takeover(ctx context.Context, scope string, token int64) (Claimed, error) {
	return m.claim(ctx, scope, token, true)
}

func (m *Memory) claim(ctx context.Context, scope string, token int64, force bool) (Claimed, error) {
	if err := ctx.Err(); err != nil {
		return Claimed{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.scope(scope)
	if !force && s.fenced(token) {
		return Claimed{}, fmt.Errorf("state: claim %s with token %d (owner %d): %w", scope, token, s.owner, ErrFenced)
	}
	s.owner, s.hasOwner, s.claimed = token, true, true
	return Claimed{Offset: s.offset, NextDue: s.nextDue()}, nil
}

// Load implements Store.
func (m *Memory) Load(ctx context.Context, scope string, keys []string, dueBy int64, limit int) (Loaded, error) {
	if err := ctx.Err(); err != nil {
		return Loaded{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scope(scope).load(keys, dueBy, limit), nil
}

func (s *memScope) load(keys []string, dueBy int64, limit int) Loaded {
	out := Loaded{States: map[string][]byte{}}
	for _, k := range keys {
		if v, ok := s.states[k]; ok {
			out.States[k] = slices.Clone(v)
		}
	}
	if dueBy > 0 && limit > 0 {
		out.Due = s.dueBy(dueBy, limit)
		for _, k := range out.Due {
			if v, ok := s.states[k]; ok {
				out.States[k] = slices.Clone(v)
			}
		}
	}
	out.NextDue = s.nextDue()
	return out
}

// Apply implements Store.
func (m *Memory) Apply(ctx context.Context, scope string, b *Batch) (int64, error) {
	a, err := m.ApplyLoad(ctx, scope, b, nil)
	return a.NextDue, err
}

// ApplyLoad implements Store: the batch and the reads under one lock.
func (m *Memory) ApplyLoad(ctx context.Context, scope string, b *Batch, next *LoadRequest) (Applied, error) {
	if err := ctx.Err(); err != nil {
		return Applied{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.scope(scope)
	nextDue, err := s.apply(scope, b)
	if err != nil || next == nil {
		return Applied{NextDue: nextDue}, err
	}
	out := Applied{NextDue: nextDue, Loaded: s.load(next.Keys, next.DueBy, next.Limit)}
	if len(out.Loaded.Due) > 0 {
		out.DueAt = make([]int64, len(out.Loaded.Due))
		for i, k := range out.Loaded.Due {
			out.DueAt[i] = s.timers[k]
		}
	}
	return out, nil
}

// apply writes b into s, as apply.lua does.
func (s *memScope) apply(scope string, b *Batch) (int64, error) {
	if !s.hasOwner {
		return 0, fmt.Errorf("state: apply %s offset %d: %w", scope, b.Offset, ErrLost)
	}
	if s.fenced(b.Token) {
		return 0, fmt.Errorf("state: apply %s with token %d (owner %d): %w", scope, b.Token, s.owner, ErrFenced)
	}
	if b.Offset >= 0 && b.Offset <= s.offset {
		return 0, fmt.Errorf("state: apply %s offset %d (applied %d): %w", scope, b.Offset, s.offset, ErrStale)
	}
	if b.Expect > 0 && s.offset+1 < b.Expect {
		return 0, fmt.Errorf("state: apply %s: %w", scope, &BehindError{Stored: s.offset})
	}
	s.owner, s.hasOwner = b.Token, true

	for k, v := range b.States {
		if v == nil {
			delete(s.states, k)
		} else {
			s.states[k] = slices.Clone(v)
		}
	}
	for k, due := range b.Timers {
		if due > 0 {
			if s.timers[k] != due {
				s.timers[k] = due
				heap.Push(&s.due, timerEntry{due: due, key: k})
			}
		} else {
			delete(s.timers, k)
		}
	}
	for _, f := range b.Figures {
		s.shops[f.Shop] = struct{}{}
		var h map[string]int64
		if f.Day == "" {
			h = s.current[f.Shop]
			if h == nil {
				h = map[string]int64{}
				s.current[f.Shop] = h
			}
		} else {
			dk := f.Shop + "\x00" + f.Day
			h = s.day[dk]
			if h == nil {
				h = map[string]int64{}
				s.day[dk] = h
			}
		}
		h[f.Field] += f.Delta
	}
	for _, a := range b.Activity {
		s.shops[a.Shop] = struct{}{}
		h := s.current[a.Shop]
		if h == nil {
			h = map[string]int64{}
			s.current[a.Shop] = h
		}
		f := detectors.AgentField(a.Agent, detectors.FieldLastHuman)
		h[f] = max(h[f], a.At)
	}
	for _, w := range b.Waits {
		s.shops[w.Shop] = struct{}{}
		set := s.waiting[w.Set()]
		if set == nil {
			set = map[string]int64{}
			s.waiting[w.Set()] = set
		}
		if w.Add {
			set[w.Buyer] = w.Start
		} else {
			delete(set, w.Buyer)
		}
	}
	end := leaseEnd(b.Now, b.Lease)
	if len(b.Outbox) > 0 {
		k := OutboxKey(b)
		rs := make([]Delivery, len(b.Outbox))
		for i, d := range b.Outbox {
			rs[i] = Delivery{Key: d.Key, Payload: slices.Clone(d.Payload)}
		}
		s.outbox[k] = rs
		s.leased[k] = end
	}
	for _, k := range b.Acks {
		delete(s.outbox, k)
		delete(s.leased, k)
	}
	if b.Offset >= 0 {
		s.offset = b.Offset
	}
	s.compact()
	return s.nextDue(), nil
}

// Outbox implements Store.
func (m *Memory) Outbox(ctx context.Context, scope string, token int64, now int64, lease time.Duration, limit int) ([]OutboxEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, maxOutboxLimit)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.scope(scope)
	if !s.hasOwner {
		return nil, fmt.Errorf("state: outbox %s: %w", scope, ErrLost)
	}
	if s.fenced(token) {
		return nil, fmt.Errorf("state: outbox %s with token %d (owner %d): %w", scope, token, s.owner, ErrFenced)
	}
	var over []timerEntry
	for k, until := range s.leased {
		if until <= now {
			over = append(over, timerEntry{due: until, key: k})
		}
	}
	slices.SortFunc(over, timerEntry.compare)
	over = over[:min(len(over), limit)]
	end := leaseEnd(now, lease)
	out := make([]OutboxEntry, 0, len(over))
	for _, o := range over {
		e := OutboxEntry{Key: o.key}
		for _, d := range s.outbox[o.key] {
			e.Records = append(e.Records, Delivery{Key: d.Key, Payload: slices.Clone(d.Payload)})
		}
		out = append(out, e)
		s.leased[o.key] = end
	}
	return out, nil
}

// Scopes implements Store; the scopes come sorted.
func (m *Memory) Scopes(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, s := range m.scopes {
		if s.claimed {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Figures implements Store.
func (m *Memory) Figures(ctx context.Context, scopes []string, dayOf func(shop string) string) (map[string]*ShopFigures, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]*ShopFigures{}
	days := map[string]string{}
	for _, name := range scopes {
		s := m.scopes[name]
		if s == nil {
			continue
		}
		for shop := range s.shops {
			f := out[shop]
			if f == nil {
				f = &ShopFigures{Shop: shop, Day: map[string]int64{}, Now: map[string]int64{}}
				out[shop] = f
			}
			day, ok := days[shop]
			if !ok {
				day = dayOf(shop)
				days[shop] = day
			}
			for k, v := range s.day[shop+"\x00"+day] {
				f.Day[k] += v
			}
			for k, v := range s.current[shop] {
				if detectors.IsMaxField(k) {
					f.Now[k] = max(f.Now[k], v)
					continue
				}
				f.Now[k] += v
			}
			for _, start := range s.waiting[shop] {
				f.Waiting++
				f.OldestStart = oldest(f.OldestStart, start)
			}
		}
		for set, buyers := range s.waiting {
			shop, agent, ok := detectors.SplitAgentSet(set)
			if !ok || out[shop] == nil {
				continue
			}
			for _, start := range buyers {
				out[shop].addAgentWaits(agent, 1, start)
			}
		}
	}
	return out, nil
}

// Lease implements Store.
func (m *Memory) Lease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	l, ok := m.leases[name]
	if ok && l.holder != holder && now.Before(l.until) {
		return false, nil
	}
	m.leases[name] = memLease{holder: holder, until: now.Add(max(ttl, time.Millisecond))}
	return true, nil
}

// ReleaseLease implements Store.
func (m *Memory) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[name]; ok && l.holder == holder {
		delete(m.leases, name)
	}
	return nil
}

// timerEntry orders as a Redis sorted set does: by score, then member.
type timerEntry struct {
	due int64
	key string
}

func (a timerEntry) compare(b timerEntry) int {
	return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.key, b.key))
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].compare(h[j]) < 0 }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// live tells whether a heap entry is still the entity's timer.
func (s *memScope) live(e timerEntry) bool {
	due, ok := s.timers[e.key]
	return ok && due == e.due
}

// nextDue drops outdated entries from the top and returns the earliest timer.
func (s *memScope) nextDue() int64 {
	for s.due.Len() > 0 {
		if top := s.due[0]; s.live(top) {
			return top.due
		}
		heap.Pop(&s.due)
	}
	return 0
}

// dueBy returns the keys of up to limit timers due at or before t, in order.
func (s *memScope) dueBy(t int64, limit int) []string {
	var taken []timerEntry
	var keys []string
	seen := map[string]bool{}
	for s.due.Len() > 0 && len(keys) < limit {
		top := heap.Pop(&s.due).(timerEntry)
		// A timer set back to an earlier due time has two live entries.
		if !s.live(top) || seen[top.key] {
			continue
		}
		seen[top.key] = true
		taken = append(taken, top)
		if top.due > t {
			break
		}
		keys = append(keys, top.key)
	}
	for _, e := range taken {
		heap.Push(&s.due, e)
	}
	return keys
}

// compact rebuilds the heap when outdated entries outnumber live ones, so
// memory follows the number of timers, not of timer changes.
func (s *memScope) compact() {
	if s.due.Len() <= 2*len(s.timers)+64 {
		return
	}
	s.due = s.due[:0]
	for k, due := range s.timers {
		s.due = append(s.due, timerEntry{due: due, key: k})
	}
	heap.Init(&s.due)
}
