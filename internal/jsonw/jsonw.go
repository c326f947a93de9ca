// Package jsonw writes JSON values the way encoding/json writes them,
// without reflection, for encoders of records on the hot path (alert
// records, the buyer join's facts): strings with encoding/json's escaping,
// and times in the contract's format. What it writes is compact and valid,
// so it needs no second pass.
//
// Why not a library: the records are flat and their writers list their
// members; what must be exact is encoding/json's string escaping and the
// contract's time format, which the tests compare byte for byte with
// encoding/json and time.AppendFormat. A generating or reflecting encoder
// would add a dependency for less.
package jsonw

import (
	"time"
	"unicode/utf8"
)

// TimeLayout is the contract's time format: RFC 3339 with milliseconds and
// the time's own offset.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

const hexDigits = "0123456789abcdef"

// String appends s as a JSON string exactly as encoding/json does with its
// default HTML escaping: <, > and & as \u003c, \u003e, \u0026, control
// characters as \b \f \n \r \t or \u00XX, invalid UTF-8 as \ufffd, U+2028
// and U+2029 escaped.
func String(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Time appends t in TimeLayout, unquoted: the same bytes as
// t.AppendFormat(b, TimeLayout), in a fraction of its time for the years
// 0 to 9999 (others go through AppendFormat).
func Time(b []byte, t time.Time) []byte {
	_, off := t.Zone()
	sec := t.Unix() + int64(off)
	// Days since 0000-03-01 (a year starting in March puts the leap day
	// last), from the Unix epoch (1970-01-01, day 719468 of that count).
	days := sec/86400 + 719468
	rem := sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	if days < 0 || days > 3652424 {
		return t.AppendFormat(b, TimeLayout)
	}
	// Civil date from the day count (Howard Hinnant's days_from_civil, reversed).
	era := days / 146097
	doe := days - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if month > 12 {
		month -= 12
	}
	year := yoe + era*400
	if month <= 2 {
		year++
	}
	if year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	ms := t.Nanosecond() / 1e6
	b = append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+rem/36000), byte('0'+rem/3600%10), ':',
		byte('0'+rem/60%60/10), byte('0'+rem/60%10), ':',
		byte('0'+rem%60/10), byte('0'+rem%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	if off == 0 {
		return append(b, 'Z')
	}
	// Whole minutes, as AppendFormat writes an offset of seconds.
	zone, sign := off/60, byte('+')
	if zone < 0 {
		sign, zone = '-', -zone
	}
	h, m := zone/60, zone%60
	return append(b, sign, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10))
}
