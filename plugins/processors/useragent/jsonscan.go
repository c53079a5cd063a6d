package main

import (
	"bytes"
	"errors"
)

// This file holds a minimal scanner over the members of a JSON object.
// The processor changes only the message's context, and only by adding
// members: it finds the members it needs by position and inserts the new
// ones, so every byte the client sent stays as it was, in one light pass
// instead of decoding and re-encoding the message (a module's loops are
// costly under Eddy's time limit). Values are checked for balanced
// brackets and terminated strings, not fully validated: the collector
// validated the message, and their bytes are never changed.

var errNotObject = errors.New("not a JSON object")

// member is one member of an object: b[keyStart:keyEnd] is its key,
// quotes included, and b[valStart:valEnd] its value.
type member struct {
	keyStart, keyEnd, valStart, valEnd int
}

// object is a scanned object: its members in order, and the index of its
// closing brace.
type object struct {
	members []member
	close   int
}

// find returns the last member whose raw key (quotes included) is key.
func (o object) find(b []byte, key string) (member, bool) {
	for i := len(o.members) - 1; i >= 0; i-- {
		m := o.members[i]
		if string(b[m.keyStart:m.keyEnd]) == key {
			return m, true
		}
	}
	return member{}, false
}

// scanObject scans the object that starts at b[i] (after spaces).
func scanObject(b []byte, i int) (object, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return object{}, errNotObject
	}
	var obj object
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		obj.close = i
		return obj, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return object{}, errNotObject
		}
		var m member
		var err error
		m.keyStart = i
		if i, err = skipString(b, i); err != nil {
			return object{}, err
		}
		m.keyEnd = i
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return object{}, errNotObject
		}
		m.valStart = skipSpace(b, i+1)
		if i, err = skipValue(b, m.valStart); err != nil {
			return object{}, err
		}
		m.valEnd = i
		obj.members = append(obj.members, m)
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			obj.close = i
			return obj, nil
		default:
			return object{}, errNotObject
		}
	}
}

// scanDocument scans b, which must be one object and nothing else.
func scanDocument(b []byte) (object, error) {
	obj, err := scanObject(b, 0)
	if err != nil {
		return object{}, err
	}
	if skipSpace(b, obj.close+1) != len(b) {
		return object{}, errNotObject
	}
	return obj, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errNotObject
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errNotObject
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				var err error
				if i, err = skipString(b, i); err != nil {
					return 0, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errNotObject
	case ',', '}', ']', ':':
		return 0, errNotObject
	}
	for i < len(b) && !isDelimiter(b[i]) {
		i++
	}
	return i, nil
}

func isDelimiter(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

// isNull reports whether a value is null.
func isNull(v []byte) bool { return bytes.Equal(v, []byte("null")) }
