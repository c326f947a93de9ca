package state

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/replywatch/replywatch/detectors"
)

// batchEnc holds the ARGV of apply.lua for one batch. Encoders are pooled:
// Apply is the hot path and a batch's argument list is large. Deltas and
// waiting-set changes are gathered in maps, in the order the batch first
// names them, not sorted: Redis does not care about their order.
type batchEnc struct {
	args []any
	// figs are the batch's figure keys (day, shop, field) in first-seen
	// order, figAt their index by key and sums their deltas summed; days
	// the days among them. fields holds their counter fields end to end,
	// each ending at its ends (then the shops section's strings).
	figAt  map[figKey]int
	figs   []figKey
	sums   []int64
	days   []string
	fields []byte
	ends   []int
	// runs are the waiting-set changes per set and buyer (by index in
	// waits), and sets the sets in first-seen order.
	runs  map[waitBuyer]int
	waits []waitRun
	sets  map[waitSet]int
	order []waitSetRuns
	// shops are the shops and agent sets the batch names, once each.
	shops   []string
	shopSet map[string]bool
	timers  timerGroups
	// records is the batch's outbox entry (frameRecords), payloads where
	// each record's payload lies in it, firing the changes to the hash of
	// alerts firing now and firingAt their index by alert id.
	records  []byte
	payloads [][2]int
	firing   []firingOp
	firingAt map[string]int
	boxes
}

// boxes hold the strings and integers of an argument list so that the
// list holds pointers to them: a string, or an integer past 255, put in an
// interface by value is an allocation each, a pointer is none (go-redis
// writes *string and *int64 as their values). The arrays are kept from
// batch to batch; one that is full is followed by a larger one, not
// copied, so the pointers already handed out stay good.
type boxes struct {
	strs []string
	ints []int64
}

// str returns v for the argument list.
func (x *boxes) str(v string) any {
	if len(x.strs) == cap(x.strs) {
		x.strs = make([]string, 0, max(2*cap(x.strs), 256))
	}
	x.strs = append(x.strs, v)
	return &x.strs[len(x.strs)-1]
}

// int returns v for the argument list.
func (x *boxes) int(v int64) any {
	if len(x.ints) == cap(x.ints) {
		x.ints = make([]int64, 0, max(2*cap(x.ints), 256))
	}
	x.ints = append(x.ints, v)
	return &x.ints[len(x.ints)-1]
}

func (x *boxes) reset() {
	clear(x.strs)
	x.strs, x.ints = x.strs[:0], x.ints[:0]
}

type figKey struct{ day, shop, field string }

type waitSet struct{ shop, agent string }

type waitBuyer struct {
	set   waitSet
	buyer string
}

// waitRun is a buyer's changes to one waiting set in a batch: the first
// tells whether it began with an add, the last decides.
type waitRun struct {
	firstAdd bool
	last     detectors.WaitOp
}

// waitSetRuns is a waiting set and its buyers' runs, in first-seen order.
type waitSetRuns struct {
	set  waitSet
	runs []int
}

var encPool = sync.Pool{New: func() any {
	return &batchEnc{figAt: map[figKey]int{}, runs: map[waitBuyer]int{}, sets: map[waitSet]int{}, shopSet: map[string]bool{}, firingAt: map[string]int{}}
}}

// release returns e to the pool without keeping the batch's data alive.
func (e *batchEnc) release() {
	if cap(e.args) > 1<<16 {
		return
	}
	clear(e.args)
	clear(e.figAt)
	clear(e.figs)
	clear(e.days)
	clear(e.runs)
	clear(e.waits)
	clear(e.sets)
	for i := range e.order {
		clear(e.order[i].runs)
		e.order[i].runs = e.order[i].runs[:0]
	}
	clear(e.shops)
	clear(e.shopSet)
	e.figs, e.sums, e.ends, e.days, e.waits, e.shops = e.figs[:0], e.sums[:0], e.ends[:0], e.days[:0], e.waits[:0], e.shops[:0]
	if cap(e.fields) > 1<<20 {
		e.fields = nil
	}
	if cap(e.records) > 1<<20 {
		e.records = nil
	}
	clear(e.firing)
	clear(e.firingAt)
	e.records, e.payloads, e.firing = e.records[:0], e.payloads[:0], e.firing[:0]
	e.timers.reset()
	e.boxes.reset()
	encPool.Put(e)
}

