package cube

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// rollupTestModel is a sessions cube with an hourly rollup by channel
// (count, revenue, converted sessions: a filtered count).
func rollupTestModel() *Model {
	c := &Cube{Name: "sessions", SQLTable: "sessions",
		Measures: []*Measure{
			{Name: "count", Type: Count},
			{Name: "revenue", Type: Sum, SQL: "{CUBE}.revenue"},
			{Name: "converted", Type: Count, Filters: []string{"{CUBE}.orders_count > 0"}},
		},
		Dimensions: []*Dimension{
			{Name: "id", Type: String, SQL: "{CUBE}.id", PrimaryKey: true},
			{Name: "channel", Type: String, SQL: "{CUBE}.channel_group"},
			{Name: "country", Type: String, SQL: "{CUBE}.country"},
			{Name: "started_at", Type: Time, SQL: "{CUBE}.started_at"},
		},
		PreAggregations: []*PreAggregation{{Name: "hourly", Measures: []string{"count", "revenue", "converted"},
			Dimensions: []string{"channel", "country"}, TimeDimension: "started_at", Granularity: "hour"}},
	}
	return &Model{Cubes: []*Cube{c}, byName: map[string]*Cube{c.Name: c}}
}

func rollupDB(t *testing.T) (*pgxpool.Pool, []string) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, url), "migrate")
	pool, err := pgxpool.New(ctx, url)
	testenv.Must(t, err, "pool")
	t.Cleanup(pool.Close)
	var wss []string
	for _, slug := range []string{"a", "b"} {
		var id string
		testenv.Must(t, pool.QueryRow(ctx, `INSERT INTO workspaces (slug, organization_id)
			SELECT $1, id FROM organizations WHERE slug = 'default' RETURNING id::text`, slug).Scan(&id), "workspace")
		wss = append(wss, id)
	}
	return pool, wss
}

// upsertSessions writes sessions as the engine does (INSERT … ON CONFLICT
// DO UPDATE), n of them, with random channels, countries (some NULL),
// start hours and revenue.
func upsertSessions(t *testing.T, pool *pgxpool.Pool, rng *rand.Rand, wss []string, ids []string) {
	t.Helper()
	channels := []string{"Direct", "Organic Search", "Paid Search", "Email"}
	countries := []string{"FR", "DE", ""}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b := &pgx.Batch{}
	for _, id := range ids {
		ws := wss[rng.IntN(len(wss))]
		start := base.Add(time.Duration(rng.IntN(72*60)) * time.Minute)
		orders := rng.IntN(3) / 2
		revenue := float64(orders) * float64(rng.IntN(10000)) / 100
		var country any
		if c := countries[rng.IntN(len(countries))]; c != "" {
			country = c
		}
		b.Queue(`INSERT INTO sessions (workspace_id, id, anonymous_id, started_at, last_event_at, events, page_views,
			channel_group, country, orders_count, revenue, bounced, closed)
			VALUES ($1, $2, 'anon', $3, $3, 1, 1, $4, $5, $6, $7, false, false)
			ON CONFLICT (workspace_id, id) DO UPDATE SET channel_group = EXCLUDED.channel_group, country = EXCLUDED.country,
			  orders_count = EXCLUDED.orders_count, revenue = EXCLUDED.revenue, started_at = EXCLUDED.started_at`,
			ws, id, start, channels[rng.IntN(len(channels))], country, orders, revenue)
	}
	testenv.Must(t, pool.SendBatch(context.Background(), b).Close(), "upsert sessions")
}

// compareRollup checks the rollup table against the same aggregate
// computed from the sessions table.
func compareRollup(t *testing.T, pool *pgxpool.Pool, r *rollup, when string) {
	t.Helper()
	ctx := context.Background()
	read := func(sql string) []string {
		rows, err := pool.Query(ctx, sql)
		testenv.Must(t, err, "%s", sql)
		defer rows.Close()
		var out []string
		for rows.Next() {
			vals, err := rows.Values()
			testenv.Must(t, err, "values")
			out = append(out, fmt.Sprint(vals...))
		}
		testenv.Must(t, rows.Err(), "rows")
		return out
	}
	got := read(fmt.Sprintf(`SELECT workspace_id::text, bucket, d0, coalesce(d1, '-'), sum(m0)::bigint, sum(m1)::numeric(24,2), sum(m2)::bigint
		FROM %s GROUP BY 1, 2, 3, 4 HAVING sum(__rows) > 0 ORDER BY 1, 2, 3, 4`, r.table))
	want := read(`SELECT workspace_id::text, date_trunc('hour', started_at AT TIME ZONE 'UTC'), channel_group, coalesce(country, '-'),
		count(*), sum(revenue)::numeric(24,2), count(*) FILTER (WHERE orders_count > 0)
		FROM sessions GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: rollup has %d groups, the table %d; first difference:\n got %v\nwant %v", when, len(got), len(want), firstDiff(got, want), firstDiff(want, got))
	}
	var zero int
	testenv.Must(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM %s GROUP BY workspace_id, bucket, d0, d1
		HAVING sum(__rows) = 0 AND (sum(m0) <> 0 OR sum(m1) <> 0 OR sum(m2) <> 0)) AS z`, r.table)).Scan(&zero), "zero rows")
	if zero != 0 {
		t.Errorf("%s: %d emptied groups keep non-zero measures", when, zero)
	}
}

