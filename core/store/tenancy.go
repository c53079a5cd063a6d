package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound is returned when the object asked for does not exist or is out
// of the caller's reach (the two are never told apart).
var ErrNotFound = errors.New("not found")

// ConflictError is returned when a change clashes with the state: an id in
// use, the last owner leaving, an object plugins.yaml manages.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

func conflict(format string, args ...any) error {
	return &ConflictError{Msg: fmt.Sprintf(format, args...)}
}

// isUniqueViolation tells whether err is PostgreSQL's unique_violation,
// optionally on the named constraint or index.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

// Actor is who makes a change.
type Actor struct {
	// Type is "admin", "api_key", "cli" or "system".
	Type string
	// ID is the admin's or API key's id; "" for the CLI and the system.
	ID string
	// Label is for people: the admin's email, the key's name and prefix.
	Label string
}

// Change describes the origin of a change, for the audit log.
type Change struct {
	Actor     Actor
	RequestID string
	// IP is the caller's address; "" when there is none.
	IP string
}

// audit is one audit-log record, written in the transaction of its change.
type audit struct {
	orgID      string
	action     string
	targetType string
	targetID   string
	workspace  string
	before     any
	after      any
}

func (s *Store) writeAudit(ctx context.Context, tx pgx.Tx, who Change, a audit) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO audit_log (organization_id, actor_type, actor_id, actor_label, action,
		                       target_type, target_id, workspace, before, after, request_id, ip)
		VALUES ($1, $2, nullif($3, ''), $4, $5, $6, $7, nullif($8, ''), $9, $10, nullif($11, ''), nullif($12, '')::inet)`,
		a.orgID, who.Actor.Type, who.Actor.ID, who.Actor.Label, a.action,
		a.targetType, a.targetID, a.workspace, jsonValue(a.before), jsonValue(a.after), who.RequestID, who.IP)
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

// jsonValue encodes v for a jsonb parameter; nil stays NULL.
func jsonValue(v any) []byte {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Audit values are maps and structs of plain fields.
		panic(fmt.Sprintf("audit value: %v", err))
	}
	return b
}

// AuditEntry is one record of the audit log.
type AuditEntry struct {
	ID                            int64
	At                            time.Time
	ActorType, ActorID, ActorName string
	Action                        string
	TargetType, TargetID          string
	Workspace                     string
	Before, After                 json.RawMessage
	RequestID, IP                 string
}

// AuditFilter narrows AuditLog.
type AuditFilter struct {
	// Workspace and Action, when set, must match exactly.
	Workspace, Action string
	// BeforeID, when positive, lists entries older than this id (the cursor).
	BeforeID int64
	Limit    int
}

// AuditLog lists an organization's audit log, newest first.
func (s *Store) AuditLog(ctx context.Context, orgID string, f AuditFilter) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, actor_type, coalesce(actor_id, ''), actor_label, action, target_type, target_id,
		       coalesce(workspace, ''), before, after, coalesce(request_id, ''), coalesce(host(ip), '')
		FROM audit_log
		WHERE organization_id = $1
		  AND ($2 = '' OR workspace = $2) AND ($3 = '' OR action = $3)
		  AND ($4 <= 0 OR id < $4)
		ORDER BY id DESC
		LIMIT $5`, orgID, f.Workspace, f.Action, f.BeforeID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	entries, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEntry])
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return entries, nil
}

// workspaceRole is the role API transactions on workspace data switch to;
// row-level security policies bind it (migration 00002).
const workspaceRole = "eddy_workspace"

// InWorkspace runs fn in a transaction that PostgreSQL's row-level security
// restricts to one workspace: it switches to the eddy_workspace role and sets
// eddy.workspace_id, so every query in fn sees and writes only that
// workspace's rows of the workspace-scoped tables, whatever its WHERE says.
// With workspaceID "" fn sees none. It commits when fn returns nil.
func (s *Store) InWorkspace(ctx context.Context, workspaceID string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('eddy.workspace_id', $2, true)`,
			workspaceRole, workspaceID)
		if err != nil {
			return fmt.Errorf("open workspace transaction: %w", err)
		}
		return fn(tx)
	})
}

// RecordWorkspaceAction writes an audit record of a change made outside
// the database (such as dead letters replayed in Redis), once it is done.
func (s *Store) RecordWorkspaceAction(ctx context.Context, who Change, w Workspace, action, targetType, targetID string, after any) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: action, targetType: targetType,
			targetID: targetID, workspace: w.Slug, after: after})
	})
}
