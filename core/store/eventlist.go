package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StoredEvent is an event as the API reads it back.
type StoredEvent struct {
	MessageID, SourceSlug, Type                           string
	Event, Name, AnonymousID, UserID, GroupID, PreviousID string
	Timestamp, OriginalTimestamp, SentAt, ReceivedAt      time.Time
	IP                                                    string
	Properties, Context, Traits, Integrations             json.RawMessage
}

// EventFilter selects a workspace's events. Empty fields do not filter.
type EventFilter struct {
	Type, Event, UserID, AnonymousID string
	// From (inclusive) and To (exclusive) bound the event timestamp.
	From, To time.Time
	// BeforeTimestamp and BeforeMessageID, when set, continue a listing after
	// its last row (the cursor): rows are ordered newest first.
	BeforeTimestamp time.Time
	BeforeMessageID string
	Limit           int
}

// Events lists a workspace's events, newest first by timestamp then
// message_id, in a transaction restricted to the workspace.
func (s *Store) Events(ctx context.Context, w Workspace, f EventFilter) ([]StoredEvent, error) {
	var out []StoredEvent
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		// The source slug comes from a subquery: sources are RLS-bound too.
		rows, err := tx.Query(ctx, `
			SELECT e.message_id, coalesce((SELECT s.slug FROM sources s WHERE s.workspace_id = e.workspace_id AND s.id = e.source_id), ''),
			       e.type, coalesce(e.event, ''), coalesce(e.name, ''), coalesce(e.anonymous_id, ''), coalesce(e.user_id, ''),
			       coalesce(e.group_id, ''), coalesce(e.previous_id, ''),
			       e."timestamp", coalesce(e.original_timestamp, 'epoch'), coalesce(e.sent_at, 'epoch'), e.received_at,
			       coalesce(host(e.ip), ''), e.properties, e.context, e.traits, e.integrations
			FROM events e
			WHERE e.workspace_id = $1
			  AND ($2 = '' OR e.type = $2) AND ($3 = '' OR e.event = $3)
			  AND ($4 = '' OR e.user_id = $4) AND ($5 = '' OR e.anonymous_id = $5)
			  AND ($6::timestamptz IS NULL OR e."timestamp" >= $6)
			  AND ($7::timestamptz IS NULL OR e."timestamp" < $7)
			  AND ($8::timestamptz IS NULL OR (e."timestamp", e.message_id) < ($8, $9))
			ORDER BY e."timestamp" DESC, e.message_id DESC
			LIMIT $10`,
			w.ID, f.Type, f.Event, f.UserID, f.AnonymousID,
			timestamptz(f.From), timestamptz(f.To), timestamptz(f.BeforeTimestamp), f.BeforeMessageID, f.Limit)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(row pgx.Row) (StoredEvent, error) {
			var e StoredEvent
			err := row.Scan(&e.MessageID, &e.SourceSlug, &e.Type, &e.Event, &e.Name, &e.AnonymousID, &e.UserID,
				&e.GroupID, &e.PreviousID, &e.Timestamp, &e.OriginalTimestamp, &e.SentAt, &e.ReceivedAt,
				&e.IP, &e.Properties, &e.Context, &e.Traits, &e.Integrations)
			e.OriginalTimestamp, e.SentAt = zeroEpoch(e.OriginalTimestamp), zeroEpoch(e.SentAt)
			return e, err
		}, "events")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", w.Slug, err)
	}
	return out, nil
}
