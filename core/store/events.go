package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Event is one row of the events table.
type Event struct {
	// WorkspaceID and SourceID are UUIDs; SourceID "" is stored as NULL.
	WorkspaceID, SourceID string
	// MessageID is the message's id, unique within its workspace.
	MessageID string
	// Type is the Segment call type: track, page, screen, identify, group, alias.
	Type string
	// Event is a track call's event name, Name a page or screen name; these and
	// the ids are stored as NULL when "".
	Event, Name, AnonymousID, UserID, GroupID, PreviousID string
	// Timestamp is the event time (after clock-skew correction); ReceivedAt is
	// when the collector first received it, and picks the day partition.
	Timestamp, ReceivedAt time.Time
	// OriginalTimestamp and SentAt are the client's clocks; zero is NULL.
	OriginalTimestamp, SentAt time.Time
	// IP is the client address, stored as inet; "" is NULL.
	IP string
	// Properties, Context, Traits and Integrations are JSON objects; nil (or
	// empty) is NULL.
	Properties, Context, Traits, Integrations []byte
}

// batchTable is the temporary table a connection loads batches into. Each
// connection keeps its own for its whole life; ON COMMIT DELETE ROWS empties
// it at the end of every transaction that used it.
const batchTable = "eddy_events_batch"

// createBatchTableSQL creates batchTable on a connection that lacks it.
// Values that need parsing (uuid, inet) are loaded as text and cast by
// insertEventsSQL, so that a malformed one fails there with a data exception.
const createBatchTableSQL = `
CREATE TEMP TABLE IF NOT EXISTS eddy_events_batch (
    workspace_id text, source_id text, message_id text, type text, event text,
    name text, anonymous_id text, user_id text, group_id text, previous_id text,
    ts timestamptz, original_ts timestamptz, sent_at timestamptz, received_at timestamptz,
    ip text, properties jsonb, context jsonb, traits jsonb, integrations jsonb,
    ord bigint
) ON COMMIT DELETE ROWS`

// batchColumns are batchTable's columns, in the order of batchRow.
var batchColumns = []string{
	"workspace_id", "source_id", "message_id", "type", "event",
	"name", "anonymous_id", "user_id", "group_id", "previous_id",
	"ts", "original_ts", "sent_at", "received_at",
	"ip", "properties", "context", "traits", "integrations",
	"ord",
}

// batchRow returns event i of a batch as a row of batchTable.
func batchRow(e *Event, i int) []any {
	return []any{
		e.WorkspaceID, e.SourceID, e.MessageID, e.Type, e.Event,
		e.Name, e.AnonymousID, e.UserID, e.GroupID, e.PreviousID,
		timestamptz(e.Timestamp), timestamptz(e.OriginalTimestamp), timestamptz(e.SentAt), timestamptz(e.ReceivedAt),
		e.IP, jsonOrNil(e.Properties), jsonOrNil(e.Context), jsonOrNil(e.Traits), jsonOrNil(e.Integrations),
		int64(i),
	}
}

// insertEventsSQL moves the batch loaded into batchTable to events. The
// package comment explains the statement.
const insertEventsSQL = `
WITH batch AS (
    SELECT DISTINCT ON (workspace_id, message_id) *
    FROM (
        SELECT u.workspace_id::uuid           AS workspace_id,
               NULLIF(u.source_id, '')::uuid  AS source_id,
               u.message_id, u.type,
               NULLIF(u.event, '')            AS event,
               NULLIF(u.name, '')             AS name,
               NULLIF(u.anonymous_id, '')     AS anonymous_id,
               NULLIF(u.user_id, '')          AS user_id,
               NULLIF(u.group_id, '')         AS group_id,
               NULLIF(u.previous_id, '')      AS previous_id,
               u.ts, u.original_ts, u.sent_at, u.received_at,
               NULLIF(u.ip, '')::inet         AS ip,
               u.properties, u.context, u.traits, u.integrations,
               u.ord
        FROM eddy_events_batch AS u
    ) rows
    ORDER BY workspace_id, message_id, ord
),
new_ids AS (
    -- In key order, so that concurrent writers of overlapping batches wait
    -- for each other instead of deadlocking.
    INSERT INTO event_ids (workspace_id, message_id, received_at)
    SELECT workspace_id, message_id, received_at FROM batch
    ORDER BY workspace_id, message_id
    ON CONFLICT (workspace_id, message_id) DO NOTHING
    RETURNING workspace_id, message_id
)
INSERT INTO events (workspace_id, received_at, message_id, source_id, type, event, name,
                    anonymous_id, user_id, group_id, previous_id,
                    "timestamp", original_timestamp, sent_at, ip,
                    properties, context, traits, integrations)
SELECT b.workspace_id, b.received_at, b.message_id, b.source_id, b.type, b.event, b.name,
       b.anonymous_id, b.user_id, b.group_id, b.previous_id,
       b.ts, b.original_ts, b.sent_at, b.ip,
       b.properties, b.context, b.traits, b.integrations
FROM batch b JOIN new_ids n USING (workspace_id, message_id)`

