package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// APIKey is a workspace's API key (never the secret itself).
type APIKey struct {
	ID, Name, Prefix string
	Scopes           []string
	CreatedBy        string
	CreatedAt        time.Time
	// LastUsedAt and RevokedAt are zero when never.
	LastUsedAt, RevokedAt time.Time
}

const apiKeyColumns = `k.id::text, k.name, k.key_prefix, k.scopes, k.created_by, k.created_at,
	coalesce(k.last_used_at, 'epoch'), coalesce(k.revoked_at, 'epoch')`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Scopes, &k.CreatedBy, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, ErrNotFound
	}
	k.LastUsedAt, k.RevokedAt = zeroEpoch(k.LastUsedAt), zeroEpoch(k.RevokedAt)
	return k, err
}

// zeroEpoch maps the epoch, which queries use for NULL, to the zero time.
func zeroEpoch(t time.Time) time.Time {
	if t.Unix() == 0 {
		return time.Time{}
	}
	return t
}

// APIKeys lists a workspace's API keys by id.
func (s *Store) APIKeys(ctx context.Context, w Workspace, p Page) ([]APIKey, error) {
	var out []APIKey
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys k
			WHERE k.workspace_id = $1 AND k.id::text > $2 ORDER BY k.id::text LIMIT $3`, w.ID, p.After, p.Limit)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanAPIKey, "api keys")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("api keys of %s: %w", w.Slug, err)
	}
	return out, nil
}

// CreateAPIKey stores a new API key of a workspace, given the key's hash and
// display prefix.
func (s *Store) CreateAPIKey(ctx context.Context, who Change, w Workspace, name string, scopes []string, keyHash, prefix string) (APIKey, error) {
	var k APIKey
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		k, err = scanAPIKey(tx.QueryRow(ctx, `
			INSERT INTO api_keys AS k (workspace_id, name, key_hash, key_prefix, scopes, created_by)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+apiKeyColumns,
			w.ID, name, keyHash, prefix, scopes, who.Actor.Label))
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "api_key.create", targetType: "api_key",
			targetID: k.ID, workspace: w.Slug, after: map[string]any{"name": name, "prefix": prefix, "scopes": scopes}})
	})
	if err != nil {
		return k, fmt.Errorf("create api key: %w", err)
	}
	return k, nil
}

// RevokeAPIKey revokes a key at once. One already revoked is a ConflictError.
func (s *Store) RevokeAPIKey(ctx context.Context, who Change, w Workspace, id string) error {
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		k, err := scanAPIKey(tx.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys k
			WHERE k.workspace_id = $1 AND k.id = $2 FOR UPDATE`, w.ID, id))
		if err != nil {
			return err
		}
		if !k.RevokedAt.IsZero() {
			return conflict("the key is already revoked")
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1 AND id = $2`, w.ID, id); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "api_key.revoke", targetType: "api_key",
			targetID: id, workspace: w.Slug, before: map[string]any{"name": k.Name, "prefix": k.Prefix, "scopes": k.Scopes}})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return err
}

// APIKeyByHash authenticates an API key: it returns the active key with
// that hash and its live workspace, and notes the use (at most once a
// minute). A revoked key, or one of a deleted workspace, is ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, keyHash string) (APIKey, Workspace, error) {
	var k APIKey
	var wsID string
	err := s.pool.QueryRow(ctx, `
		SELECT `+apiKeyColumns+`, k.workspace_id::text
		FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
		WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND w.deleted_at IS NULL`, keyHash).
		Scan(&k.ID, &k.Name, &k.Prefix, &k.Scopes, &k.CreatedBy, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt, &wsID)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, Workspace{}, ErrNotFound
	}
	if err != nil {
		return k, Workspace{}, fmt.Errorf("api key: %w", err)
	}
	k.LastUsedAt, k.RevokedAt = zeroEpoch(k.LastUsedAt), zeroEpoch(k.RevokedAt)
	if time.Since(k.LastUsedAt) > time.Minute {
		// Best effort: a key that works must not fail because its use could
		// not be noted.
		_, _ = s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = now() WHERE workspace_id = $1 AND id = $2`, wsID, k.ID)
	}
	w, err := scanWorkspace(s.pool.QueryRow(ctx, workspaceSelect+` AND w.id = $1`, wsID))
	if err != nil {
		return k, w, fmt.Errorf("api key workspace: %w", err)
	}
	return k, w, nil
}
