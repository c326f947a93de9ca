package detectors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Encoding of a Conversation, version 2: the state before its recent
// events, the events, the partition clock its timers were fired to, and the
// fingerprints of its event ids. The current state is derived from them by
// the engine (Conversation.stale). Times are varints relative to a nearby
// time so that a waiting conversation stays well under 120 bytes. Layout:
//
//	version(1) state clock log ids
//	state: flags(1) lastTS(uvarint) platform(code, 0xff+str if unknown) agent(str)
//	       [lastTS-lastHuman(varint)]
//	       [wait: lastTS-start(varint) start-anchor(uvarint) fired(uvarint) credit per fired breach(1)]
//	       pending(uvarint n, n×varint delta from the previous time, the first from the anchor)
//	       [carry: lastTS-start(varint) start-anchor(uvarint) fired(uvarint) credit per fired breach(1)]
//	       [prev: lastHuman-end(varint) end-start(varint) start-anchor(uvarint) fired(uvarint)
//	              credit per fired breach(1) replier(1)]
//	       days(uvarint n) n×{UTC day of lastTS-day (first), day-previous day (next)(varint) flags(1)
//	                   agents(uvarint n, n×str) entries(uvarint n) n×{head(field|agent<<3) [thr ms(uvarint)] n(varint)}}
//	clock: uvarint, 0 when not past the latest event time, else 1 + how far past
//	log: agents(uvarint n, n×str) events(uvarint n) n×{head(kind|agent<<3|platform<<4)
//	     ts-previous ts(varint, the first from state's lastTS) [agent index(1)] [platform]}
//	ids: uvarint n, n×6 bytes big-endian, ascending
//
// str is a uvarint length and the bytes. Version 1, which states written
// before remain in, is the state alone with the ids after lastHuman
// (n(1), n×6) and no carry: it decodes as a state with no recent events.
const (
	codecVersion = 2
	codecV1      = 1
)

const (
	flagWait      = 1 << iota // a wait is open
	flagAdded                 // its clock has started
	flagPrev                  // an ended wait is remembered
	flagPrevResp              // its response time is counted
	flagLastHuman             // a human reply was seen
	flagCarry                 // a wait from an earlier day is carried
	flagExcluded  = 1         // tally flag: the day is excluded
	maxStr        = 1 << 10   // bound on a decoded string (ids are ≤ 128 bytes)
	otherPlatform = 0xff      // platform code of a name not in platforms
	// Log event head bits beside the kind.
	logAgent    = 1 << 3
	logPlatform = 1 << 4
	// v1SeenIDs bounded the ids of a version 1 state.
	v1SeenIDs = 64
)

// platforms are coded by position + 1; 0 is none.
var platforms = [...]string{"pdd", "taobao", "tmall", "jd", "douyin", "other"}

func utcDay(ms int64) int64 { return ms / 86_400_000 }

// ErrCorrupt is wrapped by every UnmarshalBinary error.
var ErrCorrupt = errors.New("detectors: corrupt conversation state")

// MarshalBinary encodes the conversation without Shop and Buyer.
func (c *Conversation) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+8*len(c.log)+len(c.seen))
	b = append(b, codecVersion)
	b = appendState(b, &c.base)
	last := c.base.lastTS
	if n := len(c.log); n > 0 && c.log[n-1].ts > last {
		last = c.log[n-1].ts
	}
	if c.clock > last {
		b = binary.AppendUvarint(b, uint64(c.clock-last)+1)
	} else {
		b = append(b, 0)
	}
	var agents []string
	for i := range c.log {
		if a := c.log[i].agent; a != "" && !slices.Contains(agents, a) {
			agents = append(agents, a)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(agents)))
	for _, a := range agents {
		b = appendStr(b, a)
	}
	b = binary.AppendUvarint(b, uint64(len(c.log)))
	prev := c.base.lastTS
	for i := range c.log {
		le := &c.log[i]
		head := le.kind
		if le.agent != "" {
			head |= logAgent
		}
		if le.platform != "" {
			head |= logPlatform
		}
		b = append(b, head)
		b = binary.AppendVarint(b, le.ts-prev)
		prev = le.ts
		if le.agent != "" {
			b = append(b, byte(slices.Index(agents, le.agent)))
		}
		if le.platform != "" {
			b = appendPlatform(b, le.platform)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(c.seen)/idBytes))
	return append(b, c.seen...), nil
}

