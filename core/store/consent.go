package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/identity"
)

// Consent decided outside the event stream (migration 00010): the API sets
// or withdraws purposes for a person's identifiers, and the consent gate
// records the visitor's own consent updates that supersede such a
// decision. Identifiers are kept hashed (SuppressionHash). The gate reads
// the decisions and suppressions of each batch's identifiers in one query
// (PrivacyDecisions), and only for workspaces that have any
// (HasPrivacyDecisions).

// HasPrivacyDecisions tells whether a workspace has any consent decision
// or suppression in force, so that the gate looks none up otherwise.
func (s *Store) HasPrivacyDecisions(ctx context.Context, workspaceID string) (bool, error) {
	if !validUUID(workspaceID) {
		return false, ErrNotFound
	}
	var yes bool
	err := s.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM consent_decisions WHERE workspace_id = $1)
		OR EXISTS (SELECT 1 FROM suppressions WHERE workspace_id = $1 AND lifted_at IS NULL)`, workspaceID).Scan(&yes)
	if err != nil {
		return false, fmt.Errorf("privacy decisions of %s: %w", workspaceID, err)
	}
	return yes, nil
}

// PrivacyDecisions returns, for the identifier hashes given
// (SuppressionHash), the consent decisions recorded on them and their
// suppressions in force (a decision of purpose consent.All, withdrawn,
// at the suppression's time).
func (s *Store) PrivacyDecisions(ctx context.Context, workspaceID string, hashes [][32]byte) (map[[32]byte][]consent.Decision, error) {
	if !validUUID(workspaceID) {
		return nil, ErrNotFound
	}
	out := map[[32]byte][]consent.Decision{}
	if len(hashes) == 0 {
		return out, nil
	}
	args := make([][]byte, len(hashes))
	for i := range hashes {
		args[i] = hashes[i][:]
	}
	rows, err := s.pool.Query(ctx, `
		SELECT identifier_hash, purpose, granted, decided_at, source FROM consent_decisions
		WHERE workspace_id = $1 AND identifier_hash = ANY($2)
		UNION ALL
		SELECT identifier_hash, '*', false, created_at, 'deletion' FROM suppressions
		WHERE workspace_id = $1 AND identifier_hash = ANY($2) AND lifted_at IS NULL`, workspaceID, args)
	if err != nil {
		return nil, fmt.Errorf("privacy decisions of %s: %w", workspaceID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var h []byte
		var d consent.Decision
		if err := rows.Scan(&h, &d.Purpose, &d.Granted, &d.At, &d.Source); err != nil {
			return nil, fmt.Errorf("privacy decisions of %s: %w", workspaceID, err)
		}
		k := [32]byte(h)
		out[k] = append(out[k], d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("privacy decisions of %s: %w", workspaceID, err)
	}
	return out, nil
}

// RecordConsentUpdates records consent updates as decisions of source
// "event"; a decision newer than an update is kept.
func (s *Store) RecordConsentUpdates(ctx context.Context, workspaceID string, updates []consent.Update) error {
	var hashes [][]byte
	var purposes []string
	var granted []bool
	var at []time.Time
	for _, u := range updates {
		for _, h := range u.Hashes {
			for p, g := range u.Prefs {
				hashes, purposes, granted, at = append(hashes, h[:]), append(purposes, p), append(granted, g), append(at, u.At)
			}
		}
	}
	if len(hashes) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, upsertDecisionsSQL, workspaceID, hashes, purposes, granted, at, consent.SourceEvent); err != nil {
		return fmt.Errorf("record consent updates in %s: %w", workspaceID, err)
	}
	return nil
}

// upsertDecisionsSQL writes decisions ($2..$5 in step, source $6); a newer
// decision already recorded wins. Rows repeated in one call keep the last.
const upsertDecisionsSQL = `
	INSERT INTO consent_decisions AS d (workspace_id, identifier_hash, purpose, granted, decided_at, source)
	SELECT DISTINCT ON (h, p) $1, h, p, g, t, $6
	FROM unnest($2::bytea[], $3::text[], $4::boolean[], $5::timestamptz[]) WITH ORDINALITY AS u (h, p, g, t, n)
	ORDER BY h, p, t DESC, n DESC
	ON CONFLICT (workspace_id, identifier_hash, purpose) DO UPDATE
	SET granted = EXCLUDED.granted, decided_at = EXCLUDED.decided_at, source = EXCLUDED.source
	WHERE d.decided_at <= EXCLUDED.decided_at`

// ConsentState is a profile's consent for one purpose as Eddy knows it
// now, and where that came from.
type ConsentState struct {
	Purpose string
	Granted bool
	At      time.Time
	// Source is "event" (what the visitor's events said; MessageID names
	// the event when it is the profile's own record) or "api".
	Source    string
	MessageID string
}

// ProfileConsent returns the consent of a workspace's profile, one state
// per purpose sorted by purpose: for each, the latest of what its events
// said (the profile's record) and of the decisions recorded on its
// identifiers. A deletion is not shown: the profile would be gone.
func (s *Store) ProfileConsent(ctx context.Context, w Workspace, profileID string) ([]ConsentState, error) {
	p, err := s.WorkspaceProfile(ctx, w, profileID)
	if err != nil {
		return nil, err
	}
	return s.ConsentOf(ctx, w, p)
}

// ConsentOf is ProfileConsent for a profile already read.
func (s *Store) ConsentOf(ctx context.Context, w Workspace, p identity.Profile) ([]ConsentState, error) {
	byPurpose := map[string]ConsentState{}
	for _, c := range p.Consent {
		byPurpose[c.Purpose] = ConsentState{Purpose: c.Purpose, Granted: c.Granted, At: c.At, Source: consent.SourceEvent, MessageID: c.MessageID}
	}
	var hashes [][]byte
	for _, id := range p.Identities {
		if id.Kind == identity.AnonymousID || id.Kind == identity.UserID {
			hashes = append(hashes, SuppressionHash(w.ID, string(id.Kind), id.Value))
		}
	}
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT purpose, granted, decided_at, source FROM consent_decisions
			WHERE workspace_id = $1 AND identifier_hash = ANY($2)`, w.ID, hashes)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c ConsentState
			if err := rows.Scan(&c.Purpose, &c.Granted, &c.At, &c.Source); err != nil {
				return err
			}
			if cur, ok := byPurpose[c.Purpose]; !ok || c.At.After(cur.At) {
				byPurpose[c.Purpose] = c
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("consent of profile %s in %s: %w", p.ID, w.Slug, err)
	}
	out := make([]ConsentState, 0, len(byPurpose))
	for _, c := range byPurpose {
		c.At = c.At.UTC()
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b ConsentState) int {
		if a.Purpose < b.Purpose {
			return -1
		}
		if a.Purpose > b.Purpose {
			return 1
		}
		return 0
	})
	return out, nil
}

