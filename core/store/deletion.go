package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/identity"
)

// The rights of the person: deleting everything Eddy holds about one
// person, or a workspace's data over a time range, and the suppressions a
// person's deletion leaves (migration 00008_privacy.sql).
//
// A person's deletion runs as the database owner (like the worker), naming
// the workspace in every statement, in one transaction per group of
// tables, in an order that makes a rerun after a crash finish the work:
//
//  1. suppressions of every identifier of the person (hashed), first, so
//     that the ingestion gate drops their events while the rest runs (a
//     deletion job records them earlier still, by SuppressPerson, and
//     waits for the person's events in flight before it deletes);
//  2. events (every day partition) and their event_ids keys;
//  3. sessions, page views, orders, profile_counted claims and the
//     session engine's checkpointed visitors (session_visitors);
//  4. last, the identity graph: identities, profile_merges and profiles,
//     under the identity store's advisory and row locks, so that a worker
//     linking one of the identities meanwhile waits, then finds none.
//
// The identifiers are collected anew by each run from what is left, and
// the identity graph, which leads to them, goes last: a rerun finds them
// all again until the very end.

// Deletion job kinds and statuses.
const (
	DeletionProfile = "profile"
	DeletionRange   = "range"

	DeletionPending = "pending"
	DeletionRunning = "running"
	DeletionDone    = "done"
	DeletionFailed  = "failed"
)

// DeletionJob is a deletion requested through the API.
type DeletionJob struct {
	ID, WorkspaceID string
	// Kind is DeletionProfile or DeletionRange.
	Kind string
	// ProfileID is the person's live profile while the job is to run; ""
	// once it is done (the job then keeps only ProfileHash).
	ProfileID, ProfileHash string
	// From (inclusive) and To (exclusive) bound a range job.
	From, To time.Time
	// Status is pending, running, done or failed.
	Status string
	// Counts are the rows deleted per table (and "suppressions" recorded).
	Counts      map[string]int64
	Error       string
	RequestedBy string
	CreatedAt   time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
}

// deletionParams is deletion_jobs.params.
type deletionParams struct {
	ProfileID   string     `json:"profile_id,omitempty"`
	ProfileHash string     `json:"profile_hash,omitempty"`
	From        *time.Time `json:"from,omitempty"`
	To          *time.Time `json:"to,omitempty"`
}

// Deletion is what one deletion removed.
type Deletion struct {
	// Counts are the rows deleted per table, and "suppressions" recorded.
	Counts map[string]int64
	// SessionIDs are the sessions deleted, for their live state.
	SessionIDs []string
	// Identities are the person's identifiers (a profile deletion only):
	// they must never be logged.
	Identities []identity.Identity
	// ProfileIDs are the person's profile ids: the live one and those
	// merged into it.
	ProfileIDs []string
}

// SuppressionHash is the hash suppressions keep of an identifier: SHA-256
// of workspace id, kind and value joined by ':', emails trimmed and in
// lower case as identities store them.
func SuppressionHash(workspaceID, kind, value string) []byte {
	if kind == string(identity.Email) {
		value = strings.ToLower(strings.TrimSpace(value))
	}
	h := consent.IdentifierHash(workspaceID, kind, value)
	return h[:]
}

func checkIdentityKind(kind string) error {
	switch identity.Kind(kind) {
	case identity.AnonymousID, identity.UserID, identity.Email:
		return nil
	}
	return fmt.Errorf("identifier kind %q: must be anonymous_id, user_id or email", kind)
}

