// Package store is Eddy's PostgreSQL storage: the schema and its migrations,
// the workspaces and sources that plugins.yaml declares, and the bulk, idempotent
// writes of events and sessions.
//
// # Lifecycle
//
// A process calls [EnsureDatabase] and [Migrate] once at start (both are safe
// when several processes start together), then [Open] for a connection pool.
// Open does not reach the server, so a process can start while PostgreSQL is
// down; [Store.Ping] tells when it is back.
//
// # Events
//
// events is partitioned by UTC day of received_at (the collector's first
// receipt time), one table per day named events_pYYYYMMDD. [Store.InsertEvents]
// makes sure the partitions its rows need exist before it writes: it remembers
// the days it has seen and otherwise calls the SQL function
// eddy_ensure_events_partition, which creates a missing day under a
// transaction-level advisory lock so that concurrent workers never collide. A
// worker catching up after a long outage creates past days the same way. There
// is no DEFAULT partition.
//
// Writes are idempotent on (workspace_id, message_id). That key cannot be a
// unique constraint on events: PostgreSQL requires a partitioned table's unique
// constraints to include the partition key, and a client's retry carries a new
// received_at, maybe on another day. So the key lives in the unpartitioned
// table event_ids. A batch is written in one transaction: COPY loads it into
// a temporary table the connection keeps (eddy_events_batch, emptied at
// commit), then one statement moves it on:
//
//	WITH batch AS (SELECT DISTINCT ON (workspace_id, message_id) ... FROM eddy_events_batch
//	               ORDER BY workspace_id, message_id, ord),
//	     new_ids AS (INSERT INTO event_ids SELECT ... FROM batch ORDER BY workspace_id, message_id
//	                 ON CONFLICT DO NOTHING RETURNING workspace_id, message_id)
//	INSERT INTO events SELECT ... FROM batch JOIN new_ids USING (workspace_id, message_id)
//
// DISTINCT ON keeps the first of duplicates inside one call; ON CONFLICT DO
// NOTHING drops keys stored before, or being stored by a concurrent
// transaction, which the statement waits for (taking keys in order, so that
// two writers do not deadlock). Only rows whose key is new reach events. The
// transaction stores all rows or none.
//
// COPY, then INSERT ... SELECT, used less CPU per row than the same statement
// fed by unnest over 19 array parameters, and wrote 5-15% more rows per second
// with few indexes, about as many with all of them (see BenchmarkInsertEvents).
// A temporary table created for each batch (ON COMMIT DROP) would leave about
// 50 dead catalog rows per batch behind, hence one per connection.
//
// uuid and inet values are loaded as text and cast by the statement, so a
// malformed value, like malformed JSON or a NUL byte in text, fails with a
// PostgreSQL data exception that [IsDataError] recognises, never with a
// client-side encoding error.
//
// # Sessions
//
// The sessions worker applies a batch of events to its visitors
// (core/session), then writes in one transaction, with
// [Store.WriteSessionsTx], the session changes the batch produced and the
// page views and orders of its events ([PageViewOf], [OrderOf]). Every part
// is idempotent, so that replaying a batch after a takeover rewrites the
// same rows:
//
//   - changes are coalesced per session (the last state wins) and upserted;
//     a closed row is never reopened by an older, open state of a replay;
//   - a Merged change deletes the absorbed session and moves its page views
//     and orders to the survivor (following chains of merges in the batch);
//   - page views are keyed by message id, the first write kept;
//   - orders are keyed by order id, the earliest event's kept, as the
//     session engine counts them.
//
// Sessions are loaded with COPY into a temporary table the connection keeps
// (eddy_sessions_batch), then moved by one INSERT ... ON CONFLICT DO UPDATE
// that also empties it, so that two writes in one transaction do not see
// each other's rows. Page views and orders, fewer and narrower, go through
// unnest arrays. For sessions, COPY and the same statement fed by unnest
// over 32 array parameters wrote alike, ~40 ms per batch of 1000 updated
// sessions (see BenchmarkWriteSessions); COPY is kept, like events', for
// its smaller client-side work.
//
// Text is stored with NUL bytes removed and invalid UTF-8 replaced: one bad
// URL must not fail the transaction that also checkpoints a shard.
//
// # Workspaces and sources
//
// [Store.SyncWorkspaces] applies the plugins.yaml view of workspaces and sources
// (rows marked managed); [Store.SourceKeys] lists the write keys the collector
// accepts. Write keys are stored only hashed ([HashSecret]).
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is a pool of connections to Eddy's database. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool

	mu         sync.Mutex
	partitions map[int64]bool // UTC days (days since 1970-01-01) whose events partition exists
}

// defaultMaxConns is the pool size unless the URL sets pool_max_conns.
const defaultMaxConns = 16

// Open returns a Store over a new connection pool to databaseURL (a URL or
// key=value string; pool_* parameters configure the pool). It neither connects
// nor migrates: see [Migrate].
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (4 on a small machine) is too few for a worker:
		// the storage and session groups each commit one batch per owned
		// shard at a time, and the API and key reloads need connections of
		// their own meanwhile.
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Store{pool: pool, partitions: make(map[int64]bool)}, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Pool returns the underlying connection pool, for queries this package does
// not offer.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// EnsureDatabase creates the database databaseURL names unless it exists,
// connecting to the server's "postgres" database with the same credentials.
// Processes racing to create it all succeed.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("ensure database: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return errors.New("ensure database: the database URL names no database")
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("ensure database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// Look first, so that a role without CREATEDB can use an existing database.
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("ensure database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	// Another process won the race: PostgreSQL reports duplicate_database, or,
	// when both passed its name check together, a unique violation on its
	// catalog.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505" && pgErr.ConstraintName == "pg_database_datname_index") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ensure database %s: %w", name, err)
	}
	return nil
}