// encodeBatch lays b out as apply.lua's ARGV, section by section in the
// order of applySections (see apply.lua's header). Figure deltas are summed
// per shop, day and field and grouped by counter hash (one per day, one for
// current counters), so each hash is one read and one write; waiting-set
// changes are reduced to each buyer's last one, which is what applying them
// in order leaves.
//
// now is the partition's clock (Unix s, Redis.clock), which with stateTTL
// picks the generation of the entity states written (statePeriod).
//
// need tells whether the partition's Redis needs a write this writer made
// recently: "d:<day>" the day hash's TTL, "s:<shop>" the shop's entry in the
// set of shops; it answers false for those it may skip.
func encodeBatch(b *Batch, base string, now, stateTTL, dayTTL int64, need func(what string) bool) *batchEnc {
	e := encPool.Get().(*batchEnc)
	a := e.args[:0]
	a = append(a, b.Token, b.Offset, base, stateTTL, dayTTL, leaseEnd(b.Now, b.Lease), b.Expect, now, statePeriod(stateTTL))
	for _, sec := range applySections {
		a = sec.encode(e, a, b, need)
	}
	e.args = a
	return e
}

// appendStatesSet lays out the "states set" section.
func appendStatesSet(a []any, states map[string][]byte) []any {
	n := len(a)
	a = append(a, 0)
	for k, v := range states {
		if v != nil {
			a = append(a, k, v)
			a[n] = a[n].(int) + 1
		}
	}
	return a
}

// appendStatesDeleted lays out the "states deleted" section.
func appendStatesDeleted(a []any, states map[string][]byte) []any {
	n := len(a)
	a = append(a, 0)
	for k, v := range states {
		if v == nil {
			a = append(a, k)
			a[n] = a[n].(int) + 1
		}
	}
	return a
}

// addShop lists shop (or an agent's waiting set, named like a shop so that
// Figures finds it) with the batch's shops.
func (e *batchEnc) addShop(shop string) {
	if !e.shopSet[shop] {
		e.shopSet[shop] = true
		e.shops = append(e.shops, shop)
	}
}

// appendCounters lays out the "counter hashes" section: the deltas summed
// per day, shop and field, one hash per day.
func (e *batchEnc) appendCounters(a []any, figs []detectors.FigureDelta, need func(string) bool) []any {
	for _, f := range figs {
		k := figKey{f.Day, f.Shop, f.Field}
		i, ok := e.figAt[k]
		if !ok {
			i = len(e.figs)
			e.figAt[k] = i
			e.figs = append(e.figs, k)
			e.sums = append(e.sums, 0)
			if !slices.Contains(e.days, f.Day) { // a batch spans a day or two
				e.days = append(e.days, f.Day)
			}
		}
		e.sums[i] += f.Delta
	}
	// The counter fields are written end to end and made one string.
	b, ends := e.fields[:0], e.ends[:0]
	for _, k := range e.figs {
		b = appendCounterField(b, k.shop, k.field)
		ends = append(ends, len(b))
	}
	e.fields, e.ends = b, ends
	fields := string(b)
	a = append(a, len(e.days))
	for _, day := range e.days {
		suffix, ttl := "n", 0
		if day != "" {
			suffix = "d:" + day
			if need(suffix) {
				ttl = 1
			}
		}
		a = append(a, e.str(suffix), ttl, 0)
		at, n := len(a)-1, 0
		for i, k := range e.figs {
			if k.day != day {
				continue
			}
			field := fields[:ends[i]]
			if i > 0 {
				field = fields[ends[i-1]:ends[i]]
			}
			e.addShop(k.shop)
			// A zero sum is still written: the field then exists, as it
			// would after applying the deltas one by one.
			a = append(a, e.str(field), e.int(e.sums[i]))
			n++
		}
		a[at] = n
	}
	return a
}

