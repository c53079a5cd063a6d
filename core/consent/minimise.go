package consent

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IP modes of [Minimise].
const (
	IPKeep     = "keep"
	IPTruncate = "truncate"
	IPRemove   = "remove"
)

// Minimise is a workspace's data minimisation, applied to each event before
// it is stored or given to any plugin.
type Minimise struct {
	// IP is what happens to the visitor's IP address (the event's and
	// context.ip): "keep", "truncate" (IPv4 to its /24, IPv6 to its /48) or
	// "remove".
	IP string `json:"ip" yaml:"ip"`
	// Hash are dot paths into the message ("traits.email") whose string or
	// number value (or object or array, as compact JSON) is replaced by
	// "sha256:" and the hex HMAC-SHA256 of the value keyed by the workspace
	// id: equal values stay equal within a workspace and differ across
	// workspaces.
	Hash []string `json:"hash" yaml:"hash"`
	// Drop are dot paths into the message whose key is removed.
	Drop []string `json:"drop" yaml:"drop"`
}

// pathRoots are the parts of a message a minimisation path may reach into:
// never the ids, type or timestamps Eddy itself relies on.
var pathRoots = []string{"properties", "traits", "context"}

// Limits of a path.
const (
	maxPathBytes    = 256
	maxSegmentBytes = 128
)

// ValidPath checks a minimisation path: two or more dot-separated keys, the
// first one of properties, traits or context. It returns what is wrong, or
// "".
func ValidPath(path string) string {
	if path == "" {
		return "must not be empty"
	}
	if len(path) > maxPathBytes || !utf8.ValidString(path) {
		return fmt.Sprintf("must be valid UTF-8 of at most %d bytes", maxPathBytes)
	}
	root, rest, ok := strings.Cut(path, ".")
	if !ok || !isRoot(root) {
		return "must start with properties., traits. or context. followed by a key, such as traits.email"
	}
	for seg := range strings.SplitSeq(rest, ".") {
		if seg == "" {
			return "must not have an empty key (two dots in a row, or a dot at an end)"
		}
		if len(seg) > maxSegmentBytes {
			return fmt.Sprintf("has a key longer than %d bytes", maxSegmentBytes)
		}
		if strings.ContainsFunc(seg, func(r rune) bool { return unicode.IsControl(r) || r == '"' || r == '\\' }) {
			return `must not contain control characters, '"' or '\'`
		}
	}
	return ""
}

func isRoot(s string) bool {
	for _, r := range pathRoots {
		if s == r {
			return true
		}
	}
	return false
}

func (m Minimise) validate() []FieldError {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: "privacy.minimise." + field, Message: fmt.Sprintf(format, args...)})
	}
	switch m.IP {
	case IPKeep, IPTruncate, IPRemove:
	default:
		bad("ip", "must be one of keep, truncate, remove")
	}
	if n := len(m.Hash) + len(m.Drop); n > MaxPaths {
		bad("hash", "hash and drop together must list at most %d paths, got %d", MaxPaths, n)
	}
	seen := map[string]string{}
	for _, l := range []struct {
		name  string
		paths []string
	}{{"hash", m.Hash}, {"drop", m.Drop}} {
		for i, p := range l.paths {
			f := fmt.Sprintf("%s[%d]", l.name, i)
			if msg := ValidPath(p); msg != "" {
				bad(f, "%s", msg)
				continue
			}
			if other, ok := seen[p]; ok {
				bad(f, "path %q is already listed as %s", p, other)
				continue
			}
			seen[p] = f
		}
	}
	return errs
}

// noop reports whether Apply changes nothing.
func (m Minimise) noop() bool {
	return (m.IP == "" || m.IP == IPKeep) && len(m.Hash) == 0 && len(m.Drop) == 0
}

// Apply minimises one event: its payload, its batch context (for paths
// under context.) and the IP address the collector saw. Every other byte of
// the JSON stays as it was; when nothing applies the inputs are returned as
// they are, without allocating. A payload or batch context that is not a
// JSON object is an error.
func (m Minimise) Apply(workspaceID string, payload, batchContext []byte, ip string) (newPayload, newBatchContext []byte, newIP string, err error) {
	if m.noop() {
		return payload, batchContext, ip, nil
	}
	newIP = minimiseIP(m.IP, ip)
	newPayload, err = m.applyJSON(workspaceID, payload, "")
	if err != nil {
		return payload, batchContext, ip, fmt.Errorf("minimise message: %w", err)
	}
	newBatchContext = batchContext
	if len(bytes.TrimSpace(batchContext)) > 0 && string(bytes.TrimSpace(batchContext)) != "null" {
		newBatchContext, err = m.applyJSON(workspaceID, batchContext, "context.")
		if err != nil {
			return payload, batchContext, ip, fmt.Errorf("minimise batch context: %w", err)
		}
	}
	return newPayload, newBatchContext, newIP, nil
}

