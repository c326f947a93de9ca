package state

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/replywatch/replywatch/detectors"
)

// batchEnc holds the ARGV of apply.lua for one batch. Encoders are pooled:
// Apply is the hot path and a batch's argument list is large.
type batchEnc struct {
	args   []any
	timers []timerOp
	figs   []detectors.FigureDelta
	waits  []detectors.WaitOp
	shops  []string
}

var encPool = sync.Pool{New: func() any { return new(batchEnc) }}

// release returns e to the pool without keeping the batch's data alive.
func (e *batchEnc) release() {
	if cap(e.args) > 1<<16 {
		return
	}
	clear(e.args)
	clear(e.timers)
	clear(e.figs)
	clear(e.waits)
	clear(e.shops)
	encPool.Put(e)
}

// encodeBatch lays b out as apply.lua's ARGV (see its header). Figure
// deltas are summed per shop, day and field and grouped by counter hash
// (one per day, one for current counters), so each hash is one read and
// one write; waiting-set changes are reduced to each buyer's last one, which
// is what applying them in order leaves.
//
// need tells whether the partition's Redis needs a write this writer made
// recently: "d:<day>" the day hash's TTL, "s:<shop>" the shop's entry in the
// set of shops; it answers false for those it may skip.
func encodeBatch(b *Batch, base string, stateTTL, dayTTL int64, need func(what string) bool) *batchEnc {
	e := encPool.Get().(*batchEnc)
	a := e.args[:0]
	a = append(a, b.Token, b.Offset, base, stateTTL, dayTTL, leaseEnd(b.Now, b.Lease), b.Expect)

	nSet := 0
	for _, v := range b.States {
		if v != nil {
			nSet++
		}
	}
	a = append(a, nSet)
	for k, v := range b.States {
		if v != nil {
			a = append(a, k, v)
		}
	}
	a = append(a, len(b.States)-nSet)
	for k, v := range b.States {
		if v == nil {
			a = append(a, k)
		}
	}

	a = e.appendTimers(a, b.Timers)

	e.shops = e.shops[:0]
	figs := append(e.figs[:0], b.Figures...)
	slices.SortFunc(figs, func(x, y detectors.FigureDelta) int {
		return cmp.Or(cmp.Compare(x.Day, y.Day), cmp.Compare(x.Shop, y.Shop), cmp.Compare(x.Field, y.Field))
	})
	hashes := len(a)
	a = append(a, 0)
	for i := 0; i < len(figs); {
		day := figs[i].Day
		suffix, ttl := "n", 0
		if day != "" {
			suffix = "d:" + day
			if need(suffix) {
				ttl = 1
			}
		}
		a[hashes] = a[hashes].(int) + 1
		a = append(a, suffix, ttl, 0)
		fields := len(a) - 1
		for i < len(figs) && figs[i].Day == day {
			f := figs[i]
			if n := len(e.shops); (n == 0 || e.shops[n-1] != f.Shop) && !slices.Contains(e.shops, f.Shop) {
				e.shops = append(e.shops, f.Shop)
			}
			sum := int64(0)
			for ; i < len(figs) && figs[i].Day == day && figs[i].Shop == f.Shop && figs[i].Field == f.Field; i++ {
				sum += figs[i].Delta
			}
			// A zero sum is still written: the field then exists, as it
			// would after applying the deltas one by one.
			a = append(a, counterField(f.Shop, f.Field), sum)
			a[fields] = a[fields].(int) + 1
		}
	}
	e.figs = figs

	waits := append(e.waits[:0], b.Waits...)
	// An agent's waiting set is named like a shop (WaitOp.Set) and listed
	// with the shops, so that Figures finds it.
	slices.SortStableFunc(waits, func(x, y detectors.WaitOp) int {
		return cmp.Or(cmp.Compare(x.Shop, y.Shop), cmp.Compare(x.Agent, y.Agent), cmp.Compare(x.Buyer, y.Buyer))
	})
	sets := len(a)
	a = append(a, 0)
	for i := 0; i < len(waits); {
		shop := waits[i].Set()
		j := i
		for j < len(waits) && waits[j].Shop == waits[i].Shop && waits[j].Agent == waits[i].Agent {
			j++
		}
		if !slices.Contains(e.shops, shop) {
			e.shops = append(e.shops, shop)
		}
		a[sets] = a[sets].(int) + 1
		a = append(a, shop)
		// The last op of each buyer (the end of its run) decides.
		last := func(k int) bool { return k+1 == j || waits[k+1].Buyer != waits[k].Buyer }
		adds := len(a)
		a = append(a, 0)
		for k := i; k < j; k++ {
			if last(k) && waits[k].Add {
				a = append(a, waits[k].Start, waits[k].Buyer, fnv32(waits[k].Buyer))
				a[adds] = a[adds].(int) + 1
			}
		}
		rems := len(a)
		a = append(a, 0)
		first := i // first op of the current buyer's run
		for k := i; k < j; k++ {
			if k > i && waits[k-1].Buyer != waits[k].Buyer {
				first = k
			}
			// The detector adds a buyer to an agent's set only when it is
			// not there: a run that adds and ends removed leaves the set as
			// it was (a reply that assigns the agent and ends the wait).
			if last(k) && !waits[k].Add && !(waits[k].Agent != "" && waits[first].Add) {
				a = append(a, waits[k].Buyer, fnv32(waits[k].Buyer))
				a[rems] = a[rems].(int) + 1
			}
		}
		i = j
	}
	e.waits = waits
	for _, act := range b.Activity {
		if !slices.Contains(e.shops, act.Shop) {
			e.shops = append(e.shops, act.Shop)
		}
	}

	shops := len(a)
	a = append(a, 0)
	for _, s := range e.shops {
		if need("s:" + s) {
			a = append(a, s)
			a[shops] = a[shops].(int) + 1
		}
	}

	a = append(a, len(b.Outbox))
	for _, d := range b.Outbox {
		a = append(a, d.Key, d.Payload)
	}
	a = append(a, len(b.Acks))
	for _, k := range b.Acks {
		a = append(a, k)
	}

	// Each agent's latest human message, once per shop and agent.
	type sa struct{ shop, agent string }
	latest := make(map[sa]int64, len(b.Activity))
	order := make([]sa, 0, len(b.Activity))
	for _, act := range b.Activity {
		k := sa{act.Shop, act.Agent}
		if cur, ok := latest[k]; !ok {
			order = append(order, k)
			latest[k] = act.At
		} else if act.At > cur {
			latest[k] = act.At
		}
	}
	a = append(a, len(order))
	for _, k := range order {
		a = append(a, counterField(k.shop, detectors.AgentField(k.agent, detectors.FieldLastHuman)), latest[k])
	}
	e.args = a
	return e
}