// Suppressed tells whether an identifier of a workspace belongs to a
// deleted person whose suppression was not lifted: one primary-key lookup.
func (s *Store) Suppressed(ctx context.Context, workspaceID, kind, value string) (bool, error) {
	if err := checkIdentityKind(kind); err != nil {
		return false, err
	}
	var yes bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM suppressions
		WHERE workspace_id = $1 AND identifier_hash = $2 AND lifted_at IS NULL)`,
		workspaceID, SuppressionHash(workspaceID, kind, value)).Scan(&yes)
	if err != nil {
		return false, fmt.Errorf("suppression of a %s in %s: %w", kind, workspaceID, err)
	}
	return yes, nil
}

// LiftSuppression lifts the suppression of an identifier (the person
// consented again), or returns ErrNotFound when none is in force.
func (s *Store) LiftSuppression(ctx context.Context, workspaceID, kind, value string) error {
	if err := checkIdentityKind(kind); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE suppressions SET lifted_at = now()
		WHERE workspace_id = $1 AND identifier_hash = $2 AND lifted_at IS NULL`,
		workspaceID, SuppressionHash(workspaceID, kind, value))
	if err != nil {
		return fmt.Errorf("lift suppression of a %s in %s: %w", kind, workspaceID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteProfile deletes everything that refers to the person whose profile
// (or a profile merged into theirs) is profileID, and records suppressions
// of their identifiers. Deleting a person already deleted deletes nothing
// and returns ErrNotFound.
func (s *Store) DeleteProfile(ctx context.Context, workspaceID, profileID string) (Deletion, error) {
	return s.deleteProfile(ctx, workspaceID, profileID, "")
}

// person is what identifies a person in the tables.
type person struct {
	profiles []string // the live profile and every profile merged into it
	ids      []identity.Identity
}

func (p *person) add(kind identity.Kind, value string) {
	if value == "" {
		return
	}
	if kind == identity.Email {
		value = strings.ToLower(strings.TrimSpace(value))
	}
	id := identity.Identity{Kind: kind, Value: value}
	if !slices.Contains(p.ids, id) {
		p.ids = append(p.ids, id)
	}
}

func (p *person) values(kind identity.Kind) []string {
	out := []string{}
	for _, id := range p.ids {
		if id.Kind == kind {
			out = append(out, id.Value)
		}
	}
	return out
}

// findPerson collects the profiles and identifiers of the person profileID
// belongs to; nil when the profile does not exist.
func findPerson(ctx context.Context, q interface {
	querier
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, ws, profileID string) (*person, error) {
	live, err := resolveProfile(ctx, q, ws, profileID)
	if err != nil || live == "" {
		return nil, err
	}
	p := &person{}
	rows, err := q.Query(ctx, `
		WITH RECURSIVE fam (id, depth) AS (
		    SELECT $2::uuid, 0
		    UNION
		    SELECT p.id, f.depth + 1 FROM fam f JOIN profiles p ON p.workspace_id = $1 AND p.merged_into = f.id
		    WHERE f.depth < 10000
		)
		SELECT DISTINCT f.id::text, coalesce(p.user_id, ''), coalesce(p.traits -> 'email' ->> 'value', '')
		FROM fam f JOIN profiles p ON p.workspace_id = $1 AND p.id = f.id`, ws, live)
	if err != nil {
		return nil, fmt.Errorf("profiles of the person: %w", err)
	}
	for rows.Next() {
		var id, user, email string
		if err := rows.Scan(&id, &user, &email); err != nil {
			rows.Close()
			return nil, fmt.Errorf("profiles of the person: %w", err)
		}
		p.profiles = append(p.profiles, id)
		p.add(identity.UserID, user)
		if strings.Contains(email, "@") {
			p.add(identity.Email, email)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("profiles of the person: %w", err)
	}
	slices.Sort(p.profiles)
	// Identities, the identities that joined merges, and the visitors of
	// the sessions recorded on the person's profiles.
	rows, err = q.Query(ctx, `
		SELECT kind, value FROM identities WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])
		UNION SELECT via_kind, via_value FROM profile_merges
		      WHERE workspace_id = $1 AND (survivor = ANY($2::uuid[]) OR absorbed = ANY($2::uuid[]))
		UNION SELECT 'anonymous_id', anonymous_id FROM sessions WHERE workspace_id = $1 AND profile_id = ANY($2::text[])
		UNION SELECT 'user_id', user_id FROM sessions WHERE workspace_id = $1 AND profile_id = ANY($2::text[]) AND user_id IS NOT NULL`,
		ws, p.profiles)
	if err != nil {
		return nil, fmt.Errorf("identities of the person: %w", err)
	}
	for rows.Next() {
		var kind, value string
		if err := rows.Scan(&kind, &value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("identities of the person: %w", err)
		}
		if checkIdentityKind(kind) == nil {
			p.add(identity.Kind(kind), value)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("identities of the person: %w", err)
	}
	slices.SortFunc(p.ids, func(a, b identity.Identity) int {
		return strings.Compare(string(a.Kind)+"\x00"+a.Value, string(b.Kind)+"\x00"+b.Value)
	})
	return p, nil
}

// suppress records the suppressions of ids in workspace ws, in one
// statement: a new suppression, or one lifted before, is in force. It
// returns the rows written.
func (s *Store) suppress(ctx context.Context, ws string, ids []identity.Identity, jobID string) (int64, error) {
	hashes, kinds := make([][]byte, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		hashes[i], kinds[i] = SuppressionHash(ws, string(id.Kind), id.Value), string(id.Kind)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO suppressions (workspace_id, identifier_hash, kind, job_id)
		SELECT $1, h, k, nullif($4, '')::uuid FROM unnest($2::bytea[], $3::text[]) AS t (h, k)
		ON CONFLICT (workspace_id, identifier_hash) DO UPDATE
		SET lifted_at = NULL, created_at = now(), job_id = coalesce(EXCLUDED.job_id, suppressions.job_id)`, ws, hashes, kinds, jobID)
	if err != nil {
		return 0, fmt.Errorf("record suppressions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// SuppressPerson records, in its own commit, the suppressions of every
// identifier of the person a profile job deletes, and returns those
// identifiers (which must never be logged): the first step of the job,
// after which the consent gate drops the person's new events, before the
// job waits for the events in flight and deletes (RunDeletion, which
// records them again with any linked meanwhile). A profile that no longer
// exists, or a job that is not a profile's, returns none: a rerun of a job
// that had finished its work. It is idempotent.
func (s *Store) SuppressPerson(ctx context.Context, j DeletionJob) ([]identity.Identity, error) {
	if j.Kind != DeletionProfile || j.ProfileID == "" || !isUUID(j.WorkspaceID) || !isUUID(j.ProfileID) {
		return nil, nil
	}
	p, err := findPerson(ctx, s.pool, j.WorkspaceID, j.ProfileID)
	if err != nil {
		return nil, fmt.Errorf("suppress a person of workspace %s: %w", j.WorkspaceID, err)
	}
	if p == nil {
		return nil, nil
	}
	if _, err := s.suppress(ctx, j.WorkspaceID, p.ids, j.ID); err != nil {
		return nil, fmt.Errorf("suppress a person of workspace %s: %w", j.WorkspaceID, err)
	}
	return p.ids, nil
}

func (s *Store) deleteProfile(ctx context.Context, ws, profileID, jobID string) (Deletion, error) {
	fail := func(err error) (Deletion, error) {
		// No profile id here: the error is kept by the job and its audit
		// record.
		return Deletion{}, fmt.Errorf("delete a person of workspace %s: %w", ws, err)
	}
	if !isUUID(ws) || !isUUID(profileID) {
		return Deletion{}, ErrNotFound
	}
	p, err := findPerson(ctx, s.pool, ws, profileID)
	if err != nil {
		return fail(err)
	}
	if p == nil {
		return Deletion{}, ErrNotFound
	}
	d := Deletion{Counts: map[string]int64{}, Identities: p.ids, ProfileIDs: p.profiles}
	anons, users := p.values(identity.AnonymousID), p.values(identity.UserID)

	// 1. Suppressions (again, when the job recorded them already: the
	// identifiers linked meanwhile too).
	n, err := s.suppress(ctx, ws, p.ids, jobID)
	if err != nil {
		return fail(err)
	}
	d.Counts["suppressions"] = n

	// 2. Events and their keys.
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var events, ids int64
		err := tx.QueryRow(ctx, `
			WITH gone AS (
			    DELETE FROM events WHERE workspace_id = $1
			      AND (anonymous_id = ANY($2) OR user_id = ANY($3))
			    RETURNING message_id
			), keys AS (
			    DELETE FROM event_ids e WHERE e.workspace_id = $1 AND e.message_id IN (SELECT message_id FROM gone)
			    RETURNING 1
			)
			SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM keys)`, ws, anons, users).Scan(&events, &ids)
		d.Counts["events"], d.Counts["event_ids"] = events, ids
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("delete events: %w", err))
	}

	// 3. Sessions and what derives from them.
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		// Every session of the person is one of their visitors' (each
		// event's anonymous id is linked to its profile) or recorded on
		// their profiles; page views and orders belong to sessions. Each
		// condition has its index.
		d.SessionIDs, err = deleteSessions(ctx, tx, d.Counts, ws, `
			DELETE FROM sessions WHERE workspace_id = $1 AND (anonymous_id = ANY($2) OR profile_id = ANY($3))
			RETURNING id`, `
			DELETE FROM page_views WHERE workspace_id = $1 AND session_id IN (SELECT id FROM s)
			RETURNING 1`, `
			DELETE FROM orders WHERE workspace_id = $1 AND session_id IN (SELECT id FROM s)
			RETURNING order_id`, `profile_id::text = ANY($3) OR`, anons, p.profiles)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM session_visitors WHERE workspace_id = $1 AND anonymous_id = ANY($2)`, ws, anons)
		d.Counts["session_visitors"] = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("delete sessions: %w", err))
	}

	// 4. The identity graph, under the identity store's locks (see
	// identity.go): advisory keys ascending, then profile rows.
	keys := make([]int64, len(p.ids))
	for i, id := range p.ids {
		keys[i] = identityKey(ws, id)
	}
	slices.Sort(keys)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k`, keys); err != nil {
			return fmt.Errorf("lock identities: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM profiles WHERE workspace_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE`,
			ws, p.profiles); err != nil {
			return fmt.Errorf("lock profiles: %w", err)
		}
		kinds, values := make([]string, len(p.ids)), make([]string, len(p.ids))
		for i, id := range p.ids {
			kinds[i], values[i] = string(id.Kind), id.Value
		}
		for _, st := range []struct{ table, sql string }{
			{"identities", `DELETE FROM identities WHERE workspace_id = $1 AND (profile_id = ANY($2::uuid[])
				OR (kind, value) IN (SELECT * FROM unnest($3::text[], $4::text[])))`},
			{"profile_merges", `DELETE FROM profile_merges WHERE workspace_id = $1
				AND (survivor = ANY($2::uuid[]) OR absorbed = ANY($2::uuid[]))`},
			{"profile_counted", `DELETE FROM profile_counted WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])`},
			{"profiles", `DELETE FROM profiles WHERE workspace_id = $1 AND id = ANY($2::uuid[])`},
		} {
			args := []any{ws, p.profiles}
			if strings.Contains(st.sql, "$3") {
				args = append(args, kinds, values)
			}
			tag, err := tx.Exec(ctx, st.sql, args...)
			if err != nil {
				return fmt.Errorf("delete %s: %w", st.table, err)
			}
			d.Counts[st.table] += tag.RowsAffected()
		}
		// Consent decisions made on the person's identifiers: the
		// suppression takes their place (a grant recorded before the
		// deletion must not outlive it).
		hashes := make([][]byte, 0, len(p.ids))
		for _, id := range p.ids {
			hashes = append(hashes, SuppressionHash(ws, string(id.Kind), id.Value))
		}
		tag, err := tx.Exec(ctx, `DELETE FROM consent_decisions WHERE workspace_id = $1 AND identifier_hash = ANY($2)`, ws, hashes)
		if err != nil {
			return fmt.Errorf("delete consent decisions: %w", err)
		}
		d.Counts["consent_decisions"] += tag.RowsAffected()
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return d, nil
}

// deleteSessions runs the deletion of sessions (sessionsSQL, RETURNING id),
// their page views and orders (which may name the deleted sessions as s),
// and the profile_counted claims of both, in tx; extraClaims is prepended
// to the claims' conditions. Every statement takes $1 the workspace and the
// args that follow.
func deleteSessions(ctx context.Context, tx pgx.Tx, counts map[string]int64, ws, sessionsSQL, pageViewsSQL, ordersSQL, extraClaims string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, `
		WITH s AS (`+sessionsSQL+`),
		pv AS (`+pageViewsSQL+`),
		o AS (`+ordersSQL+`),
		pc AS (
		    DELETE FROM profile_counted WHERE workspace_id = $1 AND (`+extraClaims+`
		        (kind = 'session' AND id IN (SELECT id::text FROM s)) OR (kind = 'order' AND id IN (SELECT order_id FROM o)))
		    RETURNING 1
		)
		SELECT 'session', id::text FROM s
		UNION ALL SELECT 'count', (SELECT count(*) FROM pv)::text || ' ' || (SELECT count(*) FROM o)::text
		                          || ' ' || (SELECT count(*) FROM pc)::text`, append([]any{ws}, args...)...)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var what, v string
		if err := rows.Scan(&what, &v); err != nil {
			rows.Close()
			return nil, err
		}
		if what == "session" {
			ids = append(ids, v)
			continue
		}
		var pv, o, pc int64
		if _, err := fmt.Sscan(v, &pv, &o, &pc); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read counts: %w", err)
		}
		counts["page_views"] += pv
		counts["orders"] += o
		counts["profile_counted"] += pc
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	counts["sessions"] += int64(len(ids))
	return ids, nil
}