// appendWaits lays out the "waiting sets" section: per set, the buyers
// whose last change adds them, then those whose last change removes them.
func (e *batchEnc) appendWaits(a []any, waits []detectors.WaitOp) []any {
	for _, w := range waits {
		k := waitBuyer{waitSet{w.Shop, w.Agent}, w.Buyer}
		if i, ok := e.runs[k]; ok {
			e.waits[i].last = w
			continue
		}
		e.runs[k] = len(e.waits)
		e.waits = append(e.waits, waitRun{firstAdd: w.Add, last: w})
		s, ok := e.sets[k.set]
		if !ok {
			s = len(e.sets)
			e.sets[k.set] = s
			if s == len(e.order) {
				e.order = append(e.order, waitSetRuns{})
			}
			e.order[s].set = k.set
		}
		e.order[s].runs = append(e.order[s].runs, e.runs[k])
	}
	a = append(a, len(e.sets))
	for _, s := range e.order[:len(e.sets)] {
		set := (&detectors.WaitOp{Shop: s.set.shop, Agent: s.set.agent}).Set()
		e.addShop(set)
		a = append(a, e.str(set))
		adds, n := len(a), 0
		a = append(a, 0)
		for _, i := range s.runs {
			if r := &e.waits[i]; r.last.Add {
				a = append(a, e.int(r.last.Start), e.str(r.last.Buyer), e.int(int64(fnv32(r.last.Buyer))))
				n++
			}
		}
		a[adds] = n
		rems, n := len(a), 0
		a = append(a, 0)
		for _, i := range s.runs {
			// The detector adds a buyer to an agent's set only when it is
			// not there: a run that adds and ends removed leaves the set as
			// it was (a reply that assigns the agent and ends the wait).
			if r := &e.waits[i]; !r.last.Add && !(s.set.agent != "" && r.firstAdd) {
				a = append(a, e.str(r.last.Buyer), e.int(int64(fnv32(r.last.Buyer))))
				n++
			}
		}
		a[rems] = n
	}
	return a
}

// appendShops lays out the "shops" section: the shops and agent sets of
// the batch's counters, waiting sets and activity that the writer did not
// add recently.
func (e *batchEnc) appendShops(a []any, acts []detectors.Activity, need func(string) bool) []any {
	for _, act := range acts {
		e.addShop(act.Shop)
	}
	// What need is asked, "s:<shop>", is written end to end for all the
	// shops and made one string; the shop is the end of each.
	b := e.fields[:0]
	for _, s := range e.shops {
		b = append(append(b, "s:"...), s...)
	}
	e.fields = b
	all := string(b)
	at, n := len(a), 0
	a = append(a, 0)
	for _, s := range e.shops {
		what := all[:2+len(s)]
		all = all[len(what):]
		if need(what) {
			a = append(a, e.str(what[2:]))
			n++
		}
	}
	a[at] = n
	return a
}

// appendOutbox lays out the "outbox" section: the batch's records framed
// as one entry under OutboxKey, none when it has none.
func (e *batchEnc) appendOutbox(a []any, b *Batch) []any {
	if len(b.Outbox) == 0 {
		return append(a, 0)
	}
	e.records, e.payloads = frameRecords(e.records[:0], b.Outbox, e.payloads[:0])
	return append(a, 1, OutboxKey(b), e.records)
}

