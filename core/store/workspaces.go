package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// WorkspaceSpec is a workspace as plugins.yaml declares it.
type WorkspaceSpec struct {
	// Slug identifies the workspace; Name is for display.
	Slug, Name string
	// Sources are the workspace's sources.
	Sources []SourceSpec
}

// SourceSpec is a source as plugins.yaml declares it.
type SourceSpec struct {
	// Slug identifies the source within its workspace; Name is for display.
	Slug, Name string
	// WriteKey is the secret clients send; only its hash is stored.
	WriteKey string
}

// SourceKey is a write key the collector accepts, and where it leads.
type SourceKey struct {
	// KeyHash is the write key's HashWriteKey.
	KeyHash string
	// WorkspaceID and SourceID are UUIDs.
	WorkspaceID, WorkspaceSlug, SourceID, SourceSlug string
}

// HashWriteKey returns the hex SHA-256 of a write key, the form in which
// write keys are stored and looked up.
func HashWriteKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// writeKeyPrefix returns the few leading characters of a write key kept for
// display: six, or fewer for a short key so that most of it stays secret.
func writeKeyPrefix(key string) string {
	return key[:min(6, len(key)/4)]
}

// SyncWorkspaces makes the managed workspaces and sources match specs (the
// plugins.yaml view), in one transaction: it creates or updates each
// workspace and source and marks it managed, stores a changed write key's
// new hash (the old key stops working), revokes managed sources missing from
// specs and restores revoked ones that are back. It deletes nothing and
// leaves unmanaged rows alone; running it again with the same specs changes
// nothing.
func (s *Store) SyncWorkspaces(ctx context.Context, specs []WorkspaceSpec) error {
	if err := validateSpecs(specs); err != nil {
		return fmt.Errorf("sync workspaces: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return syncWorkspaces(ctx, tx, specs)
	})
	if err != nil {
		return fmt.Errorf("sync workspaces: %w", err)
	}
	return nil
}

func validateSpecs(specs []WorkspaceSpec) error {
	workspaces := make(map[string]bool)
	keys := make(map[string]string) // write key -> "workspace/source"
	for _, w := range specs {
		if w.Slug == "" {
			return errors.New("a workspace has no slug")
		}
		if workspaces[w.Slug] {
			return fmt.Errorf("workspace %s is declared twice", w.Slug)
		}
		workspaces[w.Slug] = true
		sources := make(map[string]bool)
		for _, src := range w.Sources {
			if src.Slug == "" {
				return fmt.Errorf("a source of workspace %s has no slug", w.Slug)
			}
			if sources[src.Slug] {
				return fmt.Errorf("source %s/%s is declared twice", w.Slug, src.Slug)
			}
			sources[src.Slug] = true
			if src.WriteKey == "" {
				return fmt.Errorf("source %s/%s has no write key", w.Slug, src.Slug)
			}
			if other, ok := keys[src.WriteKey]; ok {
				return fmt.Errorf("sources %s and %s/%s have the same write key", other, w.Slug, src.Slug)
			}
			keys[src.WriteKey] = w.Slug + "/" + src.Slug
		}
	}
	return nil
}