// counterField names a shop's counter in a partition's counter hash:
// "<length of shop>:<shop>:<field>", which splits back unambiguously
// whatever the shop id holds.
func counterField(shop, field string) string {
	return strconv.Itoa(len(shop)) + ":" + shop + ":" + field
}

// splitCounterField is the inverse of counterField.
func splitCounterField(s string) (shop, field string, err error) {
	colon := strings.IndexByte(s, ':')
	n, convErr := strconv.Atoi(s[:max(colon, 0)])
	if colon <= 0 || convErr != nil || n < 0 || colon+1+n >= len(s) || s[colon+1+n] != ':' {
		return "", "", fmt.Errorf("counter field %q is not <length>:<shop>:<field>", s)
	}
	return s[colon+1 : colon+1+n], s[colon+2+n:], nil
}

// timerOp is one timer change: due 0 removes the entity's timer.
type timerOp struct {
	bucket uint32
	due    int64
	key    string
}

// appendTimers lays the timer changes out per bucket (see apply.lua's
// header): one ZADD or ZREM per bucket touched, and each bucket's earliest
// new due for the index of first dues.
func (e *batchEnc) appendTimers(a []any, timers map[string]int64) []any {
	ops := e.timers[:0]
	for k, due := range timers {
		ops = append(ops, timerOp{bucket: timerBucket(k), due: max(due, 0), key: k})
	}
	// Sets before removals, each by bucket.
	slices.SortFunc(ops, func(x, y timerOp) int {
		return cmp.Or(cmp.Compare(min(y.due, 1), min(x.due, 1)), cmp.Compare(x.bucket, y.bucket))
	})
	e.timers = ops
	rem := slices.IndexFunc(ops, func(o timerOp) bool { return o.due == 0 })
	if rem < 0 {
		rem = len(ops)
	}
	group := func(ops []timerOp, set bool) {
		n := len(a)
		a = append(a, 0)
		for i := 0; i < len(ops); {
			j, first := i, ops[i].due
			for j < len(ops) && ops[j].bucket == ops[i].bucket {
				first = min(first, ops[j].due)
				j++
			}
			a[n] = a[n].(int) + 1
			a = append(a, ops[i].bucket)
			if set {
				a = append(a, first)
			}
			a = append(a, j-i)
			for _, o := range ops[i:j] {
				if set {
					a = append(a, o.due)
				}
				a = append(a, o.key)
			}
			i = j
		}
	}
	group(ops[:rem], true)
	group(ops[rem:], false)
	return a
}
