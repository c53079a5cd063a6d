package store_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// newStore returns a Store over a fresh, migrated database.
func newStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, dbURL), "migrate")
	s, err := store.Open(ctx, dbURL)
	testenv.Must(t, err, "open store")
	t.Cleanup(s.Close)
	return s, dbURL
}

// connect opens a plain connection, closed when the test ends.
func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	testenv.Must(t, err, "connect to %s", dbURL)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// schemaSnapshot describes the database's tables, indexes and functions, and
// goose's version rows.
func schemaSnapshot(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT kind || ' ' || name FROM (
		    SELECT 'relation' AS kind, c.relname || ':' || c.relkind::text AS name
		    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		    WHERE n.nspname = 'public'
		    UNION ALL
		    SELECT 'function', p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		    WHERE n.nspname = 'public'
		    UNION ALL
		    SELECT 'version', version_id || ':' || is_applied FROM goose_db_version
		) s ORDER BY 1`)
	testenv.Must(t, err, "snapshot schema")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	testenv.Must(t, err, "snapshot schema")
	return names
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, dbURL), "first migrate")
	conn := connect(t, dbURL)
	before := schemaSnapshot(t, conn)
	testenv.Must(t, store.Migrate(ctx, dbURL), "second migrate")
	after := schemaSnapshot(t, conn)
	if len(before) != len(after) {
		t.Fatalf("second migrate changed the schema:\nbefore %q\nafter  %q", before, after)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("second migrate changed the schema:\nbefore %q\nafter  %q", before, after)
		}
	}
	for _, want := range []string{"relation events:p", "relation event_ids:r", "relation workspaces:r", "relation sources:r", "function eddy_ensure_events_partition", "version 1:true"} {
		found := false
		for _, got := range after {
			found = found || got == want
		}
		if !found {
			t.Errorf("schema lacks %q; has %q", want, after)
		}
	}
}

func TestMigrateConcurrently(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := testenv.Database(t)
	const n = 3
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = store.Migrate(ctx, dbURL) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrate %d of %d: %v", i+1, n, err)
		}
	}
	var applied int
	err := connect(t, dbURL).QueryRow(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id = 1").Scan(&applied)
	testenv.Must(t, err, "count applied migrations")
	if applied != 1 {
		t.Fatalf("migration 1 recorded %d times, want once", applied)
	}
}

// databaseURL returns the test server's URL for database name.
func databaseURL(t *testing.T, name string) string {
	u, err := url.Parse(testenv.AdminDatabaseURL())
	testenv.Must(t, err, "parse admin url")
	u.Path = "/" + name
	return u.String()
}

func databaseExists(t *testing.T, admin *pgx.Conn, name string) bool {
	t.Helper()
	var exists bool
	err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	testenv.Must(t, err, "look for database %s", name)
	return exists
}

func TestEnsureDatabase(t *testing.T) {
	ctx := context.Background()
	admin := connect(t, testenv.AdminDatabaseURL())
	existing := testenv.Database(t)

	tests := []struct {
		name       string
		url        string
		concurrent int
	}{
		{name: "creates a missing database", url: databaseURL(t, testenv.RandomName("eddy_test_ensure_")), concurrent: 1},
		{name: "is a no-op when the database exists", url: existing, concurrent: 1},
		{name: "tolerates processes racing to create it", url: databaseURL(t, testenv.RandomName("eddy_test_ensure_")), concurrent: 4},
		{name: "accepts a name that needs quoting", url: databaseURL(t, testenv.RandomName("eddy test-Ensure ")), concurrent: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			testenv.Must(t, err, "parse %s", tt.url)
			name := u.Path[1:]
			existed := databaseExists(t, admin, name)
			if !existed {
				t.Cleanup(func() {
					if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
						t.Errorf("drop database %s: %v", name, err)
					}
				})
			}
			errs := make([]error, tt.concurrent)
			var wg sync.WaitGroup
			for i := range tt.concurrent {
				wg.Go(func() { errs[i] = store.EnsureDatabase(ctx, tt.url) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("EnsureDatabase(%s): %v", name, err)
				}
			}
			if !databaseExists(t, admin, name) {
				t.Fatalf("database %s does not exist after EnsureDatabase", name)
			}
			// The database is usable.
			testenv.Must(t, store.Migrate(ctx, tt.url), "migrate %s", name)
		})
	}
}

func TestEnsureDatabaseFailsWithoutServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := store.EnsureDatabase(ctx, "postgres://postgres@127.0.0.1:1/eddy?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("EnsureDatabase with no server listening: got nil error")
	}
}
