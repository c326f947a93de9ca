package state

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/internal/testenv"
)

// counterFieldCases are shop ids and field names that a naive separator
// would split wrongly.
var counterFieldCases = []struct{ shop, field string }{
	{"s1", "consulting"},
	{"shop:7", "a:a1:waiting"},
	{"12:34", "breached:3m"},
	{"", "x"},
	{"店铺:旗舰", "a:客服1:last_human"},
	{"a:b:c", ""},
}

func TestCounterFieldRoundTrip(t *testing.T) {
	for _, c := range counterFieldCases {
		f := counterField(c.shop, c.field)
		shop, field, err := splitCounterField(f)
		if err != nil || shop != c.shop || field != c.field {
			t.Errorf("split(%q) = %q, %q, %v; want %q, %q", f, shop, field, err, c.shop, c.field)
		}
	}
}

var badCounterFields = []string{"", "consulting", "x:s1:f", "-1:s:f", "5:s1:f", "2:s1f", ":s1:f"}

func TestSplitCounterFieldRejects(t *testing.T) {
	for _, f := range badCounterFields {
		if shop, field, err := splitCounterField(f); err == nil {
			t.Errorf("split(%q) = %q, %q; want an error", f, shop, field)
		}
	}
}

// TestEncodeDropsAgentSetRoundTrips: a reply that assigns the agent and
// ends the wait in one batch adds the buyer to the agent's set and removes
// it again; nothing of it is sent to Redis. The shop's own set keeps its op.
func TestEncodeDropsAgentSetRoundTrips(t *testing.T) {
	b := &Batch{Token: 1, Offset: 1, Waits: []detectors.WaitOp{
		{Shop: "s1", Agent: "a1", Buyer: "b9", Start: 5, Add: true},
		{Shop: "s1", Agent: "a1", Buyer: "b9", Start: 5},
		{Shop: "s1", Buyer: "b9", Start: 5},
		{Shop: "s1", Agent: "a1", Buyer: "b8", Start: 4},
	}}
	e := encodeBatch(b, "rw:{chat.0}:", 0, 0, 0, func(string) bool { return true })
	defer e.release()
	n := map[string]int{}
	for _, v := range e.args {
		switch s := v.(type) {
		case string:
			n[s]++
		case *string:
			n[*s]++
		}
	}
	if n["b9"] != 1 || n["b8"] != 1 {
		t.Errorf("b9 sent %d times (want once, the shop set's removal), b8 %d times (want once)", n["b9"], n["b8"])
	}
}

// encodeBenchBatch is a batch of a busy partition: 400 conversations, 1,500
// figure deltas over 40 shops on two days and the current counters, 600
// waiting-set changes and 300 agent activities.
func encodeBenchBatch() *Batch {
	b := &Batch{Token: 1, Offset: 1, States: map[string][]byte{}, Timers: map[string]int64{}}
	for i := range 400 {
		k := fmt.Sprintf("s%d/b%d", i%40, i)
		b.States[k] = []byte("state")
		b.Timers[k] = int64(i%3) * 1_700_000_000_000
	}
	days := []string{testDay, "2026-11-23", ""}
	fields := []string{"consulting", "msgs", "breached:3m", "a:a1:waiting", "a:a2:waiting"}
	for i := range 1500 {
		b.Figures = append(b.Figures, detectors.FigureDelta{Shop: fmt.Sprint("s", i%40), Day: days[i%7%3], Field: fields[i%5], Delta: 1})
	}
	for i := range 600 {
		agent := ""
		if i%2 == 1 {
			agent = "a1"
		}
		b.Waits = append(b.Waits, detectors.WaitOp{Shop: fmt.Sprint("s", i%40), Agent: agent, Buyer: fmt.Sprint("b", i/3), Start: 1000 + int64(i), Add: i%3 != 2})
	}
	for i := range 300 {
		b.Activity = append(b.Activity, detectors.Activity{Shop: fmt.Sprint("s", i%40), Agent: fmt.Sprint("a", i%7), At: int64(i)})
	}
	return b
}

