package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/internal/testenv"
)

func newClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisStore(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	var n atomic.Int64
	// One server, a prefix of its own per case.
	testStore(t, func(*testing.T) Store { return NewRedis(c, "rw"+strconv.FormatInt(n.Add(1), 10), 72*time.Hour) })
}

func TestRedisShopRules(t *testing.T) {
	testShopRules(t, NewRedis(newClient(t, testenv.Redis(t)), "rw", 72*time.Hour))
	// The demo's embedded Redis runs the same scripts.
	m := miniredis.RunT(t)
	testShopRules(t, NewRedis(newClient(t, "redis://"+m.Addr()), "rw", 72*time.Hour))
}

// TestMiniredisRunsTheSameScripts runs the scripts on the embedded Redis the
// demo falls back to (Lua 5.1 on gopher-lua). Its keys do not expire by
// themselves, so the lease takeover case is left to the real server.
func TestMiniredisRunsTheSameScripts(t *testing.T) {
	for _, c := range storeCases {
		if c.name == "lease" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			// Its Lua is far slower than Redis's (under -race, seconds for
			// a batch that splits a waiting set): a read timeout would make
			// the client send the batch again, and find it applied.
			c.run(t, NewRedis(newClient(t, "redis://"+m.Addr()+"?read_timeout=1m"), "rw", 72*time.Hour))
		})
	}
}

func TestRedisKeyLayout(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	setClock(s, "chat.0", 1_764_000_000)
	claim(t, s, "chat.0", 1)
	apply(t, s, "chat.0", fullBatch(1, 1))
	if _, err := s.Lease(ctx, "reporter", "me", time.Minute); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{
		"rw:lease:reporter",
		"rw:scopes",
		// 1,764,000,000 s on the partition's clock / 36 h: generation
		// 13,611 of both states.
		"rw:{chat.0}:c@13611",
		"rw:{chat.0}:c@old",
		"rw:{chat.0}:d:" + testDay,
		"rw:{chat.0}:n",
		"rw:{chat.0}:offset",
		"rw:{chat.0}:outbox",
		"rw:{chat.0}:outbox:lease",
		"rw:{chat.0}:owner",
		"rw:{chat.0}:shops",
		"rw:{chat.0}:" + timerKey(timerBucket("c1")),
		"rw:{chat.0}:" + timerKey(timerBucket("c2")),
		"rw:{chat.0}:timers:first",
		"rw:{chat.0}:w:s1",
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys:\n got  %q\n want %q", keys, want)
	}
}