// compact runs the compactor and checks that it leaves one compacted row
// per group, no delta, and the same sums.
func compact(t *testing.T, pool *pgxpool.Pool, m *Model, r *rollup, when string) {
	t.Helper()
	ctx := context.Background()
	n, err := m.CompactRollups(ctx, pool)
	testenv.Must(t, err, "compact")
	if n == 0 {
		t.Errorf("%s: compaction folded no delta", when)
	}
	var deltas, dup int
	testenv.Must(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FILTER (WHERE delta), count(*) - count(DISTINCT (workspace_id, bucket, d0, d1)) FROM %s`, r.table)).Scan(&deltas, &dup), "rows")
	if deltas != 0 || dup != 0 {
		t.Errorf("%s: after compaction %d deltas and %d duplicate groups", when, deltas, dup)
	}
	compareRollup(t, pool, r, when+", compacted")
}

func firstDiff(a, b []string) string {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return x
		}
	}
	return "(none)"
}

// A rollup is filled from the table when it is created, then follows
// every insert, upsert, update and delete of the table exactly, in the
// same transactions; a second EnsureRollups changes nothing.
func TestRollupFollowsItsTable(t *testing.T) {
	pool, wss := rollupDB(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	id := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	var first []string
	for i := range 300 {
		first = append(first, id(i))
	}
	upsertSessions(t, pool, rng, wss, first)

	m := rollupTestModel()
	testenv.Must(t, m.EnsureRollups(ctx, pool), "ensure")
	rs, err := m.rollupsOf()
	testenv.Must(t, err, "rollups")
	r := rs[0]
	compareRollup(t, pool, r, "after the backfill")

	var more []string
	for i := 300; i < 600; i++ {
		more = append(more, id(i))
	}
	upsertSessions(t, pool, rng, wss, more)
	compareRollup(t, pool, r, "after inserts")
	compact(t, pool, m, r, "after inserts")
	upsertSessions(t, pool, rng, wss, first[:200]) // changes channel, country, start, revenue
	compareRollup(t, pool, r, "after upserts that update")
	_, err = pool.Exec(ctx, `UPDATE sessions SET revenue = revenue + 1, orders_count = 1 WHERE id::text LIKE '%5'`)
	testenv.Must(t, err, "update")
	compareRollup(t, pool, r, "after an update")
	_, err = pool.Exec(ctx, `DELETE FROM sessions WHERE id::text LIKE '%3' OR id::text LIKE '%7'`)
	testenv.Must(t, err, "delete")
	compareRollup(t, pool, r, "after a delete")
	_, err = pool.Exec(ctx, `DELETE FROM sessions WHERE workspace_id = $1`, wss[1])
	testenv.Must(t, err, "delete a workspace's")
	compareRollup(t, pool, r, "after deleting a workspace's sessions")
	compact(t, pool, m, r, "after the deletes")

	testenv.Must(t, m.EnsureRollups(ctx, pool), "ensure again")
	compareRollup(t, pool, r, "after a second ensure")
	var triggers int
	testenv.Must(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'cube\_rollup\_%'`).Scan(&triggers), "triggers")
	if triggers != 3 {
		t.Errorf("%d rollup triggers, want 3 (insert, update, delete)", triggers)
	}

	// A changed definition is a new rollup; the old one's triggers go.
	m2 := rollupTestModel()
	m2.Cubes[0].PreAggregations[0].Dimensions = []string{"channel"}
	testenv.Must(t, m2.EnsureRollups(ctx, pool), "ensure a changed definition")
	var names []string
	rows, err := pool.Query(ctx, `SELECT DISTINCT tgname FROM pg_trigger WHERE tgname LIKE 'cube\_rollup\_%'`)
	testenv.Must(t, err, "triggers")
	for rows.Next() {
		var n string
		testenv.Must(t, rows.Scan(&n), "scan")
		names = append(names, n)
	}
	rs2, _ := m2.rollupsOf()
	for _, n := range names {
		if !strings.HasPrefix(n, rs2[0].table) {
			t.Errorf("trigger %s of the old definition kept", n)
		}
	}
	if len(names) != 3 || rs2[0].table == r.table {
		t.Errorf("triggers %v after the change, want the new rollup's 3", names)
	}
}

func TestRollupRefusesWhatItCannotKeep(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Cube)
		want string
	}{
		{"count_distinct", func(c *Cube) {
			c.Measures = append(c.Measures, &Measure{Name: "visitors", Type: CountDistinct, SQL: "{CUBE}.anonymous_id"})
			c.PreAggregations[0].Measures = append(c.PreAggregations[0].Measures, "visitors")
		}, "only additive measures"},
		{"sql cube", func(c *Cube) { c.SQLTable, c.SQL = "", "SELECT * FROM sessions" }, "sql_table"},
		{"reference", func(c *Cube) { c.Dimensions[1].SQL = "{sessions.country}" }, "references other members"},
		{"minute", func(c *Cube) { c.PreAggregations[0].Granularity = "minute" }, "hours or days"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := rollupTestModel()
			tc.edit(m.Cubes[0])
			_, err := m.rollupsOf()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("rollupsOf = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
