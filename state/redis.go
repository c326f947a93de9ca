package state

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/detectors"
)

// Redis modes accepted by Dial.
const (
	ModeStandalone = "standalone"
	ModeSentinel   = "sentinel"
	ModeCluster    = "cluster"
)

// dayTTL is how long a day's figures outlive the last time a writer gave
// them their TTL: long enough for the day after and a late replay, short
// enough not to pile up.
const dayTTL = 4 * 24 * time.Hour

// rewriteAfter is how long a writer skips the writes that only need doing
// once (a day hash's TTL, a shop's entry in the set of shops) after making
// them: once per hour instead of in every batch. Claiming a partition, or
// it again after Redis lost its data (see ErrLost), starts them afresh.
const rewriteAfter = time.Hour

// maxOutboxLimit keeps one outbox read within what Lua can unpack at once.
const maxOutboxLimit = 4000

var (
	//go:embed lua/claim.lua
	claimLua string
	//go:embed lua/due.lua
	dueLua string
	//go:embed lua/load.lua
	loadLua string
	//go:embed lua/apply.lua
	applyLua string
	//go:embed lua/outbox.lua
	outboxLua string
	//go:embed lua/lease.lua
	leaseLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/waiting.lua
	waitingLua string

	claimScript   = redis.NewScript(dueLua + claimLua)
	loadScript    = redis.NewScript(dueLua + loadLua)
	applyScript   = redis.NewScript(dueLua + applyLua)
	outboxScript  = redis.NewScript(outboxLua)
	leaseScript   = redis.NewScript(leaseLua)
	releaseScript = redis.NewScript(releaseLua)
	waitingScript = redis.NewScript(waitingLua)
)

// Script replies: the first element says what happened.
const (
	replyFenced = 0
	replyOK     = 1
	replyStale  = 2
	replyLost   = 3
	replyBehind = 4
)

// clusterReload is how often a cluster client reads the slot map again
// (CLUSTER SLOTS of one node) while it is in use.
const clusterReload = 2 * time.Second

// Dial connects to Redis as configured: standalone from url; sentinel
// (masterName, sentinel addrs) or cluster (seed addrs) taking the
// credentials, database and TLS from url. It does not wait for Redis to
// answer.
func Dial(url, mode string, addrs []string, masterName string) (redis.UniversalClient, error) {
	return DialAuth(url, mode, addrs, masterName, Auth{})
}

// Auth is what is given apart from the url: an ACL user and its password
// (replacing the url's when Password is set), and a TLS configuration
// (replacing the one rediss:// implies; the url's host stays the name
// checked when it names none).
type Auth struct {
	Username, Password string
	TLS                *tls.Config
}

// DialAuth is Dial with credentials and TLS given apart from the url.
func DialAuth(url, mode string, addrs []string, masterName string, a Auth) (redis.UniversalClient, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("state: parsing redis url: %w", err)
	}
	if a.Password != "" {
		opts.Username, opts.Password = a.Username, a.Password
	}
	if a.TLS != nil {
		c := a.TLS.Clone()
		if c.ServerName == "" && opts.TLSConfig != nil {
			c.ServerName = opts.TLSConfig.ServerName
		}
		opts.TLSConfig = c
	}
	// The url's credentials, TLS and pool settings, for the sentinels or
	// the cluster's seeds.
	u := &redis.UniversalOptions{
		Addrs:        addrs,
		MasterName:   masterName,
		Username:     opts.Username,
		Password:     opts.Password,
		DB:           opts.DB,
		TLSConfig:    opts.TLSConfig,
		DialTimeout:  opts.DialTimeout,
		ReadTimeout:  opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout,
		PoolSize:     opts.PoolSize,
		MinIdleConns: opts.MinIdleConns,
		MaxRetries:   opts.MaxRetries,
	}
	switch mode {
	case "", ModeStandalone:
		return redis.NewClient(opts), nil
	case ModeSentinel:
		if masterName == "" || len(addrs) == 0 {
			return nil, errors.New("state: sentinel mode needs a master name and sentinel addresses")
		}
		return redis.NewFailoverClient(u.Failover()), nil
	case ModeCluster:
		if len(addrs) == 0 {
			return nil, errors.New("state: cluster mode needs seed addresses")
		}
		if opts.DB != 0 {
			return nil, fmt.Errorf("state: redis cluster has only database 0, the url names %d", opts.DB)
		}
		co := u.Cluster()
		// go-redis learns the slot map again on a MOVED reply and otherwise
		// once a minute. A master killed outright sends no MOVED: its slots'
		// commands fail to dial it until the map is read again, so the
		// partitions there would stall for a minute after its replica was
		// promoted. Reading the map every clusterReload bounds that.
		co.ClusterStateReloadInterval = clusterReload
		return redis.NewClusterClient(co), nil
	default:
		return nil, fmt.Errorf("state: unknown redis mode %q (want %s, %s or %s)", mode, ModeStandalone, ModeSentinel, ModeCluster)
	}
}

