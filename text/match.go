package text

import (
	"slices"
	"strings"
	"unicode/utf8"

	ac "github.com/petar-dambovaliev/aho-corasick"
)

// ExcerptRunes bounds an alert's excerpt of the message.
const ExcerptRunes = 60

// automaton is one category's (or the allow list's) terms.
type automaton struct {
	ac ac.AhoCorasick
	// terms are the terms as written in the lexicon, by pattern index.
	terms []string
	// edges says, per pattern, whether its first and last characters are
	// ASCII letters or digits, which must not run on into neighbouring
	// ones (bit 0: first, bit 1: last): "wx" is not flagged inside a
	// model number "twx200", nor "315" inside "3150元".
	edges []uint8
}

func build(terms []string) *automaton {
	if len(terms) == 0 {
		return nil
	}
	a := &automaton{}
	seen := map[string]bool{}
	var pats []string
	for _, t := range terms {
		p := Normalize(t).Text
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		pats = append(pats, p)
		a.terms = append(a.terms, t)
		var e uint8
		if alnum(p[0]) {
			e |= 1
		}
		if alnum(p[len(p)-1]) {
			e |= 2
		}
		a.edges = append(a.edges, e)
	}
	// Leftmost-longest: of overlapping terms the longest is reported
	// ("加微信" rather than "微信"). The automaton reads bytes; terms and
	// text are valid UTF-8, so a match always starts and ends on
	// character boundaries.
	b := ac.NewAhoCorasickBuilder(ac.Opts{MatchKind: ac.LeftMostLongestMatch, DFA: true})
	a.ac = b.Build(pats)
	return a
}

func alnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func digit(c byte) bool { return '0' <= c && c <= '9' }

// span is a match in normalised text.
type span struct {
	start, end int
	term       string
}

// find calls f for each match of a in n's text that keeps to the edge
// rule, until f returns false.
func (a *automaton) find(n *Normalized, f func(span) bool) {
	if a == nil {
		return
	}
	it := a.ac.IterByte(n.b)
	for m := it.Next(); m != nil; m = it.Next() {
		s, e, p := m.Start(), m.End(), m.Pattern()
		if a.edges[p] != 0 && n.runsOn(s, e, a.edges[p]) {
			continue
		}
		if !f(span{s, e, a.terms[p]}) {
			return
		}
	}
}

// runsOn reports whether a match's ASCII edge characters run on into their
// neighbours in the original text: a letter into a letter or digit, a
// digit into a digit. The original decides because normalisation removed
// the separators: in "vx：shop8" the handle is apart from vx, in "WX200"
// the letters belong to a model number.
func (n *Normalized) runsOn(start, end int, edges uint8) bool {
	os, oe := n.OrigSpan(start, end)
	if edges&1 != 0 && os > 0 {
		if prev, ok := asciiLower(n.orig[os-1]); ok && runsInto(n.Text[start], prev) {
			return true
		}
	}
	if edges&2 != 0 && oe < len(n.orig) {
		if next, ok := asciiLower(n.orig[oe]); ok && runsInto(n.Text[end-1], next) {
			return true
		}
	}
	return false
}

// asciiLower is b lower-cased when it is an ASCII letter or digit.
func asciiLower(b byte) (byte, bool) {
	if 'A' <= b && b <= 'Z' {
		b += 'a' - 'A'
	}
	return b, alnum(b)
}

// runsInto reports whether the edge character c continues into n.
func runsInto(c, n byte) bool {
	if digit(c) {
		return digit(n)
	}
	return alnum(n)
}

