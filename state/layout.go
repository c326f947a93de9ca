package state

import "strconv"

// Sorted sets of at most zsetCompact members are listpack-encoded by Redis
// (zset-max-listpack-entries, 128 by default): about 31 bytes an entry
// instead of about 110 as a skiplist. The timer and waiting sets are split
// into buckets that stay below it.
const zsetCompact = 128

// timerBuckets is how many sorted sets a partition's timers are spread
// over, by a hash of the entity key. 1,024 buckets keep about 100,000
// timers per partition listpack-encoded (over a million waiting
// conversations on 12 partitions); a bucket that exists costs about 100
// bytes, which 8,000 timers per partition already make small per timer.
// A power of two: the bucket is the hash's top bits, not its low ones,
// which Kafka's FNV-1a hash partitioner (kafka-go's Hash balancer) leaves
// the same for every key of a partition when the count is even.
const timerBuckets = 1 << timerBucketBits

const timerBucketBits = 10

// Entity states live in generation hashes c@<g> of each partition, field
// entity key → state (one key per state with its own TTL would take one
// SET … EX per state written: Redis before 7.4 cannot expire a hash's
// fields). A state written at now (Unix s) goes to generation g = now /
// period, whose hash expires at (g + 1) × period + stateTTL: a state lives
// at least stateTTL after its last write, as a key of its own would, and at
// most a period more. Reads look in the live generations newest first.
//
// The period is half the TTL. Shorter periods waste less memory on states
// kept past their TTL (half a period on average, a quarter of the TTL here)
// but make more generations live at once, each one more HMGET per read and
// HDEL per write in every batch: stateTTL / period + 1 of them, three at
// half the TTL (two at the whole TTL, which keeps states half as long
// again; five at a quarter). Three reads of what the newest lacks cost
// little next to a command per state written.
func statePeriod(stateTTL int64) int64 {
	if stateTTL <= 0 {
		return 0 // one generation, which never expires
	}
	return (stateTTL + 1) / 2
}

// statePhase is how far a partition's clock of generations runs ahead of
// the writer's: a phase below the period of the partition's own, so that
// the partitions' generations end, and are freed by Redis, at different
// times rather than all at once (see README Limits).
func statePhase(scope string, period int64) int64 {
	if period <= 0 {
		return 0
	}
	return int64(fnv32(scope)) % period
}

// stateGen is the generation of entity states written at now (Unix s, on
// the partition's clock).
func stateGen(now, period int64) int64 {
	if period <= 0 {
		return 0
	}
	return now / period
}

// stateGenKey is the key of a generation of entity states, after the
// partition's base.
func stateGenKey(g int64) string { return "c@" + strconv.FormatInt(g, 10) }

// oldStatesKey holds, after the partition's base, until when (Unix s on the
// partition's clock) entity states of the earlier layout, one key c:<entity key> each, may
// remain: claim.lua sets it once, and reads fall back on those keys until
// then.
const oldStatesKey = "c@old"

// maxWaitLevel bounds how often a shop's waiting set of one partition is
// halved: at most 2^maxWaitLevel buckets (about 8,000 waiting buyers per
// shop and partition stay compact), so that Figures reads at most
// 2 × 2^maxWaitLevel keys per shop and partition.
const maxWaitLevel = 6

// fnv32 is the 32-bit FNV-1a hash of s. due.lua computes the same hash
// when it splits a waiting set; the two must agree.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// timerBucket is the bucket of an entity's timer.
func timerBucket(key string) uint32 { return fnv32(key) >> (32 - timerBucketBits) }

// timerKey is the key of a timer bucket, after the partition's base.
func timerKey(b uint32) string { return "timers:" + strconv.FormatUint(uint64(b), 10) }

// waitKey is the key of bucket b of a shop's waiting set at level, after
// the partition's base: level 0 is the whole set under w:<shop>, level L
// has 2^L buckets w:<shop>:<b> chosen by the top L bits of the buyer's
// hash, so bucket b splits into 2b and 2b + 1.
func waitKey(shop string, level int, b int) string {
	if level == 0 {
		return "w:" + shop
	}
	return "w:" + shop + ":" + strconv.Itoa(b)
}

// applySection is one section of apply.lua's ARGV: its name in the
// script's section table and how encodeBatch lays it out.
type applySection struct {
	name   string
	encode func(e *batchEnc, a []any, b *Batch, need func(string) bool) []any
}

// applySections are apply.lua's ARGV sections after its nine fixed
// arguments, in order: the one declaration of the layout. The script reads
// them with the functions its own table names in the same order, and
// TestApplySectionsMatchLua fails when the two differ.
var applySections = []applySection{
	{"states set", func(_ *batchEnc, a []any, b *Batch, _ func(string) bool) []any { return appendStatesSet(a, b.States) }},
	{"states deleted", func(_ *batchEnc, a []any, b *Batch, _ func(string) bool) []any {
		return appendStatesDeleted(a, b.States)
	}},
	{"timers set", func(e *batchEnc, a []any, b *Batch, _ func(string) bool) []any {
		return e.timers.appendTimers(a, b.Timers, true)
	}},
	{"timers removed", func(e *batchEnc, a []any, b *Batch, _ func(string) bool) []any {
		return e.timers.appendTimers(a, b.Timers, false)
	}},
	{"counter hashes", func(e *batchEnc, a []any, b *Batch, need func(string) bool) []any {
		return e.appendCounters(a, b.Figures, need)
	}},
	{"waiting sets", func(e *batchEnc, a []any, b *Batch, _ func(string) bool) []any { return e.appendWaits(a, b.Waits) }},
	{"shops", func(e *batchEnc, a []any, b *Batch, need func(string) bool) []any {
		return e.appendShops(a, b.Activity, need)
	}},
	{"outbox", func(e *batchEnc, a []any, b *Batch, _ func(string) bool) []any { return e.appendOutbox(a, b) }},
	{"firing", func(e *batchEnc, a []any, b *Batch, _ func(string) bool) []any { return e.appendFiring(a, b) }},
	{"acks", func(_ *batchEnc, a []any, b *Batch, _ func(string) bool) []any { return appendAcks(a, b.Acks) }},
	{"activity", func(_ *batchEnc, a []any, b *Batch, _ func(string) bool) []any { return appendActivity(a, b.Activity) }},
}
