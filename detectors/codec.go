package detectors

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Encoding of a Conversation, version 1. Times are varints relative to a
// nearby time (the latest event, the latest human reply, the wait's anchor)
// so that a waiting conversation stays well under 120 bytes. Layout:
//
//	version(1) flags(1) lastTS(uvarint) platform(code, 0xff+str if unknown) agent(str)
//	[lastTS-lastHuman(varint)] seen(n(1), n×6 LE, oldest first)
//	[wait: lastTS-start(varint) start-anchor(uvarint) fired(uvarint) credit per fired breach(1)]
//	pending(uvarint n, n×varint delta from the previous time, the first from the anchor)
//	[prev: lastHuman-end(varint) end-start(varint) start-anchor(uvarint) fired(uvarint)
//	       credit per fired breach(1) replier(1)]
//	days(uvarint n) n×{UTC day of lastTS-day (first), day-previous day (next)(varint) flags(1)
//	                   agents(uvarint n, n×str) entries(uvarint n) n×{head(field|agent<<3) [thr ms(uvarint)] n(varint)}}
//
// str is a uvarint length and the bytes.
const codecVersion = 1

const (
	flagWait      = 1 << iota // a wait is open
	flagAdded                 // its clock has started
	flagPrev                  // an ended wait is remembered
	flagPrevResp              // its response time is counted
	flagLastHuman             // a human reply was seen
	flagExcluded  = 1         // tally flag: the day is excluded
	maxStr        = 1 << 10   // bound on a decoded string (ids are ≤ 128 bytes)
	otherPlatform = 0xff      // platform code of a name not in platforms
)

// platforms are coded by position + 1; 0 is none.
var platforms = [...]string{"pdd", "taobao", "tmall", "jd", "douyin", "other"}

func utcDay(ms int64) int64 { return ms / 86_400_000 }

// ErrCorrupt is wrapped by every UnmarshalBinary error.
var ErrCorrupt = errors.New("detectors: corrupt conversation state")

// MarshalBinary encodes the conversation without Shop and Buyer.
func (c *Conversation) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 96)
	var flags byte
	if c.wait.open {
		flags |= flagWait
		if c.wait.added {
			flags |= flagAdded
		}
	}
	if c.prev.ok {
		flags |= flagPrev
		if c.prev.resp {
			flags |= flagPrevResp
		}
	}
	if c.lastHuman != 0 {
		flags |= flagLastHuman
	}
	b = append(b, codecVersion, flags)
	b = binary.AppendUvarint(b, uint64(c.lastTS))
	b = appendPlatform(b, c.platform)
	b = appendStr(b, c.agent)
	if c.lastHuman != 0 {
		b = binary.AppendVarint(b, c.lastTS-c.lastHuman)
	}
	b = append(b, byte(len(c.seen)))
	for _, h := range c.seen {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], h)
		b = append(b, w[:seenBits/8]...)
	}
	if c.wait.open {
		w := &c.wait
		b = binary.AppendVarint(b, c.lastTS-w.start)
		b = binary.AppendUvarint(b, uint64(w.start-w.anchor))
		b = appendFired(b, w.fired, &w.credit)
	}
	b = binary.AppendUvarint(b, uint64(len(c.pending)))
	last := c.wait.anchor
	for _, m := range c.pending {
		b = binary.AppendVarint(b, m-last)
		last = m
	}
	if c.prev.ok {
		p := &c.prev
		b = binary.AppendVarint(b, c.lastHuman-p.end)
		b = binary.AppendVarint(b, p.end-p.start)
		b = binary.AppendUvarint(b, uint64(p.start-p.anchor))
		b = appendFired(b, p.fired, &p.credit)
		b = append(b, p.replier)
	}
	b = binary.AppendUvarint(b, uint64(len(c.days)))
	lastDay := utcDay(c.lastTS)
	for i, t := range c.days {
		if i == 0 {
			b = binary.AppendVarint(b, lastDay-int64(t.day))
		} else {
			b = binary.AppendVarint(b, int64(t.day)-lastDay)
		}
		lastDay = int64(t.day)
		var tf byte
		if t.excluded {
			tf |= flagExcluded
		}
		b = append(b, tf)
		b = binary.AppendUvarint(b, uint64(len(t.agents)))
		for _, a := range t.agents {
			b = appendStr(b, a)
		}
		b = binary.AppendUvarint(b, uint64(len(t.entries)))
		for _, e := range t.entries {
			b = append(b, e.field|e.agent<<3)
			if e.field == fieldBreached {
				b = binary.AppendUvarint(b, uint64(e.thr))
			}
			b = binary.AppendVarint(b, e.n)
		}
	}
	return b, nil
}

func appendPlatform(b []byte, p string) []byte {
	if p == "" {
		return append(b, 0)
	}
	for i, q := range platforms {
		if p == q {
			return append(b, byte(i+1))
		}
	}
	return appendStr(append(b, otherPlatform), p)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendFired writes a fired mask and the credit of each fired breach.
func appendFired(b []byte, fired uint32, credit *[maxThresholds]uint8) []byte {
	b = binary.AppendUvarint(b, uint64(fired))
	for i := 0; i < maxThresholds; i++ {
		if fired&(1<<(bitBreach+i)) != 0 {
			b = append(b, credit[i])
		}
	}
	return b
}

// decoder reads the encoding, remembering the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d of %d", ErrCorrupt, what, d.off, len(d.b))
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated " + what)
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.off += n
	return v
}