// minimiseIP truncates or removes an address; an address that cannot be
// parsed is removed rather than kept.
func minimiseIP(mode, ip string) string {
	switch mode {
	case IPRemove:
		return ""
	case IPTruncate:
		if ip == "" {
			return ""
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return ""
		}
		a = a.Unmap().WithZone("")
		bits := 48
		if a.Is4() {
			bits = 24
		}
		p, err := a.Prefix(bits)
		if err != nil {
			return ""
		}
		return p.Addr().String()
	}
	return ip
}

// applyJSON applies the paths under prefix (with prefix removed) to doc.
func (m Minimise) applyJSON(workspaceID string, doc []byte, prefix string) ([]byte, error) {
	start := skipWS(doc, 0)
	if start >= len(doc) || doc[start] != '{' {
		return doc, errors.New("not a JSON object")
	}
	var err error
	for _, p := range m.Drop {
		if p, ok := strings.CutPrefix(p, prefix); ok && mentions(doc, p) {
			if doc, err = dropAll(doc, start, p); err != nil {
				return doc, err
			}
		}
	}
	for _, p := range m.Hash {
		if p, ok := strings.CutPrefix(p, prefix); ok && mentions(doc, p) {
			if doc, err = hashAll(doc, start, p, workspaceID); err != nil {
				return doc, err
			}
		}
	}
	ipPath, ok := strings.CutPrefix("context.ip", prefix)
	if ok && mentions(doc, ipPath) {
		switch m.IP {
		case IPRemove:
			doc, err = dropAll(doc, start, ipPath)
		case IPTruncate:
			doc, err = truncateIPs(doc, start, ipPath)
		}
	}
	return doc, err
}

// mentions is a cheap filter: the path's last key must appear in doc, or
// doc must hold an escape that could spell it.
func mentions(doc []byte, path string) bool {
	last := path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		last = path[i+1:]
	}
	return bytes.Contains(doc, []byte(last)) || bytes.IndexByte(doc, '\\') >= 0
}

// span is a member of an object found at a path: its key's start and its
// value's bounds.
type span struct{ key, start, end int }

// find returns the members at path in the object at doc[i].
func find(doc []byte, i int, path string) ([]span, error) {
	var found []span
	_, err := visit(doc, i, path, &found)
	return found, err
}

// dropAll removes every member at path, one at a time.
func dropAll(doc []byte, start int, path string) ([]byte, error) {
	for {
		found, err := find(doc, start, path)
		if err != nil || len(found) == 0 {
			return doc, err
		}
		doc = removeMember(doc, found[0])
	}
}

// removeMember cuts a member and one comma next to it out of doc.
func removeMember(doc []byte, s span) []byte {
	from, to := s.key, s.end
	if j := skipWS(doc, to); j < len(doc) && doc[j] == ',' {
		to = skipWS(doc, j+1) // the next member moves up
	} else {
		// The last member: remove the comma before it, if any.
		k := s.key - 1
		for k >= 0 && isWS(doc[k]) {
			k--
		}
		if k >= 0 && doc[k] == ',' {
			from = k
		}
	}
	out := make([]byte, 0, len(doc)-(to-from))
	out = append(out, doc[:from]...)
	return append(out, doc[to:]...)
}

// replaceAll replaces the values of found (in order, disjoint) with what
// repl returns; repl returning nil keeps a value.
func replaceAll(doc []byte, found []span, repl func(v []byte) ([]byte, error)) ([]byte, error) {
	var out []byte
	last := 0
	for _, s := range found {
		r, err := repl(doc[s.start:s.end])
		if err != nil {
			return doc, err
		}
		if r == nil {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(doc)+64)
		}
		out = append(out, doc[last:s.start]...)
		out = append(out, r...)
		last = s.end
	}
	if out == nil {
		return doc, nil
	}
	return append(out, doc[last:]...), nil
}

