package detectors

import (
	"encoding/binary"
	"fmt"
)

// Encoding of an OrderBook, version 1. A time is a uvarint: 0 for none,
// else 1 + the zig-zag of (lastTS - time), so that times near the book's
// latest event take a few bytes. Layout:
//
//	version(1) lastTS(uvarint) platform(code, 0xff+str if unknown) agent(str)
//	seen(n(1), n×8 LE, oldest first) orders(uvarint n) n×order
//	order: id(str) flags(1) fired(1) touched paid grouped shipBy deadline shipped
//	       refundReq refunded rejected caseClosed (times)
//	       2×case{flags(1) opened respondBy closed (times)}
//
// Order flags: awaiting, shipDone, refundDone, reviewed. Case flags: fired
// warning, fired critical, counted, done.
const orderCodecVersion = 1

const (
	orderAwaiting = 1 << iota
	orderShipDone
	orderRefundDone
	orderReviewed
	orderFlags = orderAwaiting | orderShipDone | orderRefundDone | orderReviewed

	caseFiredWarn = 1
	caseFiredCrit = 2
	caseCounted   = 4
	caseDone      = 8
	caseFlags     = caseFiredWarn | caseFiredCrit | caseCounted | caseDone
)

func appendTime(b []byte, last, t int64) []byte {
	if t == 0 {
		return append(b, 0)
	}
	d := last - t
	return binary.AppendUvarint(b, uint64(d<<1^d>>63)+1)
}

func (d *decoder) stamp(last int64, what string) int64 {
	v := d.uvarint(what)
	if v == 0 {
		return 0
	}
	v--
	return last - (int64(v>>1) ^ -int64(v&1))
}

func flag(b bool, f byte) byte {
	if b {
		return f
	}
	return 0
}

// MarshalBinary encodes the book without Shop and Buyer.
func (b *OrderBook) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, 32+8*len(b.seen)+40*len(b.orders))
	out = append(out, orderCodecVersion)
	out = binary.AppendUvarint(out, uint64(b.lastTS))
	out = appendPlatform(out, b.platform)
	out = appendStr(out, b.agent)
	out = append(out, byte(len(b.seen)))
	for _, h := range b.seen {
		out = binary.LittleEndian.AppendUint64(out, h)
	}
	out = binary.AppendUvarint(out, uint64(len(b.orders)))
	last := b.lastTS
	for i := range b.orders {
		o := &b.orders[i]
		out = appendStr(out, o.id)
		out = append(out, flag(o.awaiting, orderAwaiting)|flag(o.shipDone, orderShipDone)|
			flag(o.refundDone, orderRefundDone)|flag(o.reviewed, orderReviewed), o.fired)
		for _, t := range []int64{o.touched, o.paid, o.grouped, o.shipBy, o.deadline, o.shipped,
			o.refundReq, o.refunded, o.rejected, o.caseClosed} {
			out = appendTime(out, last, t)
		}
		for k := range o.cases {
			c := &o.cases[k]
			out = append(out, flag(c.fired&bitCaseWarn != 0, caseFiredWarn)|flag(c.fired&bitCaseCrit != 0, caseFiredCrit)|
				flag(c.counted, caseCounted)|flag(c.done, caseDone))
			for _, t := range []int64{c.opened, c.respondBy, c.closed} {
				out = appendTime(out, last, t)
			}
		}
	}
	return out, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, keeping Shop and Buyer.
// Truncated or garbage input gives an error wrapping ErrCorrupt and leaves
// the book unchanged.
func (b *OrderBook) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	n := OrderBook{Shop: b.Shop, Buyer: b.Buyer}
	if v := d.byte("version"); d.err == nil && v != orderCodecVersion {
		return fmt.Errorf("%w: order book version %d, want %d", ErrCorrupt, v, orderCodecVersion)
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
	nSeen := int(d.byte("seen ids"))
	if nSeen > orderSeenIDs || len(data)-d.off < 8*nSeen {
		d.fail("bad seen ids")
	}
	for i := 0; d.err == nil && i < nSeen; i++ {
		n.seen = append(n.seen, binary.LittleEndian.Uint64(data[d.off:]))
		d.off += 8
	}
	no := d.count("orders", maxOrders)
	last := n.lastTS
	for i := 0; d.err == nil && i < no; i++ {
		var o order
		o.id = d.str("order id")
		f, fired := d.byte("order flags"), d.byte("shipping timers")
		if f&^orderFlags != 0 || fired&^(bitShipWarn|bitShipBreach) != 0 {
			d.fail("bad order flags")
		}
		o.awaiting, o.shipDone = f&orderAwaiting != 0, f&orderShipDone != 0
		o.refundDone, o.reviewed, o.fired = f&orderRefundDone != 0, f&orderReviewed != 0, fired
		for _, t := range []*int64{&o.touched, &o.paid, &o.grouped, &o.shipBy, &o.deadline, &o.shipped,
			&o.refundReq, &o.refunded, &o.rejected, &o.caseClosed} {
			*t = d.stamp(last, "order time")
		}
		for k := range o.cases {
			c := &o.cases[k]
			cf := d.byte("case flags")
			if cf&^caseFlags != 0 {
				d.fail("bad case flags")
			}
			if cf&caseFiredWarn != 0 {
				c.fired |= bitCaseWarn
			}
			if cf&caseFiredCrit != 0 {
				c.fired |= bitCaseCrit
			}
			c.counted, c.done = cf&caseCounted != 0, cf&caseDone != 0
			for _, t := range []*int64{&c.opened, &c.respondBy, &c.closed} {
				*t = d.stamp(last, "case time")
			}
		}
		n.orders = append(n.orders, o)
	}
	if d.err == nil && d.off != len(data) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return d.err
	}
	*b = n
	return nil
}