// appendState writes a derived state (without the version byte).
func appendState(b []byte, st *convState) []byte {
	var flags byte
	if st.wait.open {
		flags |= flagWait
		if st.wait.added {
			flags |= flagAdded
		}
	}
	if st.prev.ok {
		flags |= flagPrev
		if st.prev.resp {
			flags |= flagPrevResp
		}
	}
	if st.lastHuman != 0 {
		flags |= flagLastHuman
	}
	if st.carry.ok {
		flags |= flagCarry
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(st.lastTS))
	b = appendPlatform(b, st.platform)
	b = appendStr(b, st.agent)
	if st.lastHuman != 0 {
		b = binary.AppendVarint(b, st.lastTS-st.lastHuman)
	}
	if st.wait.open {
		w := &st.wait
		b = binary.AppendVarint(b, st.lastTS-w.start)
		b = binary.AppendUvarint(b, uint64(w.start-w.anchor))
		b = appendFired(b, w.fired, &w.credit)
	}
	b = binary.AppendUvarint(b, uint64(len(st.pending)))
	last := st.wait.anchor
	for _, m := range st.pending {
		b = binary.AppendVarint(b, m-last)
		last = m
	}
	if st.carry.ok {
		w := &st.carry
		b = binary.AppendVarint(b, st.lastTS-w.start)
		b = binary.AppendUvarint(b, uint64(w.start-w.anchor))
		b = appendFired(b, w.fired, &w.credit)
	}
	if st.prev.ok {
		p := &st.prev
		b = binary.AppendVarint(b, st.lastHuman-p.end)
		b = binary.AppendVarint(b, p.end-p.start)
		b = binary.AppendUvarint(b, uint64(p.start-p.anchor))
		b = appendFired(b, p.fired, &p.credit)
		b = append(b, p.replier)
	}
	b = binary.AppendUvarint(b, uint64(len(st.days)))
	lastDay := utcDay(st.lastTS)
	for i, t := range st.days {
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
	return b
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

// UnmarshalBinary decodes what MarshalBinary wrote (either version),
// keeping Shop and Buyer. Truncated or garbage input gives an error
// wrapping ErrCorrupt.
func (c *Conversation) UnmarshalBinary(b []byte) error {
	d := &decoder{b: b}
	n := Conversation{Shop: c.Shop, Buyer: c.Buyer}
	v := d.byte("version")
	if d.err == nil && v != codecVersion && v != codecV1 {
		return fmt.Errorf("%w: version %d, want %d or %d", ErrCorrupt, v, codecV1, codecVersion)
	}
	var seen *idSet
	if v == codecV1 {
		seen = &n.seen
	}
	d.state(&n.base, seen)
	if v == codecVersion {
		clock := d.uvarint("clock")
		var agents []string
		if na := d.count("log agents", maxLog); na > 0 {
			agents = make([]string, na)
			for i := range agents {
				agents[i] = d.str("log agent")
			}
		}
		// An event takes at least 2 bytes: a count beyond that is garbage.
		nl := d.count("log events", min(maxLog, (len(b)-d.off)/2))
		if nl > 0 {
			n.log = make([]logEvent, nl)
		}
		prev := n.base.lastTS
		for i := 0; d.err == nil && i < nl; i++ {
			le := &n.log[i]
			head := d.byte("log event")
			le.kind = head & 7
			if le.kind >= numKinds || head&^(7|logAgent|logPlatform) != 0 {
				d.fail("bad log event")
			}
			prev += d.varint("log event time")
			le.ts = prev
			if head&logAgent != 0 {
				ai := int(d.byte("log event agent"))
				if ai >= len(agents) {
					d.fail("bad log event agent")
				} else {
					le.agent = agents[ai]
				}
			}
			if head&logPlatform != 0 {
				le.platform = d.platform()
			}
			if i > 0 && le.before(&n.log[i-1]) || le.ts < n.base.lastTS {
				d.fail("log events out of order")
			}
		}
		if clock > 0 {
			last := n.base.lastTS
			if nl > 0 && d.err == nil {
				last = max(last, n.log[nl-1].ts)
			}
			n.clock = last + int64(clock-1)
		}
		ni := d.count("event ids", min(maxSeen, (len(b)-d.off)/idBytes))
		if d.err == nil {
			n.seen = append(idSet(nil), b[d.off:d.off+ni*idBytes]...)
			d.off += ni * idBytes
			if !n.seen.sorted() {
				d.fail("event ids out of order")
			}
		}
		n.stale = true
	}
	if d.err == nil && d.off != len(b) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	if !n.stale {
		// Version 1: the state is current, the timers fired so far in it.
		n.convState = n.base.clone()
	}
	*c = n
	return nil
}

func (d *decoder) platform() string {
	switch pc := d.byte("platform"); {
	case pc == otherPlatform:
		return d.str("platform")
	case int(pc) > len(platforms):
		d.fail("unknown platform code")
	case pc > 0:
		return platforms[pc-1]
	}
	return ""
}

// state reads a derived state; seen, when not nil, receives the ids of a
// version 1 state.
func (d *decoder) state(st *convState, seen *idSet) {
	b := d.b
	flags := d.byte("flags")
	known := byte(flagWait | flagAdded | flagPrev | flagPrevResp | flagLastHuman | flagCarry)
	if seen != nil {
		known &^= flagCarry
	}
	if flags&^known != 0 {
		d.fail("unknown flags")
	}
	st.lastTS = int64(d.uvarint("last event time"))
	st.platform = d.platform()
	st.agent = d.str("agent")
	if flags&flagLastHuman != 0 {
		st.lastHuman = st.lastTS - d.varint("last human reply")
	}
	if seen != nil {
		nSeen := int(d.byte("seen ids"))
		if nSeen > v1SeenIDs {
			d.fail("bad seen ids")
		}
		if d.err == nil && len(b)-d.off < nSeen*idBytes {
			d.fail("truncated seen ids")
		}
		// Version 1 kept them little-endian, oldest first.
		for i := 0; d.err == nil && i < nSeen; i++ {
			var h uint64
			for k := idBytes - 1; k >= 0; k-- {
				h = h<<8 | uint64(b[d.off+k])
			}
			seen.seen(h)
			d.off += idBytes
		}
	}
	if flags&flagWait != 0 {
		w := &st.wait
		w.open, w.added = true, flags&flagAdded != 0
		w.start = st.lastTS - d.varint("wait start")
		w.anchor = w.start - int64(d.uvarint("wait anchor"))
		w.fired = d.fired(&w.credit)
	}
	if np := d.count("pending messages", maxPending); np > 0 {
		st.pending = make([]int64, np)
		last := st.wait.anchor
		for i := range st.pending {
			last += d.varint("pending message")
			st.pending[i] = last
		}
	}
	if flags&flagCarry != 0 {
		w := &st.carry
		w.ok = true
		w.start = st.lastTS - d.varint("carried wait start")
		w.anchor = w.start - int64(d.uvarint("carried wait anchor"))
		w.fired = d.fired(&w.credit)
	}
	if flags&flagPrev != 0 {
		p := &st.prev
		p.ok, p.resp = true, flags&flagPrevResp != 0
		p.end = st.lastHuman - d.varint("ended wait end")
		p.start = p.end - d.varint("ended wait start")
		p.anchor = p.start - int64(d.uvarint("ended wait anchor"))
		p.fired = d.fired(&p.credit)
		p.replier = d.byte("replier")
	}
	if nd := d.count("days", maxDays); nd > 0 {
		st.days = make([]tally, nd)
		day := utcDay(st.lastTS)
		for i := range st.days {
			t := &st.days[i]
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
}
