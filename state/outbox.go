package state

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// An outbox entry's value is its batch's records framed one after the
// other: for each, the length of its key (uvarint), the key, the length of
// its payload (uvarint), the payload. Go frames and reads it; apply.lua
// only stores it, and cuts the payloads of firing alerts out of it at the
// positions the encoder gives (see firingOps).

// frameRecords appends ds framed to buf and returns it with the position
// of each payload in it: payloads[i] is [start, end) of ds[i]'s payload.
func frameRecords(buf []byte, ds []Delivery, payloads [][2]int) ([]byte, [][2]int) {
	for _, d := range ds {
		buf = binary.AppendUvarint(buf, uint64(len(d.Key)))
		buf = append(buf, d.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(d.Payload)))
		start := len(buf)
		buf = append(buf, d.Payload...)
		payloads = append(payloads, [2]int{start, len(buf)})
	}
	return buf, payloads
}

// outboxEntry reads the outbox field key with value v: a batch's framed
// records when key is an entry key (OutboxKey), else one record written by
// an earlier version, keyed by its own key. Keys and payloads share v's
// bytes.
func outboxEntry(key string, v []byte) (OutboxEntry, error) {
	e := OutboxEntry{Key: key}
	if !strings.HasPrefix(key, "#") {
		e.Records = []Delivery{{Key: key, Payload: v}}
		return e, nil
	}
	for len(v) > 0 {
		k, rest, err := frame(v)
		if err != nil {
			return OutboxEntry{}, fmt.Errorf("outbox entry %s, record %d: key: %w", key, len(e.Records)+1, err)
		}
		p, rest, err := frame(rest)
		if err != nil {
			return OutboxEntry{}, fmt.Errorf("outbox entry %s, record %d (%s): payload: %w", key, len(e.Records)+1, k, err)
		}
		e.Records = append(e.Records, Delivery{Key: string(k), Payload: p})
		v = rest
	}
	if len(e.Records) == 0 {
		return OutboxEntry{}, fmt.Errorf("outbox entry %s holds no record", key)
	}
	return e, nil
}

// frame splits one length-prefixed field off the front of v.
func frame(v []byte) (field, rest []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)-w) {
		return nil, nil, fmt.Errorf("%d bytes left do not hold a length and that many bytes", len(v))
	}
	end := w + int(n)
	return v[w:end:end], v[end:], nil
}

// firingOp is one change to a partition's hash of the alerts firing now:
// set id to the payload of record rec, or (rec < 0) remove id.
type firingOp struct {
	id  string
	rec int
}

// firingOps reduces a batch's records to their effect on the firing hash,
// each alert id once, in the order the batch first names them: a record
// "<id>:firing" sets id to its payload, "<id>:resolved[:<reason>]" removes
// it, the last record of an id decides. Records of other statuses change
// nothing.
func firingOps(ops []firingOp, at map[string]int, ds []Delivery) []firingOp {
	for i, d := range ds {
		id, status, _ := strings.Cut(d.Key, ":")
		status, _, _ = strings.Cut(status, ":")
		rec := i
		switch status {
		case "firing":
		case "resolved":
			rec = -1
		default:
			continue
		}
		if j, ok := at[id]; ok {
			ops[j].rec = rec
			continue
		}
		at[id] = len(ops)
		ops = append(ops, firingOp{id: id, rec: rec})
	}
	return ops
}
