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

// applySections are apply.lua's ARGV sections after its seven fixed
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