// Redis is the production Store. Every key of a partition carries the
// partition's scope as hash tag, <prefix>:{<scope>}:…, so each script
// touches one cluster slot:
//
//	c@<g>             hash entity key → entity state, generation g of the
//	                  states: those last written in [g, g+1) × period
//	                  (statePeriod: stateTTL / 2) on the partition's clock
//	                  (Redis.clock), expiring stateTTL after the
//	                  generation's end; a state is in one generation
//	c@old             the time on that clock until which states of the
//	                  earlier layout, one key c:<entity key> each, may
//	                  remain (0: none), read where no generation holds the
//	                  state until then
//	timers:<b>        zset entity key → due (Unix ms), for the entities whose
//	                  key hashes to bucket b (timerBuckets of them)
//	timers:first      zset bucket → at most the bucket's first due: exact for
//	                  the first entry, which Apply and Claim correct
//	offset            last applied input offset
//	owner             fencing token of the owning consumer generation
//	outbox            hash entry key → a batch's alert records (OutboxKey,
//	                  framed as outbox.go says; an earlier version's
//	                  entries: record key → payload)
//	outbox:lease      zset entry key → lease end (Unix ms)
//	firing            hash alert id → payload of the alerts firing now
//	d:<day>           hash of the day's counters of every shop (expires 4 days
//	                  after its last change); fields <len(shop)>:<shop>:<name>
//	n                 hash of every shop's current counters, fields likewise
//	w:<shop>          zset buyer → wait start (Unix ms), while the shop's
//	                  level is 0
//	w:<shop>:<b>      the same split into 2^level buckets by buyer hash
//	wl                hash shop → level, raised when a bucket outgrows
//	                  zsetCompact members (absent: 0)
//	shops             set of shops seen
//
// and, outside any partition, <prefix>:scopes (every claimed scope) and
// <prefix>:lease:<name>. The timer and waiting sets are split so that each
// stays a small, listpack-encoded sorted set (see layout.go).
type Redis struct {
	// OnError, when set, is called with the operation's name ("claim",
	// "load", "apply", "outbox", "scopes", "figures", "lease", "release",
	// "ping") each time a Redis call fails. Fencing and stale batches are
	// not failures.
	OnError func(op string)

	client   redis.UniversalClient
	prefix   string
	stateTTL time.Duration
	// now is the clock that picks the generation of entity states written
	// and read, with the partition's phase (clock; the tests' to move).
	now func() time.Time

	// written holds, per scope, when this writer last made each write it
	// may skip for a while (see encodeBatch's need).
	mu      sync.Mutex
	written map[string]map[string]time.Time
}

// NewRedis keeps state in client under keys starting with prefix; entity
// states expire stateTTL after their last write (never when 0).
func NewRedis(client redis.UniversalClient, prefix string, stateTTL time.Duration) *Redis {
	return &Redis{client: client, prefix: prefix, stateTTL: stateTTL, now: time.Now, written: map[string]map[string]time.Time{}}
}

