package collector

import "fmt"

// structureError says why a message's shape is refused before decoding.
type structureError struct {
	reason string
	msg    string
}

func (e *structureError) Error() string { return e.msg }

// checkStructure bounds a JSON document's nesting depth and object key count
// and refuses the \u0000 escape (PostgreSQL's jsonb cannot hold it), in one
// pass without decoding. It assumes nothing about validity: malformed JSON is
// left for the decoder to report.
func checkStructure(b []byte, maxDepth, maxKeys int) error {
	depth, keys := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Skip the string, watching escapes.
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] != '\\' {
					continue
				}
				i++
				if i >= len(b) || b[i] != 'u' {
					continue
				}
				r, ok := hex4(b, i+1)
				switch {
				case !ok:
					continue // malformed: the decoder reports it
				case r == 0:
					return &structureError{"null_character", `a string contains \u0000, which cannot be stored`}
				case r >= 0xDC00 && r <= 0xDFFF:
					return loneSurrogate()
				case r >= 0xD800 && r <= 0xDBFF:
					// A high surrogate must be followed by an escaped low one.
					if i+10 >= len(b) || b[i+5] != '\\' || b[i+6] != 'u' {
						return loneSurrogate()
					}
					if lo, ok := hex4(b, i+7); !ok || lo < 0xDC00 || lo > 0xDFFF {
						return loneSurrogate()
					}
					i += 6
				}
				i += 4
			}
		case '{', '[':
			depth++
			if depth > maxDepth {
				return &structureError{"too_deep", fmt.Sprintf("nesting is deeper than %d levels", maxDepth)}
			}
		case '}', ']':
			depth--
		case ':':
			keys++
			if keys > maxKeys {
				return &structureError{"too_many_keys", fmt.Sprintf("more than %d object keys", maxKeys)}
			}
		}
	}
	return nil
}

func loneSurrogate() error {
	return &structureError{"invalid_unicode", "a string contains an unpaired UTF-16 surrogate escape, which cannot be stored"}
}

// hex4 reads the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