// DeleteRange deletes a workspace's events whose timestamp is in [from,
// to), their event_ids keys, and the sessions that started in the range
// with their page views and orders, and page views and orders timed in the
// range. Profiles keep their aggregates (counts, revenue, traits): they
// are the person's, not the range's.
func (s *Store) DeleteRange(ctx context.Context, workspaceID string, from, to time.Time) (Deletion, error) {
	if !from.Before(to) {
		return Deletion{}, errors.New("delete range: from must be before to")
	}
	d := Deletion{Counts: map[string]int64{}}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var events, ids int64
		err := tx.QueryRow(ctx, `
			WITH gone AS (
			    DELETE FROM events WHERE workspace_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
			    RETURNING message_id
			), keys AS (
			    DELETE FROM event_ids e WHERE e.workspace_id = $1 AND e.message_id IN (SELECT message_id FROM gone)
			    RETURNING 1
			)
			SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM keys)`, workspaceID, from, to).Scan(&events, &ids)
		d.Counts["events"], d.Counts["event_ids"] = events, ids
		return err
	})
	if err != nil {
		return Deletion{}, fmt.Errorf("delete events of %s from %s to %s: %w", workspaceID, from, to, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		d.SessionIDs, err = deleteSessions(ctx, tx, d.Counts, workspaceID, `
			DELETE FROM sessions WHERE workspace_id = $1 AND started_at >= $2 AND started_at < $3 RETURNING id`, `
			DELETE FROM page_views WHERE workspace_id = $1
			  AND (session_id IN (SELECT id FROM s) OR (ts >= $2 AND ts < $3))
			RETURNING 1`, `
			DELETE FROM orders WHERE workspace_id = $1
			  AND (session_id IN (SELECT id FROM s) OR (ts >= $2 AND ts < $3))
			RETURNING order_id`, ``, from, to)
		return err
	})
	if err != nil {
		return Deletion{}, fmt.Errorf("delete sessions of %s from %s to %s: %w", workspaceID, from, to, err)
	}
	return d, nil
}

