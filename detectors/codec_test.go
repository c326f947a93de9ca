package detectors

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/event"
)

// typicalWaiting is a conversation as it usually sits in Redis while the
// buyer waits: one earlier wait answered, a new one open with a few buyer
// messages, the platform named by the events.
func typicalWaiting(t testing.TB, perAgent bool) *harness {
	h := newHarness(&testing.T{}, pddRules(), perAgent)
	h.plat = "pdd"
	h.run([]op{buyerOf("10:00:00", "a7001"), human("10:00:20", "a7001"), buyerOf("10:05:00", "a7001"), bot("10:05:01", "a7001"), buyerOf("10:05:30", "a7001")})
	if !h.c.wait.open {
		t.Fatal("the typical conversation is not waiting")
	}
	return h
}

// Redis must hold a waiting conversation, its key and its timer entry in
// 300 bytes; these bounds leave the key and the timer their share.
var sizeCases = []struct {
	perAgent bool
	max      int
}{
	{false, 90},
	{true, 110},
}

func TestEncodingSize(t *testing.T) {
	for _, c := range sizeCases {
		b, err := typicalWaiting(t, c.perAgent).c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("per-agent %v: a waiting conversation encodes in %d bytes", c.perAgent, len(b))
		if len(b) > c.max {
			t.Errorf("per-agent %v: a waiting conversation takes %d bytes, want at most %d", c.perAgent, len(b), c.max)
		}
		if b[0] != codecVersion {
			t.Errorf("first byte %d, want the version %d", b[0], codecVersion)
		}
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	// Every state a generated script passes through survives the encoding
	// byte for byte; TestClockDoesNotChangeOutcome shows decoded states
	// also behave the same.
	for seed := uint64(0); seed < 200; seed++ {
		s := genScript(rand.New(rand.NewPCG(seed, 3)))
		e := &Engine{Rules: func(string) *Rules { return s.rules }, PerAgent: s.perAgent}
		c := Conversation{Shop: "s1", Buyer: "b1"}
		var fx Effects
		for _, ev := range s.events {
			e.Chat(&c, ev, &fx)
			b, err := c.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			d := Conversation{Shop: "s1", Buyer: "b1"}
			if err := d.UnmarshalBinary(b); err != nil {
				t.Fatalf("seed %d after %s: %v", seed, ev.EventID, err)
			}
			b2, _ := d.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatalf("seed %d after %s: re-encoding differs\n%x\n%x", seed, ev.EventID, b, b2)
			}
			if d.Shop != "s1" || d.Buyer != "b1" {
				t.Fatalf("decoding lost Shop and Buyer: %q %q", d.Shop, d.Buyer)
			}
		}
	}
}

var garbageCases = []struct {
	name string
	b    []byte
	want string
}{
	{"empty", nil, "truncated version"},
	{"unknown version", []byte{3, 0}, "version 3"},
	{"unknown flags", []byte{1, 0x80, 0}, "unknown flags"},
	{"string longer than the input", []byte{1, 0, 5, 0xff, 40, 'p'}, "truncated platform"},
	{"unknown platform code", []byte{1, 0, 5, 9, 0}, "unknown platform code"},
	{"too many seen ids", []byte{1, 0, 5, 0, 0, 65}, "bad seen ids"},
	{"too many pending messages", []byte{1, 0, 5, 0, 0, 0, 17}, "pending messages 17 over 16"},
	{"bad varint", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "bad last event time"},
	{"trailing bytes", []byte{1, 0, 5, 0, 0, 0, 0, 0, 7}, "trailing bytes"},
}

func TestDecodingGarbage(t *testing.T) {
	for _, c := range garbageCases {
		var conv Conversation
		err := conv.UnmarshalBinary(c.b)
		if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one wrapping ErrCorrupt saying %q", c.name, err, c.want)
		}
	}
	// Every truncation of a valid state is refused, and leaves the
	// conversation as it was.
	b, _ := typicalWaiting(t, true).c.MarshalBinary()
	for n := 0; n < len(b); n++ {
		conv := Conversation{Shop: "s1", convState: convState{agent: "before"}}
		if err := conv.UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(b))
		}
		if conv.agent != "before" || conv.Shop != "s1" {
			t.Errorf("truncated to %d bytes: a failed decode changed the conversation", n)
		}
	}
}

