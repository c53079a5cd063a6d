package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/identity"
)

// WorkspaceProfile returns the live profile a profile id of workspace w
// resolves to (a merged-away id resolves to its survivor), with its
// identities, or ErrNotFound. It reads under row-level security.
func (s *Store) WorkspaceProfile(ctx context.Context, w Workspace, id string) (identity.Profile, error) {
	var p identity.Profile
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		p, err = readProfile(ctx, tx, w.ID, id)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return p, fmt.Errorf("profile %s of %s: %w", id, w.Slug, err)
	}
	return p, err
}

// ProfileByIdentity returns the live profile an identity of workspace w
// (kind anonymous_id, user_id or email) is linked to, or ErrNotFound.
// Emails are matched as the identity rules store them: trimmed, lower case.
// It reads under row-level security.
func (s *Store) ProfileByIdentity(ctx context.Context, w Workspace, kind, value string) (identity.Profile, error) {
	switch identity.Kind(kind) {
	case identity.AnonymousID, identity.UserID:
	case identity.Email:
		value = strings.ToLower(strings.TrimSpace(value))
	default:
		return identity.Profile{}, ErrNotFound
	}
	var p identity.Profile
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `SELECT profile_id::text FROM identities
			WHERE workspace_id = $1 AND kind = $2 AND value = $3`, w.ID, kind, value).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		p, err = readProfile(ctx, tx, w.ID, id)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return p, fmt.Errorf("profile of %s %s in %s: %w", kind, value, w.Slug, err)
	}
	return p, err
}

// readProfile reads the live profile id resolves to in tx, with its
// identities (ordered by the time they were linked, then kind and value).
func readProfile(ctx context.Context, tx pgx.Tx, workspaceID, id string) (identity.Profile, error) {
	live, err := resolveProfile(ctx, tx, workspaceID, id)
	if err != nil {
		return identity.Profile{}, err
	}
	if live == "" {
		return identity.Profile{}, ErrNotFound
	}
	p, err := scanProfile(tx.QueryRow(ctx, `SELECT `+profileColumns+` FROM profiles WHERE workspace_id = $1 AND id = $2`, workspaceID, live))
	if errors.Is(err, pgx.ErrNoRows) {
		return identity.Profile{}, ErrNotFound
	}
	if err != nil {
		return identity.Profile{}, fmt.Errorf("read profile %s: %w", live, err)
	}
	rows, err := tx.Query(ctx, `
		SELECT kind, value FROM identities WHERE workspace_id = $1 AND profile_id = $2
		ORDER BY first_seen, kind, value`, workspaceID, live)
	if err != nil {
		return identity.Profile{}, fmt.Errorf("read identities of %s: %w", live, err)
	}
	p.Identities, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (identity.Identity, error) {
		var i identity.Identity
		return i, r.Scan(&i.Kind, &i.Value)
	})
	if err != nil {
		return identity.Profile{}, fmt.Errorf("read identities of %s: %w", live, err)
	}
	return *p, nil
}
