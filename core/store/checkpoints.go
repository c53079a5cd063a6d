package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/consent"
)

// ErrFenced reports a write of a session shard's state by a worker that no
// longer owns the shard: another acquired it since (migration 00005).
var ErrFenced = errors.New("session shard was acquired by another worker")

// VisitorState is one visitor's checkpointed state, in the session engine's
// snapshot format.
type VisitorState struct {
	WorkspaceID, AnonymousID string
	State                    []byte
}

// VisitorKey names a visitor dropped from a shard's state.
type VisitorKey struct {
	WorkspaceID, AnonymousID string
}

// ShardCheckpoint is what a worker acquiring a session shard resumes from.
type ShardCheckpoint struct {
	// Epoch is the worker's fencing token for the shard.
	Epoch int64
	// LastEntryID is the last stream entry whose effects are committed
	// ("0-0" for none).
	LastEntryID string
	Visitors    []VisitorState
}

// AcquireSessionShard makes owner the holder of shard's state, fencing out
// any earlier holder, and returns the checkpoint to resume from.
func (s *Store) AcquireSessionShard(ctx context.Context, shard int, owner string) (ShardCheckpoint, error) {
	var cp ShardCheckpoint
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO session_shards AS s (shard, epoch, owner) VALUES ($1, 1, $2)
			ON CONFLICT (shard) DO UPDATE SET epoch = s.epoch + 1, owner = EXCLUDED.owner, updated_at = now()
			RETURNING epoch, last_entry_id`, shard, owner).Scan(&cp.Epoch, &cp.LastEntryID)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT workspace_id::text, anonymous_id, state FROM session_visitors
			WHERE shard = $1 ORDER BY workspace_id, anonymous_id`, shard)
		if err != nil {
			return err
		}
		cp.Visitors, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (VisitorState, error) {
			var v VisitorState
			return v, r.Scan(&v.WorkspaceID, &v.AnonymousID, &v.State)
		})
		return err
	})
	if err != nil {
		return cp, fmt.Errorf("acquire session shard %d: %w", shard, err)
	}
	return cp, nil
}

// WriteShardCheckpointTx records, in the caller's transaction, the state
// of shard after the entries up to lastEntryID: visitors changed (put) and
// dropped (del). It fails with ErrFenced, leaving the transaction to be
// rolled back, when epoch is no longer the shard's.
func (s *Store) WriteShardCheckpointTx(ctx context.Context, tx pgx.Tx, shard int, epoch int64, lastEntryID string, put []VisitorState, del []VisitorKey) error {
	tag, err := tx.Exec(ctx, `UPDATE session_shards SET last_entry_id = $3, updated_at = now()
		WHERE shard = $1 AND epoch = $2`, shard, epoch, lastEntryID)
	if err != nil {
		return fmt.Errorf("checkpoint session shard %d: %w", shard, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("checkpoint session shard %d at epoch %d: %w", shard, epoch, ErrFenced)
	}
	// Drops first: a visitor dropped and seen again is put back.
	if len(del) > 0 {
		ws, anon := make([]string, len(del)), make([]string, len(del))
		for i, v := range del {
			ws[i], anon[i] = v.WorkspaceID, clean(v.AnonymousID)
		}
		_, err := tx.Exec(ctx, `
			DELETE FROM session_visitors v USING unnest($2::uuid[], $3::text[]) AS u (ws, anon)
			WHERE v.workspace_id = u.ws AND v.anonymous_id = u.anon AND v.shard = $1`, shard, ws, anon)
		if err != nil {
			return fmt.Errorf("drop %d visitors of session shard %d: %w", len(del), shard, err)
		}
	}
	if len(put) > 0 {
		ws, anon, state := make([]string, len(put)), make([]string, len(put)), make([][]byte, len(put))
		for i, v := range put {
			ws[i], anon[i], state[i] = v.WorkspaceID, clean(v.AnonymousID), v.State
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO session_visitors (workspace_id, anonymous_id, shard, state)
			SELECT ws, anon, $1, state FROM unnest($2::uuid[], $3::text[], $4::bytea[]) AS u (ws, anon, state)
			ORDER BY 1, 2
			ON CONFLICT (workspace_id, anonymous_id) DO UPDATE SET shard = EXCLUDED.shard, state = EXCLUDED.state`,
			shard, ws, anon, state)
		if err != nil {
			return fmt.Errorf("checkpoint %d visitors of session shard %d: %w", len(put), shard, err)
		}
	}
	return nil
}

// SessionSettings are what the session engine reads of a workspace.
type SessionSettings struct {
	TimeoutMinutes               int
	OwnDomains, IgnoredReferrers []string
}

// SessionSettings returns a workspace's session settings, or ErrNotFound
// for an id that is no workspace (deleted ones included: their queued
// events still complete their sessions).
func (s *Store) SessionSettings(ctx context.Context, workspaceID string) (SessionSettings, error) {
	var st SessionSettings
	if !validUUID(workspaceID) {
		return st, ErrNotFound
	}
	err := s.pool.QueryRow(ctx, `SELECT session_timeout_minutes, own_domains, ignored_referrers FROM workspaces WHERE id = $1`,
		workspaceID).Scan(&st.TimeoutMinutes, &st.OwnDomains, &st.IgnoredReferrers)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("session settings of workspace %s: %w", workspaceID, err)
	}
	st.IgnoredReferrers = referrers(st.IgnoredReferrers)
	return st, nil
}

// PrivacyPolicy returns a workspace's consent policy (the default, which
// needs analytics, when it set none), for the pipeline's consent gate.
func (s *Store) PrivacyPolicy(ctx context.Context, workspaceID string) (consent.Policy, error) {
	if !validUUID(workspaceID) {
		return consent.Policy{}, ErrNotFound
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT privacy FROM workspaces WHERE id = $1`, workspaceID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return consent.Policy{}, ErrNotFound
	}
	if err != nil {
		return consent.Policy{}, fmt.Errorf("privacy policy of workspace %s: %w", workspaceID, err)
	}
	return decodePrivacy(raw)
}
