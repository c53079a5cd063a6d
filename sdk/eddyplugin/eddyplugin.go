// Package eddyplugin is the Go SDK for Eddy's gRPC plugins. A plugin is a
// program that implements plain Go interfaces (Processor, Sink, Source,
// App) and calls Serve from main; Eddy starts it as its own process through
// hashicorp/go-plugin, over gRPC with mutual TLS, and the generated
// protocol (sdk/proto) stays behind these types.
//
//	func main() { eddyplugin.Serve(&myProcessor{}) }
//
// A plugin logs to stderr (Eddy folds those lines into its own logs) and
// must never write to stdout, which carries go-plugin's handshake. Serve
// exits when Eddy dies, so a killed host leaves no orphan.
//
// Eddy's side of a plugin process is a *Client: the host calls Init,
// Process, Write, Delete, RunSource, OnEvents… on it as plain Go calls.
package eddyplugin

import (
	"context"
	"encoding/json"
	"time"
)

// ProtocolVersion is the version of the plugin protocol this SDK speaks.
const ProtocolVersion = 1

// Event is one collected message.
type Event struct {
	MessageID, WorkspaceID, SourceID string
	// Type is track, page, screen, identify, group or alias.
	Type string
	// Timestamp is the corrected event time; ReceivedAt when the collector
	// received it.
	Timestamp, ReceivedAt time.Time
	// Payload is the Segment message JSON; BatchContext the batch's context
	// JSON, if it had one (the message's context keys win over it).
	Payload, BatchContext []byte
	// IP is the client's address as the collector saw it; a processor may
	// truncate or clear it.
	IP string
}

// Installation is a plugin enabled in a workspace, with its configuration
// (a JSON object Eddy has checked against the plugin's schema).
type Installation struct {
	ID, PluginID, WorkspaceID string
	Config                    json.RawMessage
}

// FieldError is a problem with one configuration field.
type FieldError struct {
	Field, Message string
}

// Rejection names an event a plugin refuses for good, and why.
type Rejection struct {
	MessageID, Reason string
}

// Plugin is what every plugin implements. Init may be called for several
// installations (one per workspace), and again after a restart; Close is
// called even after a failed Init.
type Plugin interface {
	Init(ctx context.Context, in Installation) error
	// Validate makes the checks a schema cannot (credentials,
	// reachability); no errors means valid.
	Validate(ctx context.Context, installationID string) ([]FieldError, error)
	Close(ctx context.Context, installationID string) error
}

// Processor transforms a batch of events before storage.
type Processor interface {
	Plugin
	// Process returns the events to keep, in order, changed or not, and
	// those it refuses for good. An error fails the whole batch, which
	// Eddy retries.
	Process(ctx context.Context, installationID string, events []Event) (kept []Event, rejected []Rejection, err error)
}

// WriteResult is a sink's answer to a batch.
type WriteResult struct {
	// Retry are the message ids to deliver again later.
	Retry []string
	// Rejected are refused for good: Eddy dead-letters them.
	Rejected []Rejection
	// RetryAfter asks Eddy to wait before the next write (a throttling
	// destination's Retry-After).
	RetryAfter time.Duration
}

// Sink delivers batches of events to a destination.
type Sink interface {
	Plugin
	Write(ctx context.Context, installationID string, events []Event) (WriteResult, error)
}

// Identity is one identifier of a person: Kind is anonymous_id, user_id
// or email. It is personal data: never log it.
type Identity struct {
	Kind, Value string
}

// Deletion asks a sink to forget a person.
type Deletion struct {
	// JobID is the deletion job that asked for it, the same for every
	// call of the job.
	JobID string
	// Identities are every known identifier of the person.
	Identities []Identity
}

// DeleteResult is a sink's answer to a deletion.
type DeleteResult struct {
	// Retry asks Eddy to call Delete again later (the destination is busy
	// or down).
	Retry bool
	// Rejected, when not empty, says why the destination refuses the
	// deletion for good: Eddy dead-letters it.
	Rejected string
	// RetryAfter asks Eddy to wait before the next call (a throttling
	// destination's Retry-After).
	RetryAfter time.Duration
}

// Deleter is implemented by a sink that can delete a person's data from
// its destination; its manifest declares `deletion: true`. Eddy calls
// Delete in queue order: after writing the person's events that came
// before the deletion, before those after it. Delete must be idempotent:
// Eddy calls it again after a failure, a restart or a replay, and once per
// identifier of the person, each call naming them all. An error fails the
// call, which Eddy retries with backoff like a failed write; after
// repeated failures the deletion is dead-lettered. Identities are personal
// data: never log them.
type Deleter interface {
	Sink
	Delete(ctx context.Context, installationID string, d Deletion) (DeleteResult, error)
}

// Source brings events into Eddy from elsewhere (an MQTT broker, a queue).
// Run produces the installation's events until ctx ends, handing them to
// Eddy through emit; it is called again after Eddy or the plugin restarts.
// Delivery is at least once: acknowledge the upstream only after Emit
// returned without error.
type Source interface {
	Plugin
	Run(ctx context.Context, installationID string, emit Emitter) error
}

// Emitter hands batches of messages to Eddy.
type Emitter interface {
	// Emit sends one batch of Segment messages as JSON (type, event,
	// anonymousId or userId, properties, timestamp, messageId…) and blocks
	// until Eddy has queued them durably, minus the rejected ones (refused
	// for good, with the reason, naming each by its messageId), or until
	// ctx or the run ends. An error means the batch may not have been
	// queued: do not acknowledge it upstream, so that it is delivered again.
	// Emit may be called from several goroutines.
	Emit(ctx context.Context, messages [][]byte) (rejected []Rejection, err error)
}

// Action is something an app asks Eddy to do, such as calling a webhook
// or sending a message to a visitor's page.
type Action struct {
	// Type is the action's type, e.g. "webhook" or "visitor.message".
	Type string
	// AnonymousID and UserID say whom it concerns, when it is about a
	// visitor.
	AnonymousID, UserID string
	// Data is the action's data, a JSON object.
	Data json.RawMessage
}

// SessionChange is a session's state after a change, as the live API
// shows it.
type SessionChange struct {
	// Kind is started, updated, merged or closed.
	Kind string
	// Session is the session as JSON.
	Session json.RawMessage
}

// App reacts to events and session changes with actions. An error fails
// the whole call, which Eddy retries.
type App interface {
	Plugin
	OnEvents(ctx context.Context, installationID string, events []Event) ([]Action, error)
	OnSessions(ctx context.Context, installationID string, changes []SessionChange) ([]Action, error)
}
