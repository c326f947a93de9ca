// Package jsonscan reads one flat JSON object of known fields (strings
// without escapes, integers, booleans; members the caller drops may be
// any string, literal or integer) strictly and fast, for decoders that
// hand anything else to encoding/json. It never guesses: whatever it does
// not fully understand (an escape in a kept string, null, a fraction,
// nesting, a syntax error, bytes after the object) makes the read fail,
// and the caller decodes the value again with encoding/json, which then
// gives the result or the error it always gave.
//
// Why not a library: encoding/json/v2 needs GOEXPERIMENT=jsonv2 with Go
// 1.26, and the drop-in decoders (github.com/goccy/go-json,
// github.com/go-json-experiment/json) differ from encoding/json in error
// texts and edge cases (names in other case, duplicate names, invalid
// UTF-8) that the dead-letter reasons of event.Decode expose; with a
// fallback to encoding/json they would save less than this scanner (see
// BENCHMARKS.md, "The hot path").
package jsonscan

import "unicode/utf8"

// Scanner reads one JSON value from a byte slice.
type Scanner struct {
	b []byte
	i int
}

// New returns a scanner of b.
func New(b []byte) Scanner { return Scanner{b: b} }

func (s *Scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Object reads an object that is the whole input (whitespace aside). For
// each member it calls field with the member's name, positioned at the
// value, which field must read (String, Int, Bool) and report true; a
// name it does not know makes it return false. Object reports whether the
// whole input was read.
func (s *Scanner) Object(field func(name []byte) bool) bool {
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	s.i++
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		name, ok := s.raw()
		if !ok {
			return false
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.skipSpace()
		if !field(name) {
			return false
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.skipSpace()
		case '}':
			s.i++
			return s.end()
		default:
			return false
		}
	}
}

// end reports whether only whitespace is left.
func (s *Scanner) end() bool {
	s.skipSpace()
	return s.i == len(s.b)
}

// raw reads a string without escapes and returns its bytes, which alias
// the input.
func (s *Scanner) raw() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[start:j]
			if !ascii && !utf8.Valid(v) {
				// encoding/json would replace the bad bytes with U+FFFD.
				return nil, false
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// Quoted reads a string value without escapes and returns it with its
// quotes, for a json.Unmarshaler of the caller's (time.Time) to judge.
func (s *Scanner) Quoted() ([]byte, bool) {
	start := s.i
	if _, ok := s.raw(); !ok {
		return nil, false
	}
	return s.b[start:s.i], true
}

// Skip reads a value the caller does not keep: a string (escapes
// included), true, false, null or an integer (not an object or array).
func (s *Scanner) Skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		return s.skipString()
	case 't', 'f':
		_, ok := s.Bool()
		return ok
	case 'n':
		if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
			s.i += 4
			return true
		}
		return false
	}
	_, ok := s.Int()
	return ok
}

// skipString reads a string with any valid escapes, as encoding/json's
// scanner accepts it (it does not judge UTF-8 in a value it drops).
func (s *Scanner) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(s.b) {
				return false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// Raw reads a string value without escapes; its bytes alias the input.
func (s *Scanner) Raw() ([]byte, bool) { return s.raw() }

// String reads a string value without escapes.
func (s *Scanner) String() (string, bool) {
	v, ok := s.raw()
	if !ok {
		return "", false
	}
	return string(v), true
}

// Intern reads a string value without escapes into dst: one of known
// when it is one (without allocating), else a new string.
func (s *Scanner) Intern(dst *string, known []string) bool {
	v, ok := s.raw()
	if !ok {
		return false
	}
	for _, k := range known {
		if string(v) == k {
			*dst = k
			return true
		}
	}
	*dst = string(v)
	return true
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, bool) {
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// Int reads an integer: an optional minus and digits without leading
// zeros, no fraction or exponent, within int64.
func (s *Scanner) Int() (int64, bool) {
	j := s.i
	neg := j < len(s.b) && s.b[j] == '-'
	if neg {
		j++
	}
	if j >= len(s.b) || s.b[j] < '0' || s.b[j] > '9' {
		return 0, false
	}
	if s.b[j] == '0' && j+1 < len(s.b) && s.b[j+1] >= '0' && s.b[j+1] <= '9' {
		return 0, false
	}
	var n uint64
	digits := 0
	for ; j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9'; j++ {
		if digits++; digits > 18 {
			return 0, false // may not fit: encoding/json judges it
		}
		n = n*10 + uint64(s.b[j]-'0')
	}
	if j < len(s.b) && (s.b[j] == '.' || s.b[j] == 'e' || s.b[j] == 'E') {
		return 0, false
	}
	s.i = j
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}