// Matcher finds a lexicon's terms in messages. It is immutable and safe for
// concurrent use.
type Matcher struct {
	cats  map[Category]*automaton
	allow *automaton
	// any holds every category's terms but filler: one pass over a
	// message that matches none of them (nearly all messages) settles it
	// without running each category's automaton. Filler terms (哦, 啊) are
	// in most messages and only matter in short ones (see filler).
	any *automaton
	// starts finds which categories but filler have a term in a message,
	// by the first two characters of every term: a message with no such
	// pair of characters holds no term, which a few lookups per character
	// settle, far cheaper than an automaton pass; where a pair is there,
	// the terms that start with it are compared. Only the few messages
	// that hold a term go through the automata, and only through those of
	// the categories they hold a term of. nil when a term is a single
	// character: any settles it then.
	starts *pairFilter
	// fillerRunes are the characters of the filler terms.
	fillerRunes map[rune]bool
}

// Compile builds the automata of the union of lexicons.
func Compile(lexicons ...*Lexicon) (*Matcher, error) {
	all := &Lexicon{Terms: map[Category][]string{}}
	for _, l := range lexicons {
		if l != nil {
			all.add(l)
		}
	}
	m := &Matcher{cats: map[Category]*automaton{}, allow: build(all.Allow)}
	var every []string
	for c, ts := range all.Terms {
		m.cats[c] = build(ts)
		if c != Perfunctory {
			every = append(every, ts...)
		}
	}
	m.any = build(every)
	m.starts = newPairFilter(all.Terms)
	m.fillerRunes = map[rune]bool{}
	for _, t := range all.Terms[Perfunctory] {
		for _, r := range Normalize(t).Text {
			m.fillerRunes[r] = true
		}
	}
	return m, nil
}

// Match is one finding in a message.
type Match struct {
	Category Category
	// Term is the lexicon term as written, or for a phone number the number
	// with its middle digits masked.
	Term string
	// Excerpt is at most ExcerptRunes characters of the original message
	// around the match.
	Excerpt string
}

// Scan finds the categories cats in s: the first match of each category
// that no allow-listed phrase covers. Perfunctory means the message is only
// filler (see Filler); OffPlatform also finds Chinese mobile numbers.
func (m *Matcher) Scan(s string, cats ...Category) []Match {
	n := Normalize(s)
	return m.ScanNormalized(&n, cats...)
}

// ScanNormalized is Scan over an already normalised message.
func (m *Matcher) ScanNormalized(n *Normalized, cats ...Category) []Match {
	// present: the categories with a term in the message, as written.
	present := ^uint64(0)
	if m.starts != nil {
		present = m.starts.holds(n.Text)
	} else if !m.any.matches(n) {
		present = 0
	}
	if present == 0 {
		// No term anywhere: only an empty (punctuation-only) reply or a
		// phone number can still be found.
		return m.scanTermless(n, cats)
	}
	var out []Match
	var allowed []span
	allowDone := false
	covered := func(sp span) bool {
		if !allowDone {
			allowDone = true
			m.allow.find(n, func(a span) bool { allowed = append(allowed, a); return true })
		}
		for _, a := range allowed {
			if a.start <= sp.start && sp.end <= a.end {
				return true
			}
		}
		return false
	}
	for _, c := range cats {
		if c == Perfunctory {
			if m.filler(n) {
				out = append(out, Match{Category: c, Term: fillerTerm(n), Excerpt: Excerpt(n.orig, 0, len(n.orig), ExcerptRunes)})
			}
			continue
		}
		var hit *span
		if present&catBit(c) != 0 {
			m.cats[c].find(n, func(sp span) bool {
				if covered(sp) {
					return true
				}
				hit = &sp
				return false
			})
		}
		if hit == nil && c == OffPlatform {
			if sp, ok := findPhone(n.Text); ok && !covered(sp) {
				hit = &sp
			}
		}
		if hit != nil {
			os, oe := n.OrigSpan(hit.start, hit.end)
			out = append(out, Match{Category: c, Term: hit.term, Excerpt: Excerpt(n.orig, os, oe, ExcerptRunes)})
		}
	}
	return out
}

// matches reports whether any term of a occurs in n.
func (a *automaton) matches(n *Normalized) bool {
	found := false
	a.find(n, func(span) bool { found = true; return false })
	return found
}