// TestRedisTTLs: the keys that expire do so when they should. A
// generation of entity states lives stateTTL after the end of its period:
// states written at its start stay a period (36 h) longer than stateTTL,
// those written at its end stateTTL.
func TestRedisTTLs(t *testing.T) {
	const gen = 13611 // of 1,764,000,000 s with 36 h periods
	start, end := int64(gen*36*3600), int64((gen+1)*36*3600-1)
	cases := []struct {
		key      string
		stateTTL time.Duration
		now      int64         // on the partition's clock; 0: the wall clock
		want     time.Duration // -1: no expiry
	}{
		{"rw:{chat.0}:c@13611", 72 * time.Hour, start, 108 * time.Hour},
		{"rw:{chat.0}:c@13611", 72 * time.Hour, end, 72*time.Hour + time.Second},
		// One per partition, and it must not vanish under a live owner.
		{"rw:{chat.0}:owner", 72 * time.Hour, 0, -1},
		{"rw:{chat.0}:d:" + testDay, 72 * time.Hour, 0, 96 * time.Hour},
		{"rw:{chat.0}:n", 72 * time.Hour, 0, -1},
		{"rw:{chat.0}:timers:first", 72 * time.Hour, 0, -1},
		{"rw:{chat.0}:" + timerKey(timerBucket("c1")), 72 * time.Hour, 0, -1},
		{"rw:{chat.0}:offset", 72 * time.Hour, 0, -1},
		{"rw:{chat.0}:c@0", 0, start, -1},
		{"rw:{chat.0}:owner", 0, start, -1},
		{"rw:{chat.0}:c@old", 72 * time.Hour, start, -1},
	}
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	for _, tc := range cases {
		if err := c.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		s := NewRedis(c, "rw", tc.stateTTL)
		if tc.now != 0 {
			setClock(s, "chat.0", tc.now)
		}
		claim(t, s, "chat.0", 1)
		apply(t, s, "chat.0", fullBatch(1, 1))
		got, err := c.TTL(ctx, tc.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if tc.want < 0 {
			if got != -1 {
				t.Errorf("state TTL %v: TTL %s = %v, want none", tc.stateTTL, tc.key, got)
			}
			continue
		}
		if got > tc.want || got < tc.want-5*time.Second {
			t.Errorf("state TTL %v: TTL %s = %v, want %v", tc.stateTTL, tc.key, got, tc.want)
		}
	}
}

// TestRedisNoScriptAfterRestart restarts the server between two batches:
// its script cache is empty and EVALSHA answers NOSCRIPT.
func TestRedisNoScriptAfterRestart(t *testing.T) {
	srv := testenv.RedisServer(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	s := NewRedis(c, "rw", time.Hour)
	claim(t, s, "chat.0", 1)
	apply(t, s, "chat.0", fullBatch(1, 1))

	srv.Restart()
	exists, err := c.ScriptExists(ctx, applyScript.Hash()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if exists[0] {
		t.Fatal("the apply script survived the restart; the test would prove nothing")
	}
	b := fullBatch(1, 2)
	b.States["c1"] = []byte("after restart")
	// The script runs again, and finds the partition's state gone.
	if _, err := s.Apply(ctx, "chat.0", b); !errors.Is(err, ErrLost) {
		t.Fatalf("Apply after a restart without persistence: %v, want ErrLost", err)
	}
	claim(t, s, "chat.0", 1)
	apply(t, s, "chat.0", b)
	if l := load(t, s, "chat.0", []string{"c1"}, 0, 0); string(l.States["c1"]) != "after restart" {
		t.Fatalf("c1 after restart = %q", l.States["c1"])
	}
	// Every other script recovers as well.
	srv.Restart()
	if _, err := s.Outbox(ctx, "chat.0", 1, 1<<50, time.Second, 10); !errors.Is(err, ErrLost) {
		t.Fatalf("Outbox after restart: %v, want ErrLost", err)
	}
	if ok, err := s.Lease(ctx, "reporter", "me", time.Minute); err != nil || !ok {
		t.Fatalf("Lease after restart: %v %v", ok, err)
	}
	if err := s.ReleaseLease(ctx, "reporter", "me"); err != nil {
		t.Fatalf("ReleaseLease after restart: %v", err)
	}
	if _, err := s.Claim(ctx, "chat.0", 1); err != nil {
		t.Fatalf("Claim after restart: %v", err)
	}
}

// TestRedisErrors checks that failures name the operation and scope, are
// counted, and are not mistaken for fencing.
func TestRedisErrors(t *testing.T) {
	srv := testenv.RedisServer(t)
	opts, _ := redis.ParseURL(srv.URL)
	opts.MaxRetries = -1
	opts.DialTimeout = 200 * time.Millisecond
	c := redis.NewClient(opts)
	defer c.Close()
	s := NewRedis(c, "rw", time.Hour)
	var failed []string
	s.OnError = func(op string) { failed = append(failed, op) }
	claim(t, s, "chat.0", 1)
	srv.Kill()

	ctx := context.Background()
	_, err := s.Apply(ctx, "chat.0", fullBatch(1, 1))
	if err == nil || !strings.Contains(err.Error(), "apply chat.0") || errors.Is(err, ErrFenced) || errors.Is(err, ErrStale) {
		t.Fatalf("Apply with Redis down: err = %v, want a wrapped apply error", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping with Redis down succeeded")
	}
	if _, err := s.Figures(ctx, []string{"chat.0"}, func(string) string { return testDay }); err == nil {
		t.Fatal("Figures with Redis down succeeded")
	}
	if want := []string{"apply", "ping", "figures"}; !slices.Equal(failed, want) {
		t.Fatalf("OnError saw %v, want %v", failed, want)
	}
}

// TestRedisLargeBatch goes past the number of arguments Lua can unpack at
// once.
func TestRedisLargeBatch(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	s := NewRedis(c, "rw", time.Hour)
	claim(t, s, "chat.0", 1)
	const n = 9000
	b := &Batch{Token: 1, Offset: 1, States: map[string][]byte{}, Timers: map[string]int64{}, Now: 1, Lease: time.Second}
	for i := range n {
		k := fmt.Sprintf("k%05d", i)
		b.States[k] = []byte("v")
		b.Timers[k] = int64(1000 + i)
		b.Waits = append(b.Waits, detectors.WaitOp{Shop: "s1", Buyer: k, Start: int64(1 + i), Add: true})
		b.Outbox = append(b.Outbox, Delivery{Key: k + ":firing", Payload: []byte("p" + k)})
		b.Acks = append(b.Acks, "gone-"+k)
	}
	if next := apply(t, s, "chat.0", b); next != 1000 {
		t.Fatalf("next due = %d, want 1000", next)
	}
	b2 := &Batch{Token: 1, Offset: 2, States: map[string][]byte{}, Timers: map[string]int64{}}
	for i := range n - 1 {
		k := fmt.Sprintf("k%05d", i)
		b2.States[k] = nil
		b2.Timers[k] = 0
		b2.Waits = append(b2.Waits, detectors.WaitOp{Shop: "s1", Buyer: k})
		b2.Outbox = append(b2.Outbox, Delivery{Key: k + ":resolved:replied", Payload: []byte("r")})
		b2.Acks = append(b2.Acks, "gone-"+k)
	}
	b2.Acks = append(b2.Acks, OutboxKey(b))
	firing, err := s.Firing(context.Background(), []string{"chat.0"})
	if err != nil || len(firing) != n {
		t.Fatalf("%d alerts firing after the first batch (%v), want %d", len(firing), err, n)
	}
	if next := apply(t, s, "chat.0", b2); next != 1000+n-1 {
		t.Fatalf("next due = %d, want %d", next, 1000+n-1)
	}
	last := fmt.Sprintf("k%05d", n-1)
	l := load(t, s, "chat.0", []string{"k00000", last}, 1<<50, 5000)
	if !reflect.DeepEqual(l.Due, []string{last}) || len(l.States) != 1 || l.States[last] == nil {
		t.Fatalf("after deleting all but %s: due %v, states %d", last, l.Due, len(l.States))
	}
	f := figures(t, s, []string{"chat.0"})["s1"]
	if f.Waiting != 1 || f.OldestStart != n {
		t.Fatalf("waiting %d oldest %d, want 1 and %d", f.Waiting, f.OldestStart, n)
	}
	firing, err = s.Firing(context.Background(), []string{"chat.0"})
	if err != nil || len(firing) != 1 || string(firing[0]) != "p"+last {
		t.Fatalf("alerts firing after all but %s resolved: %q, %v", last, firing, err)
	}
	ds, err := s.Outbox(context.Background(), "chat.0", 1, 1<<50, time.Second, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Key != OutboxKey(b2) || len(ds[0].Records) != n-1 {
		t.Fatalf("outbox after the first batch's ack: %d entries, want only the second batch's %d records", len(ds), n-1)
	}
}

var dialCases = []struct {
	name    string
	url     string
	mode    string
	addrs   []string
	master  string
	want    string // client type, or "" for an error
	wantErr string
}{
	{name: "standalone", url: "redis://127.0.0.1:1/2", mode: "standalone", want: "*redis.Client"},
	{name: "mode defaults to standalone", url: "redis://127.0.0.1:1/0", want: "*redis.Client"},
	{name: "sentinel", url: "redis://:pw@ignored:1/3", mode: "sentinel", addrs: []string{"127.0.0.1:26379"}, master: "m", want: "*redis.Client"},
	{name: "sentinel without master", url: "redis://127.0.0.1:1/0", mode: "sentinel", addrs: []string{"127.0.0.1:26379"}, wantErr: "master name"},
	{name: "cluster", url: "redis://127.0.0.1:1/0", mode: "cluster", addrs: []string{"127.0.0.1:7000"}, want: "*redis.ClusterClient"},
	{name: "cluster without seeds", url: "redis://127.0.0.1:1/0", mode: "cluster", wantErr: "seed addresses"},
	{name: "cluster with a database", url: "redis://127.0.0.1:1/1", mode: "cluster", addrs: []string{"127.0.0.1:7000"}, wantErr: "only database 0"},
	{name: "bad url", url: "http://127.0.0.1:1", mode: "standalone", wantErr: "parsing redis url"},
	{name: "unknown mode", url: "redis://127.0.0.1:1/0", mode: "ring", wantErr: `unknown redis mode "ring"`},
}

func TestDial(t *testing.T) {
	for _, tc := range dialCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(tc.url, tc.mode, tc.addrs, tc.master)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := fmt.Sprintf("%T", c); got != tc.want {
				t.Fatalf("client is %s, want %s", got, tc.want)
			}
		})
	}
	// A standalone client reaches the server.
	c, err := Dial(testenv.Redis(t), "standalone", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := NewRedis(c, "rw", time.Hour).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// typicalBatch is a chat batch of events records as the pipeline writes it:
// most conversations with a timer, figure deltas per event (summed by
// Apply), agents' activity, some waits starting and ending, an alert and
// an ack per hundred records.
func typicalBatch(rnd *rand.Rand, token, offset int64, events int) *Batch {
	const shops = 10
	b := &Batch{Token: token, Offset: offset, Now: 1_764_000_000_000, Lease: 30 * time.Second,
		States: map[string][]byte{}, Timers: map[string]int64{}}
	state := []byte(strings.Repeat("s", 200))
	for i := range events {
		shop := "shop" + strconv.Itoa(rnd.IntN(shops))
		conv := shop + "|buyer" + strconv.Itoa(rnd.IntN(25))
		b.States[conv] = state
		if rnd.IntN(5) == 0 {
			b.Timers[conv] = 0
		} else {
			b.Timers[conv] = b.Now + int64(rnd.IntN(300_000))
		}
		agent := "a" + strconv.Itoa(rnd.IntN(5))
		if i%2 == 0 {
			b.Activity = append(b.Activity, detectors.Activity{Shop: shop, Agent: agent, At: b.Now + int64(i)})
		}
		b.Figures = append(b.Figures,
			detectors.FigureDelta{Shop: shop, Day: testDay, Field: detectors.FieldMessages, Delta: 1},
			detectors.FigureDelta{Shop: shop, Day: testDay, Field: detectors.AgentField(agent, detectors.FieldMessages), Delta: 1})
		if i%3 == 0 {
			b.Figures = append(b.Figures, detectors.FigureDelta{Shop: shop, Day: testDay, Field: detectors.FieldAnswered30, Delta: 1})
		}
		if i%4 == 0 {
			b.Waits = append(b.Waits, detectors.WaitOp{Shop: shop, Buyer: conv, Start: b.Now, Add: rnd.IntN(2) == 0})
			b.Figures = append(b.Figures, detectors.FigureDelta{Shop: shop, Field: detectors.AgentField(agent, detectors.FieldWaiting), Delta: 1})
		}
	}
	payload := []byte(strings.Repeat("p", 400))
	for i := range max(events/100, 1) {
		b.Outbox = append(b.Outbox, Delivery{Key: fmt.Sprintf("alert-%d-%d/firing", offset, i), Payload: payload})
		b.Acks = append(b.Acks, fmt.Sprintf("alert-%d-%d/firing", offset-500, i))
	}
	return b
}

// commandCalls sums the calls of data commands since the last CONFIG
// RESETSTAT: what the scripts ran, not the scripts or this bookkeeping.
func commandCalls(t testing.TB, c *redis.Client) int64 {
	skip := map[string]bool{"evalsha": true, "eval": true, "info": true, "config|resetstat": true,
		"config": true, "ping": true, "hello": true, "client|setinfo": true, "client": true, "script": true}
	var n int64
	for name, v := range commandStats(t, c) {
		if !skip[name] {
			n += v
		}
	}
	return n
}

// commandStats reads INFO commandstats: calls per command since the last
// CONFIG RESETSTAT.
func commandStats(t testing.TB, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = v
	}
	return out
}

// maxCommandsPerEvent is the budget of Redis commands per record of a
// typical batch.
const maxCommandsPerEvent = 4

// commandBatchSizes are the batch shapes the budget holds for: replaying a
// backlog (full batches) and live traffic at 20,000 events/s over twelve
// partitions (about ten records a batch).
var commandBatchSizes = []int{500, 10}

func TestApplyCommandsPerEvent(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	claim(t, s, "chat.0", 1)
	rnd := rand.New(rand.NewPCG(1, 2))
	apply(t, s, "chat.0", typicalBatch(rnd, 1, 0, 10)) // loads the script
	offset := int64(1)
	for _, events := range commandBatchSizes {
		if err := c.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		const batches = 20
		for range batches {
			offset += int64(events)
			apply(t, s, "chat.0", typicalBatch(rnd, 1, offset, events))
		}
		// The script's own EVALSHA counts too.
		per := float64(commandCalls(t, c)+batches) / float64(batches*events)
		t.Logf("Redis commands per event in %d-record batches: %.2f", events, per)
		if per > maxCommandsPerEvent {
			t.Errorf("%.2f Redis commands per event in %d-record batches, budget %d", per, events, maxCommandsPerEvent)
		}
	}
}

// BenchmarkApply500 builds and writes 500-record batches to a real
// redis-server, one EVALSHA each.
func BenchmarkApply500(b *testing.B) {
	c := newClient(b, testenv.Redis(b))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	if _, err := s.Claim(ctx, "chat.0", 1); err != nil {
		b.Fatal(err)
	}
	// Building the batch's maps is the pipeline's work, not Apply's:
	// reuse a few prepared ones with fresh offsets.
	rnd := rand.New(rand.NewPCG(1, 2))
	batches := make([]*Batch, 16)
	for i := range batches {
		batches[i] = typicalBatch(rnd, 1, 0, 500)
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	offset := int64(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bt := batches[i%len(batches)]
		offset += 500
		bt.Offset = offset
		if _, err := s.Apply(ctx, "chat.0", bt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := float64(offset / 500)
	b.ReportMetric(n*500/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(commandCalls(b, c))/(n*500), "cmds/event")
}

// TestRedisCounterCommands: a batch's figure deltas and agent activity cost
// one read and one write per counter hash (the day's and the current one),
// however many shops and fields they touch; only a day hash gets a TTL.
func TestRedisCounterCommands(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", time.Hour)
	claim(t, s, "chat.0", 1)
	b := &Batch{Token: 1, Offset: 1}
	for shop := range 5 {
		for _, field := range []string{"consulting", "messages", "breached:3m", "responses"} {
			b.Figures = append(b.Figures, detectors.FigureDelta{Shop: fmt.Sprintf("s%d", shop), Day: testDay, Field: field, Delta: 1})
		}
		b.Figures = append(b.Figures, detectors.FigureDelta{Shop: fmt.Sprintf("s%d", shop), Field: "a:a1:waiting", Delta: 1})
		b.Activity = append(b.Activity, detectors.Activity{Shop: fmt.Sprintf("s%d", shop), Agent: "a1", At: 1000})
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, "chat.0", b)
	calls := commandStats(t, c)
	want := map[string]int64{"hmget": 2, "hset": 2, "expire": 1, "hincrby": 0, "hget": 0}
	for cmd, n := range want {
		if calls[cmd] != n {
			t.Errorf("%s called %d times, want %d (all calls: %v)", cmd, calls[cmd], n, calls)
		}
	}
	// The day hash has its TTL: the next batches of the day give it none.
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	b.Offset = 2
	apply(t, s, "chat.0", b)
	if n := commandStats(t, c)["expire"]; n != 0 {
		t.Errorf("a second batch of the day called EXPIRE %d times, want 0", n)
	}
	f := figures(t, s, []string{"chat.0"})
	if got := f["s3"]; got.Day["breached:3m"] != 2 || got.Now["a:a1:waiting"] != 2 || got.Now["a:a1:last_human"] != 1000 {
		t.Fatalf("s3 figures after two batches = %+v", got)
	}
}

// Writes made once in a while (a shop's entry in the set of shops, a day
// hash's TTL) are skipped by later batches. When Redis loses the
// partition's keys, a batch writes nothing and says so (ErrLost); after the
// partition is claimed again they are made at once.
func TestRedisSkippedWritesAfterDataLoss(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", time.Hour)
	claim(t, s, "chat.0", 1)
	batch := func(offset int64) *Batch {
		return &Batch{Token: 1, Offset: offset, Figures: []detectors.FigureDelta{{Shop: "s1", Day: testDay, Field: "consulting", Delta: 1}}}
	}
	apply(t, s, "chat.0", batch(1))
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, "chat.0", batch(2))
	if calls := commandStats(t, c); calls["sadd"] != 0 || calls["expire"] != 0 {
		t.Fatalf("second batch of the shop and day: %d SADD, %d EXPIRE; want none", calls["sadd"], calls["expire"])
	}

	// Redis loses everything (a restart without persistence).
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, "chat.0", batch(3)); !errors.Is(err, ErrLost) {
		t.Fatalf("Apply after the loss: %v, want ErrLost", err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("after a batch that found the state lost, Redis holds %d keys (%v), want none", n, err)
	}
	claim(t, s, "chat.0", 1)
	apply(t, s, "chat.0", batch(3))
	if f := figures(t, s, []string{"chat.0"}); f["s1"].Day["consulting"] != 1 {
		t.Fatalf("after the loss, s1 = %+v; want its one new count listed", f["s1"])
	}
	if ttl, err := c.TTL(ctx, "rw:{chat.0}:d:"+testDay).Result(); err != nil || ttl <= 0 {
		t.Fatalf("day hash TTL after the loss = %v, %v; want one", ttl, err)
	}
}
