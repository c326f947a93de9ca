package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/agnivade/levenshtein"
	"go.yaml.in/yaml/v3"
)

// This file makes messages point into the file: the line of the key a
// message is about, the variable that overrode it, and the key meant when
// an unknown one is a near miss.

// withLines adds to each message the line of the key it is about, or of
// its nearest enclosing key in the file (a value inherited from the
// defaults is reported where its section is); or, for a key an environment
// variable set, that variable. Messages that already name a line are kept.
func withLines(msgs []string, doc *yaml.Node, env map[string]string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m
		path, _, found := strings.Cut(m, ": ")
		if !found || strings.Contains(m, "(line") || strings.ContainsAny(path, " \t") {
			continue
		}
		if v := envOf(env, path); v != "" {
			out[i] = fmt.Sprintf("%s (from %s)", m, v)
			continue
		}
		if line := lineOf(doc, path); line > 0 {
			out[i] = fmt.Sprintf("%s (line %d)", m, line)
		}
	}
	return out
}

// envOf is the variable that set path or a key above it, or "".
func envOf(env map[string]string, path string) string {
	for key, v := range env {
		if within(path, key) {
			return v
		}
	}
	return ""
}

// lineOf is the line of the deepest node of the file on path ("shops.s1.
// reply_sla.thresholds[1]"), 0 when not even the first key is there. Shop
// ids may hold dots: the longest key that fits is taken.
func lineOf(doc *yaml.Node, path string) int {
	n := doc
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 0
	for path != "" && n != nil {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			best := -1
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if strings.HasPrefix(path, k) && (len(path) == len(k) || path[len(k)] == '.' || path[len(k)] == '[') &&
					(best < 0 || len(k) > len(n.Content[best].Value)) {
					best = i
				}
			}
			if best < 0 {
				return line
			}
			line = n.Content[best].Line
			next = n.Content[best+1]
			path = strings.TrimPrefix(path[len(n.Content[best].Value):], ".")
		case yaml.SequenceNode:
			var i int
			var rest string
			if _, err := fmt.Sscanf(path, "[%d]", &i); err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			_, rest, _ = strings.Cut(path, "]")
			next = n.Content[i]
			line = next.Line
			path = strings.TrimPrefix(rest, ".")
		default:
			return line
		}
		n = next
	}
	return line
}

// nearestKey is the key of struct type t that name is most likely a
// misspelling of, or "" when none is close: a few letters apart, or one
// the start of the other ("group" for group_id).
func nearestKey(t reflect.Type, name string) string {
	best, bestD := "", 0
	for _, f := range yamlFields(t) {
		d := levenshtein.ComputeDistance(name, f.name)
		close := d <= max(2, len(name)/3) ||
			(min(len(name), len(f.name)) >= 4 && (strings.HasPrefix(f.name, name) || strings.HasPrefix(name, f.name)))
		if close && (best == "" || d < bestD) {
			best, bestD = f.name, d
		}
	}
	return best
}
