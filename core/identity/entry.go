package identity

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
)

// message is the part of a Segment message identity reads.
type message struct {
	Type        string          `json:"type"`
	UserID      event.ID        `json:"userId"`
	AnonymousID event.ID        `json:"anonymousId"`
	PreviousID  event.ID        `json:"previousId"`
	Traits      json.RawMessage `json:"traits"`
	Context     json.RawMessage `json:"context"`
}

// eventContext is the part of a message's context identity reads.
type eventContext struct {
	Traits  json.RawMessage `json:"traits"`
	Consent json.RawMessage `json:"consent"`
}

// FromEntry reads the identity side of a queued message: its ids, its user
// traits (identify's traits, else context.traits; a group's own traits
// describe the group and are not read) and its consent
// (context.consent.categoryPreferences). The message's context keys win
// over the batch's, as in stored events. Traits that are not an object and
// consent preferences that are not booleans are ignored rather than
// refused (consent.Lenient): they cannot be applied, but the event still
// resolves.
func FromEntry(e *event.Entry) (Event, error) {
	var m message
	if err := event.Decode(e.Payload, &m); err != nil {
		return Event{}, fmt.Errorf("decode message %s: %w", e.MessageID, err)
	}
	ev := Event{
		WorkspaceID: e.WorkspaceID,
		MessageID:   e.MessageID,
		Type:        e.Type,
		AnonymousID: string(m.AnonymousID),
		UserID:      string(m.UserID),
		PreviousID:  string(m.PreviousID),
		Timestamp:   e.Timestamp,
	}
	if ev.Type == "" {
		ev.Type = m.Type
	}
	var msgCtx, batchCtx eventContext
	if isObject(m.Context) {
		if err := event.Decode(m.Context, &msgCtx); err != nil {
			return Event{}, fmt.Errorf("decode context of message %s: %w", e.MessageID, err)
		}
	}
	if isObject(e.Context) {
		if err := event.Decode(e.Context, &batchCtx); err != nil {
			return Event{}, fmt.Errorf("decode batch context of message %s: %w", e.MessageID, err)
		}
	}
	ctxTraits, consentObj := msgCtx.Traits, msgCtx.Consent
	if ctxTraits == nil {
		ctxTraits = batchCtx.Traits
	}
	if consentObj == nil {
		consentObj = batchCtx.Consent
	}
	if ev.Type == "identify" && isObject(m.Traits) {
		ev.Traits = m.Traits
	} else if isObject(ctxTraits) {
		ev.Traits = ctxTraits
	}
	ev.Consent = consent.Lenient(consentObj)
	return ev, nil
}

func isObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}
