package detectors

import (
	"bytes"
	"errors"
	"math/rand/v2"
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

// FuzzUnmarshalBinary checks that no input panics the decoder or, once
// decoded, the engine.
func FuzzUnmarshalBinary(f *testing.F) {
	b, _ := typicalWaiting(f, true).c.MarshalBinary()
	f.Add(b)
	for _, c := range garbageCases {
		f.Add(c.b)
	}
	r := pddRules()
	e := &Engine{Rules: func(string) *Rules { return r }, PerAgent: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Conversation{Shop: "s1", Buyer: "b1"}
		if err := c.UnmarshalBinary(b); err != nil {
			return
		}
		var fx Effects
		now := time.UnixMilli(c.lastTS)
		e.NextDue(&c)
		e.Advance(&c, now.Add(time.Hour), &fx)
		e.Chat(&c, &event.Event{EventID: "x1", Type: event.TypeMessage, Sender: event.SenderAgent, AgentID: "a1", TS: event.Time{Time: now.Add(-time.Minute)}}, &fx)
		e.Chat(&c, &event.Event{EventID: "x2", Type: event.TypeMessage, Sender: event.SenderBuyer, TS: event.Time{Time: now}}, &fx)
		e.Chat(&c, &event.Event{EventID: "x3", Type: event.TypeBuyerBlocked, TS: event.Time{Time: now}}, &fx)
		if _, err := c.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecodingRandomBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	valid, _ := typicalWaiting(t, true).c.MarshalBinary()
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), valid...)
		// Flip a few bytes of a valid state: the decoder must refuse or
		// give a state the engine can run on, never panic.
		for j := 0; j < 1+r.IntN(3); j++ {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		var c Conversation
		if c.UnmarshalBinary(b) == nil {
			var fx Effects
			e := &Engine{Rules: func(string) *Rules { return pddRules() }, PerAgent: true}
			e.Advance(&c, time.UnixMilli(c.lastTS).Add(48*time.Hour), &fx)
		}
	}
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
