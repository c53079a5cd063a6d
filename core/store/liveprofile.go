package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MaxProfileOpenSessions caps the open sessions ProfileOpenSessions returns.
const MaxProfileOpenSessions = 100

// ProfileOpenSessions returns the open sessions (closed = false) of the live
// profile a profile id of workspace w resolves to, newest first (by id,
// which sorts by start time), at most MaxProfileOpenSessions. A session
// row's profile_id is the profile it was recorded on, which may since have
// been merged into another: the sessions of every profile merged, directly
// or through others, into the live one are the live one's. An id that was
// never issued has none. It reads under row-level security.
func (s *Store) ProfileOpenSessions(ctx context.Context, w Workspace, profileID string) ([]StoredSession, error) {
	var out []StoredSession
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		live, err := resolveProfile(ctx, tx, w.ID, profileID)
		if err != nil || live == "" {
			return err
		}
		// merged is the live profile and every profile whose merged_into
		// chain leads to it (UNION, not UNION ALL: a cycle, which the
		// identity store never writes, would end).
		rows, err := tx.Query(ctx, `
			WITH RECURSIVE merged (id) AS (
			    SELECT $2::uuid
			    UNION
			    SELECT p.id FROM profiles p JOIN merged m ON p.workspace_id = $1 AND p.merged_into = m.id
			)
			SELECT `+sessionColumns+` FROM sessions s
			WHERE s.workspace_id = $1 AND NOT s.closed
			  AND s.profile_id IN (SELECT id::text FROM merged)
			ORDER BY s.id DESC
			LIMIT $3`, w.ID, live, MaxProfileOpenSessions)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanSession, "open sessions")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open sessions of profile %s of %s: %w", profileID, w.Slug, err)
	}
	return out, nil
}