var _ Store = (*Redis)(nil)

// base is the start of every key of scope.
func (r *Redis) base(scope string) string { return r.prefix + ":{" + scope + "}:" }

// clock is scope's clock of generations of entity states (Unix s): the
// writer's, ahead by the partition's phase (statePhase). Every script of
// the partition is given it, so they agree.
func (r *Redis) clock(scope string) int64 {
	return r.now().Unix() + statePhase(scope, statePeriod(seconds(r.stateTTL)))
}

// seconds rounds d up to whole seconds, the unit of EXPIRE.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// fail wraps a Redis error with the operation and scope, and counts it.
func (r *Redis) fail(op, scope string, err error) error {
	if r.OnError != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		r.OnError(op)
	}
	if scope == "" {
		return fmt.Errorf("state: %s: %w", op, err)
	}
	return fmt.Errorf("state: %s %s: %w", op, scope, err)
}

// Ping reports whether Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.fail("ping", "", err)
	}
	return nil
}

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, scope string, token int64) (Claimed, error) {
	return r.claim(ctx, scope, token, "0")
}

// Takeover implements Store.
func (r *Redis) Takeover(ctx context.Context, scope string, token int64) (Claimed, error) {
	return r.claim(ctx, scope, token, "1")
}

func (r *Redis) claim(ctx context.Context, scope string, token int64, force string) (Claimed, error) {
	r.forget(scope)
	b := r.base(scope)
	res, err := claimScript.Run(ctx, r.client, []string{b + "owner", b + "offset", b + "timers:first", b + "timers", b + oldStatesKey},
		token, force, b, r.clock(scope), seconds(r.stateTTL)).Int64Slice()
	if err != nil {
		return Claimed{}, r.fail("claim", scope, err)
	}
	if len(res) < 2 || res[0] != replyOK && res[0] != replyFenced {
		return Claimed{}, r.fail("claim", scope, fmt.Errorf("unexpected reply %v", res))
	}
	if res[0] == replyFenced {
		return Claimed{}, fmt.Errorf("state: claim %s with token %d (owner %d): %w", scope, token, res[1], ErrFenced)
	}
	if len(res) != 3 {
		return Claimed{}, r.fail("claim", scope, fmt.Errorf("unexpected reply %v", res))
	}
	// The registry of scopes lives outside the partition's slot, so it
	// cannot be in the script; adding it again is harmless.
	if err := r.client.SAdd(ctx, r.prefix+":scopes", scope).Err(); err != nil {
		return Claimed{}, r.fail("claim", scope, err)
	}
	return Claimed{Offset: res[1], NextDue: res[2]}, nil
}

// Load implements Store.
func (r *Redis) Load(ctx context.Context, scope string, keys []string, dueBy int64, limit int) (Loaded, error) {
	b := r.base(scope)
	ttl := seconds(r.stateTTL)
	args := make([]any, 0, 6+len(keys))
	args = append(args, b, dueBy, limit, r.clock(scope), statePeriod(ttl), ttl)
	for _, k := range keys {
		args = append(args, k)
	}
	v, err := loadScript.Run(ctx, r.client, []string{b + "timers:first", b + oldStatesKey}, args...).Slice()
	if err != nil {
		return Loaded{}, r.fail("load", scope, err)
	}
	if len(v) != 3 {
		return Loaded{}, r.fail("load", scope, fmt.Errorf("unexpected reply of %d elements", len(v)))
	}
	next, _ := v[0].(int64)
	out, err := loaded(keys, next, v[1], v[2])
	if err != nil {
		return Loaded{}, r.fail("load", scope, err)
	}
	return out, nil
}

