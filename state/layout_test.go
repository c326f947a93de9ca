package state

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/internal/testenv"
)

// TestRedisSetsStayCompact fills a partition with many timers and one shop
// with many waiting buyers: every timer bucket and waiting bucket stays a
// listpack, which is what makes a waiting conversation cheap in memory.
// About 5,000 waiting in one shop and partition take six splits of its set.
func TestRedisSetsStayCompact(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	s := NewRedis(c, "rw", 72*time.Hour)
	claim(t, s, "chat.0", 1)
	// The keys of one partition as Kafka's FNV-1a partitioner over 12
	// partitions picks them: their hashes share the low bits.
	next := 0
	for off := range int64(20) {
		b := &Batch{Token: 1, Offset: off, Timers: map[string]int64{}}
		for i := range 1000 {
			shop, buyer := "", ""
			for ; shop == ""; next++ {
				if s, w := fmt.Sprint("shop", next%4), fmt.Sprint("w", next); fnv32(s+"/"+w)%12 == 0 {
					shop, buyer = s, w
				}
			}
			b.Timers[shop+"/"+buyer] = 1_700_000_000_000 + off*1000 + int64(i)
			b.Waits = append(b.Waits, detectors.WaitOp{Shop: shop, Buyer: buyer, Start: 1_700_000_000_000 + off, Add: true})
		}
		apply(t, s, "chat.0", b)
	}
	keys, err := c.Keys(ctx, "rw:{chat.0}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var timers, waits, timerSets int64
	for _, k := range keys {
		suffix := strings.TrimPrefix(k, "rw:{chat.0}:")
		if !strings.HasPrefix(suffix, "timers:") && !strings.HasPrefix(suffix, "w:") || suffix == "timers:first" {
			continue
		}
		enc, err := c.ObjectEncoding(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.ZCard(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if enc != "listpack" {
			t.Errorf("%s: %d members encoded as %s, want listpack", k, n, enc)
		}
		if strings.HasPrefix(suffix, "w:") {
			waits += n
		} else {
			timers += n
			timerSets++
		}
	}
	// About 20 a bucket: every bucket is used, not a few overfull ones.
	if timerSets < timerBuckets*99/100 {
		t.Errorf("20000 timers fill %d of %d buckets", timerSets, timerBuckets)
	}
	if timers != 20_000 || waits != 20_000 {
		t.Fatalf("buckets hold %d timers and %d waiting buyers, want 20000 of each", timers, waits)
	}
	var waiting int64
	for shop, f := range figures(t, s, []string{"chat.0"}) {
		waiting += f.Waiting
		if f.OldestStart != 1_700_000_000_000 {
			t.Errorf("figures of %s: oldest %d, want 1700000000000", shop, f.OldestStart)
		}
	}
	if waiting != 20_000 {
		t.Errorf("figures: %d waiting, want 20000", waiting)
	}
	if lv, _ := c.HGet(ctx, "rw:{chat.0}:wl", "shop0").Int(); lv != 6 {
		t.Errorf("level of a shop with 5000 waiting = %d, want 6", lv)
	}
}

// TestRedisClaimMovesSingleTimerSet: a partition written by a version that
// kept all timers in one sorted set has them in buckets after the claim.
func TestRedisClaimMovesSingleTimerSet(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	ctx := context.Background()
	var old []string
	for i := range 3000 {
		k := fmt.Sprintf("shop-%d/büyer-%d", i%9, i) // not only ASCII: the hash works on bytes
		old = append(old, k)
		if err := c.ZAdd(ctx, "rw:{chat.3}:timers", redis.Z{Score: float64(10_000 + i), Member: k}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s := NewRedis(c, "rw", 72*time.Hour)
	if got := claim(t, s, "chat.3", 1); got.NextDue != 10_000 {
		t.Fatalf("claim next due = %d, want 10000", got.NextDue)
	}
	if n, _ := c.Exists(ctx, "rw:{chat.3}:timers").Result(); n != 0 {
		t.Fatal("the single timer set is still there")
	}
	if l := load(t, s, "chat.3", nil, 1<<50, 5000); !slices.Equal(l.Due, old) {
		t.Fatalf("due after the move: %d keys, want %d in due order", len(l.Due), len(old))
	}
	// Removals find them in the buckets the hash in Go names.
	rm := map[string]int64{}
	for _, k := range old {
		rm[k] = 0
	}
	if next := apply(t, s, "chat.3", &Batch{Token: 1, Offset: 1, Timers: rm}); next != 0 {
		t.Fatalf("next due after removing every timer = %d, want 0", next)
	}
	if keys, _ := c.Keys(ctx, "rw:{chat.3}:timers*").Result(); len(keys) != 0 {
		t.Fatalf("timer keys left: %v", keys)
	}
}

// TestScriptsShareLayoutConstants: the scripts spell out the layout's
// constants; they must be the ones Go uses.
func TestScriptsShareLayoutConstants(t *testing.T) {
	for _, c := range []struct{ script, name, text string }{
		{applyLua, "apply.lua", fmt.Sprintf("local zsetCompact = %d\n", zsetCompact)},
		{applyLua, "apply.lua", fmt.Sprintf("local maxWaitLevel = %d\n", maxWaitLevel)},
		{claimLua, "claim.lua", fmt.Sprintf("fnv32(old[k]) / %d)", 1<<(32-timerBucketBits))},
	} {
		if !strings.Contains(c.script, c.text) {
			t.Errorf("%s lacks %q", c.name, c.text)
		}
	}
}

// TestApplySectionsMatchLua: apply.lua reads its ARGV sections in the order
// of its section table; encodeBatch lays them out in the order of
// applySections. The two lists must be the same.
func TestApplySectionsMatchLua(t *testing.T) {
	table := regexp.MustCompile(`(?s)\nlocal sections = \{\n(.*?)\n\}\n`).FindStringSubmatch(applyLua)
	if table == nil {
		t.Fatal("apply.lua has no section table (local sections = {...})")
	}
	var lua []string
	for _, m := range regexp.MustCompile(`\{'([a-z ]+)', [A-Za-z]+\}`).FindAllStringSubmatch(table[1], -1) {
		lua = append(lua, m[1])
	}
	var goNames []string
	for _, s := range applySections {
		goNames = append(goNames, s.name)
		// The header documents each section under its name.
		if !strings.Contains(applyLua, "\n--   "+s.name+" ") {
			t.Errorf("apply.lua's header does not document section %q", s.name)
		}
	}
	if !slices.Equal(lua, goNames) {
		t.Errorf("apply.lua reads sections\n%q\nencodeBatch writes\n%q", lua, goNames)
	}
}