// NewDeletion is a deletion to request: a profile's (ProfileID) or a time
// range's (From, To).
type NewDeletion struct {
	Kind      string
	ProfileID string
	From, To  time.Time
}

// CreateDeletionJob records a deletion job of workspace w, pending, and
// its request in the audit log (without the person's profile id).
func (s *Store) CreateDeletionJob(ctx context.Context, who Change, w Workspace, nd NewDeletion) (DeletionJob, error) {
	var params deletionParams
	switch nd.Kind {
	case DeletionProfile:
		if !isUUID(nd.ProfileID) {
			return DeletionJob{}, fmt.Errorf("create deletion job: profile id %q is not a UUID", nd.ProfileID)
		}
		params.ProfileID = nd.ProfileID
	case DeletionRange:
		if !nd.From.Before(nd.To) {
			return DeletionJob{}, errors.New("create deletion job: from must be before to")
		}
		from, to := nd.From.UTC(), nd.To.UTC()
		params.From, params.To = &from, &to
	default:
		return DeletionJob{}, fmt.Errorf("create deletion job: kind %q is not profile or range", nd.Kind)
	}
	var job DeletionJob
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		job, err = scanDeletionJob(tx.QueryRow(ctx, `
			INSERT INTO deletion_jobs (workspace_id, kind, params, requested_by) VALUES ($1, $2, $3, $4)
			RETURNING `+deletionJobColumns, w.ID, nd.Kind, jsonValue(params), who.Actor.Label))
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "deletion.request", targetType: "deletion_job",
			targetID: job.ID, workspace: w.Slug, after: deletionAudit(job)})
	})
	if err != nil {
		return DeletionJob{}, fmt.Errorf("create deletion job in %s: %w", w.Slug, err)
	}
	return job, nil
}

