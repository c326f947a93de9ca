package detectors

import (
	"encoding/binary"
	"fmt"
)

// Encoding of a BuyerJoin, version 1. Times are written as in the order
// book (appendTime: 0 none, else 1 + zig-zag of lastTS - time). Layout:
//
//	version(1) lastTS(uvarint) platform(code, 0xff+str if unknown)
//	seen(n(1), n×8 LE, oldest first)
//	facts(uvarint n) n×{kind<<4|flags (1) at(time) agent(str)}
//	cases(uvarint n) n×{kind(1) key(8 LE) opened closed (times)}
//	pays(uvarint n) n×time
//	days(uvarint n) n×{day(varint) first(time) conv(1) agent(str)}
//	esc(uvarint n) n×{start(time) resolved(1) agent(str)}
//	reviewed(uvarint n) n×8 LE  orderAgent(str)
const joinCodecVersion = 1

// MarshalBinary encodes the join state without Shop and Buyer.
func (b *BuyerJoin) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, 24+8*len(b.seen)+12*len(b.facts)+16*len(b.cases))
	out = append(out, joinCodecVersion)
	out = binary.AppendUvarint(out, uint64(b.lastTS))
	out = appendPlatform(out, b.platform)
	out = append(out, byte(len(b.seen)))
	for _, h := range b.seen {
		out = binary.LittleEndian.AppendUint64(out, h)
	}
	last := b.lastTS
	out = binary.AppendUvarint(out, uint64(len(b.facts)))
	for _, f := range b.facts {
		out = append(out, f.kind<<4|f.flags)
		out = appendTime(out, last, f.at)
		out = appendStr(out, f.agent)
	}
	out = binary.AppendUvarint(out, uint64(len(b.cases)))
	for _, c := range b.cases {
		out = append(out, c.kind)
		out = binary.LittleEndian.AppendUint64(out, c.key)
		out = appendTime(out, last, c.opened)
		out = appendTime(out, last, c.closed)
	}
	out = binary.AppendUvarint(out, uint64(len(b.pays)))
	for _, p := range b.pays {
		out = appendTime(out, last, p)
	}
	out = binary.AppendUvarint(out, uint64(len(b.days)))
	for _, d := range b.days {
		out = binary.AppendVarint(out, int64(d.day))
		out = appendTime(out, last, d.first)
		out = append(out, flag(d.conv, 1))
		out = appendStr(out, d.agent)
	}
	out = binary.AppendUvarint(out, uint64(len(b.esc)))
	for _, e := range b.esc {
		out = appendTime(out, last, e.start)
		out = append(out, flag(e.resolved, 1))
		out = appendStr(out, e.agent)
	}
	out = binary.AppendUvarint(out, uint64(len(b.reviewed)))
	for _, h := range b.reviewed {
		out = binary.LittleEndian.AppendUint64(out, h)
	}
	out = appendStr(out, b.orderAgent)
	return out, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, keeping Shop and Buyer.
// Truncated or garbage input gives an error wrapping ErrCorrupt and leaves
// the state unchanged.
func (b *BuyerJoin) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	n := BuyerJoin{Shop: b.Shop, Buyer: b.Buyer}
	if v := d.byte("version"); d.err == nil && v != joinCodecVersion {
		return fmt.Errorf("%w: buyer join version %d, want %d", ErrCorrupt, v, joinCodecVersion)
	}
	n.lastTS = int64(d.uvarint("last event time"))
	n.platform = d.platform()
	nSeen := int(d.byte("seen ids"))
	if nSeen > joinSeenIDs || len(data)-d.off < 8*nSeen {
		d.fail("bad seen ids")
	}
	for i := 0; d.err == nil && i < nSeen; i++ {
		n.seen = append(n.seen, binary.LittleEndian.Uint64(data[d.off:]))
		d.off += 8
	}
	last := n.lastTS
	nf := d.count("facts", maxJoinFacts)
	for i := 0; d.err == nil && i < nf; i++ {
		kf := d.byte("fact kind")
		f := joinFact{kind: kf >> 4, flags: kf & 0x0f}
		if f.kind > factReply || f.flags&^(factInWindow|factComplaint) != 0 {
			d.fail("bad fact kind")
		}
		f.at = d.stamp(last, "fact time")
		f.agent = d.str("fact agent")
		n.facts = append(n.facts, f)
	}
	nc := d.count("cases", maxJoinCases)
	for i := 0; d.err == nil && i < nc; i++ {
		c := joinCase{kind: d.byte("case kind")}
		if c.kind >= numJoinCaseKinds {
			d.fail("bad case kind")
		}
		if d.err == nil && len(data)-d.off < 8 {
			d.fail("truncated case key")
		}
		if d.err != nil {
			break
		}
		c.key = binary.LittleEndian.Uint64(data[d.off:])
		d.off += 8
		c.opened = d.stamp(last, "case opened")
		c.closed = d.stamp(last, "case closed")
		n.cases = append(n.cases, c)
	}
	np := d.count("payments", maxJoinPays)
	for i := 0; d.err == nil && i < np; i++ {
		n.pays = append(n.pays, d.stamp(last, "payment"))
	}
	nd := d.count("days", maxDays)
	for i := 0; d.err == nil && i < nd; i++ {
		day := convDay{day: int32(d.varint("day"))}
		day.first = d.stamp(last, "first message")
		c := d.byte("converted")
		if c > 1 {
			d.fail("bad converted flag")
		}
		day.conv = c == 1
		day.agent = d.str("credited agent")
		n.days = append(n.days, day)
	}
	ne := d.count("escalations", maxJoinFacts)
	for i := 0; d.err == nil && i < ne; i++ {
		e := escalate{start: d.stamp(last, "wait start")}
		r := d.byte("resolved")
		if r > 1 {
			d.fail("bad resolved flag")
		}
		e.resolved = r == 1
		e.agent = d.str("escalation agent")
		n.esc = append(n.esc, e)
	}
	nr := d.count("reviewed orders", maxJoinCases)
	if d.err == nil && len(data)-d.off < 8*nr {
		d.fail("truncated reviewed orders")
	}
	for i := 0; d.err == nil && i < nr; i++ {
		n.reviewed = append(n.reviewed, binary.LittleEndian.Uint64(data[d.off:]))
		d.off += 8
	}
	n.orderAgent = d.str("order agent")
	if d.err == nil && d.off != len(data) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	*b = n
	return nil
}
