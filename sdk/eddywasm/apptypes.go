package eddywasm

import (
	"encoding/json"
	"errors"
)

// An app is a module that reacts to events and session changes with
// actions, through the exports eddy_on_events and eddy_on_sessions (see
// OnEvents and OnSessions), and may keep a little state per installation
// through the host functions of the "eddy" module (see StateGet,
// StateSet and StateDelete). The types below are the JSON the host and
// the app exchange.

// SessionChange is a session's state after a change.
type SessionChange struct {
	// Kind is "started", "updated", "merged" or "closed".
	Kind string `json:"kind"`
	// Session is the session as Eddy's live API shows it: a JSON object
	// with id, anonymous_id, user_id, started_at, last_event_at, cart
	// ({items: [{product_id, sku, name, price, quantity}], value} or
	// null), orders_count, revenue, converted, closed and the other
	// fields of GET /v1/sessions/{id}.
	Session json.RawMessage `json:"session"`
}

// Action is something an app asks Eddy to do, such as calling a webhook.
type Action struct {
	// Type names the action, e.g. "webhook" or "cart_abandoned".
	Type string `json:"type"`
	// AnonymousID and UserID say whom it concerns, when it is about a
	// visitor.
	AnonymousID string `json:"anonymous_id,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	// Data is the action's data, a JSON object.
	Data json.RawMessage `json:"data,omitempty"`
}

// EventsCall is what an eddy_on_events call receives.
type EventsCall struct {
	Events []Event `json:"events"`
}

// SessionsCall is what an eddy_on_sessions call receives.
type SessionsCall struct {
	Changes []SessionChange `json:"changes"`
}

// AppResult is what an app's call returns.
type AppResult struct {
	Actions []Action `json:"actions"`
	// Error fails the whole call (Eddy retries it).
	Error string `json:"error,omitempty"`
}

// The codes the state host functions return, beside a length (≥ 0).
const (
	// StateNotFound: state_get found no value under the key.
	StateNotFound int32 = -1
	// StateBadKey: the key is empty or longer than MaxStateKeyBytes.
	StateBadKey int32 = -2
	// StateValueTooLarge: the value is longer than MaxStateValueBytes.
	StateValueTooLarge int32 = -3
	// StateFull: the installation holds MaxStateKeys keys already.
	StateFull int32 = -4
	// StateUnavailable: this installation has no state (the plugin does
	// not ask for the "state" permission, or the call is not an app call).
	StateUnavailable int32 = -5
	// StateFailed: the host's storage failed; the call may be retried.
	StateFailed int32 = -6
)

// Limits on an installation's state, enforced by the host.
const (
	MaxStateKeyBytes   = 256
	MaxStateValueBytes = 64 << 10
	MaxStateKeys       = 10_000
)

// Errors StateSet and StateDelete return.
var (
	ErrStateBadKey        = errors.New("eddy state: the key must be 1 to 256 bytes")
	ErrStateValueTooLarge = errors.New("eddy state: the value is larger than 64 KiB")
	ErrStateFull          = errors.New("eddy state: the installation holds 10000 keys already")
	ErrStateUnavailable   = errors.New("eddy state: this installation has no state (permission write: [state])")
	ErrStateFailed        = errors.New("eddy state: the host's storage failed")
)