// scanTermless is ScanNormalized for a message that holds no term.
func (m *Matcher) scanTermless(n *Normalized, cats []Category) []Match {
	var out []Match
	for _, c := range cats {
		switch c {
		case Perfunctory:
			if m.filler(n) {
				out = append(out, Match{Category: c, Term: fillerTerm(n), Excerpt: Excerpt(n.orig, 0, len(n.orig), ExcerptRunes)})
			}
		case OffPlatform:
			if sp, ok := findPhone(n.Text); ok && !m.allowCovers(n, sp) {
				os, oe := n.OrigSpan(sp.start, sp.end)
				out = append(out, Match{Category: c, Term: sp.term, Excerpt: Excerpt(n.orig, os, oe, ExcerptRunes)})
			}
		}
	}
	return out
}

// allowCovers reports whether an allow-listed phrase covers sp.
func (m *Matcher) allowCovers(n *Normalized, sp span) bool {
	covered := false
	m.allow.find(n, func(a span) bool {
		covered = a.start <= sp.start && sp.end <= a.end
		return !covered
	})
	return covered
}

// filler reports whether a message is only filler: it has text, and once
// normalised it is empty (only punctuation, "?", "。", emoji) or made
// wholly of the perfunctory lexicon's terms ("嗯嗯", "哦", "额").
func (m *Matcher) filler(n *Normalized) bool {
	if !hasVisible(n.orig) {
		return false // an image or a card: no text to judge
	}
	if n.Text == "" {
		return true
	}
	if len(n.Text) > maxFiller {
		return false
	}
	// A character no filler term has settles it without the automaton.
	for _, r := range n.Text {
		if !m.fillerRunes[r] {
			return false
		}
	}
	// Covered end to end by filler terms, which may repeat.
	pos := 0
	m.cats[Perfunctory].find(n, func(sp span) bool {
		if sp.start <= pos && sp.end > pos {
			pos = sp.end
		}
		return pos < len(n.Text)
	})
	return pos == len(n.Text)
}

func fillerTerm(n *Normalized) string {
	if n.Text == "" {
		return "(punctuation only)"
	}
	// A copy: Text shares a buffer that the next Reset reuses.
	return strings.Clone(n.Text)
}

// hasVisible reports whether s has anything but white space.
func hasVisible(s string) bool {
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '\u3000', '\u200b', '\u200c', '\u200d', '\ufeff':
		default:
			return true
		}
	}
	return false
}

// maxFiller bounds the normalised length of a filler-only reply
// ("嗯嗯嗯嗯" is 12 bytes): longer replies say something.
const maxFiller = 36

// numeral is the digit a Chinese numeral stands for when a number is
// spelled out to dodge filters ("幺三八…").
func numeral(r rune) (byte, bool) {
	switch r {
	case '〇', '零':
		return '0', true
	case '一', '幺', '壹':
		return '1', true
	case '二', '贰':
		return '2', true
	case '三', '叁':
		return '3', true
	case '四', '肆':
		return '4', true
	case '五', '伍':
		return '5', true
	case '六', '陆':
		return '6', true
	case '七', '柒':
		return '7', true
	case '八', '捌':
		return '8', true
	case '九', '玖':
		return '9', true
	}
	return 0, false
}

// orderWords before a number say it is an order, parcel or tracking
// number, not a phone number.
var orderWords = []string{"订单号", "单号", "订单", "运单", "快递", "物流", "编号", "order", "id"}

