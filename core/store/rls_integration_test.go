package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// rlsWorld is two workspaces with sources, API keys and events, written by
// the pool's owner (whom row-level security does not bind). The counts
// differ, so that a leak shows as a wrong count.
type rlsWorld struct {
	s      *store.Store
	dbURL  string
	a, b   string // workspace UUIDs
	counts map[string]map[string]int
}

// rlsTables are the workspace-scoped tables and their workspace column.
var rlsTables = []struct{ table, column string }{
	{"events", "workspace_id"},
	{"event_ids", "workspace_id"},
	{"sources", "workspace_id"},
	{"api_keys", "workspace_id"},
	{"workspaces", "id"},
}

func newRLSWorld(t *testing.T) *rlsWorld {
	t.Helper()
	s, dbURL := newStore(t)
	ctx := context.Background()
	w := &rlsWorld{s: s, dbURL: dbURL, counts: map[string]map[string]int{}}
	var orgID string
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT id::text FROM organizations WHERE slug = 'default'`).Scan(&orgID), "default organization")
	for _, ws := range []struct {
		slug                   string
		id                     *string
		sources, keys, nEvents int
	}{
		{"rls-a", &w.a, 2, 1, 3},
		{"rls-b", &w.b, 1, 2, 2},
	} {
		testenv.Must(t, s.Pool().QueryRow(ctx, `INSERT INTO workspaces (slug, name, organization_id) VALUES ($1, $1, $2) RETURNING id::text`,
			ws.slug, orgID).Scan(ws.id), "insert workspace %s", ws.slug)
		for i := range ws.sources {
			_, err := s.Pool().Exec(ctx, `INSERT INTO sources (workspace_id, slug, write_key_hash) VALUES ($1, $2, $3)`,
				*ws.id, fmt.Sprintf("src-%d", i), fmt.Sprintf("hash-%s-%d", ws.slug, i))
			testenv.Must(t, err, "insert source")
		}
		for i := range ws.keys {
			_, err := s.Pool().Exec(ctx, `INSERT INTO api_keys (workspace_id, name, key_hash, key_prefix, scopes) VALUES ($1, $2, $3, 'p', '{read}')`,
				*ws.id, fmt.Sprintf("key-%d", i), fmt.Sprintf("key-hash-%s-%d", ws.slug, i))
			testenv.Must(t, err, "insert api key")
		}
		var events []store.Event
		for range ws.nEvents {
			events = append(events, minimalEvent(*ws.id, day1))
		}
		insert(t, s, events...)
		w.counts[*ws.id] = map[string]int{"events": ws.nEvents, "event_ids": ws.nEvents, "sources": ws.sources,
			"api_keys": ws.keys, "workspaces": 1}
	}
	return w
}

// rows describes every row of the workspace-scoped tables, as the owner
// sees them.
func (w *rlsWorld) rows(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, tb := range rlsTables {
		rows, err := w.s.Pool().Query(context.Background(), `SELECT '`+tb.table+` ' || x::text FROM `+tb.table+` x ORDER BY 1`)
		testenv.Must(t, err, "read %s", tb.table)
		r, err := pgx.CollectRows(rows, pgx.RowTo[string])
		testenv.Must(t, err, "read %s", tb.table)
		out = append(out, r...)
	}
	return out
}

// TestRowLevelSecurityHidesOtherWorkspaces runs queries without any
// workspace condition in InWorkspace transactions: each sees its own
// workspace's rows only, and one with no workspace sees none.
func TestRowLevelSecurityHidesOtherWorkspaces(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	none := map[string]int{}
	for _, scope := range []struct {
		name, ws, other string
		want            map[string]int
	}{
		{"workspace A", w.a, w.b, w.counts[w.a]},
		{"workspace B", w.b, w.a, w.counts[w.b]},
		{"no workspace", "", w.a, none},
		{"a workspace that does not exist", newUUID(), w.a, none},
	} {
		for _, tb := range rlsTables {
			t.Run(scope.name+"/"+tb.table, func(t *testing.T) {
				var all, other, owner int
				err := w.s.InWorkspace(ctx, scope.ws, func(tx pgx.Tx) error {
					if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+tb.table).Scan(&all); err != nil {
						return err
					}
					return tx.QueryRow(ctx, `SELECT count(*) FROM `+tb.table+` WHERE `+tb.column+` = $1`, scope.other).Scan(&other)
				})
				testenv.Must(t, err, "count %s", tb.table)
				if all != scope.want[tb.table] {
					t.Errorf("SELECT count(*) FROM %s sees %d rows, want %d", tb.table, all, scope.want[tb.table])
				}
				if other != 0 {
					t.Errorf("SELECT count(*) FROM %s WHERE %s = <another workspace> sees %d rows, want 0", tb.table, tb.column, other)
				}
				// The pool's owner sees every row: the policies bind the
				// workspace role only.
				testenv.Must(t, w.s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+tb.table).Scan(&owner), "count %s", tb.table)
				if want := w.counts[w.a][tb.table] + w.counts[w.b][tb.table]; owner != want {
					t.Errorf("the owner sees %d rows of %s, want %d", owner, tb.table, want)
				}
			})
		}
	}

	t.Run("an events partition read directly", func(t *testing.T) {
		partition := "events_p" + day1.Format("20060102")
		err := w.s.InWorkspace(ctx, w.a, func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, `SELECT count(*) FROM `+partition).Scan(&n)
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("reading %s in a workspace transaction: %v, want permission denied (42501)", partition, err)
		}
	})
}

// rlsRollback ends an InWorkspace transaction without committing.
var rlsRollback = errors.New("rollback")

// TestRowLevelSecurityRefusesWritesToOtherWorkspaces tries, in a
// transaction of workspace A (or of none), to write rows of workspace B.
func TestRowLevelSecurityRefusesWritesToOtherWorkspaces(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	before := w.rows(t)
	const (
		rlsViolation = "new row violates row-level security policy"
		denied       = "permission denied"
	)
	for _, tc := range []struct {
		name string
		// in is the transaction's workspace: "a", "b" or "" (none).
		in  string
		sql string
		// arg is the workspace the statement names: "a" or "b".
		arg string
		// wantRows is the rows a statement that succeeds must affect;
		// wantErr, when set, is the error it must fail with instead.
		wantRows int64
		wantErr  string
	}{
		{"insert a source of B", "a", `INSERT INTO sources (workspace_id, slug, write_key_hash) VALUES ($1, 'sneaky', 'sneaky-hash')`, "b", 0, rlsViolation},
		{"insert an API key of B", "a", `INSERT INTO api_keys (workspace_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'sneaky', 'sneaky-hash', 'p', '{admin}')`, "b", 0, rlsViolation},
		{"insert a source of A (allowed)", "a", `INSERT INTO sources (workspace_id, slug, write_key_hash) VALUES ($1, 'mine', 'mine-hash')`, "a", 1, ""},
		{"insert a source of A with no workspace set", "", `INSERT INTO sources (workspace_id, slug, write_key_hash) VALUES ($1, 'mine', 'mine-hash')`, "a", 0, rlsViolation},
		{"move A's sources to B", "a", `UPDATE sources SET workspace_id = $1`, "b", 0, rlsViolation},
		{"move A's API keys to B", "a", `UPDATE api_keys SET workspace_id = $1`, "b", 0, rlsViolation},
		{"rename B's sources", "a", `UPDATE sources SET name = 'pwned' WHERE workspace_id = $1`, "b", 0, ""},
		{"rotate B's write keys", "a", `UPDATE sources SET write_key_hash = 'pwned-' || id WHERE workspace_id = $1`, "b", 0, ""},
		{"revoke B's API keys", "a", `UPDATE api_keys SET revoked_at = now() WHERE workspace_id = $1`, "b", 0, ""},
		{"rename every source (A's only)", "a", `UPDATE sources SET name = 'renamed' WHERE $1::uuid IS NOT NULL`, "b", 2, ""},
		{"revoke every API key (A's only)", "a", `UPDATE api_keys SET revoked_at = now() WHERE $1::uuid IS NOT NULL`, "b", 1, ""},
		{"revoke every API key with no workspace set", "", `UPDATE api_keys SET revoked_at = now() WHERE $1::uuid IS NOT NULL`, "b", 0, ""},
		{"delete B's sources", "a", `DELETE FROM sources WHERE workspace_id = $1`, "b", 0, denied},
		{"delete B's API keys", "a", `DELETE FROM api_keys WHERE workspace_id = $1`, "b", 0, denied},
		{"delete B's events", "a", `DELETE FROM events WHERE workspace_id = $1`, "b", 0, denied},
		{"delete B's event ids", "a", `DELETE FROM event_ids WHERE workspace_id = $1`, "b", 0, denied},
		{"insert an event id of B", "a", `INSERT INTO event_ids (workspace_id, message_id, received_at) VALUES ($1, 'sneaky', now())`, "b", 0, denied},
		{"update B's events", "a", `UPDATE events SET user_id = 'pwned' WHERE workspace_id = $1`, "b", 0, denied},
		{"rename B's workspace", "a", `UPDATE workspaces SET name = 'pwned' WHERE id = $1`, "b", 0, denied},
		{"delete B's workspace", "a", `DELETE FROM workspaces WHERE id = $1`, "b", 0, denied},
		{"audit a change in another organization", "a", `INSERT INTO audit_log (organization_id, actor_type, action, target_type, target_id)
			VALUES (gen_random_uuid(), 'system', 'sneaky', 'workspace', $1::text)`, "b", 0, rlsViolation},
		{"audit a change in A's organization (allowed)", "a", `INSERT INTO audit_log (organization_id, actor_type, action, target_type, target_id)
			SELECT organization_id, 'system', 'mine', 'workspace', $1::text FROM workspaces WHERE id = $1::uuid`, "a", 1, ""},
		{"read the audit log", "a", `SELECT count(*) FROM audit_log WHERE $1::uuid IS NOT NULL`, "a", 0, denied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := map[string]string{"a": w.a, "b": w.b, "": ""}
			var tag pgconn.CommandTag
			var stmtErr error
			err := w.s.InWorkspace(ctx, ids[tc.in], func(tx pgx.Tx) error {
				tag, stmtErr = tx.Exec(ctx, tc.sql, ids[tc.arg])
				return rlsRollback
			})
			if !errors.Is(err, rlsRollback) {
				t.Fatalf("InWorkspace: %v, want the rollback", err)
			}
			if tc.wantErr != "" {
				var pgErr *pgconn.PgError
				if !errors.As(stmtErr, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, tc.wantErr) {
					t.Errorf("%s: %v, want %q (42501)", tc.sql, stmtErr, tc.wantErr)
				}
				return
			}
			if stmtErr != nil {
				t.Fatalf("%s: %v", tc.sql, stmtErr)
			}
			if tag.RowsAffected() != tc.wantRows {
				t.Errorf("%s affected %d rows, want %d", tc.sql, tag.RowsAffected(), tc.wantRows)
			}
		})
	}
	if after := w.rows(t); !slices.Equal(before, after) {
		t.Errorf("rows changed:\nbefore:\n  %s\nafter:\n  %s", strings.Join(before, "\n  "), strings.Join(after, "\n  "))
	}
}

// TestInWorkspaceLeavesNothingOnTheConnection checks that the role and the
// workspace an InWorkspace transaction sets end with it, committed or not:
// the next user of the connection is the owner again.
func TestInWorkspaceLeavesNothingOnTheConnection(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	// One connection, so that every query below reuses the one the
	// transactions ran on.
	sep := "?"
	if strings.Contains(w.dbURL, "?") {
		sep = "&"
	}
	s, err := store.Open(ctx, w.dbURL+sep+"pool_max_conns=1")
	testenv.Must(t, err, "open store")
	t.Cleanup(s.Close)
	var owner string
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT current_user`).Scan(&owner), "current user")

	for _, tc := range []struct {
		name string
		fn   func(tx pgx.Tx) error
	}{
		{"committed", func(pgx.Tx) error { return nil }},
		{"rolled back", func(pgx.Tx) error { return rlsRollback }},
		{"failed", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM sources`)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inside string
			_ = s.InWorkspace(ctx, w.a, func(tx pgx.Tx) error {
				if err := tx.QueryRow(ctx, `SELECT current_user`).Scan(&inside); err != nil {
					return err
				}
				return tc.fn(tx)
			})
			if inside != "eddy_workspace" {
				t.Errorf("inside InWorkspace current_user = %q, want eddy_workspace", inside)
			}
			var user, setting string
			var sources int
			err := s.Pool().QueryRow(ctx, `SELECT current_user, coalesce(current_setting('eddy.workspace_id', true), ''),
				(SELECT count(*) FROM sources)`).Scan(&user, &setting, &sources)
			testenv.Must(t, err, "query after InWorkspace")
			if user != owner || setting != "" {
				t.Errorf("after InWorkspace the connection runs as %q with eddy.workspace_id %q, want %q and none", user, setting, owner)
			}
			if want := w.counts[w.a]["sources"] + w.counts[w.b]["sources"]; sources != want {
				t.Errorf("after InWorkspace the owner sees %d sources, want %d", sources, want)
			}
		})
	}
}

// TestEveryWorkspaceTableHasRowLevelSecurity guards the rule that every
// workspace-scoped table is bound by row-level security: a new table with a
// workspace_id column and no policy fails here.
func TestEveryWorkspaceTableHasRowLevelSecurity(t *testing.T) {
	s, _ := newStore(t)
	rows, err := s.Pool().Query(context.Background(), `
		SELECT c.relname, c.relrowsecurity,
		       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'workspace_isolation')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped)
		ORDER BY c.relname`)
	testenv.Must(t, err, "list tables")
	var tables []string
	for rows.Next() {
		var name string
		var rls, policy bool
		testenv.Must(t, rows.Scan(&name, &rls, &policy), "scan")
		tables = append(tables, name)
		if !rls || !policy {
			t.Errorf("table %s has workspace_id but row-level security %v, workspace_isolation policy %v", name, rls, policy)
		}
	}
	testenv.Must(t, rows.Err(), "rows")
	// The check must have looked at the tables it guards.
	for _, want := range []string{"events", "sources", "api_keys", "sessions", "profiles", "identities"} {
		if !slices.Contains(tables, want) {
			t.Errorf("tables with workspace_id = %v, missing %s", tables, want)
		}
	}
}