// count reads a length bounded by limit.
func (d *decoder) count(what string, limit int) int {
	v := d.uvarint(what)
	if v > uint64(limit) {
		d.fail(fmt.Sprintf("%s %d over %d", what, v, limit))
		return 0
	}
	return int(v)
}

func (d *decoder) str(what string) string {
	n := d.count(what+" length", maxStr)
	if d.err != nil {
		return ""
	}
	if n > len(d.b)-d.off {
		d.fail("truncated " + what)
		return ""
	}
	s := string(d.b[d.off : d.off+n])
	d.off += n
	return s
}

func (d *decoder) fired(credit *[maxThresholds]uint8) uint32 {
	f := d.uvarint("fired mask")
	if f > firedMask {
		d.fail("bad fired mask")
		return 0
	}
	for i := 0; i < maxThresholds; i++ {
		if f&(1<<(bitBreach+i)) != 0 {
			credit[i] = d.byte("breach credit")
		}
	}
	return uint32(f)
}

// UnmarshalBinary decodes what MarshalBinary wrote, keeping Shop and Buyer.
// Truncated or garbage input gives an error wrapping ErrCorrupt.
func (c *Conversation) UnmarshalBinary(b []byte) error {
	d := &decoder{b: b}
	n := Conversation{Shop: c.Shop, Buyer: c.Buyer}
	if v := d.byte("version"); d.err == nil && v != codecVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, codecVersion)
	}
	flags := d.byte("flags")
	if flags&^(flagWait|flagAdded|flagPrev|flagPrevResp|flagLastHuman) != 0 {
		d.fail("unknown flags")
	}
	n.lastTS = int64(d.uvarint("last event time"))
	switch pc := d.byte("platform"); {
	case pc == otherPlatform:
		n.platform = d.str("platform")
	case int(pc) > len(platforms):
		d.fail("unknown platform code")
	case pc > 0:
		n.platform = platforms[pc-1]
	}
	n.agent = d.str("agent")
	if flags&flagLastHuman != 0 {
		n.lastHuman = n.lastTS - d.varint("last human reply")
	}
	nSeen := int(d.byte("seen ids"))
	if nSeen > seenIDs {
		d.fail("bad seen ids")
	}
	const idBytes = seenBits / 8
	for i := 0; d.err == nil && i < nSeen; i++ {
		if len(b)-d.off < idBytes {
			d.fail("truncated seen ids")
			break
		}
		var w [8]byte
		copy(w[:], b[d.off:d.off+idBytes])
		n.seen = append(n.seen, binary.LittleEndian.Uint64(w[:]))
		d.off += idBytes
	}
	if flags&flagWait != 0 {
		w := &n.wait
		w.open, w.added = true, flags&flagAdded != 0
		w.start = n.lastTS - d.varint("wait start")
		w.anchor = w.start - int64(d.uvarint("wait anchor"))
		w.fired = d.fired(&w.credit)
	}
	if np := d.count("pending messages", maxPending); np > 0 {
		n.pending = make([]int64, np)
		last := n.wait.anchor
		for i := range n.pending {
			last += d.varint("pending message")
			n.pending[i] = last
		}
	}
	if flags&flagPrev != 0 {
		p := &n.prev
		p.ok, p.resp = true, flags&flagPrevResp != 0
		p.end = n.lastHuman - d.varint("ended wait end")
		p.start = p.end - d.varint("ended wait start")
		p.anchor = p.start - int64(d.uvarint("ended wait anchor"))
		p.fired = d.fired(&p.credit)
		p.replier = d.byte("replier")
	}
	if nd := d.count("days", maxDays); nd > 0 {
		n.days = make([]tally, nd)
		day := utcDay(n.lastTS)
		for i := range n.days {
			t := &n.days[i]
			if i == 0 {
				day -= d.varint("day")
			} else {
				day += d.varint("day")
			}
			t.day = int32(day)
			tf := d.byte("day flags")
			if tf&^flagExcluded != 0 {
				d.fail("unknown day flags")
			}
			t.excluded = tf&flagExcluded != 0
			if na := d.count("agents", maxAgents); na > 0 {
				t.agents = make([]string, na)
				for j := range t.agents {
					t.agents[j] = d.str("agent")
				}
			}
			// An entry takes at least two bytes: a count beyond that is garbage.
			ne := d.count("entries", (len(b)-d.off)/2)
			if ne > 0 {
				t.entries = make([]entry, ne)
			}
			for j := 0; d.err == nil && j < ne; j++ {
				e := &t.entries[j]
				h := d.byte("entry")
				e.field, e.agent = h&7, h>>3
				if e.field >= numFields || int(e.agent) > len(t.agents) {
					d.fail("bad entry")
				}
				if e.field == fieldBreached {
					e.thr = int64(d.uvarint("threshold"))
				}
				e.n = d.varint("count")
			}
		}
	}
	if d.err == nil && d.off != len(b) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	*c = n
	return nil
}