func BenchmarkEncodeBatch(b *testing.B) {
	bt := encodeBenchBatch()
	b.ReportAllocs()
	for b.Loop() {
		encodeBatch(bt, "rw:{chat.0}:", 0, 0, 0, func(string) bool { return true }).release()
	}
}

// TestEncodedBatchMatchesMemory runs apply.lua on redis-server with
// batches that fill every section (states set and deleted, timers set and
// removed, deltas over days and shops, buyers added to and removed from
// shop and agent sets in one batch, outbox records and acks, agent
// activity): Redis is left with the states, timers, figures and outbox
// that the memory store keeps, which applies the batches op by op. The
// second batch comes a generation of entity states later: its states are
// set and deleted across generations, and each state is stored once.
func TestEncodedBatchMatchesMemory(t *testing.T) {
	c := newClient(t, testenv.Redis(t))
	r := NewRedis(c, "rw", 72*time.Hour)
	now := int64(1_764_000_000)
	setClock(r, "chat.0", now)
	m := NewMemory()
	var keys []string
	for _, s := range []Store{r, m} {
		claim(t, s, "chat.0", 1)
		b := encodeBenchBatch()
		b.Outbox = []Delivery{{Key: "x1:firing", Payload: []byte("1")}, {Key: "x2:firing", Payload: []byte("2")}}
		apply(t, s, "chat.0", b)
		first := OutboxKey(b)
		now += statePeriod(72 * 3600)
		setClock(r, "chat.0", now)
		b = encodeBenchBatch() // and again: removals of what exists
		b.Offset = 2
		keys = keys[:0]
		for k, due := range b.Timers {
			b.Timers[k] = max(due-1, 0)
			if due == 0 {
				b.States[k] = nil
			}
			keys = append(keys, k)
		}
		b.Outbox = []Delivery{{Key: "x1:resolved:replied", Payload: []byte("3")}}
		b.Acks = []string{first}
		apply(t, s, "chat.0", b)
	}
	lr, lm := load(t, r, "chat.0", keys, 0, 0), load(t, m, "chat.0", keys, 0, 0)
	if !reflect.DeepEqual(lr.States, lm.States) || len(lr.States) == len(keys) {
		t.Errorf("Redis holds %d of the %d states, memory %d", len(lr.States), len(keys), len(lm.States))
	}
	var stored int64
	for g := now/statePeriod(72*3600) - 2; g <= now/statePeriod(72*3600); g++ {
		n, err := c.HLen(context.Background(), "rw:{chat.0}:"+stateGenKey(g)).Result()
		if err != nil {
			t.Fatal(err)
		}
		stored += n
	}
	if stored != int64(len(lr.States)) {
		t.Errorf("the generations hold %d states for %d entities", stored, len(lr.States))
	}
	for _, s := range []Store{r, m} {
		ds, err := s.Outbox(context.Background(), "chat.0", 1, 1<<50, time.Second, 10)
		if got := fmt.Sprint(entries(ds)); err != nil || got != "[#2:x1:resolved:replied: x1:resolved:replied=3]" {
			t.Errorf("outbox of %T after the ack: %s, %v; want the second batch's entry", s, got, err)
		}
	}
	if fr, fm := figures(t, r, []string{"chat.0"}), figures(t, m, []string{"chat.0"}); !reflect.DeepEqual(fr, fm) {
		t.Errorf("figures in Redis:\n%v\nin memory:\n%v", fr, fm)
	}
	if lr, lm := load(t, r, "chat.0", nil, 1<<50, 1000), load(t, m, "chat.0", nil, 1<<50, 1000); !reflect.DeepEqual(lr.Due, lm.Due) || lr.NextDue != lm.NextDue {
		t.Errorf("due in Redis %d (next %d), in memory %d (next %d)", len(lr.Due), lr.NextDue, len(lm.Due), lm.NextDue)
	}
}
