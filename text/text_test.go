package text

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/longbridgeapp/opencc"

	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

var normalizeCases = []struct{ in, want string }{
	{"加 V 信", "加v信"},
	{"加*薇*信", "加薇信"},
	{"vx：abc", "vxabc"},
	{"１３８ ００１３ ８０００", "13800138000"},
	{"加個微信吧", "加个微信吧"}, // traditional to simplified
	{"投訴你們", "投诉你们"},
	{"加\u200b微\u200d信\ufeff", "加微信"}, // zero-width characters
	{"加😀微🌹信", "加微信"},                 // emoji
	{"＋ＱＱ", "加qq"},                   // full width, "+" for 加
	{"➕V", "加v"},
	{"ＷｅＣｈａｔ", "wechat"},
	{"嗯。。。？！", "嗯"},
	{"㈱", "株"}, // NFKC: one character becomes several, punctuation dropped
	{"", ""},
}

func TestNormalize(t *testing.T) {
	for _, c := range normalizeCases {
		n := Normalize(c.in)
		if n.Text != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, n.Text, c.want)
		}
		if len(n.offs) != len(n.Text)+1 {
			t.Errorf("Normalize(%q): %d offsets for %d bytes", c.in, len(n.offs), len(n.Text))
		}
	}
}

// TestOrigSpan: a match in normalised text maps back to the original
// characters that produced it, dodging characters included.
func TestOrigSpan(t *testing.T) {
	orig := "亲，加 V 信：abc，谢谢"
	n := Normalize(orig)
	i := strings.Index(n.Text, "加v信")
	s, e := n.OrigSpan(i, i+len("加v信"))
	if got := orig[s:e]; got != "加 V 信" {
		t.Errorf("original span %q, want %q", got, "加 V 信")
	}
}

var phoneCases = []struct {
	in   string
	want string // masked number, "" for none
}{
	{"13800138000", "138****8000"},
	{"电话：138-0013-8000", "138****8000"},
	{"１３８ ００１３ ８０００", "138****8000"},
	{"幺三八零零一三八零零零", "138****8000"},
	{"12800138000", ""},        // 12x is no mobile prefix
	{"1380013800", ""},         // ten digits
	{"231125138001380001", ""}, // an order number is longer
	{"订单号13800138000", ""},     // after an order word
	{"快递单号：13800138000", ""},
	{"价格138元，运费0元", ""},
	{"打15800001111找我", "158****1111"},
}

