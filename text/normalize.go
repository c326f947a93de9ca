// Package text owns the matching of chat text against lexicons: the
// normalisation that undoes the tricks used to dodge filters, the embedded
// default lexicons and the per-shop ones, one Aho-Corasick automaton per
// category, filler-only replies and Chinese mobile numbers. It is pure: it
// knows nothing of alerts, figures or events (detectors turns its matches
// into those).
package text

import (
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/longbridgeapp/opencc"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// Normalized is a message's text as the automata read it, with the way
// back to the original for excerpts.
type Normalized struct {
	// Text is the normalised text: NFKC, half width, lower case,
	// simplified Chinese, only letters and digits.
	Text string
	// orig is the original text.
	orig string
	// b is Text as bytes, for the automata.
	b []byte
	// offs[i] is the byte offset in orig of the rune that produced the
	// normalised byte i; offs[len(Text)] is len(orig).
	offs []int32
}

// Original is the original text.
func (n *Normalized) Original() string { return n.orig }

// OrigSpan maps a byte span of Text back to a byte span of the original.
func (n *Normalized) OrigSpan(start, end int) (int, int) {
	s := int(n.offs[start])
	if end >= len(n.Text) {
		return s, len(n.orig)
	}
	// The original rune that produced the last normalised byte ends where
	// the next original rune starts.
	last := int(n.offs[end-1])
	_, size := utf8.DecodeRuneInString(n.orig[last:])
	return s, last + size
}

// t2s is the traditional→simplified table of single characters, derived
// once from OpenCC's dictionaries (see loadT2S): t2sHas has bit r-t2sBase
// set when r has a simplified form other than itself, and t2s holds that
// form. Every Chinese character of every message is looked up: the bit set
// (6 KiB) stays in the processor's nearest cache where a dense table of
// every character's form (200 KiB) would not, and only the few
// traditional characters reach the map.
var (
	t2sOnce sync.Once
	t2sHas  [(t2sEnd - t2sBase + 64) / 64]uint64
	t2s     map[rune]rune
)

const t2sBase, t2sEnd = 0x3400, 0xFAFF

// cjkRanges are the blocks whose characters may have a simplified form:
// CJK Unified Ideographs and Extension A, and the compatibility ideographs
// (NFKC maps most of those first).
var cjkRanges = [][2]rune{{0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xF900, 0xFAFF}}

// loadT2S converts every CJK character through OpenCC's t2s conversion and
// keeps those that change into one simplified character. Converting
// character by character keeps the offset map exact; the phrase-level
// distinctions OpenCC also makes (乾/干) do not change what a lexicon term
// means.
func loadT2S() {
	cc, err := opencc.New("t2s")
	if err != nil {
		// The dictionaries are embedded in the module: this cannot happen
		// short of a broken build.
		panic("text: loading the OpenCC t2s dictionaries: " + err.Error())
	}
	m := make(map[rune]rune, 4096)
	buf := make([]byte, 0, 4*256)
	for _, rg := range cjkRanges {
		// Convert a block of characters at a time; t2s maps these
		// characters one to one, so position i of the output is
		// character i of the input (checked: on a length mismatch the
		// block is converted one character at a time).
		for lo := rg[0]; lo <= rg[1]; lo += 256 {
			hi := min(lo+255, rg[1])
			buf = buf[:0]
			for r := lo; r <= hi; r++ {
				buf = utf8.AppendRune(buf, r)
			}
			out, err := cc.Convert(string(buf))
			rs := []rune(out)
			if err != nil || len(rs) != int(hi-lo+1) {
				for r := lo; r <= hi; r++ {
					o, err := cc.Convert(string(r))
					if or := []rune(o); err == nil && len(or) == 1 && or[0] != r {
						m[r] = or[0]
					}
				}
				continue
			}
			for i, o := range rs {
				if r := lo + rune(i); o != r {
					m[r] = o
				}
			}
		}
	}
	for r := range m {
		i := r - t2sBase
		t2sHas[i/64] |= 1 << (i % 64)
	}
	t2s = m
}

// traditional reports whether r, a character in [t2sBase, t2sEnd], has a
// simplified form other than itself.
func traditional(r rune) bool {
	i := r - t2sBase
	return t2sHas[i/64]&(1<<(i%64)) != 0
}

// simplify is r in simplified Chinese.
func simplify(r rune) rune {
	if r < t2sBase || r > t2sEnd {
		return r
	}
	t2sOnce.Do(loadT2S)
	if traditional(r) {
		return t2s[r]
	}
	return r
}

// Warm loads the traditional→simplified table now rather than at the first
// message that needs it.
func Warm() { t2sOnce.Do(loadT2S) }

// substitutes are characters that stand for a word when dodging filters:
// "+V" and "➕v" mean 加v.
var substitutes = map[rune]rune{'+': '加', '➕': '加', '﹢': '加'}

// keep reports whether a rune survives normalisation: letters and digits
// do; spaces, punctuation, symbols (emoji among them), marks, control and
// format characters (zero-width spaces and joiners) are what filters are
// dodged with.
func keep(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// Normalize prepares s for matching: width folding (full-width letters and
// digits to ASCII), NFKC, lower case, traditional to simplified Chinese,
// "+" to 加, and removal of everything but letters and digits.
func Normalize(s string) Normalized {
	var n Normalized
	n.Reset(s)
	return n
}

// Reset normalises s into n, reusing n's buffers: n's previous Text must
// no longer be in use.
func (n *Normalized) Reset(s string) {
	out := n.b[:0]
	offs := n.offs[:0]
	t2sOnce.Do(loadT2S)
	var tmp [4]byte
	for i, r := range s {
		if 0x4E00 <= r && r <= 0x9FFF {
			// CJK Unified Ideographs, most of any message: letters, no
			// case, no width or NFKC form of their own.
			if traditional(r) {
				r = t2s[r]
			}
			if r < 0x800 || r > 0xFFFF {
				out, offs = appendRune(out, offs, r, i)
				continue
			}
			// Three bytes of UTF-8, each from the character at i.
			out = append(out, byte(0xE0|r>>12), byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
			offs = append(offs, int32(i), int32(i), int32(i))
			continue
		}
		if r < utf8.RuneSelf {
			switch {
			case 'A' <= r && r <= 'Z':
				r += 'a' - 'A'
			case r == '+':
				out, offs = appendRune(out, offs, '加', i)
				continue
			}
			if keep(r) {
				out = append(out, byte(r))
				offs = append(offs, int32(i))
			}
			continue
		}
		if sub, ok := substitutes[r]; ok {
			out, offs = appendRune(out, offs, sub, i)
			continue
		}
		if f := widthFold(r); f != 0 {
			r = f
			if r < utf8.RuneSelf {
				if r == '+' {
					out, offs = appendRune(out, offs, '加', i)
					continue
				}
				if r = unicode.ToLower(r); keep(r) {
					out, offs = appendRune(out, offs, r, i)
				}
				continue
			}
		}
		n := utf8.EncodeRune(tmp[:], r)
		if norm.NFKC.Properties(tmp[:n]).Decomposition() == nil {
			// Most characters, all common Chinese ones among them, are
			// their own NFKC form.
			r = simplify(unicode.ToLower(r))
			if keep(r) {
				out, offs = appendRune(out, offs, r, i)
			}
			continue
		}
		// NFKC of one character may be several ("㈱" is "(株)").
		for _, c := range norm.NFKC.String(string(tmp[:n])) {
			c = simplify(unicode.ToLower(c))
			if sub, ok := substitutes[c]; ok {
				c = sub
			}
			if keep(c) {
				out, offs = appendRune(out, offs, c, i)
			}
		}
	}
	offs = append(offs, int32(len(s)))
	// out is not written again until the next Reset: the text shares its
	// bytes.
	n.Text, n.orig, n.offs, n.b = unsafe.String(unsafe.SliceData(out), len(out)), s, offs, out
}

// widthFold is r's width-folded form (full-width ASCII to ASCII, half-width
// katakana to full width), 0 when it has none. Only the ideographic space
// and the Halfwidth and Fullwidth Forms block have one that matters here.
func widthFold(r rune) rune {
	if r != 0x3000 && (r < 0xFF00 || r > 0xFFEF) {
		return 0
	}
	return width.LookupRune(r).Folded()
}

func appendRune(out []byte, offs []int32, r rune, at int) ([]byte, []int32) {
	n := len(out)
	out = utf8.AppendRune(out, r)
	for range len(out) - n {
		offs = append(offs, int32(at))
	}
	return out, offs
}

// Excerpt is at most max characters of the original text around the byte
// span [start, end): the span itself, then as much context before and after
// as fits, with "…" where text was cut.
func Excerpt(s string, start, end, max int) string {
	rs := []rune(s)
	if len(rs) <= max {
		return s
	}
	// Rune indexes of the span.
	rs0 := utf8.RuneCountInString(s[:start])
	rs1 := rs0 + utf8.RuneCountInString(s[start:end])
	budget := max - 2 // room for the ellipses
	if rs1-rs0 >= budget {
		return string(rs[rs0:rs0+budget]) + "…"
	}
	before := (budget - (rs1 - rs0)) / 3
	from := rs0 - before
	if from < 0 {
		from = 0
	}
	to := from + budget
	if to > len(rs) {
		to = len(rs)
		from = to - budget
	}
	var b []rune
	if from > 0 {
		b = append(b, '…')
	}
	b = append(b, rs[from:to]...)
	if to < len(rs) {
		b = append(b, '…')
	}
	return string(b)
}
