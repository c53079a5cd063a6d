package main

import (
	"bytes"
	"encoding/json"
	"errors"
)

// This file holds a minimal scanner over the members of one JSON object.
// The processor only ever changes the message's context, so it finds the
// members it needs by position and copies every other byte untouched,
// instead of decoding and re-encoding the whole message.

var errNotObject = errors.New("not a JSON object")

// member is one member of a JSON object: b[keyStart:keyEnd] is its key,
// quotes included, and b[valStart:valEnd] its value.
type member struct {
	keyStart, keyEnd, valStart, valEnd int
}

// object is a scanned JSON object: its members in order and the index of
// its closing brace, all relative to the scanned slice.
type object struct {
	members []member
	close   int
}

// scanObject scans b, which must be exactly one JSON object (surrounding
// whitespace allowed), appending its members to buf. Nested values are
// checked for balanced brackets and well-formed strings, not fully
// validated: their bytes are never changed.
func scanObject(b []byte, buf []member) (object, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return object{}, errNotObject
	}
	i = skipSpace(b, i+1)
	obj := object{members: buf[:0]}
	if i < len(b) && b[i] == '}' {
		obj.close = i
		return obj, checkEnd(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return object{}, errNotObject
		}
		var m member
		m.keyStart = i
		end, err := skipString(b, i)
		if err != nil {
			return object{}, err
		}
		m.keyEnd = end
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return object{}, errNotObject
		}
		i = skipSpace(b, i+1)
		m.valStart = i
		if i, err = skipValue(b, i); err != nil {
			return object{}, err
		}
		m.valEnd = i
		obj.members = append(obj.members, m)
		i = skipSpace(b, i)
		if i >= len(b) {
			return object{}, errNotObject
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			obj.close = i
			return obj, checkEnd(b, i+1)
		default:
			return object{}, errNotObject
		}
	}
}

func checkEnd(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errNotObject
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
// Past its first bytes it finds the closing quote with bytes.IndexByte, which is vectorised:
// strings are most of an event's bytes. Control characters inside a
// string are not refused: the collector has already parsed the message.
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	// Keys and most values are short: a plain loop beats the call.
	for end := min(j+16, len(b)); j < end; j++ {
		switch b[j] {
		case '"':
			return j + 1, nil
		case '\\':
			j++
		}
	}
	if j > len(b) {
		return 0, errNotObject
	}
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errNotObject
		}
		q := j + k
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// structural marks the bytes that matter when skipping a nested value.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errNotObject
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			if !structural[b[i]] {
				continue
			}
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			default:
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errNotObject
	default:
		// A number, true, false or null.
		start := i
		for i < len(b) && (b[i] == '-' || b[i] == '+' || b[i] == '.' || '0' <= b[i] && b[i] <= '9' || 'a' <= b[i] && b[i] <= 'z' || b[i] == 'E') {
			i++
		}
		if i == start {
			return 0, errNotObject
		}
		return i, nil
	}
}

// keyIs reports whether the raw key (with its quotes) is name.
func keyIs(raw []byte, name string) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == name
}

// stringValue returns the value of a raw JSON string, and false if raw is
// not a string.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether the raw value is null.
func isNull(raw []byte) bool { return string(raw) == "null" }

// isObject reports whether the raw value starts an object.
func isObject(raw []byte) bool { return len(raw) > 0 && raw[0] == '{' }

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