func TestPhone(t *testing.T) {
	for _, c := range phoneCases {
		sp, ok := findPhone(Normalize(c.in).Text)
		if got := map[bool]string{true: sp.term}[ok]; got != c.want {
			t.Errorf("findPhone(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func mustMatcher(t *testing.T, extra ...*Lexicon) *Matcher {
	t.Helper()
	lex, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(append([]*Lexicon{lex}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var scanCases = []struct {
	in   string
	cats []Category
	want string // "category:term" of each match, space separated
}{
	{"加我微信", []Category{OffPlatform}, "off_platform:微信"},
	{"平台内联系就可以，不用加微信", []Category{OffPlatform}, ""}, // allow-listed
	{"不用加微信，加我vx就行", []Category{OffPlatform}, "off_platform:vx"},
	{"型号WX200", []Category{OffPlatform}, ""}, // letters run on into a model number
	{"vx：shop888", []Category{OffPlatform}, "off_platform:vx"},
	{"USB充电", []Category{Abuse}, ""},
	{"S B", []Category{Abuse}, "abuse:sb"},
	{"3150元", []Category{ComplaintIntent}, ""},
	{"去315投诉", []Category{ComplaintIntent}, "complaint_intent:315"},
	{"嗯嗯。。", []Category{Perfunctory}, "perfunctory:嗯嗯"},
	{"嗯嗯，好的亲，已改好", []Category{Perfunctory}, ""},
	{"？？", []Category{Perfunctory}, "perfunctory:(punctuation only)"},
	{"   ", []Category{Perfunctory}, ""}, // no text: an image or a card
	{"傻逼，给我滚", []Category{Abuse, Sarcasm}, "abuse:傻逼"},
}

func TestScan(t *testing.T) {
	m := mustMatcher(t)
	for _, c := range scanCases {
		var got []string
		for _, x := range m.Scan(c.in, c.cats...) {
			got = append(got, string(x.Category)+":"+x.Term)
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("Scan(%q) = %q, want %q", c.in, g, c.want)
		}
	}
}

// TestShopLexicon: a shop's extra lexicon adds terms and allow-listed
// phrases to the defaults.
func TestShopLexicon(t *testing.T) {
	extra, err := ParseLexicon("shop.yml", []byte("off_platform: [抖音号]\nallow: [加微信公众号]\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := mustMatcher(t, extra)
	if got := m.Scan("我的抖音号是abc", OffPlatform); len(got) != 1 || got[0].Term != "抖音号" {
		t.Errorf("extra term: got %v", got)
	}
	if got := m.Scan("关注并加微信公众号领券", OffPlatform); len(got) != 0 {
		t.Errorf("allow-listed phrase flagged: %v", got)
	}
}

var badLexicons = []struct{ data, err string }{
	{"abuse: [傻逼]\nrude: [x]\n", `lexicon bad.yml:2: unknown category "rude" (want one of abuse, threat, sarcasm, perfunctory, off_platform, complaint_intent, allow)`},
	{"abuse: 傻逼\n", "lexicon bad.yml:1: abuse must be a list of terms"},
	{"abuse: [\"。。\"]\n", `lexicon bad.yml:1: term "。。" has no letters or digits, it would match nothing`},
	{"abuse: [[a]]\n", "lexicon bad.yml:1: a term must be a string"},
	{"- a\n", "lexicon bad.yml:1: want a mapping of category to terms"},
	{"abuse: [a\n", "lexicon bad.yml: yaml: line 1: did not find expected ',' or ']'"},
}

func TestBadLexicon(t *testing.T) {
	for _, c := range badLexicons {
		_, err := ParseLexicon("bad.yml", []byte(c.data))
		if err == nil || err.Error() != c.err {
			t.Errorf("ParseLexicon(%q) error\n got %v\nwant %s", c.data, err, c.err)
		}
	}
}

func TestExcerpt(t *testing.T) {
	long := strings.Repeat("亲", 50) + "加微信" + strings.Repeat("好", 50)
	m := mustMatcher(t)
	got := m.Scan(long, OffPlatform)
	if len(got) != 1 {
		t.Fatalf("got %v", got)
	}
	ex := got[0].Excerpt
	if n := utf8.RuneCountInString(ex); n > ExcerptRunes {
		t.Errorf("excerpt has %d characters, at most %d", n, ExcerptRunes)
	}
	if !strings.Contains(ex, "加微信") || !strings.HasPrefix(ex, "…") || !strings.HasSuffix(ex, "…") {
		t.Errorf("excerpt %q does not show the match with its cuts", ex)
	}
	if short := "加我微信"; Excerpt(short, 0, len(short), ExcerptRunes) != short {
		t.Error("a short message is its own excerpt")
	}
}

// BenchmarkScan measures matching speed on one core: every agent category
// over the corpus's messages, normalisation included.
func BenchmarkScan(b *testing.B) {
	rows := readCorpus(b)
	lex, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	m, err := Compile(lex)
	if err != nil {
		b.Fatal(err)
	}
	Warm()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rows[i%len(rows)]
		if r.sender == "buyer" {
			m.Scan(r.text, buyerCategories...)
		} else {
			m.Scan(r.text, agentCategories...)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkScanTraffic measures matching speed on one core over simulated
// chat traffic (sim: mostly ordinary questions and answers, a few percent
// flagged), as the pipeline runs it: one reused normalisation buffer,
// agents' messages judged for their five categories, buyers' for one.
func BenchmarkScanTraffic(b *testing.B) {
	type msg struct {
		agent bool
		text  string
	}
	var msgs []msg
	loc := sim.Shanghai()
	err := sim.Generate(sim.Options{Seed: 3, Shops: 10, Start: time.Date(2026, 11, 11, 9, 0, 0, 0, loc), End: time.Date(2026, 11, 11, 21, 0, 0, 0, loc)},
		func(r sim.Record) error {
			ev := r.Event
			if ev.Type == event.TypeMessage && ev.Text != "" && (ev.Sender == event.SenderAgent || ev.Sender == event.SenderBuyer) {
				msgs = append(msgs, msg{ev.Sender == event.SenderAgent, ev.Text})
			}
			return nil
		})
	if err != nil || len(msgs) == 0 {
		b.Fatalf("simulated traffic: %d messages, %v", len(msgs), err)
	}
	lex, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	m, err := Compile(lex)
	if err != nil {
		b.Fatal(err)
	}
	Warm()
	var n Normalized
	flagged := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := msgs[i%len(msgs)]
		n.Reset(x.text)
		cats := buyerCategories
		if x.agent {
			cats = agentCategories
		}
		flagged += len(m.ScanNormalized(&n, cats...))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(flagged)/float64(b.N), "flags/msg")
}

// TestPairFilter: the filter that spares the automata most messages finds
// every term of the default lexicons wherever it stands, passes exactly
// the messages of simulated traffic and of the corpus that hold a term as
// written (all those the automaton finds one in among them), and is off
// when a term is a single character.
func TestPairFilter(t *testing.T) {
	lex, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(lex)
	if err != nil {
		t.Fatal(err)
	}
	if m.starts == nil {
		t.Fatal("no pair filter for the default lexicons")
	}
	terms := map[string]uint64{} // the categories of each normalised term
	for c, ts := range lex.Terms {
		if c == Perfunctory {
			continue
		}
		for _, term := range ts {
			terms[Normalize(term).Text] |= catBit(c)
			for _, s := range []string{term, "亲，" + term, term + "吧", "您好" + term + "的"} {
				if m.starts.holds(Normalize(s).Text)&catBit(c) == 0 {
					t.Errorf("%s term %q in %q does not pass the filter", c, term, s)
				}
			}
		}
	}
	// holdsTerm is what the filter must answer: the categories with a
	// term in s.
	holdsTerm := func(s string) uint64 {
		var cats uint64
		for term, c := range terms {
			if term != "" && strings.Contains(s, term) {
				cats |= c
			}
		}
		return cats
	}
	var msgs, passed, held int
	check := func(text string) {
		n := Normalize(text)
		msgs++
		cats := m.starts.holds(n.Text)
		if want := holdsTerm(n.Text); cats != want {
			t.Errorf("%q: the filter finds categories %b, the terms %b", text, cats, want)
		}
		got := cats != 0
		if got {
			passed++
		}
		if m.any.matches(&n) {
			held++
			if !got {
				t.Errorf("%q holds a term the filter does not pass", text)
			}
		}
		if err := sameScan(m, text); err != nil {
			t.Error(err)
		}
	}
	// Simulated traffic, nearly all of it ordinary questions and answers,
	// and the corpus, half of it flagged.
	loc := sim.Shanghai()
	err = sim.Generate(sim.Options{Seed: 3, Shops: 4, Start: time.Date(2026, 11, 11, 9, 0, 0, 0, loc), End: time.Date(2026, 11, 11, 21, 0, 0, 0, loc)},
		func(r sim.Record) error {
			if ev := r.Event; ev.Type == event.TypeMessage && ev.Text != "" {
				check(ev.Text)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("of %d simulated messages %d pass the filter, %d hold a term by the automaton's edge rule", msgs, passed, held)
	if float64(passed) > 0.05*float64(msgs) {
		t.Errorf("of %d simulated messages %d pass the filter (%d hold a term)", msgs, passed, held)
	}
	for _, r := range readCorpus(t) {
		check(r.text)
	}
	one, err := Compile(lex, &Lexicon{Name: "shop", Terms: map[Category][]string{Abuse: {"滚"}}})
	if err != nil {
		t.Fatal(err)
	}
	if one.starts != nil {
		t.Error("a pair filter with a one-character term")
	}
	if ms := one.Scan("滚", Abuse); len(ms) != 1 {
		t.Errorf("a one-character term is not found: %v", ms)
	}
}

// sameScan compares what m finds in text with what it finds without the
// pair filter, by the automata alone.
func sameScan(m *Matcher, text string) error {
	bare := *m
	bare.starts = nil
	for _, cats := range [][]Category{agentCategories, buyerCategories} {
		got, want := m.Scan(text, cats...), bare.Scan(text, cats...)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%q: %v with the pair filter, %v without", text, got, want)
		}
	}
	return nil
}

// FuzzPairFilter: on any text, the pair filter changes nothing of what is
// found. The seeds are the corpus (go test -fuzz FuzzPairFilter ./text/
// explores from them).
func FuzzPairFilter(f *testing.F) {
	for _, r := range readCorpus(f) {
		f.Add(r.text)
	}
	lex, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	m, err := Compile(lex)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if err := sameScan(m, text); err != nil {
			t.Error(err)
		}
	})
}

// TestSimplifyTable: the traditional→simplified table gives, for every
// character it covers, what OpenCC's t2s conversion gives for the
// character alone (itself when OpenCC makes it several characters).
func TestSimplifyTable(t *testing.T) {
	cc, err := opencc.New("t2s")
	if err != nil {
		t.Fatal(err)
	}
	Warm()
	changed := 0
	for _, rg := range cjkRanges {
		for r := rg[0]; r <= rg[1]; r++ {
			want := r
			out, err := cc.Convert(string(r))
			if rs := []rune(out); err == nil && len(rs) == 1 {
				want = rs[0]
			}
			if got := simplify(r); got != want {
				t.Errorf("simplify(%q) = %q, OpenCC gives %q", r, got, want)
			}
			if want != r {
				changed++
			}
		}
	}
	t.Logf("%d characters have a simplified form of their own", changed)
	if changed < 2000 {
		t.Errorf("only %d characters have a simplified form", changed)
	}
}
