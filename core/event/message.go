package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Message is a Segment message as clients send it: the fields Eddy reads.
// Anything else stays in the raw payload.
type Message struct {
	Type              string          `json:"type"`
	MessageID         ID              `json:"messageId"`
	UserID            ID              `json:"userId"`
	AnonymousID       ID              `json:"anonymousId"`
	GroupID           ID              `json:"groupId"`
	PreviousID        ID              `json:"previousId"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	Timestamp         string          `json:"timestamp"`
	OriginalTimestamp string          `json:"originalTimestamp"`
	SentAt            string          `json:"sentAt"`
	WriteKey          string          `json:"writeKey"`
	Properties        json.RawMessage `json:"properties"`
	Traits            json.RawMessage `json:"traits"`
	Context           json.RawMessage `json:"context"`
	Integrations      json.RawMessage `json:"integrations"`
}

// ID is an identifier that clients send as a JSON string or, for some SDKs'
// numeric user ids, a JSON number; both are kept as text.
type ID string

// UnmarshalJSON accepts a string, a number or null.
func (id *ID) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0:
		return fmt.Errorf("empty value")
	case b[0] == '"':
		// Ids rarely hold escapes: take the text as it is when they do not.
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 {
			*id = ID(inner)
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID(s)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*id = ID(b) // the decoder has already checked it is a valid number
	case string(b) == "null":
		*id = ""
	default:
		// The decoder adds the field name to this error type.
		kind := map[byte]string{'{': "object", '[': "array", 't': "bool", 'f': "bool"}[b[0]]
		return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[string]()}
	}
	return nil
}

// Earliest is the earliest event time accepted: older times are almost
// always a client's zero value, not a real event.
var Earliest = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseTime reads an ISO-8601 time as clients send it: RFC 3339 with any
// fraction of a second, or a date alone (midnight UTC).
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if d, derr := time.Parse(time.DateOnly, s); derr == nil {
			t, err = d, nil
		}
	}
	if err != nil {
		return t, fmt.Errorf("%q is not an ISO-8601 time such as 2026-01-02T15:04:05.000Z", s)
	}
	if t.Before(Earliest) {
		return t, fmt.Errorf("%q is before 1970", s)
	}
	return t, nil
}