// DecideConsent records consent set or withdrawn through the API for a
// profile of w: a decision per purpose on each of its anonymous and user
// ids, at the database's now, audited (with a hash of the profile id,
// never an identifier). It returns the profile's consent afterwards.
// Callers bump the privacy generation so that the gate applies it.
func (s *Store) DecideConsent(ctx context.Context, who Change, w Workspace, profileID string, prefs consent.Preferences) ([]ConsentState, error) {
	p, err := s.WorkspaceProfile(ctx, w, profileID)
	if err != nil {
		return nil, err
	}
	var hashes [][]byte
	var purposes []string
	var granted []bool
	for _, id := range p.Identities {
		if id.Kind != identity.AnonymousID && id.Kind != identity.UserID {
			continue
		}
		h := SuppressionHash(w.ID, string(id.Kind), id.Value)
		for purpose, g := range prefs {
			hashes, purposes, granted = append(hashes, h), append(purposes, purpose), append(granted, g)
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var now time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return err
		}
		at := make([]time.Time, len(hashes))
		for i := range at {
			at[i] = now
		}
		if _, err := tx.Exec(ctx, upsertDecisionsSQL, w.ID, hashes, purposes, granted, at, consent.SourceAPI); err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(p.ID))
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "profile.consent", targetType: "profile",
			targetID: hex.EncodeToString(sum[:]), workspace: w.Slug, after: map[string]any{"consent": prefs}})
	})
	if err != nil {
		return nil, fmt.Errorf("decide consent of profile %s in %s: %w", profileID, w.Slug, err)
	}
	return s.ConsentOf(ctx, w, p)
}