// loaded reads load.lua's reply (and apply.lua's next load): the due keys,
// then the states of keys followed by those of the due keys.
func loaded(keys []string, nextDue int64, due, states any) (Loaded, error) {
	dueV, _ := due.([]any)
	statesV, _ := states.([]any)
	if len(statesV) != len(keys)+len(dueV) {
		return Loaded{}, fmt.Errorf("reply has %d states for %d keys", len(statesV), len(keys)+len(dueV))
	}
	out := Loaded{NextDue: nextDue, States: make(map[string][]byte, len(statesV))}
	if len(dueV) > 0 {
		out.Due = make([]string, len(dueV))
		for i, d := range dueV {
			out.Due[i], _ = d.(string)
		}
	}
	for i, s := range statesV {
		str, ok := s.(string)
		if !ok {
			continue // no such state
		}
		k := ""
		if i < len(keys) {
			k = keys[i]
		} else {
			k = out.Due[i-len(keys)]
		}
		out.States[k] = []byte(str)
	}
	return out, nil
}

// Apply implements Store. The whole batch is one EVALSHA.
func (r *Redis) Apply(ctx context.Context, scope string, b *Batch) (int64, error) {
	a, err := r.ApplyLoad(ctx, scope, b, nil)
	return a.NextDue, err
}

// ApplyLoad implements Store: apply.lua, with its next-load section when
// next is set; one EVALSHA.
func (r *Redis) ApplyLoad(ctx context.Context, scope string, b *Batch, next *LoadRequest) (Applied, error) {
	base := r.base(scope)
	keys := []string{base + "owner", base + "offset", base + "timers:first", base + "outbox", base + "outbox:lease", base + "shops",
		base + oldStatesKey}
	now := r.now()
	var made []string
	enc := encodeBatch(b, base, r.clock(scope), seconds(r.stateTTL), seconds(dayTTL), func(what string) bool {
		r.mu.Lock()
		at, ok := r.written[scope][what]
		r.mu.Unlock()
		if ok && now.Sub(at) < rewriteAfter {
			return false
		}
		made = append(made, what)
		return true
	})
	if next != nil {
		enc.args = append(enc.args, next.DueBy, next.Limit, len(next.Keys))
		for _, k := range next.Keys {
			enc.args = append(enc.args, k)
		}
	}
	v, err := applyScript.Run(ctx, r.client, keys, enc.args...).Slice()
	enc.release()
	if err != nil {
		return Applied{}, r.fail("apply", scope, err)
	}
	if len(v) < 2 {
		return Applied{}, r.fail("apply", scope, fmt.Errorf("unexpected reply %v", v))
	}
	code, _ := v[0].(int64)
	arg, _ := v[1].(int64)
	switch {
	case code == replyFenced:
		return Applied{}, fmt.Errorf("state: apply %s with token %d (owner %d): %w", scope, b.Token, arg, ErrFenced)
	case code == replyStale:
		return Applied{}, fmt.Errorf("state: apply %s offset %d (applied %d): %w", scope, b.Offset, arg, ErrStale)
	case code == replyBehind:
		return Applied{}, fmt.Errorf("state: apply %s: %w", scope, &BehindError{Stored: arg})
	case code == replyLost:
		return Applied{}, fmt.Errorf("state: apply %s offset %d: %w", scope, b.Offset, ErrLost)
	case code != replyOK || next == nil && len(v) != 3 || next != nil && len(v) != 6:
		return Applied{}, r.fail("apply", scope, fmt.Errorf("unexpected reply %v", v))
	}
	if len(made) > 0 {
		r.wrote(scope, made, now)
	}
	out := Applied{NextDue: arg}
	if next == nil {
		return out, nil
	}
	if out.Loaded, err = loaded(next.Keys, arg, v[3], v[5]); err != nil {
		return Applied{}, r.fail("apply", scope, err)
	}
	dueAt, _ := v[4].([]any)
	if len(dueAt) != len(out.Loaded.Due) {
		return Applied{}, r.fail("apply", scope, fmt.Errorf("reply has %d due times for %d due keys", len(dueAt), len(out.Loaded.Due)))
	}
	if len(dueAt) > 0 {
		out.DueAt = make([]int64, len(dueAt))
		for i, d := range dueAt {
			out.DueAt[i], _ = d.(int64)
		}
	}
	return out, nil
}