// deletionAudit is a job as the audit log records it: never the person's
// profile id.
func deletionAudit(j DeletionJob) map[string]any {
	m := map[string]any{"kind": j.Kind, "status": j.Status}
	if j.Kind == DeletionRange {
		m["from"], m["to"] = j.From, j.To
	}
	if j.Counts != nil && j.Status != DeletionPending {
		m["counts"] = j.Counts
	}
	if j.Error != "" {
		m["error"] = j.Error
	}
	return m
}

const deletionJobColumns = `id::text, workspace_id::text, kind, params, status, counts, coalesce(error, ''),
	requested_by, created_at, started_at, finished_at`

func scanDeletionJob(row pgx.Row) (DeletionJob, error) {
	var j DeletionJob
	var params, counts []byte
	err := row.Scan(&j.ID, &j.WorkspaceID, &j.Kind, &params, &j.Status, &counts, &j.Error,
		&j.RequestedBy, &j.CreatedAt, &j.StartedAt, &j.FinishedAt)
	if err != nil {
		return j, err
	}
	var p deletionParams
	if err := json.Unmarshal(params, &p); err != nil {
		return j, fmt.Errorf("deletion job %s: params: %w", j.ID, err)
	}
	j.ProfileID, j.ProfileHash = p.ProfileID, p.ProfileHash
	if p.From != nil && p.To != nil {
		j.From, j.To = p.From.UTC(), p.To.UTC()
	}
	if err := json.Unmarshal(counts, &j.Counts); err != nil {
		return j, fmt.Errorf("deletion job %s: counts: %w", j.ID, err)
	}
	return j, nil
}

