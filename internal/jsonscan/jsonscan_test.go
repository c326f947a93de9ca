package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// read is an object of integers and strings read by the scanner: the
// members, and whether the whole input was taken.
func read(in string) (map[string]any, bool) {
	s := New([]byte(in))
	out := map[string]any{}
	ok := s.Object(func(name []byte) bool {
		switch name[0] {
		case 'n':
			v, ok := s.Int()
			out[string(name)] = v
			return ok
		case 'b':
			v, ok := s.Bool()
			out[string(name)] = v
			return ok
		case 's':
			v, ok := s.String()
			out[string(name)] = v
			return ok
		case 'x':
			return s.Skip()
		}
		return false
	})
	return out, ok
}

// The scanner takes only what it reads exactly as encoding/json does, and
// refuses the rest for encoding/json to judge.
func TestScannerTakesOnlyWhatItUnderstands(t *testing.T) {
	for _, c := range []struct {
		in   string
		take bool
	}{
		{`{}`, true},
		{" {\"s\" : \"买家\" ,\t\"n\":-12 ,\r\n\"b\":true, \"b2\":false} ", true},
		{`{"n":0}`, true},
		{`{"n":-0}`, true},
		{`{"n":999999999999999999}`, true},
		{`{"n":9999999999999999999}`, false}, // may overflow
		{`{"n":01}`, false},
		{`{"n":1.5}`, false},
		{`{"n":1e3}`, false},
		{`{"n":-}`, false},
		{`{"n":null}`, false},
		{`{"s":"a\"b"}`, false},
		{`{"s":"tab	"}`, false}, // a raw control character is not JSON
		{`{"s":"bad` + "\xff" + `"}`, false},
		{`{"s\u0041":"x"}`, false},
		{`{"y":1}`, false}, // a member the caller does not know
		{`{"x":"a\"b\\c\/\b\f\n\r\t\u00e9\uD83D","x2":true,"x3":null,"x4":-7,"n":1}`, true}, // skipped
		{`{"x":"bad\x"}`, false},
		{`{"x":"bad\u12g4"}`, false},
		{`{"x":"ctl` + "\x01" + `"}`, false},
		{`{"x":{}}`, false},
		{`{"x":1.5}`, false},
		{`{"x":nul}`, false},
		{`{"s":"x"} {}`, false},
		{`{"s":"x",}`, false},
		{`{"b":truex}`, false},
		{`{"s":"x"`, false},
		{`[]`, false},
		{``, false},
	} {
		got, took := read(c.in)
		if took != c.take {
			t.Errorf("%s: taken %v, want %v", c.in, took, c.take)
			continue
		}
		if !took {
			continue
		}
		var want map[string]any
		dec := json.NewDecoder(strings.NewReader(c.in))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Errorf("%s: taken, but encoding/json refuses it: %v", c.in, err)
			continue
		}
		for k, v := range got {
			w := want[k]
			if n, isNum := w.(json.Number); isNum {
				w, _ = n.Int64()
			}
			if w != v {
				t.Errorf("%s: %s = %v, encoding/json %v", c.in, k, v, w)
			}
		}
	}
}
