// Package event holds the unit of data that flows through Eddy's spine: an
// accepted Segment-style message together with the facts the collector
// established about it (workspace, source, receive time, corrected time).
//
// The collector validates a message and wraps it in an Entry without
// re-encoding the client's JSON; the queue carries Entries between roles; the
// pipeline parses the payload once more to build storage rows.
package event

import "time"

// Entry is one accepted message on its way from the collector to storage.
type Entry struct {
	// WorkspaceID is the id (UUID) of the workspace the write key belongs to.
	WorkspaceID string
	// SourceID is the id (UUID) of the source whose write key was used.
	SourceID string
	// MessageID is the client's messageId, or one the collector generated.
	MessageID string
	// Type is the Segment call type: track, page, screen, identify, group, alias.
	Type string
	// ShardKey is the visitor key the queue shards by (anonymousId, else userId).
	ShardKey string
	// ReceivedAt is when the collector first received the message. It never
	// changes through retries and redeliveries.
	ReceivedAt time.Time
	// SentAt is the client's sentAt (message or batch level); zero if absent.
	SentAt time.Time
	// Timestamp is the event time after clock-skew correction and clamping.
	Timestamp time.Time
	// IP is the client address as the collector saw it (after trusted proxies).
	IP string
	// Context is the batch envelope's context object, if the batch had one;
	// the message's own context keys win over it.
	Context []byte
	// Payload is the message JSON exactly as the client sent it.
	Payload []byte
}
