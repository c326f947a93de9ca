package notify

import (
	"hash/maphash"
	"time"
)

// seenFor is how long a queued (alert_id, status) is remembered in memory;
// the Redis mark covers everything after.
const seenFor = 15 * time.Minute

// seenMax bounds a lane's memory by count as well as age, so that a bad
// day (10,000 alert records a second would be 9 million keys in seenFor)
// costs a fixed size: 79 bytes a key measured at the bound (a 16-byte
// hash and its sequence number in the map, the hash and time in the
// ring; BENCHMARKS.md), so 40 MiB a receiver at most, which is 52 s of
// such a day, against 193 bytes a key and no bound before. Keys go oldest first. What that changes: a record read again
// after its key went is checked against its Redis mark instead (written
// once its message was accepted; a firing alert still queued is known by
// the queue itself), and a priority or inhibited mark that went lets the
// ordinary warning of that wait, or the resolution of a warning nobody
// heard of, be sent (README, Limits). A breach is never held back by it.
const seenMax = 1 << 19

// memKey is a key's 128-bit hash: two independent 64-bit hashes, so that
// two keys collide (and an alert would be taken for a duplicate) with
// odds of about one in 2^128 per pair, never in practice.
type memKey [2]uint64

// memory is a set of keys bounded by age and count, oldest evicted first.
// The map holds each key's sequence number, the ring the keys in the
// order they came, so that a key added again, or forgotten, is not
// evicted by its older entry.
type memory struct {
	seeds [2]maphash.Seed
	index map[memKey]uint64
	ring  []memEntry // circular; grows by doubling up to max
	head  int        // oldest entry
	n     int        // entries in the ring
	seq   uint64     // sequence number of the next entry
	max   int
}

type memEntry struct {
	key memKey
	at  int64 // unix nanoseconds
}

func newMemory(max int) memory {
	return memory{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, index: map[memKey]uint64{}, max: max}
}

func (m *memory) hash(key string) memKey {
	return memKey{maphash.String(m.seeds[0], key), maphash.String(m.seeds[1], key)}
}

func (m *memory) has(key string) bool {
	_, ok := m.index[m.hash(key)]
	return ok
}

// add remembers key from now, evicting the oldest key when full.
func (m *memory) add(key string, now time.Time) {
	if m.n == m.max {
		m.pop()
	}
	if m.n == len(m.ring) {
		ring := make([]memEntry, min(max(2*len(m.ring), 64), m.max))
		for i := range m.n {
			ring[i] = m.ring[(m.head+i)%len(m.ring)]
		}
		m.ring, m.head = ring, 0
	}
	k := m.hash(key)
	m.ring[(m.head+m.n)%len(m.ring)] = memEntry{k, now.UnixNano()}
	m.index[k] = m.seq + uint64(m.n)
	m.n++
}

// pop drops the oldest entry, and its key unless the key came again.
func (m *memory) pop() {
	e := m.ring[m.head]
	if m.index[e.key] == m.seq {
		delete(m.index, e.key)
	}
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	m.seq++
}

// forget drops key at once (its item was not delivered).
func (m *memory) forget(key string) { delete(m.index, m.hash(key)) }

// expire drops the keys added before t.
func (m *memory) expire(t time.Time) {
	cut := t.UnixNano()
	for m.n > 0 && m.ring[m.head].at < cut {
		m.pop()
	}
}

// size is how many keys are remembered.
func (m *memory) size() int { return len(m.index) }