// findPhone finds a Chinese mobile number (1[3-9] and nine more digits) as
// a run of exactly eleven digits or numerals in normalised text: separators
// are gone by now ("138 0013-8000" is one run), longer runs are order
// numbers, and a run right after an order word is one too.
func findPhone(t string) (span, bool) {
	var digits [11]byte
	n, start := 0, 0
	// end closes the run of digits ending at byte e.
	end := func(e int) (span, bool) {
		if n == 11 && digits[0] == '1' && digits[1] >= '3' && !afterOrderWord(t[:start]) {
			return span{start, e, maskPhone(digits)}, true
		}
		return span{}, false
	}
	for i, r := range t {
		d, ok := byte(0), false
		if r < utf8.RuneSelf {
			d, ok = byte(r), digit(byte(r))
		} else if r >= '〇' {
			d, ok = numeral(r)
		}
		if !ok {
			if n > 0 {
				if sp, found := end(i); found {
					return sp, true
				}
				n = 0
			}
			continue
		}
		if n == 0 {
			start = i
		}
		if n < len(digits) {
			digits[n] = d
		}
		n++
	}
	if n > 0 {
		return end(len(t))
	}
	return span{}, false
}

func afterOrderWord(before string) bool {
	for _, w := range orderWords {
		if len(before) >= len(w) && before[len(before)-len(w):] == w {
			return true
		}
	}
	return false
}

func maskPhone(d [11]byte) string { return string(d[:3]) + "****" + string(d[7:]) }

// pairBits is the size of a pairFilter's bit set: with the default
// lexicons' few hundred terms about one pair in a hundred that starts no
// term still passes it.
const pairBits = 1 << 16

// pairFilter holds the first two characters of the terms: a one-hash
// Bloom filter of the pairs, which rejects nearly every pair of ordinary
// text with one lookup, and the terms by their exact pair for the pairs
// that pass it.
type pairFilter struct {
	bits  [pairBits / 64]uint64
	terms map[uint64][]pairTerm // by pairKey of their first two characters
}

// pairTerm is a normalised term and the categories it is a term of
// (catBit).
type pairTerm struct {
	text string
	cats uint64
}

func pairHash(a, b rune) uint32 { return (uint32(a)*0x9E3779B1 ^ uint32(b)*0x85EBCA77) >> 16 }

func pairKey(a, b rune) uint64 { return uint64(a)<<32 | uint64(uint32(b)) }

// catBit is a category's bit in a set of categories.
func catBit(c Category) uint64 {
	return 1 << uint(slices.Index(Categories, c)+1)
}

// newPairFilter holds the first two characters of each normalised term
// of every category but filler; nil when a term has fewer (it could match
// without a pair).
func newPairFilter(terms map[Category][]string) *pairFilter {
	f := &pairFilter{terms: map[uint64][]pairTerm{}}
	for c, ts := range terms {
		if c == Perfunctory {
			continue
		}
		for _, t := range ts {
			p := Normalize(t).Text
			if p == "" {
				continue
			}
			a, n := utf8.DecodeRuneInString(p)
			if n == len(p) {
				return nil
			}
			b, _ := utf8.DecodeRuneInString(p[n:])
			h := pairHash(a, b)
			f.bits[h/64] |= 1 << (h % 64)
			k := pairKey(a, b)
			i := slices.IndexFunc(f.terms[k], func(pt pairTerm) bool { return pt.text == p })
			if i < 0 {
				f.terms[k] = append(f.terms[k], pairTerm{text: p})
				i = len(f.terms[k]) - 1
			}
			f.terms[k][i].cats |= catBit(c)
		}
	}
	return f
}

// holds is the set of categories (catBit) with a term in normalised text
// s, as written: whether it also keeps to the edge rule is for the
// automata to judge.
func (f *pairFilter) holds(s string) uint64 {
	var cats uint64
	prev, at := rune(-1), 0
	for i, r := range s {
		if prev >= 0 {
			if h := pairHash(prev, r); f.bits[h/64]&(1<<(h%64)) != 0 {
				for _, t := range f.terms[pairKey(prev, r)] {
					if strings.HasPrefix(s[at:], t.text) {
						cats |= t.cats
					}
				}
			}
		}
		prev, at = r, i
	}
	return cats
}