func syncWorkspaces(ctx context.Context, tx pgx.Tx, specs []WorkspaceSpec) error {
	// Concurrent syncs (several processes starting together) take turns.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(1701078137, 2)"); err != nil {
		return err
	}

	var wsSlugs, wsNames []string
	var srcWorkspaces, srcSlugs, srcNames, srcHashes, srcPrefixes []string
	owner := make(map[string]string) // key hash -> "workspace/source"
	for _, w := range specs {
		wsSlugs = append(wsSlugs, w.Slug)
		wsNames = append(wsNames, w.Name)
		for _, src := range w.Sources {
			hash := HashWriteKey(src.WriteKey)
			srcWorkspaces = append(srcWorkspaces, w.Slug)
			srcSlugs = append(srcSlugs, src.Slug)
			srcNames = append(srcNames, src.Name)
			srcHashes = append(srcHashes, hash)
			srcPrefixes = append(srcPrefixes, writeKeyPrefix(src.WriteKey))
			owner[hash] = w.Slug + "/" + src.Slug
		}
	}

	_, err := tx.Exec(ctx, `
		INSERT INTO workspaces (slug, name, managed)
		SELECT slug, name, true FROM unnest($1::text[], $2::text[]) AS w(slug, name)
		ON CONFLICT (slug) DO UPDATE
		SET name = excluded.name, managed = true, updated_at = now()
		WHERE (workspaces.name, workspaces.managed) IS DISTINCT FROM (excluded.name, true)`,
		wsSlugs, wsNames)
	if err != nil {
		return fmt.Errorf("upsert workspaces: %w", err)
	}

	// A key may pass from one declared source to another (the uniqueness of
	// hashes is checked at commit), but not to a source that keeps a key
	// stored for an undeclared or unmanaged source.
	rows, err := tx.Query(ctx, `
		SELECT w.slug || '/' || s.slug, s.write_key_hash
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id
		WHERE s.write_key_hash = ANY($1::text[])`, srcHashes)
	if err != nil {
		return fmt.Errorf("check write keys: %w", err)
	}
	declared := make(map[string]bool, len(owner))
	for _, o := range owner {
		declared[o] = true
	}
	var holder, hash string
	_, err = pgx.ForEachRow(rows, []any{&holder, &hash}, func() error {
		if holder != owner[hash] && !declared[holder] {
			return fmt.Errorf("the write key of source %s is already used by source %s", owner[hash], holder)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check write keys: %w", err)
	}

	_, err = tx.Exec(ctx, `
		INSERT INTO sources (workspace_id, slug, name, write_key_hash, write_key_prefix, managed)
		SELECT w.id, u.slug, u.name, u.hash, u.prefix, true
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
		     AS u(workspace_slug, slug, name, hash, prefix)
		JOIN workspaces w ON w.slug = u.workspace_slug
		ON CONFLICT (workspace_id, slug) DO UPDATE
		SET name = excluded.name, write_key_hash = excluded.write_key_hash,
		    write_key_prefix = excluded.write_key_prefix, managed = true,
		    revoked_at = NULL, updated_at = now()
		WHERE (sources.name, sources.write_key_hash, sources.write_key_prefix, sources.managed, sources.revoked_at)
		      IS DISTINCT FROM (excluded.name, excluded.write_key_hash, excluded.write_key_prefix, true, NULL::timestamptz)`,
		srcWorkspaces, srcSlugs, srcNames, srcHashes, srcPrefixes)
	if err != nil {
		return fmt.Errorf("upsert sources: %w", err)
	}

	_, err = tx.Exec(ctx, `
		UPDATE sources s SET revoked_at = now(), updated_at = now()
		FROM workspaces w
		WHERE w.id = s.workspace_id AND s.managed AND s.revoked_at IS NULL
		  AND NOT EXISTS (
		      SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(workspace_slug, slug)
		      WHERE k.workspace_slug = w.slug AND k.slug = s.slug)`,
		srcWorkspaces, srcSlugs)
	if err != nil {
		return fmt.Errorf("revoke sources: %w", err)
	}
	return nil
}

// SourceKeys returns the write keys of all sources not revoked, ordered by
// workspace and source slug.
func (s *Store) SourceKeys(ctx context.Context) ([]SourceKey, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.write_key_hash, w.id::text, w.slug, s.id::text, s.slug
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id
		WHERE s.revoked_at IS NULL
		ORDER BY w.slug, s.slug`)
	if err != nil {
		return nil, fmt.Errorf("source keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SourceKey])
	if err != nil {
		return nil, fmt.Errorf("source keys: %w", err)
	}
	return keys, nil
}