// wrote records that the writes what of scope were made at now,
// forgetting those old enough to be made again anyway.
func (r *Redis) wrote(scope string, what []string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.written[scope]
	if m == nil {
		m = map[string]time.Time{}
		r.written[scope] = m
	}
	if len(m) > 1024 {
		for k, at := range m {
			if now.Sub(at) >= rewriteAfter {
				delete(m, k)
			}
		}
	}
	for _, k := range what {
		m[k] = now
	}
}

// forget makes the next batches of scope make every skippable write again.
func (r *Redis) forget(scope string) {
	r.mu.Lock()
	delete(r.written, scope)
	r.mu.Unlock()
}

// leaseEnd is now + lease in Unix ms, saturating instead of overflowing.
func leaseEnd(now int64, lease time.Duration) int64 {
	ms := lease.Milliseconds()
	if ms > 0 && now > math.MaxInt64-ms {
		return math.MaxInt64
	}
	return now + ms
}

// Outbox implements Store.
func (r *Redis) Outbox(ctx context.Context, scope string, token int64, now int64, lease time.Duration, limit int) ([]OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	limit = min(limit, maxOutboxLimit)
	b := r.base(scope)
	v, err := outboxScript.Run(ctx, r.client, []string{b + "owner", b + "outbox", b + "outbox:lease"},
		token, now, leaseEnd(now, lease), limit).Slice()
	if err != nil {
		return nil, r.fail("outbox", scope, err)
	}
	if len(v) != 2 {
		return nil, r.fail("outbox", scope, fmt.Errorf("unexpected reply of %d elements", len(v)))
	}
	code, _ := v[0].(int64)
	if code == replyFenced {
		return nil, fmt.Errorf("state: outbox %s with token %d (owner %v): %w", scope, token, v[1], ErrFenced)
	}
	if code == replyLost {
		return nil, fmt.Errorf("state: outbox %s: %w", scope, ErrLost)
	}
	pairs, _ := v[1].([]any)
	if code != replyOK || len(pairs)%2 != 0 {
		return nil, r.fail("outbox", scope, fmt.Errorf("unexpected reply %v", v))
	}
	out := make([]OutboxEntry, 0, len(pairs)/2)
	var bad []error
	for i := 0; i < len(pairs); i += 2 {
		k, _ := pairs[i].(string)
		p, _ := pairs[i+1].(string)
		e, err := outboxEntry(k, []byte(p))
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, e)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("state: outbox %s: %w: %w", scope, ErrOutboxEntry, errors.Join(bad...))
	}
	return out, nil
}

// Scopes implements Store; the scopes come sorted.
func (r *Redis) Scopes(ctx context.Context) ([]string, error) {
	s, err := r.client.SMembers(ctx, r.prefix+":scopes").Result()
	if err != nil {
		return nil, r.fail("scopes", "", err)
	}
	slices.Sort(s)
	return s, nil
}

