package demo

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The generator writes JSON by appending to a reused buffer instead of going
// through encoding/json: BenchmarkGenerate and BenchmarkEncodeStdlib measure
// the difference, which matters because the demo shares two cores with the
// system it loads. Everything the hand-written encoder emits is checked by
// the tests against encoding/json's parser and the Segment spec.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, quotes included.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCents appends an amount of cents as a JSON number with two decimals.
func appendCents(b []byte, cents int64) []byte {
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	c := cents % 100
	return append(b, '.', byte('0'+c/10), byte('0'+c%10))
}

// appendUUID appends the canonical 36-character form of a UUID.
func appendUUID(b []byte, u *[16]byte) []byte {
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}

// timeLayout is ISO 8601 in UTC with milliseconds, as analytics.js sends it.
// Its output always has the same length, which lets a retry overwrite sentAt
// in place.
const timeLayout = "2006-01-02T15:04:05.000Z"

// timeLen is the length of a timestamp written with timeLayout.
const timeLen = len(timeLayout)

// appendTime appends t in UTC with millisecond precision, without quotes.
func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, timeLayout)
}

// clock formats timestamps like appendTime, reusing the formatted date and
// time of the last second seen: the timestamps of one batch share it.
type clock struct {
	sec    int64
	prefix []byte // "2006-01-02T15:04:05."
}

func (c *clock) append(b []byte, t time.Time) []byte {
	t = t.UTC()
	if sec := t.Unix(); sec != c.sec || c.prefix == nil {
		c.sec = sec
		c.prefix = t.AppendFormat(c.prefix[:0], "2006-01-02T15:04:05.")
	}
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, c.prefix...)
	return append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendIPv4 appends ip in dotted-quad form, without quotes.
func appendIPv4(b []byte, ip [4]byte) []byte {
	for i, x := range ip {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return b
}
