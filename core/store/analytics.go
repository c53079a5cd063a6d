package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// analyticsRole is the role queries of the Cube API run as: it reads the
// analytics tables only, one workspace's rows (migration 00011).
const analyticsRole = "eddy_analytics"

// AnalyticsStatementTimeout bounds each statement of an analytics
// transaction unless InAnalytics is given another.
const AnalyticsStatementTimeout = 30 * time.Second

// InAnalytics runs fn in a read-only transaction as the eddy_analytics role
// with eddy.workspace_id set: whatever SQL fn runs, it reads only the
// analytics tables (events, sessions, page_views, orders, profiles,
// identities) and, of those, only that workspace's rows. Each statement
// ends after timeout (AnalyticsStatementTimeout when 0). The transaction is
// rolled back when fn returns: it changes nothing.
func (s *Store) InAnalytics(ctx context.Context, workspaceID string, timeout time.Duration, fn func(tx pgx.Tx) error) error {
	if workspaceID == "" {
		return errors.New("analytics transaction: no workspace")
	}
	if timeout <= 0 {
		timeout = AnalyticsStatementTimeout
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin analytics transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The role last: set_config is Eddy's alone (00011), and the statement's
	// privileges are checked before it runs, under Eddy's user.
	_, err = tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true), set_config('eddy.workspace_id', $2, true),
		set_config('role', $3, true)`, fmt.Sprint(timeout.Milliseconds()), workspaceID, analyticsRole)
	if err != nil {
		return fmt.Errorf("open analytics transaction: %w", err)
	}
	return fn(tx)
}

// AnalyticsHardened tells whether the database keeps set_config from the
// analytics role (migration 00011 could revoke it): only then may a
// workspace's cubes carry their own SQL.
func (s *Store) AnalyticsHardened(ctx context.Context) (bool, error) {
	var can bool
	err := s.pool.QueryRow(ctx, `SELECT has_function_privilege($1, 'pg_catalog.set_config(text, text, boolean)', 'EXECUTE')`,
		analyticsRole).Scan(&can)
	if err != nil {
		return false, fmt.Errorf("check analytics role: %w", err)
	}
	return !can, nil
}

// CubeFiles are a workspace's own cube files (name to YAML) and their
// version, which grows with every change (0: the workspace has none yet).
type CubeFiles struct {
	Files     map[string]string
	Version   int64
	UpdatedAt time.Time
}

// WorkspaceCubes returns a workspace's own cube files.
func (s *Store) WorkspaceCubes(ctx context.Context, w Workspace) (CubeFiles, error) {
	out := CubeFiles{Files: map[string]string{}}
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT files, version, updated_at FROM workspace_cubes WHERE workspace_id = $1`, w.ID).
			Scan(&out.Files, &out.Version, &out.UpdatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return CubeFiles{Files: map[string]string{}}, nil
	}
	if err != nil {
		return out, fmt.Errorf("workspace cubes of %s: %w", w.Slug, err)
	}
	return out, nil
}

// WorkspaceCubesVersion returns the version of a workspace's cube files (0:
// none), for caches to tell whether theirs is current.
func (s *Store) WorkspaceCubesVersion(ctx context.Context, workspaceID string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT version FROM workspace_cubes WHERE workspace_id = $1), 0)`,
		workspaceID).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("workspace cubes version: %w", err)
	}
	return v, nil
}

// SetWorkspaceCubes replaces a workspace's cube files (validated by the
// caller) and records the change in the audit log, with the names of the
// files before and after (their text may be long). A change that changes
// nothing is not written.
func (s *Store) SetWorkspaceCubes(ctx context.Context, who Change, w Workspace, files map[string]string) (CubeFiles, error) {
	if files == nil {
		files = map[string]string{}
	}
	b, err := json.Marshal(files)
	if err != nil {
		return CubeFiles{}, fmt.Errorf("encode cube files: %w", err)
	}
	var out CubeFiles
	err = s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		before := map[string]string{}
		err := tx.QueryRow(ctx, `SELECT files FROM workspace_cubes WHERE workspace_id = $1 FOR UPDATE`, w.ID).Scan(&before)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if maps.Equal(before, files) && err == nil {
			return tx.QueryRow(ctx, `SELECT files, version, updated_at FROM workspace_cubes WHERE workspace_id = $1`, w.ID).
				Scan(&out.Files, &out.Version, &out.UpdatedAt)
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO workspace_cubes (workspace_id, files) VALUES ($1, $2)
			ON CONFLICT (workspace_id) DO UPDATE SET files = excluded.files,
			    version = workspace_cubes.version + 1, updated_at = now()
			RETURNING files, version, updated_at`, w.ID, b).Scan(&out.Files, &out.Version, &out.UpdatedAt)
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "workspace.cubes.update", targetType: "workspace",
			targetID: w.Slug, workspace: w.Slug,
			before: map[string]any{"files": sortedKeys(before)}, after: map[string]any{"files": sortedKeys(files), "version": out.Version}})
	})
	if err != nil {
		return out, fmt.Errorf("set workspace cubes of %s: %w", w.Slug, err)
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