// Figures implements Store in two pipelined round trips: the shops of
// every scope, then each scope's current and day counters and its shops'
// waiting buyers (one script per scope over the waiting-set buckets).
func (r *Redis) Figures(ctx context.Context, scopes []string, dayOf func(shop string) string) (map[string]*ShopFigures, error) {
	out := map[string]*ShopFigures{}
	if len(scopes) == 0 {
		return out, nil
	}
	pipe := r.client.Pipeline()
	members := make([]*redis.StringSliceCmd, len(scopes))
	for i, s := range scopes {
		members[i] = pipe.SMembers(ctx, r.base(s)+"shops")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.fail("figures", "", err)
	}

	// Per scope: its current-counter hash, one day hash per distinct
	// "today" of its shops, and its shops' waiting buyers (waiting.lua: a
	// shop's waiting set can be many buckets).
	type counters struct {
		day  string // "" for the current counters
		hash *redis.MapStringStringCmd
	}
	type wait struct {
		shops []string
		cmd   *redis.Cmd
	}
	var reads []counters
	var waits []wait
	pipe = r.client.Pipeline()
	days := map[string]string{}
	for i, s := range scopes {
		b := r.base(s)
		sets := members[i].Val()
		if len(sets) == 0 {
			continue
		}
		// The members are shops and agents' waiting sets (WaitOp.Set).
		shops := make([]string, 0, len(sets))
		for _, m := range sets {
			if _, _, agentSet := detectors.SplitAgentSet(m); !agentSet {
				shops = append(shops, m)
			}
		}
		reads = append(reads, counters{hash: pipe.HGetAll(ctx, b+"n")})
		read := map[string]bool{}
		for _, shop := range shops {
			if out[shop] == nil {
				out[shop] = &ShopFigures{Shop: shop, Day: map[string]int64{}, Now: map[string]int64{}}
			}
			day, ok := days[shop]
			if !ok {
				day = dayOf(shop)
				days[shop] = day
			}
			if !read[day] {
				read[day] = true
				reads = append(reads, counters{day: day, hash: pipe.HGetAll(ctx, b+"d:"+day)})
			}
		}
		args := make([]any, 0, 1+len(sets))
		args = append(args, b)
		for _, set := range sets {
			args = append(args, set)
		}
		// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and
		// the script is short and read once per scope and report.
		waits = append(waits, wait{shops: sets, cmd: waitingScript.Eval(ctx, pipe, []string{b + "wl"}, args...)})
	}
	if len(reads) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.fail("figures", "", err)
	}
	for _, rd := range reads {
		for k, v := range rd.hash.Val() {
			shop, field, err := splitCounterField(k)
			if err != nil {
				return nil, r.fail("figures", "", err)
			}
			f := out[shop]
			if f == nil || rd.day != "" && days[shop] != rd.day {
				continue // another shop's day, or a shop outside the scopes read
			}
			dst, isMax := f.Day, false
			if rd.day == "" {
				dst, isMax = f.Now, detectors.IsMaxField(field)
			}
			if err := addCounter(dst, field, v, isMax); err != nil {
				return nil, r.fail("figures", "", fmt.Errorf("shop %s: %w", shop, err))
			}
		}
	}
	for _, w := range waits {
		v, err := w.cmd.Int64Slice()
		if err != nil || len(v) != 2*len(w.shops) {
			return nil, r.fail("figures", "", fmt.Errorf("waiting buyers: reply %v, %v", v, err))
		}
		for k, set := range w.shops {
			if shop, agent, ok := detectors.SplitAgentSet(set); ok {
				if f := out[shop]; f != nil {
					f.addAgentWaits(agent, v[2*k], v[2*k+1])
				}
				continue
			}
			f := out[set]
			f.Waiting += v[2*k]
			f.OldestStart = oldest(f.OldestStart, v[2*k+1])
		}
	}
	return out, nil
}

// oldest is the earlier of two wait starts, 0 meaning none.
func oldest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// addCounter adds a counter's value into dst, or keeps the larger one when
// the field is a maximum.
func addCounter(dst map[string]int64, field, value string, isMax bool) error {
	v, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return fmt.Errorf("counter %s: %w", field, err)
	}
	if isMax {
		dst[field] = max(dst[field], v)
	} else {
		dst[field] += v
	}
	return nil
}

// Lease implements Store.
func (r *Redis) Lease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	ms := max(ttl.Milliseconds(), 1)
	n, err := leaseScript.Run(ctx, r.client, []string{r.prefix + ":lease:" + name}, holder, ms).Int64()
	if err != nil {
		return false, r.fail("lease", "", fmt.Errorf("%s: %w", name, err))
	}
	return n == 1, nil
}

// ReleaseLease implements Store.
func (r *Redis) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := releaseScript.Run(ctx, r.client, []string{r.prefix + ":lease:" + name}, holder).Err(); err != nil {
		return r.fail("release", "", fmt.Errorf("%s: %w", name, err))
	}
	return nil
}