func hashAll(doc []byte, start int, path, workspaceID string) ([]byte, error) {
	found, err := find(doc, start, path)
	if err != nil || len(found) == 0 {
		return doc, err
	}
	return replaceAll(doc, found, func(v []byte) ([]byte, error) {
		var plain []byte
		switch c := v[0]; {
		case c == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("%s: malformed string", path)
			}
			plain = []byte(s)
		case c == '-' || c >= '0' && c <= '9':
			plain = v
		case c == '{' || c == '[':
			var b bytes.Buffer
			if err := json.Compact(&b, v); err != nil {
				return nil, fmt.Errorf("%s: malformed value", path)
			}
			plain = b.Bytes()
		default: // true, false, null: nothing to hide
			return nil, nil
		}
		return []byte(`"` + Hash(workspaceID, plain) + `"`), nil
	})
}

// Hash returns "sha256:" and the hex HMAC-SHA256 of value keyed by the
// workspace id: how Minimise hashes values, for callers that must match
// them (looking a person up by a hashed trait).
func Hash(workspaceID string, value []byte) string {
	mac := hmac.New(sha256.New, []byte(workspaceID))
	mac.Write(value)
	return "sha256:" + hex.EncodeToString(mac.Sum(nil))
}

// truncateIPs truncates every string at path as an IP address; a value
// that is not one is removed.
func truncateIPs(doc []byte, start int, path string) ([]byte, error) {
	found, err := find(doc, start, path)
	if err != nil || len(found) == 0 {
		return doc, err
	}
	invalid := false
	doc, err = replaceAll(doc, found, func(v []byte) ([]byte, error) {
		var s string
		if v[0] != '"' || json.Unmarshal(v, &s) != nil {
			invalid = true
			return nil, nil
		}
		t := minimiseIP(IPTruncate, s)
		if t == "" {
			invalid = true
			return nil, nil
		}
		return []byte(`"` + t + `"`), nil
	})
	if err != nil || !invalid {
		return doc, err
	}
	// Remove what could not be truncated (it may not be an address at all,
	// and cannot be kept as it is).
	found, err = find(doc, start, path)
	for i := len(found) - 1; i >= 0 && err == nil; i-- {
		var s string
		v := doc[found[i].start:found[i].end]
		if v[0] != '"' || json.Unmarshal(v, &s) != nil || minimiseIP(IPTruncate, s) != s {
			doc = removeMember(doc, found[i])
		}
	}
	return doc, err
}

var errMalformed = errors.New("malformed JSON")

// visit scans the value at doc[i] and records in found the members at path
// (dot-separated keys) below it. It returns the index after the value.
func visit(doc []byte, i int, path string, found *[]span) (int, error) {
	if i >= len(doc) || doc[i] != '{' {
		return skipValue(doc, i)
	}
	seg, rest, more := strings.Cut(path, ".")
	i++
	for {
		i = skipWS(doc, i)
		if i >= len(doc) {
			return i, errMalformed
		}
		if doc[i] == '}' {
			return i + 1, nil
		}
		if doc[i] != '"' {
			return i, errMalformed
		}
		key := i
		keyEnd, err := skipString(doc, i)
		if err != nil {
			return i, err
		}
		match := keyIs(doc[key+1:keyEnd-1], seg)
		i = skipWS(doc, keyEnd)
		if i >= len(doc) || doc[i] != ':' {
			return i, errMalformed
		}
		i = skipWS(doc, i+1)
		start := i
		if match && more {
			i, err = visit(doc, i, rest, found)
		} else {
			i, err = skipValue(doc, i)
		}
		if err != nil {
			return i, err
		}
		if match && !more {
			*found = append(*found, span{key: key, start: start, end: i})
		}
		i = skipWS(doc, i)
		if i >= len(doc) {
			return i, errMalformed
		}
		switch doc[i] {
		case ',':
			i++
		case '}':
			return i + 1, nil
		default:
			return i, errMalformed
		}
	}
}

// keyIs compares a raw (still escaped) key with a path segment.
func keyIs(raw []byte, seg string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == seg
	}
	var s string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	return json.Unmarshal(quoted, &s) == nil && s == seg
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(doc []byte, i int) int {
	for i < len(doc) && isWS(doc[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string starting at doc[i].
func skipString(doc []byte, i int) (int, error) {
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return len(doc), errMalformed
}

// skipValue returns the index after the value starting at doc[i].
func skipValue(doc []byte, i int) (int, error) {
	if i >= len(doc) {
		return i, errMalformed
	}
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				end, err := skipString(doc, j)
				if err != nil {
					return end, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return len(doc), errMalformed
	default:
		j := i
		for j < len(doc) && !isWS(doc[j]) && doc[j] != ',' && doc[j] != '}' && doc[j] != ']' {
			j++
		}
		if j == i {
			return i, errMalformed
		}
		return j, nil
	}
}
