package text

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Category is what a lexicon term or a rule flags.
type Category string

// Categories, as in the replywatch_flagged_messages{category} label.
const (
	Abuse           Category = "abuse"
	Threat          Category = "threat"
	Sarcasm         Category = "sarcasm"
	Perfunctory     Category = "perfunctory"
	OffPlatform     Category = "off_platform"
	ComplaintIntent Category = "complaint_intent"
)

// Categories lists every category in a fixed order.
var Categories = []Category{Abuse, Threat, Sarcasm, Perfunctory, OffPlatform, ComplaintIntent}

// allowKey is the lexicon key of phrases that are never flagged.
const allowKey = "allow"

// Lexicon is terms per category and allow-listed phrases. Terms are
// matched after normalisation, so "加 微信", "加微信" and "加微信" are one term.
type Lexicon struct {
	Name  string
	Terms map[Category][]string
	// Allow are phrases that are never flagged: a match inside one of them
	// is dropped ("不用加微信" keeps "加微信" from flagging).
	Allow []string
}

//go:embed lexicons/*.yml
var defaults embed.FS

// Default is the lexicon shipped with replywatch: the union of the files
// in lexicons/.
func Default() (*Lexicon, error) {
	names, err := fs.Glob(defaults, "lexicons/*.yml")
	if err != nil {
		return nil, fmt.Errorf("listing the default lexicons: %w", err)
	}
	out := &Lexicon{Name: "default", Terms: map[Category][]string{}}
	for _, n := range names {
		data, err := defaults.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("reading default lexicon %s: %w", n, err)
		}
		l, err := ParseLexicon(n, data)
		if err != nil {
			return nil, err
		}
		out.add(l)
	}
	return out, nil
}

func (l *Lexicon) add(o *Lexicon) {
	for c, ts := range o.Terms {
		l.Terms[c] = append(l.Terms[c], ts...)
	}
	l.Allow = append(l.Allow, o.Allow...)
}

// LoadLexicon reads a lexicon file.
func LoadLexicon(path string) (*Lexicon, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading lexicon: %w", err)
	}
	return ParseLexicon(path, data)
}

// ParseLexicon reads a lexicon: a YAML mapping from category (or "allow")
// to a list of terms. Every problem names the file and the line.
func ParseLexicon(name string, data []byte) (*Lexicon, error) {
	l := &Lexicon{Name: name, Terms: map[Category][]string{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("lexicon %s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return l, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("lexicon %s:%d: want a mapping of category to terms", name, root.Line)
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		if key != allowKey && !slices.Contains(Categories, Category(key)) {
			errs = append(errs, fmt.Errorf("lexicon %s:%d: unknown category %q (want one of %s, %s)",
				name, k.Line, key, joinCategories(), allowKey))
			continue
		}
		if v.Kind != yaml.SequenceNode {
			errs = append(errs, fmt.Errorf("lexicon %s:%d: %s must be a list of terms", name, v.Line, key))
			continue
		}
		for _, t := range v.Content {
			if t.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Errorf("lexicon %s:%d: a term must be a string", name, t.Line))
				continue
			}
			if n := Normalize(t.Value); n.Text == "" {
				errs = append(errs, fmt.Errorf("lexicon %s:%d: term %q has no letters or digits, it would match nothing", name, t.Line, t.Value))
				continue
			}
			if key == allowKey {
				l.Allow = append(l.Allow, t.Value)
			} else {
				l.Terms[Category(key)] = append(l.Terms[Category(key)], t.Value)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

func joinCategories() string {
	s := make([]string, len(Categories))
	for i, c := range Categories {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}
