package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
)

// Problem is why one message of a request was refused.
type Problem struct {
	// Index is the message's position in the batch (0 for single calls).
	Index int `json:"index"`
	// Reason is a stable code, also the metric label.
	Reason string `json:"reason"`
	// Message says what is wrong, for people.
	Message string `json:"message"`
}

// Types of Segment calls, as stored.
const (
	typeTrack    = "track"
	typePage     = "page"
	typeScreen   = "screen"
	typeIdentify = "identify"
	typeGroup    = "group"
	typeAlias    = "alias"
)

var validTypes = map[string]bool{
	typeTrack: true, typePage: true, typeScreen: true, typeIdentify: true, typeGroup: true, typeAlias: true,
}

// maxIDLength bounds every id field (messageId, userId, anonymousId...).
const maxIDLength = 255

// wireBatch is the envelope of /v1/batch.
type wireBatch struct {
	Batch    []json.RawMessage `json:"batch"`
	SentAt   string            `json:"sentAt"`
	Context  json.RawMessage   `json:"context"`
	WriteKey string            `json:"writeKey"`
}

// request is a parsed, validated request: entries still lack the workspace
// and source, which come from the write key.
type request struct {
	writeKey string
	entries  []event.Entry
	problems []Problem
}

// parseRequest validates the body of a call of the given type ("batch" for
// /v1/batch) received at now. A problem with the request as a whole is
// returned as a Problem with Index -1.
func parseRequest(typ string, body []byte, now time.Time, l config.Collector) request {
	var req request
	if typ != "batch" {
		req.entries = make([]event.Entry, 0, 1)
		raw := bytes.TrimSpace(body)
		msg, p := parseMessage(typ, raw, nil, time.Time{}, now, l)
		if p != nil {
			req.problems = append(req.problems, *p)
			// The key is still needed to authenticate before answering 400.
			req.writeKey = msg.WriteKey
			return req
		}
		req.writeKey = msg.WriteKey
		req.entries = append(req.entries, msg.entry)
		return req
	}

	var env wireBatch
	if err := event.Decode(body, &env); err != nil {
		req.problems = append(req.problems, Problem{-1, "invalid_json", describeJSONError(err)})
		return req
	}
	req.writeKey = env.WriteKey
	switch {
	case env.Batch == nil:
		req.problems = append(req.problems, Problem{-1, "empty_batch", `"batch" is required and must be a non-empty array of messages`})
		return req
	case len(env.Batch) == 0:
		req.problems = append(req.problems, Problem{-1, "empty_batch", `"batch" is empty`})
		return req
	case len(env.Batch) > l.MaxBatchMessages:
		req.problems = append(req.problems, Problem{-1, "too_many_messages", fmt.Sprintf("a batch holds at most %d messages, got %d", l.MaxBatchMessages, len(env.Batch))})
		return req
	}
	if !isObjectOrNull(env.Context) {
		req.problems = append(req.problems, Problem{-1, "invalid_field", `"context" must be an object`})
		return req
	}
	var sentAt time.Time
	if env.SentAt != "" {
		t, err := event.ParseTime(env.SentAt)
		if err != nil {
			req.problems = append(req.problems, Problem{-1, "invalid_timestamp", fmt.Sprintf("sentAt: %v", err)})
			return req
		}
		sentAt = t
	}
	var batchContext []byte
	if len(env.Context) > 0 && string(env.Context) != "null" {
		batchContext = env.Context
	}
	req.entries = make([]event.Entry, 0, len(env.Batch))
	for i, raw := range env.Batch {
		msg, p := parseMessage("", raw, batchContext, sentAt, now, l)
		if p != nil {
			p.Index = i
			req.problems = append(req.problems, *p)
			continue
		}
		msg.entry.Context = batchContext
		req.entries = append(req.entries, msg.entry)
	}
	return req
}

type parsedMessage struct {
	event.Message
	entry event.Entry
}

