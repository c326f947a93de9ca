package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"go.yaml.in/yaml/v3"
)

// This file walks YAML node trees alongside the Go types of Config: to check
// a file's keys and value shapes with field paths in the messages (yaml.v3
// names only the line), to write a Config as YAML with durations as "3m"
// rather than "3m0s", and to set one key by its path.

var (
	configType   = reflect.TypeOf(Config{})
	durationType = reflect.TypeOf(time.Duration(0))
)

// problems collects messages that each start with a field path.
type problems []string

func (p *problems) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		*p = append(*p, msg)
		return
	}
	*p = append(*p, path+": "+msg)
}

// covers reports whether msg is about a value on, under or above a path that
// p already reports.
func (p problems) covers(msg string) bool {
	mp, _, _ := strings.Cut(msg, ": ")
	for _, have := range p {
		hp, _, _ := strings.Cut(have, ": ")
		if within(mp, hp) || within(hp, mp) {
			return true
		}
	}
	return false
}

// within reports whether path is base or lies under it.
func within(path, base string) bool {
	if base == "" || path == base {
		return true
	}
	return strings.HasPrefix(path, base) && (path[len(base)] == '.' || path[len(base)] == '[')
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlField is a struct field as YAML sees it.
type yamlField struct {
	name      string
	index     int
	omitempty bool
}

func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, yamlField{name: name, index: i, omitempty: strings.Contains(opts, "omitempty")})
	}
	return out
}

func fieldByName(t reflect.Type, name string) (yamlField, bool) {
	for _, f := range yamlFields(t) {
		if f.name == name {
			return f, true
		}
	}
	return yamlField{}, false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// checkShape checks that n can decode into a value of type t: known keys,
// no key twice, lists where lists go, and scalars that parse. Null leaves
// the value as it was, as yaml.v3 does.
func checkShape(n *yaml.Node, t reflect.Type, path string, p *problems) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			checkShape(n.Content[0], t, path, p)
		}
		return
	case yaml.AliasNode:
		checkShape(n.Alias, t, path, p)
		return
	}
	if isNull(n) {
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			p.add(path, "expected a duration such as 3m, got %s (line %d)", describe(n), n.Line)
			return
		}
		if _, err := time.ParseDuration(n.Value); err != nil || n.ShortTag() != "!!str" {
			if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
				p.add(path, "%q is not a duration (give a unit: %ss, %sm)", n.Value, n.Value, n.Value)
				return
			}
			p.add(path, "%q is not a duration", n.Value)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if path == "" {
				p.add(path, "the file must be a mapping of keys, got %s (line %d)", describe(n), n.Line)
				return
			}
			p.add(path, "expected a mapping, got %s (line %d)", describe(n), n.Line)
			return
		}
		checkMapping(n, path, p, func(key *yaml.Node, val *yaml.Node) {
			f, ok := fieldByName(t, key.Value)
			if !ok {
				if near := nearestKey(t, key.Value); near != "" {
					p.add(join(path, key.Value), "unknown key, did you mean %s? (line %d)", near, key.Line)
					return
				}
				p.add(join(path, key.Value), "unknown key (line %d)", key.Line)
				return
			}
			checkShape(val, t.Field(f.index).Type, join(path, key.Value), p)
		})
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			p.add(path, "expected a mapping, got %s (line %d)", describe(n), n.Line)
			return
		}
		checkMapping(n, path, p, func(key *yaml.Node, val *yaml.Node) {
			checkShape(val, t.Elem(), join(path, key.Value), p)
		})
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			p.add(path, "expected a list, got %s (line %d)", describe(n), n.Line)
			return
		}
		for i, e := range n.Content {
			checkShape(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p)
		}
	case n.Kind != yaml.ScalarNode:
		p.add(path, "expected a single value, got %s (line %d)", describe(n), n.Line)
	case t.Kind() == reflect.Int:
		if n.ShortTag() != "!!int" {
			p.add(path, "%q is not a whole number", n.Value)
		}
	case t.Kind() == reflect.Bool:
		if n.ShortTag() != "!!bool" {
			p.add(path, "%q is not true or false", n.Value)
		}
	}
}

// checkMapping calls each for every key/value pair of a mapping, following
// merge keys ("<<: *base") and reporting keys that appear twice.
func checkMapping(n *yaml.Node, path string, p *problems, each func(key, val *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			p.add(path, "keys must be plain names, got %s (line %d)", describe(key), key.Line)
			continue
		}
		if key.ShortTag() == "!!merge" {
			if val.Kind == yaml.AliasNode {
				val = val.Alias
			}
			switch val.Kind {
			case yaml.MappingNode:
				checkMapping(val, path, p, each)
			case yaml.SequenceNode:
				for _, m := range val.Content {
					if m.Kind == yaml.AliasNode {
						m = m.Alias
					}
					checkMapping(m, path, p, each)
				}
			}
			continue
		}
		if line, dup := seen[key.Value]; dup {
			p.add(join(path, key.Value), "set twice (lines %d and %d)", line, key.Line)
			continue
		}
		seen[key.Value] = key.Line
		each(key, val)
	}
}