// FuzzUnmarshalBinary: whatever the bytes, the decoder refuses them with
// an error wrapping ErrCorrupt and leaves the conversation as it was, or
// gives a state that encodes to a state decoding to itself and that the
// engine runs on without panicking. The seeds (valid states, the garbage
// cases, and every valid state with one byte changed at each position to
// a few values) run in every `go test`; explore further with
//
//	go test ./detectors/ -run '^$' -fuzz FuzzUnmarshalBinary -fuzztime 5m
func FuzzUnmarshalBinary(f *testing.F) {
	var valid [][]byte
	for _, perAgent := range []bool{false, true} {
		b, _ := typicalWaiting(f, perAgent).c.MarshalBinary()
		valid = append(valid, b)
	}
	for _, b := range valid {
		f.Add(b)
		for i := range b {
			for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, b[i] ^ 0x10} {
				c := bytes.Clone(b)
				c[i] = v
				f.Add(c)
			}
		}
	}
	for _, c := range garbageCases {
		f.Add(c.b)
	}
	r := pddRules()
	e := &Engine{Rules: func(string) *Rules { return r }, PerAgent: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Conversation{Shop: "s1", Buyer: "b1", convState: convState{agent: "before"}}
		if err := c.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if c.agent != "before" || c.Shop != "s1" {
				t.Fatalf("a failed decode changed the conversation: %+v", c)
			}
			return
		}
		enc, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		again := Conversation{Shop: "s1", Buyer: "b1"}
		if err := again.UnmarshalBinary(enc); err != nil {
			t.Fatalf("a decoded state, encoded again, does not decode: %v", err)
		}
		if enc2, _ := again.MarshalBinary(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %x, then %x", enc, enc2)
		}
		var fx Effects
		now := time.UnixMilli(c.lastTS)
		e.NextDue(&c)
		e.Advance(&c, now.Add(time.Hour), &fx)
		e.Advance(&c, now.Add(48*time.Hour), &fx)
		e.Chat(&c, &event.Event{EventID: "x1", Type: event.TypeMessage, Sender: event.SenderAgent, AgentID: "a1", TS: event.Time{Time: now.Add(-time.Minute)}}, &fx)
		e.Chat(&c, &event.Event{EventID: "x2", Type: event.TypeMessage, Sender: event.SenderBuyer, TS: event.Time{Time: now}}, &fx)
		e.Chat(&c, &event.Event{EventID: "x3", Type: event.TypeBuyerBlocked, TS: event.Time{Time: now}}, &fx)
		if _, err := c.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkMarshalBinary(b *testing.B) {
	h := typicalWaiting(b, true)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.c.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalBinary(b *testing.B) {
	enc, _ := typicalWaiting(b, true).c.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		var c Conversation
		if err := c.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// Version 1 states, as Redis holds them from before recent events were
// kept (written by the version 1 encoder from the scripts named).
var v1States = []struct {
	name string
	hex  string
	ops  []op // applied after decoding
	// want: the next due time after decoding, the figures and alerts of ops.
	nextDue string
	alerts  []string
	figures map[string]int64
}{
	{
		name:    "typicalWaiting (per agent): buyer 10:00, reply 10:00:20, buyer 10:05, bot 10:05:01, buyer 10:05:30",
		hex:     "011f90a4b4daa03401056137303031e0eb2505f79936bb3ebb9975cefc8520e18fc95cb8fefa9562e4f6b6d4bbf1562187e0d40300000200e0d40300c0b8020000010100000105613730303108000608060102090202c0b80203020ac0b8020b02",
		ops:     []op{withID(human("10:06:00", "a7001"), "r9"), again(buyer("10:05:00"), "e3")},
		nextDue: "10:07:00.001",
		// 10:05:30 is answered at 10:06:00, within 30 s.
		figures: figs(d24+"resp_ms", 60000, d24+"resp_n", 1, d24+"a:a7001:resp_ms", 60000, d24+"a:a7001:resp_n", 1,
			d24+"ans30", 1, d24+"a:a7001:ans30", 1,
			"now a:a7001:waiting", -1),
	},
	{
		name: "breached (per agent): m1 buyer 10:00, clock 10:03:00.001, r1 reply 10:04, m2 buyer 10:10",
		hex:  "011fc0e1c4daa0340002613780f92b03dc84b702ce60e788d79299e3a11052c7b45e00000001000080a61d008102010101000001026137080004080404a0fe0a020ca0fe0a020280a61d03020a80a61d0b02",
		// A reply stamped inside the ended wait still corrects it; m2 again is a duplicate.
		ops:     []op{again(buyerOf("10:10:00", "a7"), "m2"), human("10:02:00", "a8"), human("10:13:30", "a7")},
		nextDue: "10:12:00.001",
		alerts: alerts("reply_warning:3m resolved/retracted a7 @10:02:00", "reply_breach:3m resolved/retracted a7 @10:02:00",
			"reply_warning:3m firing a7 @10:12:00",
			"reply_breach:3m firing a7 @10:13:00", "reply_warning:3m resolved/replied a7 @10:13:30",
			"reply_breach:3m resolved/replied a7 @10:13:30"),
		figures: figs(d24+"resp_ms", 120000-240000+210000, d24+"resp_n", 1, d24+"a:a7:resp_ms", -240000+210000,
			d24+"a:a8:resp_ms", 120000, d24+"a:a8:resp_n", 1, "now a:a7:waiting", -1),
	},
}

func TestDecodingVersion1(t *testing.T) {
	for _, c := range v1States {
		t.Run(c.name, func(t *testing.T) {
			b, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, pddRules(), true)
			if err := h.c.UnmarshalBinary(b); err != nil {
				t.Fatalf("decoding a version 1 state: %v", err)
			}
			due, ok := h.e.NextDue(&h.c)
			if !ok || h.clock(due) != c.nextDue {
				t.Errorf("next due %s (%v), want %s", h.clock(due), ok, c.nextDue)
			}
			h.run(c.ops)
			if got := h.rendered(); !slices.Equal(got, c.alerts) {
				t.Errorf("alerts:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(c.alerts, "\n     "))
			}
			if got := h.figures(); !maps.Equal(got, c.figures) {
				t.Errorf("figures:\n got %v\nwant %v", sorted(got), sorted(c.figures))
			}
			enc, _ := h.c.MarshalBinary()
			if enc[0] != codecVersion {
				t.Errorf("re-encoded as version %d, want %d", enc[0], codecVersion)
			}
		})
	}
}

// What a conversation's state takes as it grows: every event id is kept (6
// bytes), and the events of the last hour (at most 64) with the state
// before them. A question and its answer every minute: 2 events a minute.
var sizeByEvents = []struct{ events, max int }{
	{2, 48},
	{10, 140},
	{40, 480},
	{120, 1150},
	{400, 2850},
}

func TestEncodedSizeByEvents(t *testing.T) {
	for _, c := range sizeByEvents {
		h := newHarness(t, pddRules(), true)
		var ops []op
		for i := 0; i < c.events; i++ {
			at := clockAt(shanghai, "10:00:00").Add(time.Duration(i) * 30 * time.Second).Format("15:04:05")
			if i%2 == 0 {
				ops = append(ops, buyerOf(at, "a7001"))
			} else {
				ops = append(ops, human(at, "a7001"))
			}
		}
		h.run(ops)
		b, err := h.c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d events: %d bytes (%d kept events, %d ids)", c.events, len(b), len(h.c.log), len(h.c.seen)/idBytes)
		if len(b) > c.max {
			t.Errorf("%d events: %d bytes, want at most %d", c.events, len(b), c.max)
		}
	}
}

// BenchmarkDecodeAndRun is what a cache miss costs: decoding a stored
// state and making it ready for the rules (the engine derives a decoded
// conversation from its kept events).
func BenchmarkDecodeAndRun(b *testing.B) {
	enc, _ := typicalWaiting(b, true).c.MarshalBinary()
	r := pddRules()
	e := &Engine{Rules: func(string) *Rules { return r }, PerAgent: true}
	b.ReportAllocs()
	for b.Loop() {
		c := Conversation{Shop: "s1", Buyer: "b1"}
		if err := c.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
		if _, ok := e.NextDue(&c); !ok {
			b.Fatal("not waiting")
		}
	}
}
