package queue

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
)

// Stream field names of an encoded entry. Every entry carries all of them,
// in this order, so that Redis stores the names once per stream node
// instead of once per entry. Times are Unix microseconds in decimal, or ""
// for the zero time.
const (
	fieldWorkspace  = "w"
	fieldSource     = "s"
	fieldMessageID  = "m"
	fieldType       = "y"
	fieldShardKey   = "k"
	fieldReceivedAt = "r"
	fieldSentAt     = "a"
	fieldTimestamp  = "t"
	fieldIP         = "i"
	fieldContext    = "c"
	fieldPayload    = "p"

	fieldsPerEntry = 11
	// xaddArgs is the length of one XADD command: xadd, key, *, fields.
	xaddArgs = 3 + 2*fieldsPerEntry
	// timesPerEntry is the number of time fields of an entry.
	timesPerEntry = 3
)

// bytesArg lets a []byte field go into a command as a pointer, which an
// interface holds without allocating; go-redis writes it through
// MarshalBinary without copying.
type bytesArg []byte

// MarshalBinary returns the bytes themselves.
func (b *bytesArg) MarshalBinary() ([]byte, error) { return *b, nil }

// putXAdd writes the XADD command for e into dst, which must have length
// xaddArgs. Strings and byte slices are referenced, not copied: e must stay
// unchanged until the command has been sent. times holds the entry's times
// (length timesPerEntry) and must live as long.
func putXAdd(dst []any, times []int64, stream any, e *event.Entry) {
	dst[0] = "xadd"
	dst[1] = stream
	dst[2] = "*"
	dst[3], dst[4] = fieldWorkspace, &e.WorkspaceID
	dst[5], dst[6] = fieldSource, &e.SourceID
	dst[7], dst[8] = fieldMessageID, &e.MessageID
	dst[9], dst[10] = fieldType, &e.Type
	dst[11], dst[12] = fieldShardKey, &e.ShardKey
	dst[13], dst[14] = fieldReceivedAt, timeArg(&times[0], e.ReceivedAt)
	dst[15], dst[16] = fieldSentAt, timeArg(&times[1], e.SentAt)
	dst[17], dst[18] = fieldTimestamp, timeArg(&times[2], e.Timestamp)
	dst[19], dst[20] = fieldIP, &e.IP
	dst[21], dst[22] = fieldContext, (*bytesArg)(&e.Context)
	dst[23], dst[24] = fieldPayload, (*bytesArg)(&e.Payload)
}

func timeArg(slot *int64, t time.Time) any {
	if t.IsZero() {
		return ""
	}
	*slot = t.UnixMicro()
	return slot
}

var errMissingField = errors.New("missing field")

// decodeEntry rebuilds an entry from stream fields. Unknown fields are
// ignored, so fields can be added without breaking older readers.
func decodeEntry(values map[string]any) (event.Entry, error) {
	var (
		e   event.Entry
		err error
	)
	str := func(name string) string {
		if err != nil {
			return ""
		}
		v, ok := values[name]
		if !ok {
			err = fmt.Errorf("decode entry: %w %q", errMissingField, name)
			return ""
		}
		s, ok := v.(string)
		if !ok {
			err = fmt.Errorf("decode entry: field %q is %T, want string", name, v)
		}
		return s
	}
	tm := func(name string) time.Time {
		s := str(name)
		if err != nil || s == "" {
			return time.Time{}
		}
		us, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			err = fmt.Errorf("decode entry: field %q: %w", name, perr)
			return time.Time{}
		}
		return time.UnixMicro(us).UTC()
	}
	raw := func(name string) []byte {
		s := str(name)
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	e.WorkspaceID = str(fieldWorkspace)
	e.SourceID = str(fieldSource)
	e.MessageID = str(fieldMessageID)
	e.Type = str(fieldType)
	e.ShardKey = str(fieldShardKey)
	e.ReceivedAt = tm(fieldReceivedAt)
	e.SentAt = tm(fieldSentAt)
	e.Timestamp = tm(fieldTimestamp)
	e.IP = str(fieldIP)
	e.Context = raw(fieldContext)
	e.Payload = raw(fieldPayload)
	if err != nil {
		return event.Entry{}, err
	}
	return e, nil
}