// InsertEvents stores events in one transaction and returns how many rows it
// inserted. It is idempotent on (WorkspaceID, MessageID): an event whose key
// is already stored, or that repeats an earlier event of the same call, is
// skipped. On error nothing is stored; [IsDataError] tells whether the rows
// are at fault.
func (s *Store) InsertEvents(ctx context.Context, events []Event) (inserted int64, err error) {
	if len(events) == 0 {
		return 0, nil
	}
	days, err := validateEvents(events)
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	if err := s.ensurePartitions(ctx, days); err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	inserted, err = s.insertBatch(ctx, events)
	if isMissingPartition(err) {
		// Someone dropped a partition this process had seen (retention?):
		// forget what it knew and try once more.
		s.forgetPartitions(days)
		if err := s.ensurePartitions(ctx, days); err != nil {
			return 0, fmt.Errorf("insert events: %w", err)
		}
		inserted, err = s.insertBatch(ctx, events)
	}
	if err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	return inserted, nil
}

// insertBatch loads events into batchTable with COPY and moves them to
// events, in one transaction.
func (s *Store) insertBatch(ctx context.Context, events []Event) (inserted int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createBatchTableSQL); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{batchTable}, batchColumns,
			pgx.CopyFromSlice(len(events), func(i int) ([]any, error) { return batchRow(&events[i], i), nil }))
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, insertEventsSQL)
		inserted = tag.RowsAffected()
		return err
	})
	return inserted, err
}

// invalidEventError reports an event that cannot be stored as it is.
type invalidEventError struct {
	index  int
	reason string
}

func (e *invalidEventError) Error() string {
	return fmt.Sprintf("event %d: %s", e.index, e.reason)
}

// Bounds of ReceivedAt: a partition per day only makes sense for real
// receive times, and zero or absurd ones would create absurd partitions.
var (
	minReceivedAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxReceivedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// validateEvents checks what the database cannot check before partitions
// are created, and returns the UTC days (since 1970-01-01) the events fall
// on.
func validateEvents(events []Event) ([]int64, error) {
	var days []int64
	for i := range events {
		e := &events[i]
		switch {
		case e.WorkspaceID == "":
			return nil, &invalidEventError{i, "no workspace id"}
		case e.MessageID == "":
			return nil, &invalidEventError{i, "no message id"}
		case e.Type == "":
			return nil, &invalidEventError{i, "no type"}
		case e.Timestamp.IsZero():
			return nil, &invalidEventError{i, "no timestamp"}
		case e.ReceivedAt.Before(minReceivedAt) || !e.ReceivedAt.Before(maxReceivedAt):
			return nil, &invalidEventError{i, fmt.Sprintf("received at %s, out of range", e.ReceivedAt.Format(time.RFC3339))}
		}
		day := dayOf(e.ReceivedAt)
		// Batches span one day, rarely two: a linear scan beats a map.
		found := false
		for _, d := range days {
			if d == day {
				found = true
				break
			}
		}
		if !found {
			days = append(days, day)
		}
	}
	return days, nil
}

// dayOf returns the UTC day of t (not before 1970), counted from 1970-01-01.
func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

// ensurePartitions makes sure the events partitions of the given days exist.
func (s *Store) ensurePartitions(ctx context.Context, days []int64) error {
	var missing []time.Time
	s.mu.Lock()
	for _, d := range days {
		if !s.partitions[d] {
			missing = append(missing, time.Unix(d*86400, 0).UTC())
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	dates := make([]pgtype.Date, len(missing))
	for i, t := range missing {
		dates[i] = pgtype.Date{Time: t, Valid: true}
	}
	// One statement, so one transaction: the advisory lock the function takes
	// is held until every missing day exists.
	if _, err := s.pool.Exec(ctx, "SELECT eddy_ensure_events_partition(d) FROM unnest($1::date[]) AS d", dates); err != nil {
		return fmt.Errorf("create events partitions: %w", err)
	}
	s.mu.Lock()
	for _, t := range missing {
		s.partitions[dayOf(t)] = true
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) forgetPartitions(days []int64) {
	s.mu.Lock()
	for _, d := range days {
		delete(s.partitions, d)
	}
	s.mu.Unlock()
}

// isMissingPartition tells whether err is PostgreSQL's "no partition of
// relation "events" found for row".
func isMissingPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.TableName == "events"
}

func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func jsonOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// IsDataError reports whether err means the rows themselves are at fault, so
// that writing the same rows again can never succeed: an invalid event, or a
// PostgreSQL data exception (SQLSTATE class 22, e.g. malformed uuid, inet or
// JSON, NUL in text), integrity violation (23) or program limit (54, e.g. a
// value too large for an index). It is false for everything else, notably
// connection and availability errors, cancellations and a closed pool, which
// deserve a retry.
func IsDataError(err error) bool {
	if err == nil {
		return false
	}
	var invalid *invalidEventError
	var unstorable *unstorableError
	if errors.As(err, &invalid) || errors.As(err, &unstorable) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
