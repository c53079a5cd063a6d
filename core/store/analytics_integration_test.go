package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// An analytics transaction sees its workspace's rows of the analytics
// tables and nothing else: not another workspace's events, not Eddy's
// tables, whatever SQL it runs; it cannot write, switch role or workspace.
func TestInAnalyticsReadsOneWorkspacesAnalyticsOnly(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	count := func(ws, sql string) (int, error) {
		var n int
		err := w.s.InAnalytics(ctx, ws, 0, func(tx pgx.Tx) error { return tx.QueryRow(ctx, sql).Scan(&n) })
		return n, err
	}
	for _, tc := range []struct {
		ws   string
		want int
	}{{w.a, w.counts[w.a]["events"]}, {w.b, w.counts[w.b]["events"]}} {
		n, err := count(tc.ws, `SELECT count(*) FROM events`)
		testenv.Must(t, err, "count events")
		if n != tc.want {
			t.Errorf("workspace %s sees %d events, want %d", tc.ws, n, tc.want)
		}
		n, err = count(tc.ws, `SELECT count(*) FROM events WHERE workspace_id <> eddy_current_workspace()`)
		testenv.Must(t, err, "count other events")
		if n != 0 {
			t.Errorf("workspace %s sees %d events of other workspaces", tc.ws, n)
		}
	}
	for _, table := range []string{"sessions", "page_views", "orders", "profiles", "identities"} {
		if _, err := count(w.a, `SELECT count(*) FROM `+table); err != nil {
			t.Errorf("SELECT FROM %s: %v, want it readable", table, err)
		}
	}

	// Eddy's own tables, and the events' partitions read directly.
	var partition string
	testenv.Must(t, w.s.Pool().QueryRow(ctx, `SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass LIMIT 1`).
		Scan(&partition), "find a partition")
	for _, sql := range []string{
		`SELECT count(*) FROM api_keys`, `SELECT count(*) FROM sources`, `SELECT count(*) FROM admins`,
		`SELECT count(*) FROM audit_log`, `SELECT count(*) FROM workspaces`, `SELECT count(*) FROM event_ids`,
		`SELECT count(*) FROM workspace_cubes`, `SELECT count(*) FROM ` + partition,
	} {
		_, err := count(w.a, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: %v, want permission denied", sql, err)
		}
	}

	// Escapes: another workspace or role set from inside a query, a write.
	for _, sql := range []string{
		`SELECT count(*) FROM (SELECT set_config('eddy.workspace_id', '` + w.b + `', true)) s, events`,
		`SELECT count(*) FROM (SELECT set_config('role', 'postgres', true)) s`,
		`SELECT count(*) FROM (SELECT set_config('role', current_user, true)) s`,
	} {
		if n, err := count(w.a, sql); err == nil {
			t.Errorf("%s: %d, want refused", sql, n)
		}
	}
	err := w.s.InAnalytics(ctx, w.a, 0, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM events`)
		return err
	})
	if err == nil {
		t.Error("DELETE FROM events in an analytics transaction succeeded")
	}
	hardened, err := w.s.AnalyticsHardened(ctx)
	testenv.Must(t, err, "hardened")
	if !hardened {
		t.Error("AnalyticsHardened = false on a database migrated by a superuser")
	}
}

// A statement longer than the timeout is cancelled.
func TestInAnalyticsStatementTimeout(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	start := time.Now()
	err := w.s.InAnalytics(ctx, w.a, 100*time.Millisecond, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_sleep(5)`)
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || time.Since(start) > 3*time.Second {
		t.Fatalf("pg_sleep(5) with a 100ms timeout: %v after %s, want query_canceled", err, time.Since(start))
	}
	if err := w.s.InAnalytics(ctx, "", 0, func(pgx.Tx) error { return nil }); err == nil {
		t.Error("InAnalytics without a workspace succeeded")
	}
}

// A workspace's cube files: replaced as a set, versioned, audited, and
// invisible to other workspaces.
func TestWorkspaceCubes(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	wsA, err := w.s.WorkspaceBySlug(ctx, "rls-a")
	testenv.Must(t, err, "workspace a")
	wsB, err := w.s.WorkspaceBySlug(ctx, "rls-b")
	testenv.Must(t, err, "workspace b")
	who := store.Change{Actor: store.Actor{Type: "system"}}

	got, err := w.s.WorkspaceCubes(ctx, wsA)
	testenv.Must(t, err, "read none")
	if got.Version != 0 || len(got.Files) != 0 {
		t.Fatalf("before any change: %+v", got)
	}
	v1, err := w.s.SetWorkspaceCubes(ctx, who, wsA, map[string]string{"a.yml": "cubes: []"})
	testenv.Must(t, err, "set")
	same, err := w.s.SetWorkspaceCubes(ctx, who, wsA, map[string]string{"a.yml": "cubes: []"})
	testenv.Must(t, err, "set again")
	v2, err := w.s.SetWorkspaceCubes(ctx, who, wsA, map[string]string{"b.yml": "cubes: []"})
	testenv.Must(t, err, "replace")
	if v1.Version != 1 || same.Version != 1 || v2.Version != 2 {
		t.Errorf("versions %d, %d, %d; want 1, 1 (no change), 2", v1.Version, same.Version, v2.Version)
	}
	got, err = w.s.WorkspaceCubes(ctx, wsA)
	testenv.Must(t, err, "read")
	if len(got.Files) != 1 || got.Files["b.yml"] != "cubes: []" || got.Version != 2 {
		t.Errorf("after replacing: %+v", got)
	}
	for ws, want := range map[string]int64{wsA.ID: 2, wsB.ID: 0} {
		v, err := w.s.WorkspaceCubesVersion(ctx, ws)
		testenv.Must(t, err, "version")
		if v != want {
			t.Errorf("version of %s = %d, want %d", ws, v, want)
		}
	}
	if other, err := w.s.WorkspaceCubes(ctx, wsB); err != nil || len(other.Files) != 0 {
		t.Errorf("B's files: %+v, %v; want none", other, err)
	}
	var audits int
	testenv.Must(t, w.s.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'workspace.cubes.update' AND workspace = 'rls-a'`).
		Scan(&audits), "audit")
	if audits != 2 {
		t.Errorf("%d audit entries, want 2 (the unchanged set is not audited)", audits)
	}
}