// parseMessage validates one message. typ is the call type from the path, or
// "" inside a batch, where the message's own type field says it;
// batchContext is the batch envelope's context, or nil.
func parseMessage(typ string, raw, batchContext []byte, batchSentAt, now time.Time, l config.Collector) (parsedMessage, *Problem) {
	var m parsedMessage
	bad := func(reason, format string, args ...any) (parsedMessage, *Problem) {
		return m, &Problem{Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	if len(raw) > l.MaxEventBytes {
		return bad("event_too_large", "message is %d bytes; the limit is %d", len(raw), l.MaxEventBytes)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return bad("invalid_json", "a message must be a JSON object")
	}
	if err := checkStructure(raw, l.MaxDepth, l.MaxKeys); err != nil {
		se := err.(*structureError)
		return bad(se.reason, "%s", se.msg)
	}
	if err := event.Decode(raw, &m.Message); err != nil {
		return bad("invalid_json", "%s", describeJSONError(err))
	}
	if typ == "" {
		typ = m.Type
		if !validTypes[typ] {
			return bad("invalid_type", "type %q is not one of track, page, screen, identify, group, alias", typ)
		}
	}
	for _, f := range []struct {
		name string
		v    event.ID
	}{{"messageId", m.MessageID}, {"userId", m.UserID}, {"anonymousId", m.AnonymousID}, {"groupId", m.GroupID}, {"previousId", m.PreviousID}} {
		if len(f.v) > maxIDLength {
			return bad("invalid_field", "%s is longer than %d characters", f.name, maxIDLength)
		}
	}
	if m.UserID == "" && m.AnonymousID == "" {
		return bad("missing_id", "userId or anonymousId is required")
	}
	switch typ {
	case typeTrack:
		if m.Event == "" {
			return bad("missing_event", "track needs a non-empty event name")
		}
	case typeAlias:
		if m.PreviousID == "" {
			return bad("missing_previous_id", "alias needs previousId")
		}
	case typeGroup:
		if m.GroupID == "" {
			return bad("missing_group_id", "group needs groupId")
		}
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"properties", m.Properties}, {"traits", m.Traits}, {"context", m.Context}} {
		if !isObjectOrNull(f.v) {
			return bad("invalid_field", "%s must be an object", f.name)
		}
	}
	// Consent that cannot be read cannot be honoured: refuse it rather than
	// guess. The message's context.consent wins over the batch's.
	if _, _, err := consent.Parse(raw, batchContext); err != nil {
		var ce *consent.Error
		if errors.As(err, &ce) {
			return bad("invalid_consent", "%s", ce.Error())
		}
		return bad("invalid_consent", "context.consent cannot be read")
	}

	ts, p := eventTime(m.Message, batchSentAt, now, l.MaxFutureSkew)
	if p != nil {
		return m, p
	}
	shardKey := string(m.AnonymousID)
	if shardKey == "" {
		shardKey = string(m.UserID)
	}
	msgID := string(m.MessageID)
	if msgID == "" {
		msgID = uuid.Must(uuid.NewV7()).String()
	}
	m.entry = event.Entry{
		MessageID:  msgID,
		Type:       typ,
		ShardKey:   shardKey,
		ReceivedAt: now,
		SentAt:     ts.sentAt,
		Timestamp:  ts.timestamp,
		Payload:    raw,
	}
	return m, nil
}

type times struct {
	timestamp, sentAt time.Time
}

// eventTime works out a message's event time. An explicit timestamp wins;
// otherwise originalTimestamp corrected for the client's clock skew
// (receivedAt − (sentAt − originalTimestamp)) when sentAt is known; otherwise
// the receive time. A time further than maxFuture ahead is clamped to now.
func eventTime(m event.Message, batchSentAt, now time.Time, maxFuture time.Duration) (times, *Problem) {
	var out times
	parse := func(name, v string) (time.Time, *Problem) {
		if v == "" {
			return time.Time{}, nil
		}
		t, err := event.ParseTime(v)
		if err != nil {
			return t, &Problem{Reason: "invalid_timestamp", Message: fmt.Sprintf("%s: %v", name, err)}
		}
		return t, nil
	}
	explicit, p := parse("timestamp", m.Timestamp)
	if p != nil {
		return out, p
	}
	original, p := parse("originalTimestamp", m.OriginalTimestamp)
	if p != nil {
		return out, p
	}
	sentAt, p := parse("sentAt", m.SentAt)
	if p != nil {
		return out, p
	}
	if sentAt.IsZero() {
		sentAt = batchSentAt
	}
	out.sentAt = sentAt
	switch {
	case !explicit.IsZero():
		out.timestamp = explicit
	case !original.IsZero() && !sentAt.IsZero():
		out.timestamp = now.Add(-sentAt.Sub(original))
	case !original.IsZero():
		out.timestamp = original
	default:
		out.timestamp = now
	}
	if out.timestamp.After(now.Add(maxFuture)) {
		clampedTotal.Inc()
		out.timestamp = now
	}
	out.timestamp = out.timestamp.UTC().Truncate(time.Microsecond)
	return out, nil
}

func isObjectOrNull(v json.RawMessage) bool {
	return len(v) == 0 || v[0] == '{' || string(v) == "null"
}

// describeJSONError turns a decoder error into a message that names the
// JSON field, not Go types.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("%s must not be a JSON %s", te.Field, te.Value)
		}
		return fmt.Sprintf("expected a JSON object, got a %s", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case err.Error() == "unexpected end of JSON input":
		return "malformed JSON: the body ends too early"
	default:
		return "malformed JSON: " + err.Error()
	}
}

// Accept validates messages that come from elsewhere than HTTP (a source
// plugin) as the collector validates a batch's messages, received at now,
// and returns the entries of the valid ones, with workspaceID and sourceID
// set, and a Problem for each refused one (Index is its position in
// messages). Each message names its own type.
func Accept(messages [][]byte, workspaceID, sourceID string, now time.Time, l config.Collector) ([]event.Entry, []Problem) {
	now = now.UTC().Truncate(time.Microsecond)
	entries := make([]event.Entry, 0, len(messages))
	var problems []Problem
	for i, raw := range messages {
		if !utf8.Valid(raw) {
			problems = append(problems, Problem{Index: i, Reason: "invalid_utf8", Message: "the message is not valid UTF-8"})
			continue
		}
		msg, p := parseMessage("", bytes.TrimSpace(raw), nil, time.Time{}, now, l)
		if p != nil {
			p.Index = i
			problems = append(problems, *p)
			continue
		}
		msg.entry.WorkspaceID, msg.entry.SourceID = workspaceID, sourceID
		entries = append(entries, msg.entry)
	}
	return entries, problems
}
