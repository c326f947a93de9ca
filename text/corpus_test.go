package text

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// corpusRow is one labelled message of testdata/corpus.tsv.
type corpusRow struct {
	line   int
	sender string
	labels []Category
	text   string
}

// Categories judged per sender.
var (
	agentCategories = []Category{Abuse, Threat, Sarcasm, Perfunctory, OffPlatform}
	buyerCategories = []Category{ComplaintIntent}
)

// floors are the least precision and recall per category the default
// lexicons must reach on the corpus; BENCHMARKS.md records the measured
// figures. Raise them when the lexicons improve.
var floors = map[Category]struct{ precision, recall float64 }{
	Abuse:           {0.95, 0.90},
	Threat:          {0.95, 0.85},
	Sarcasm:         {0.95, 0.85},
	Perfunctory:     {0.95, 0.90},
	OffPlatform:     {0.90, 0.95},
	ComplaintIntent: {0.90, 0.85},
}

func readCorpus(t testing.TB) []corpusRow {
	f, err := os.Open("testdata/corpus.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		parts := strings.SplitN(l, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("corpus.tsv:%d: want sender, labels and text separated by tabs", n)
		}
		r := corpusRow{line: n, sender: parts[0], text: parts[2]}
		if strings.Contains(r.text, `\u`) {
			s, err := strconv.Unquote(`"` + r.text + `"`)
			if err != nil {
				t.Fatalf("corpus.tsv:%d: %v", n, err)
			}
			r.text = s
		}
		judged := agentCategories
		switch r.sender {
		case "agent":
		case "buyer":
			judged = buyerCategories
		default:
			t.Fatalf("corpus.tsv:%d: sender %q is not agent or buyer", n, r.sender)
		}
		if parts[1] != "-" {
			for _, c := range strings.Split(parts[1], ",") {
				if !slices.Contains(judged, Category(c)) {
					t.Fatalf("corpus.tsv:%d: %q is not judged for a %s message", n, c, r.sender)
				}
				r.labels = append(r.labels, Category(c))
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

type score struct{ tp, fp, fn int }

func (s score) precision() float64 {
	if s.tp+s.fp == 0 {
		return 1
	}
	return float64(s.tp) / float64(s.tp+s.fp)
}

func (s score) recall() float64 {
	if s.tp+s.fn == 0 {
		return 1
	}
	return float64(s.tp) / float64(s.tp+s.fn)
}

// TestCorpus measures the default lexicons on the labelled corpus: the
// precision and recall of each category, which must not fall below floors.
func TestCorpus(t *testing.T) {
	rows := readCorpus(t)
	if len(rows) < 300 {
		t.Fatalf("corpus has %d messages, want at least 300", len(rows))
	}
	lex, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(lex)
	if err != nil {
		t.Fatal(err)
	}
	scores := map[Category]*score{}
	for _, c := range Categories {
		scores[c] = &score{}
	}
	for _, r := range rows {
		judged := agentCategories
		if r.sender == "buyer" {
			judged = buyerCategories
		}
		got := map[Category]Match{}
		for _, x := range m.Scan(r.text, judged...) {
			got[x.Category] = x
			if n := len([]rune(x.Excerpt)); n > ExcerptRunes {
				t.Errorf("corpus.tsv:%d: excerpt of %d characters", r.line, n)
			}
		}
		for _, c := range judged {
			want := slices.Contains(r.labels, c)
			x, found := got[c]
			switch {
			case want && found:
				scores[c].tp++
			case want:
				scores[c].fn++
				t.Logf("missed   %-16s corpus.tsv:%d %s", c, r.line, r.text)
			case found:
				scores[c].fp++
				t.Logf("flagged  %-16s corpus.tsv:%d %s (term %q)", c, r.line, r.text, x.Term)
			}
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-17s %9s %6s %4s %4s %4s\n", "category", "precision", "recall", "tp", "fp", "fn")
	for _, c := range Categories {
		s := scores[c]
		fmt.Fprintf(&table, "%-17s %9.3f %6.3f %4d %4d %4d\n", c, s.precision(), s.recall(), s.tp, s.fp, s.fn)
	}
	t.Log(table.String())
	for _, c := range Categories {
		s, f := scores[c], floors[c]
		if s.precision() < f.precision {
			t.Errorf("%s: precision %.3f is under its floor %.2f", c, s.precision(), f.precision)
		}
		if s.recall() < f.recall {
			t.Errorf("%s: recall %.3f is under its floor %.2f", c, s.recall(), f.recall)
		}
	}
}
