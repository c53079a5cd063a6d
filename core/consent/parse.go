package consent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/eddy-cdp/eddy/core/event"
)

// Preferences maps a consent purpose to whether the visitor granted it.
type Preferences map[string]bool

// Granted reports whether purpose is granted; Necessary always is.
func (p Preferences) Granted(purpose string) bool {
	return purpose == Necessary || p[purpose]
}

// Necessary is the purpose of processing without which the service cannot
// work; it needs no consent and counts as granted.
const Necessary = "necessary"

// MaxMessagePurposes bounds the purposes one message's consent may list.
const MaxMessagePurposes = 50

// preferencesField is the JSON path of the preferences in a message.
const preferencesField = "context.consent.categoryPreferences"

// Error is a malformed consent object. Field is the JSON path of the
// offending value; the message never contains a value the client sent.
type Error struct {
	// Field is the path of what is wrong, e.g.
	// "context.consent.categoryPreferences.analytics".
	Field string
	// Message says what is wrong with it.
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

// ValidPurpose reports whether s is a purpose name: a lower-case letter,
// then up to 62 lower-case letters, digits or '_'.
func ValidPurpose(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

var consentWord = []byte("consent")

// Parse reads the consent preferences of a message: the payload's
// context.consent when its context has the key "consent" (even null), else
// the batch context's. present is false when neither says anything (no
// consent object, or one without categoryPreferences); an empty
// categoryPreferences object is present and grants nothing. Malformed
// consent is an [*Error].
//
// Messages that do not contain the word "consent" cost one scan and no
// allocation.
func Parse(payload, batchContext []byte) (prefs Preferences, present bool, err error) {
	if !bytes.Contains(payload, consentWord) && !bytes.Contains(batchContext, consentWord) {
		return nil, false, nil
	}
	raw, field, err := consentObject(payload, batchContext)
	if err != nil || raw == nil {
		return nil, false, err
	}
	return decodeConsent(raw, field, true)
}

// consentObject finds the consent value that applies and the field path it
// is reported under.
func consentObject(payload, batchContext []byte) (json.RawMessage, string, error) {
	type withConsent struct {
		Consent json.RawMessage `json:"consent"`
	}
	if bytes.Contains(payload, consentWord) {
		var m struct {
			Context json.RawMessage `json:"context"`
		}
		if err := event.Decode(payload, &m); err != nil {
			return nil, "", fmt.Errorf("decode message: %w", err)
		}
		if isObject(m.Context) && bytes.Contains(m.Context, consentWord) {
			var c withConsent
			if err := event.Decode(m.Context, &c); err != nil {
				return nil, "", fmt.Errorf("decode message context: %w", err)
			}
			if c.Consent != nil {
				return c.Consent, "context.consent", nil
			}
		}
	}
	if isObject(batchContext) && bytes.Contains(batchContext, consentWord) {
		var c withConsent
		if err := event.Decode(batchContext, &c); err != nil {
			return nil, "", fmt.Errorf("decode batch context: %w", err)
		}
		if c.Consent != nil {
			// The batch context is reported under the same path: it
			// stands in for the message's context.
			return c.Consent, "context.consent", nil
		}
	}
	return nil, "", nil
}

// Lenient reads the preferences of a consent object (the value of
// context.consent) that was accepted before: it keeps the boolean values
// of valid purposes and ignores everything else. It returns nil when no
// preference remains.
func Lenient(consentObj []byte) Preferences {
	prefs, _, _ := decodeConsent(consentObj, "context.consent", false)
	if len(prefs) == 0 {
		return nil
	}
	return prefs
}

// decodeConsent reads a consent object. When strict, anything malformed is
// an error; otherwise malformed parts are skipped.
func decodeConsent(raw json.RawMessage, field string, strict bool) (Preferences, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	bad := func(field, msg string) (Preferences, bool, error) {
		if !strict {
			return nil, false, nil
		}
		return nil, false, &Error{Field: field, Message: msg}
	}
	if !isObject(raw) {
		return bad(field, "must be an object")
	}
	var c struct {
		CategoryPreferences json.RawMessage `json:"categoryPreferences"`
	}
	if err := event.Decode(raw, &c); err != nil {
		return bad(field, "must be an object")
	}
	cp := bytes.TrimSpace(c.CategoryPreferences)
	if len(cp) == 0 || string(cp) == "null" {
		return nil, false, nil
	}
	field += ".categoryPreferences"
	if !isObject(cp) {
		return bad(field, "must be an object mapping each purpose to true or false")
	}
	var values map[string]json.RawMessage
	if err := event.Decode(cp, &values); err != nil {
		return bad(field, "must be an object mapping each purpose to true or false")
	}
	if strict && len(values) > MaxMessagePurposes {
		return bad(field, fmt.Sprintf("lists %d purposes; at most %d are allowed", len(values), MaxMessagePurposes))
	}
	prefs := make(Preferences, len(values))
	// Sorted, so that the first problem reported does not depend on map order.
	for _, purpose := range slices.Sorted(maps.Keys(values)) {
		if !ValidPurpose(purpose) {
			if strict {
				return bad(field, "a purpose name is not valid: purposes are lower-case letters, digits and _, starting with a letter, at most 63 characters")
			}
			continue
		}
		switch string(bytes.TrimSpace(values[purpose])) {
		case "true":
			prefs[purpose] = true
		case "false":
			prefs[purpose] = false
		default:
			if strict {
				return bad(field+"."+purpose, "must be true or false")
			}
		}
	}
	return prefs, true, nil
}

func isObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}
