package detectors

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/replywatch/replywatch/event"
)

// FieldEffective is the daily figure of consulting buyers effectively
// replied (PDD 有效回复率's numerator): a human replied within the shop's
// effective_reply.within of their first in-window message that day. The
// denominator is FieldConsulting.
const FieldEffective = "eff"

// EffectiveState is what the effective-reply count remembers of one
// conversation: its latest counted day's first in-window buyer message, the
// first human reply at or after it, and whether the buyer is counted as
// effectively replied. Times are Unix ms.
type EffectiveState struct {
	day      string
	first    int64
	reply    int64 // 0: none yet
	counted  bool
	excluded bool // the buyer was blocked or reported that day (R8)
}

// Effective counts effectively replied buyers per shop-local day (DESIGN.md
// §4). It keeps no state of its own.
type Effective struct {
	Rules RulesFunc
	// Within is how soon after a buyer's first message of the day a human
	// reply makes them effectively replied, per shop.
	Within func(shop string) time.Duration
}

// Event applies one chat event, already applied to the conversation (not
// a duplicate). A late event of the counted day moves the first message
// earlier or the first reply earlier and corrects the count; events of an
// earlier day are left to that day.
func (e *Effective) Event(st *EffectiveState, shop string, ev *event.Event, fx *Effects) {
	if e == nil || e.Within == nil {
		return
	}
	r := e.Rules(shop)
	if r.Hours == nil {
		return
	}
	ts := ev.Ms()
	day := r.Hours.Day(ev.TS.Time)
	switch {
	case ev.Type == event.TypeMessage && ev.Sender == event.SenderBuyer:
		if !r.Hours.Open(ev.TS.Time) || (day == st.day && st.excluded) {
			return
		}
		switch {
		case day > st.day:
			// A new day: the last day's count stands as it is.
			*st = EffectiveState{day: day, first: ts}
		case day == st.day && ts < st.first:
			st.first = ts
			if st.reply != 0 && st.reply < ts {
				st.reply = 0
			}
		default:
			return
		}
	case ev.Type == event.TypeMessage && ev.Sender == event.SenderAgent:
		if day != st.day || st.excluded || ts < st.first || (st.reply != 0 && st.reply <= ts) {
			return
		}
		st.reply = ts
	case ev.Type == event.TypeBuyerBlocked || ev.Type == event.TypeBuyerReported:
		switch {
		case day > st.day:
			*st = EffectiveState{day: day, excluded: true}
			return
		case day < st.day:
			return
		}
		st.excluded = true
	default:
		return
	}
	eff := !st.excluded && st.reply != 0 && st.reply-st.first <= e.Within(shop).Milliseconds()
	if eff != st.counted {
		d := int64(1)
		if !eff {
			d = -1
		}
		fx.Figures = append(fx.Figures, FigureDelta{Shop: shop, Day: st.day, Field: FieldEffective, Delta: d})
		st.counted = eff
	}
}

// Empty reports whether the state remembers nothing.
func (st *EffectiveState) Empty() bool { return st.day == "" }

// Encoding of an EffectiveState, version 1:
//
//	version(1) flags(1: counted, 2: excluded) day(str) first(uvarint) reply-first+1 (uvarint, 0 none)
const effCodecVersion = 1

// AppendBinary appends the state's encoding to b.
func (st *EffectiveState) AppendBinary(b []byte) []byte {
	var flags byte
	if st.counted {
		flags |= 1
	}
	if st.excluded {
		flags |= 2
	}
	b = append(b, effCodecVersion, flags)
	b = appendTextStr(b, st.day)
	b = binary.AppendUvarint(b, uint64(st.first))
	r := uint64(0)
	if st.reply != 0 {
		r = uint64(st.reply-st.first) + 1
	}
	return binary.AppendUvarint(b, r)
}

// DecodeEffectiveState reads an EffectiveState from the front of b and
// returns the rest of b.
func DecodeEffectiveState(st *EffectiveState, b []byte) ([]byte, error) {
	bad := func(what string) error { return fmt.Errorf("%w: effective-reply state: %s", ErrCorrupt, what) }
	if len(b) < 2 || b[0] != effCodecVersion || b[1]&^3 != 0 {
		return nil, bad("unknown version or flags")
	}
	st.counted, st.excluded = b[1]&1 != 0, b[1]&2 != 0
	var err error
	if st.day, b, err = readTextStr(b[2:]); err != nil {
		return nil, bad("day")
	}
	first, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, bad("first message")
	}
	b = b[k:]
	r, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, bad("reply")
	}
	st.first, st.reply = int64(first), 0
	if r != 0 {
		st.reply = st.first + int64(r-1)
	}
	return b[k:], nil
}