// DeletionJob returns a deletion job of workspace w, or ErrNotFound. It
// reads under row-level security.
func (s *Store) DeletionJob(ctx context.Context, w Workspace, id string) (DeletionJob, error) {
	if !isUUID(id) {
		return DeletionJob{}, ErrNotFound
	}
	var j DeletionJob
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		j, err = scanDeletionJob(tx.QueryRow(ctx, `SELECT `+deletionJobColumns+` FROM deletion_jobs
			WHERE workspace_id = $1 AND id = $2`, w.ID, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return j, fmt.Errorf("deletion job %s of %s: %w", id, w.Slug, err)
	}
	return j, err
}

// UnfinishedDeletionJobs lists the jobs of every workspace left pending or
// running (by a process that stopped), oldest first, to run again.
func (s *Store) UnfinishedDeletionJobs(ctx context.Context) ([]DeletionJob, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deletionJobColumns+` FROM deletion_jobs
		WHERE status IN ('pending', 'running') ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("unfinished deletion jobs: %w", err)
	}
	jobs, err := collect(rows, scanDeletionJob, "unfinished deletion jobs")
	if err != nil {
		return nil, err
	}
	return jobs, nil
}

// StartDeletionJob marks a job running and returns it.
func (s *Store) StartDeletionJob(ctx context.Context, workspaceID, id string) (DeletionJob, error) {
	j, err := scanDeletionJob(s.pool.QueryRow(ctx, `
		UPDATE deletion_jobs SET status = 'running', started_at = now(), error = NULL
		WHERE workspace_id = $1 AND id = $2 RETURNING `+deletionJobColumns, workspaceID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, ErrNotFound
	}
	if err != nil {
		return j, fmt.Errorf("start deletion job %s: %w", id, err)
	}
	return j, nil
}

// RunDeletion deletes what a started job asks for (DeleteProfile or
// DeleteRange). A profile that no longer exists deletes nothing: a rerun
// of a job that had finished its work.
func (s *Store) RunDeletion(ctx context.Context, j DeletionJob) (Deletion, error) {
	switch j.Kind {
	case DeletionProfile:
		if j.ProfileID == "" {
			return Deletion{Counts: map[string]int64{}}, nil
		}
		d, err := s.deleteProfile(ctx, j.WorkspaceID, j.ProfileID, j.ID)
		if errors.Is(err, ErrNotFound) {
			return Deletion{Counts: map[string]int64{}, ProfileIDs: []string{j.ProfileID}}, nil
		}
		return d, err
	case DeletionRange:
		return s.DeleteRange(ctx, j.WorkspaceID, j.From, j.To)
	}
	return Deletion{}, fmt.Errorf("deletion job %s: unknown kind %q", j.ID, j.Kind)
}

// FinishDeletionJob records a job's outcome (runErr nil: done, with the
// counts; else failed, with the error) and audits it as the system. A
// profile job done keeps only a hash of the profile id.
func (s *Store) FinishDeletionJob(ctx context.Context, j DeletionJob, counts map[string]int64, runErr error) (DeletionJob, error) {
	status, errText := DeletionDone, ""
	if runErr != nil {
		status, errText = DeletionFailed, runErr.Error()
	}
	if counts == nil {
		counts = map[string]int64{}
	}
	params := deletionParams{ProfileID: j.ProfileID}
	if j.Kind == DeletionRange {
		params = deletionParams{From: &j.From, To: &j.To}
	} else if status == DeletionDone {
		h := sha256.Sum256([]byte(j.WorkspaceID + ":profile:" + j.ProfileID))
		params = deletionParams{ProfileHash: hex.EncodeToString(h[:])}
	}
	var out DeletionJob
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanDeletionJob(tx.QueryRow(ctx, `
			UPDATE deletion_jobs SET status = $3, counts = $4, error = nullif($5, ''), params = $6, finished_at = now()
			WHERE workspace_id = $1 AND id = $2 RETURNING `+deletionJobColumns,
			j.WorkspaceID, j.ID, status, jsonValue(counts), errText, jsonValue(params)))
		if err != nil {
			return err
		}
		var orgID, slug string
		if err := tx.QueryRow(ctx, `SELECT organization_id::text, slug FROM workspaces WHERE id = $1`, j.WorkspaceID).Scan(&orgID, &slug); err != nil {
			return fmt.Errorf("workspace of the job: %w", err)
		}
		return s.writeAudit(ctx, tx, Change{Actor: Actor{Type: "system", Label: "deletion job"}},
			audit{orgID: orgID, action: "deletion." + status, targetType: "deletion_job", targetID: j.ID,
				workspace: slug, after: deletionAudit(out)})
	})
	if err != nil {
		return out, fmt.Errorf("finish deletion job %s: %w", j.ID, err)
	}
	return out, nil
}