// appendFiring lays out the "firing" section from the batch's records:
// the alert ids set, each with where its payload lies in the outbox entry
// (1-based, inclusive, as Lua's string.sub takes them), then the ids
// removed.
func (e *batchEnc) appendFiring(a []any, b *Batch) []any {
	e.firing = firingOps(e.firing[:0], e.firingAt, b.Outbox)
	at, n := len(a), 0
	a = append(a, 0)
	for _, op := range e.firing {
		if op.rec >= 0 {
			p := e.payloads[op.rec]
			a = append(a, e.str(op.id), e.int(int64(p[0]+1)), e.int(int64(p[1])))
			n++
		}
	}
	a[at] = n
	at, n = len(a), 0
	a = append(a, 0)
	for _, op := range e.firing {
		if op.rec < 0 {
			a = append(a, e.str(op.id))
			n++
		}
	}
	a[at] = n
	return a
}

// appendAcks lays out the "acks" section.
func appendAcks(a []any, acks []string) []any {
	a = append(a, len(acks))
	for _, k := range acks {
		a = append(a, k)
	}
	return a
}

// appendActivity lays out the "activity" section: each agent's latest
// human message, once per shop and agent.
func appendActivity(a []any, acts []detectors.Activity) []any {
	type sa struct{ shop, agent string }
	latest := make(map[sa]int64, len(acts))
	order := make([]sa, 0, len(acts))
	for _, act := range acts {
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
	return a
}

// counterField names a shop's counter in a partition's counter hash:
// "<length of shop>:<shop>:<field>", which splits back unambiguously
// whatever the shop id holds.
func counterField(shop, field string) string {
	var buf [128]byte
	return string(appendCounterField(buf[:0], shop, field))
}

// appendCounterField appends counterField(shop, field) to b.
func appendCounterField(b []byte, shop, field string) []byte {
	b = strconv.AppendInt(b, int64(len(shop)), 10)
	return append(append(append(append(b, ':'), shop...), ':'), field...)
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

// timerGroups groups a batch's timer changes by bucket without sorting
// them: a count per bucket, then each op placed in its bucket's range
// (buckets ascending, each bucket's ops in map order).
type timerGroups struct {
	count [timerBuckets + 1]int32
	ops   []timerOp
	tmp   []timerOp
	boxes
}

func (g *timerGroups) reset() {
	clear(g.ops)
	clear(g.tmp)
	g.boxes.reset()
}

// group places ops by bucket into g.ops.
func (g *timerGroups) group(ops []timerOp) []timerOp {
	clear(g.count[:])
	for _, o := range ops {
		g.count[o.bucket+1]++
	}
	for b := 1; b <= timerBuckets; b++ {
		g.count[b] += g.count[b-1]
	}
	out := slices.Grow(g.ops[:0], len(ops))[:len(ops)]
	for _, o := range ops {
		out[g.count[o.bucket]] = o
		g.count[o.bucket]++
	}
	g.ops = out
	return out
}

// appendTimers lays out the "timers set" (set true) or "timers removed"
// section: one ZADD or ZREM per bucket touched, and for sets each bucket's
// earliest new due for the index of first dues.
func (g *timerGroups) appendTimers(a []any, timers map[string]int64, set bool) []any {
	ops := g.tmp[:0]
	for k, due := range timers {
		if (due > 0) == set {
			ops = append(ops, timerOp{bucket: timerBucket(k), due: max(due, 0), key: k})
		}
	}
	g.tmp = ops
	return g.appendGroup(a, g.group(ops), set)
}

// appendGroup lays out ops, grouped by bucket, as one section.
func (g *timerGroups) appendGroup(a []any, ops []timerOp, set bool) []any {
	at, n := len(a), 0
	a = append(a, 0)
	for i := 0; i < len(ops); {
		b := ops[i].bucket
		j, first := i, ops[i].due
		for j < len(ops) && ops[j].bucket == b {
			first = min(first, ops[j].due)
			j++
		}
		n++
		a = append(a, g.int(int64(b)))
		if set {
			a = append(a, g.int(first))
		}
		a = append(a, g.int(int64(j-i)))
		for _, o := range ops[i:j] {
			if set {
				a = append(a, g.int(o.due))
			}
			a = append(a, g.str(o.key))
		}
		i = j
	}
	a[at] = n
	return a
}
