package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Source is a workspace's data input and the state of its write key.
type Source struct {
	// ID is a UUID; Slug is the id the API shows.
	ID, Slug, Name string
	Managed        bool
	// WriteKeyPrefix is the start of the write key, for recognising it.
	WriteKeyPrefix string
	// RevokedAt is when the source was revoked; zero while it is active.
	RevokedAt            time.Time
	CreatedAt, UpdatedAt time.Time
}

// Sources, API keys and events are read and written in InWorkspace
// transactions, so row-level security backs the explicit workspace_id
// conditions.
const sourceSelect = `
	SELECT id::text, slug, name, managed, write_key_prefix, coalesce(revoked_at, 'epoch'), created_at, updated_at
	FROM sources WHERE workspace_id = $1`

func scanSource(row pgx.Row) (Source, error) {
	var s Source
	err := row.Scan(&s.ID, &s.Slug, &s.Name, &s.Managed, &s.WriteKeyPrefix, &s.RevokedAt, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNotFound
	}
	s.RevokedAt = zeroEpoch(s.RevokedAt)
	return s, err
}

// Sources lists a workspace's sources by slug.
func (s *Store) Sources(ctx context.Context, w Workspace, p Page) ([]Source, error) {
	var out []Source
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sourceSelect+` AND slug > $2 ORDER BY slug LIMIT $3`, w.ID, p.After, p.Limit)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanSource, "sources")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sources of %s: %w", w.Slug, err)
	}
	return out, nil
}

// Source returns one of a workspace's sources by slug.
func (s *Store) Source(ctx context.Context, w Workspace, slug string) (Source, error) {
	var src Source
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		src, err = scanSource(tx.QueryRow(ctx, sourceSelect+` AND slug = $2`, w.ID, slug))
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return src, fmt.Errorf("source %s/%s: %w", w.Slug, slug, err)
	}
	return src, err
}

func sourceAudit(src Source) map[string]any {
	m := map[string]any{"name": src.Name, "write_key_prefix": src.WriteKeyPrefix}
	if !src.RevokedAt.IsZero() {
		m["revoked_at"] = src.RevokedAt
	}
	return m
}

// CreateSource adds a source with a write key to a workspace. A slug in use
// is a ConflictError.
func (s *Store) CreateSource(ctx context.Context, who Change, w Workspace, slug, name, writeKey string) (Source, error) {
	var src Source
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		src, err = scanSource(tx.QueryRow(ctx, `
			INSERT INTO sources (workspace_id, slug, name, write_key_hash, write_key_prefix)
			VALUES ($1, $2, $3, $4, $5)
			RETURNING id::text, slug, name, managed, write_key_prefix, coalesce(revoked_at, 'epoch'), created_at, updated_at`,
			w.ID, slug, name, HashSecret(writeKey), writeKeyPrefix(writeKey)))
		if isUniqueViolation(err, "sources_workspace_id_slug_key") {
			return conflict("source id %q is taken in workspace %s", slug, w.Slug)
		}
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "source.create", targetType: "source",
			targetID: slug, workspace: w.Slug, after: sourceAudit(src)})
	})
	if err != nil {
		return src, fmt.Errorf("create source: %w", err)
	}
	return src, nil
}

// changeSource locks a source, checks it may change, applies update (SQL
// setting columns, with $1 the workspace, $2 the slug and args from $3) and
// audits the change as action.
func (s *Store) changeSource(ctx context.Context, who Change, w Workspace, slug, action, set string, args ...any) (Source, error) {
	var after Source
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		before, err := scanSource(tx.QueryRow(ctx, sourceSelect+` AND slug = $2 FOR UPDATE`, w.ID, slug))
		if err != nil {
			return err
		}
		if before.Managed {
			return conflict("source %s/%s is declared in plugins.yaml; change it there", w.Slug, slug)
		}
		if !before.RevokedAt.IsZero() {
			return conflict("source %s/%s is revoked", w.Slug, slug)
		}
		after, err = scanSource(tx.QueryRow(ctx, `
			UPDATE sources SET `+set+`, updated_at = now() WHERE workspace_id = $1 AND slug = $2
			RETURNING id::text, slug, name, managed, write_key_prefix, coalesce(revoked_at, 'epoch'), created_at, updated_at`,
			append([]any{w.ID, slug}, args...)...))
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: action, targetType: "source",
			targetID: slug, workspace: w.Slug, before: sourceAudit(before), after: sourceAudit(after)})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return after, fmt.Errorf("%s %s/%s: %w", action, w.Slug, slug, err)
	}
	return after, err
}

// RenameSource changes a source's name.
func (s *Store) RenameSource(ctx context.Context, who Change, w Workspace, slug, name string) (Source, error) {
	return s.changeSource(ctx, who, w, slug, "source.update", "name = $3", name)
}

// RotateSourceKey gives a source a new write key; the old one stops working.
func (s *Store) RotateSourceKey(ctx context.Context, who Change, w Workspace, slug, writeKey string) (Source, error) {
	return s.changeSource(ctx, who, w, slug, "source.rotate", "write_key_hash = $3, write_key_prefix = $4",
		HashSecret(writeKey), writeKeyPrefix(writeKey))
}

// RevokeSource revokes a source: its write key stops working; its events stay.
func (s *Store) RevokeSource(ctx context.Context, who Change, w Workspace, slug string) (Source, error) {
	return s.changeSource(ctx, who, w, slug, "source.revoke", "revoked_at = now()")
}