// toNode writes v as a YAML node tree. Durations come out as "3m", lists
// of single values and structs of single values in flow style, map keys
// sorted.
func toNode(v any) (*yaml.Node, error) {
	return valueNode(reflect.ValueOf(v), 0)
}

// valueNode writes v, found depth levels below the top; the sections
// right under the top stay in block style to read well.
func valueNode(v reflect.Value, depth int) (*yaml.Node, error) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		v = v.Elem()
	}
	t := v.Type()
	switch {
	case t == durationType:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: alerting.FormatThreshold(time.Duration(v.Int()))}, nil
	case t.Kind() == reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		flow := true
		for _, f := range yamlFields(t) {
			fv := v.Field(f.index)
			if f.omitempty && isEmpty(fv) {
				continue
			}
			child, err := valueNode(fv, depth+1)
			if err != nil {
				return nil, err
			}
			if child.Kind != yaml.ScalarNode {
				flow = false
			}
			n.Content = append(n.Content, strNode(f.name), child)
		}
		if flow && depth > 1 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case t.Kind() == reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			child, err := valueNode(v.MapIndex(reflect.ValueOf(k).Convert(t.Key())), depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(k), child)
		}
		if len(keys) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	case t.Kind() == reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		flow := true
		for i := 0; i < v.Len(); i++ {
			child, err := valueNode(v.Index(i), depth+1)
			if err != nil {
				return nil, err
			}
			if child.Kind != yaml.ScalarNode && child.Style != yaml.FlowStyle {
				flow = false
			}
			n.Content = append(n.Content, child)
		}
		if flow && (v.Len() == 0 || n.Content[0].Kind == yaml.ScalarNode) {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	default:
		n := &yaml.Node{}
		if err := n.Encode(v.Interface()); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", t, err)
		}
		return n, nil
	}
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	default:
		return v.IsZero()
	}
}

// Set changes one key, named by its dotted path, to value: what-if runs
// such as "reply_sla.thresholds=3m,5m,10m" or "shops.s1.platform=jd". A list
// is written as a comma list (an empty value empties it); service hours as
// "08:00-12:00,13:00-23:00". Shop ids containing dots cannot be named
// here. A bad value is an error and leaves c unchanged; the result is not
// otherwise validated, so several keys can be changed before Validate.
func (c *Config) Set(path, value string) error {
	root, err := toNode(c)
	if err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	if path == "" {
		return fmt.Errorf("setting a key: no key named")
	}
	t := configType
	n := root
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		done := strings.Join(segs[:i+1], ".")
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByName(t, seg)
			if !ok {
				return fmt.Errorf("setting %s: unknown config key %q", path, done)
			}
			t = t.Field(f.index).Type
		case reflect.Map:
			if seg == "" {
				return fmt.Errorf("setting %s: empty name in %q", path, done)
			}
			t = t.Elem()
		default:
			return fmt.Errorf("setting %s: %q has no keys under it", path, strings.Join(segs[:i], "."))
		}
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		n = child(n, seg)
	}
	leaf, err := leafNode(t, value)
	if err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	*n = *leaf

	var shape problems
	checkShape(root, configType, "", &shape)
	if len(shape) > 0 {
		return fmt.Errorf("setting %s: %w", path, &ValidationError{Errors: shape})
	}
	// The tree holds every key, so decoding it over the defaults rebuilds
	// the whole configuration.
	next := Default()
	if err := root.Decode(next); err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	*c = *next
	return nil
}

// child returns the value node of key in mapping m, adding an empty one
// when the key is absent (omitted empty keys and new shops).
func child(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		*m = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, strNode(key), v)
	m.Style = 0
	return v
}

// leafNode turns a --set value into a node for a key of type t. Values keep
// their natural YAML tag, so the shape check reports a bad one the same way
// it would in a file.
func leafNode(t reflect.Type, value string) (*yaml.Node, error) {
	switch {
	case isSingle(t):
		return scalarNode(t, value), nil
	case t.Kind() == reflect.Slice && t.Elem() == reflect.TypeOf(TimeRange{}):
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, r := range splitList(value) {
			start, end, ok := strings.Cut(r, "-")
			if !ok {
				return nil, fmt.Errorf("%q is not a range HH:MM-HH:MM", r)
			}
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
				strNode("start"), strNode(strings.TrimSpace(start)),
				strNode("end"), strNode(strings.TrimSpace(end)),
			}})
		}
		return seq, nil
	case t.Kind() == reflect.Slice && isSingle(t.Elem()):
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, s := range splitList(value) {
			seq.Content = append(seq.Content, scalarNode(t.Elem(), s))
		}
		return seq, nil
	default:
		return nil, fmt.Errorf("this key cannot be set from the command line; set it in the file")
	}
}

func isSingle(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Int64, reflect.Bool:
		return true
	}
	return false
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// scalarNode is s as a value of type t: text for strings, otherwise tagged
// as YAML would read it unquoted.
func scalarNode(t reflect.Type, s string) *yaml.Node {
	if t.Kind() == reflect.String {
		return strNode(s)
	}
	var probe yaml.Node
	if err := yaml.Unmarshal([]byte(s), &probe); err == nil && len(probe.Content) == 1 && probe.Content[0].Kind == yaml.ScalarNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: probe.Content[0].ShortTag(), Value: s}
	}
	return strNode(s)
}
