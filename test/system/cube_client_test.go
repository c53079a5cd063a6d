package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// The official @cubejs-client/core, pointed at Eddy's Cube REST API with a
// workspace API key, gets the numbers of known data: for every filter
// operator, granularity and join type, segments, order/limit/offset/total,
// timezones and relative date ranges. tablePivot() and chartPivot() are
// compared with the same numbers computed by SQL over the seeded rows. Two
// workspaces hold different data; each key sees its own workspace's numbers
// only, and SQL-looking strings are refused or inert.
func TestCubeClientAgainstEddy(t *testing.T) {
	const clientDir = "../cube-client"
	if _, err := os.Stat(filepath.Join(clientDir, "node_modules/@cubejs-client/core")); err != nil {
		t.Fatalf("@cubejs-client/core is not installed (make test runs npm ci in test/cube-client): %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed: %v", err)
	}
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))
	admin := e.ownerConsole(base)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	testenv.Must(t, err, "connect")
	defer conn.Close(ctx)

	// Workspace A is plugins.yaml's shop; B another of the organization.
	var wsA, wsB string
	testenv.Must(t, conn.QueryRow(ctx, `SELECT id::text FROM workspaces WHERE slug = 'shop'`).Scan(&wsA), "workspace A")
	testenv.Must(t, conn.QueryRow(ctx, `INSERT INTO workspaces (slug, name, organization_id)
		SELECT 'rival', 'Rival', organization_id FROM workspaces WHERE slug = 'shop' RETURNING id::text`).Scan(&wsB), "workspace B")
	seedAnalytics(t, conn, wsA, cubeSeed{historic: 120, historicStep: "17 hours 13 minutes 7 seconds", recent: 140, recentStep: "7 hours", scale: 1, events: 30})
	seedAnalytics(t, conn, wsB, cubeSeed{historic: 200, historicStep: "11 hours 3 minutes", recent: 100, recentStep: "9 hours 30 minutes", scale: 1000, events: 50})

	var keyA struct{ Key string }
	admin.call(http.StatusCreated, "POST", "/workspaces/shop/api-keys", `{"name":"analytics","scopes":["read"]}`, &keyA)
	var writeOnly struct{ Key string }
	admin.call(http.StatusCreated, "POST", "/workspaces/shop/api-keys", `{"name":"writer","scopes":["write"]}`, &writeOnly)
	keyB := testenv.RandomName("eddy_key_rival_")
	_, err = conn.Exec(ctx, `INSERT INTO api_keys (workspace_id, name, key_hash, key_prefix, scopes) VALUES ($1, 'rival', $2, 'eddy_key', '{read}')`,
		wsB, store.HashSecret(keyB))
	testenv.Must(t, err, "B's key")

	// A's own cube: a sql cube (read under A's isolation) joined one to one
	// to sessions.
	files, _ := json.Marshal(map[string]any{"files": map[string]string{"extras.yml": extrasCube}})
	admin.call(http.StatusOK, "PUT", "/workspaces/shop/cubes", string(files), nil)

	cases := cubeCases(time.Now().UTC())
	for _, ws := range []struct {
		name, key, id string
		own           bool // has the extras cube
	}{{"A", keyA.Key, wsA, true}, {"B", keyB, wsB, false}} {
		t.Run("workspace "+ws.name, func(t *testing.T) {
			got := runCubeClient(t, base, ws.key, cases)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					checkCubeCase(t, conn, ws.id, ws.own, c, got[c.name])
				})
			}
		})
	}

	// The seeded tables survived the SQL-looking strings.
	var sessions int
	testenv.Must(t, conn.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&sessions), "sessions after")
	if sessions != 120+140+200+100 {
		t.Errorf("%d sessions after the queries, want %d", sessions, 120+140+200+100)
	}

	t.Run("credentials", func(t *testing.T) {
		probe := []cubeCase{{name: "probe", query: map[string]any{"measures": []string{"sessions.count"}}}}
		for _, tc := range []struct{ name, token string }{
			{"unknown key", "eddy_key_unknown"},
			{"write-only key", writeOnly.Key},
			{"empty token", " "},
		} {
			got := runCubeClient(t, base, tc.token, probe)["probe"]
			if got.Status == nil || *got.Status != http.StatusForbidden {
				t.Errorf("%s: %+v, want 403", tc.name, got)
			}
		}
	})
}

// extrasCube is workspace A's own model: converted sessions, one to one
// with sessions.
const extrasCube = `cubes:
  - name: extras
    sql: "SELECT workspace_id, id, revenue, orders_count FROM sessions WHERE orders_count > 0"
    joins:
      - name: sessions
        relationship: one_to_one
        sql: "{CUBE}.workspace_id = {sessions}.workspace_id AND {CUBE}.id = {sessions}.id"
    measures:
      - name: count
        type: count
      - name: revenue
        type: sum
        sql: "{CUBE}.revenue"
    dimensions:
      - name: id
        type: string
        sql: "{CUBE}.id"
        primary_key: true
      - name: orders
        type: number
        sql: "{CUBE}.orders_count"
`

type cubeSeed struct {
	historic, recent         int
	historicStep, recentStep string
	scale                    int
	events                   int
}

// seedAnalytics writes a workspace's sessions (a historic batch from
// 2026-01-05 and a recent one over the last 40 days), their page views and
// orders, profiles and events, straight into the tables.
func seedAnalytics(t *testing.T, conn *pgx.Conn, ws string, s cubeSeed) {
	t.Helper()
	ctx := context.Background()
	exec := func(what, sql string, args ...any) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, args...)
		testenv.Must(t, err, "seed %s", what)
	}
	exec("profiles", `
		INSERT INTO profiles (workspace_id, id, user_id, merged_into, first_seen, last_seen, sessions_count, orders_count, revenue_micros)
		SELECT $1::uuid, md5($1::text || 'p' || i)::uuid, CASE WHEN i % 2 = 0 THEN 'user-' || i END,
		       CASE WHEN i = 19 THEN md5($1::text || 'p0')::uuid END,
		       timestamptz '2026-01-05 00:00Z' + i * interval '1 day', timestamptz '2026-02-05 00:00Z' + i * interval '1 day',
		       i % 5, i % 3, (i % 3) * 25000000 * $2::bigint
		FROM generate_series(0, 19) i`, ws, s.scale)
	for _, batch := range []struct {
		prefix, start, step string
		n                   int
	}{
		{"h", "2026-01-05T00:00:00Z", s.historicStep, s.historic},
		{"r", time.Now().UTC().Add(-40 * 24 * time.Hour).Format(time.RFC3339), s.recentStep, s.recent},
	} {
		exec("sessions", `
			INSERT INTO sessions (workspace_id, id, anonymous_id, user_id, profile_id, started_at, last_event_at, events, page_views,
			                      landing_page, referrer, channel_group, source, device_type, country, orders_count, revenue, bounced, closed)
			SELECT $1::uuid, md5($1::text || $2 || i)::uuid, 'anon-' || (i % 11), CASE WHEN i % 3 = 0 THEN 'user-' || (i % 5) END,
			       CASE WHEN i % 4 <> 3 THEN md5($1::text || 'p' || (i % 20))::uuid::text END,
			       t, t + (i % 40) * interval '1 minute', 1 + i % 9, i % 4, '/landing/' || (i % 3),
			       CASE WHEN i % 5 <> 0 THEN 'https://ref' || (i % 2) || '.example/' END,
			       (ARRAY['Direct', 'Organic Search', 'Paid Search', 'Email'])[1 + i % 4],
			       (ARRAY['google', 'newsletter', 'bing'])[1 + i % 3], (ARRAY['desktop', 'mobile', 'tablet'])[1 + i % 3],
			       (ARRAY['FR', 'US', 'DE', 'JP'])[1 + i % 4],
			       CASE WHEN i % 6 = 0 THEN 1 + i % 2 ELSE 0 END, CASE WHEN i % 6 = 0 THEN (10 + i) * $5::int ELSE 0 END, i % 4 = 0, true
			FROM (SELECT i, $3::timestamptz + i * $4::interval AS t FROM generate_series(0, $6::int - 1) i) g`,
			ws, batch.prefix, batch.start, batch.step, s.scale, batch.n)
	}
	exec("page views", `
		INSERT INTO page_views (workspace_id, message_id, session_id, anonymous_id, user_id, ts, url, title)
		SELECT s.workspace_id, s.id::text || '-' || k, s.id, s.anonymous_id, s.user_id, s.started_at + k * interval '1 minute',
		       'https://shop.example/p/' || k, 'Page ' || k
		FROM sessions s, generate_series(1, s.page_views) k WHERE s.workspace_id = $1`, ws)
	exec("orders", `
		INSERT INTO orders (workspace_id, order_id, message_id, session_id, anonymous_id, user_id, profile_id, ts, total, currency)
		SELECT s.workspace_id, s.id::text || '-o' || k, s.id::text || '-m' || k, s.id, s.anonymous_id, s.user_id, s.profile_id,
		       s.started_at + k * interval '2 minutes', s.revenue / s.orders_count, (ARRAY['EUR', 'USD'])[1 + k % 2]
		FROM sessions s, generate_series(1, s.orders_count) k WHERE s.workspace_id = $1`, ws)
	exec("event partitions", `SELECT eddy_ensure_events_partition(d::date)
		FROM generate_series(date '2026-01-05', date '2026-01-05' + $1::int / 24 + 1, interval '1 day') d`, s.events)
	exec("events", `
		INSERT INTO events (workspace_id, received_at, message_id, type, event, anonymous_id, "timestamp")
		SELECT $1::uuid, t, 'm-' || i, (ARRAY['track', 'page', 'identify'])[1 + i % 3], CASE WHEN i % 3 = 0 THEN 'Tested' END,
		       'anon-' || (i % 11), t
		FROM (SELECT i, timestamptz '2026-01-05 00:30Z' + i * interval '1 hour' AS t FROM generate_series(0, $2::int - 1) i) g`,
		ws, s.events)
}

// cubeCase is one query and how to compute its answer: want is SQL over
// the seeded tables ($1: the workspace) whose columns are named as the
// tablePivot's keys.
type cubeCase struct {
	name  string
	kind  string // "" (load), "meta" or "sql"
	query map[string]any
	want  string
	// ordered: the rows must come in want's order.
	ordered bool
	// chart, for a time dimension with a granularity: the chartPivot's
	// series, filled with zeros over the date range.
	chart *cubeChart
	// total, when set, is SQL for the query's total.
	total string
	// bad: the API must refuse the query (400).
	bad bool
	// ownCube: the query uses workspace A's own cube (B gets a 400).
	ownCube bool
}

type cubeChart struct {
	granularity string
	from, to    time.Time
	measure     string
}

// ts formats a timestamp expression as Cube writes times.
func ts(expr string) string {
	return `to_char(` + expr + `, 'YYYY-MM-DD"T"HH24:MI:SS.MS')`
}

// bucket is a time dimension's value at a granularity, in a timezone.
func bucket(col, gran, tz string) string {
	return ts(`date_trunc('` + gran + `', ` + col + ` AT TIME ZONE '` + tz + `')`)
}

// within is the SQL condition of an inclusive range of local dates.
func within(col, from, to, tz string) string {
	return fmt.Sprintf(`%s >= (timestamp '%s') AT TIME ZONE '%s' AND %s < (timestamp '%s' + interval '1 day') AT TIME ZONE '%s'`,
		col, from, tz, col, to, tz)
}

func cubeCases(now time.Time) []cubeCase {
	const ws = `workspace_id = $1`
	measures := func(m ...string) []string { return m }
	var cases []cubeCase
	add := func(c cubeCase) { cases = append(cases, c) }

	add(cubeCase{name: "sessions and revenue by channel",
		query: map[string]any{"measures": measures("sessions.count", "sessions.revenue"), "dimensions": []string{"sessions.channel_group"}},
		want: `SELECT channel_group AS "sessions.channel_group", count(*) AS "sessions.count", sum(revenue) AS "sessions.revenue"
			FROM sessions WHERE ` + ws + ` GROUP BY 1`})
	add(cubeCase{name: "measures of every type",
		query: map[string]any{"measures": measures("orders.count", "orders.revenue", "orders.average_order_value", "orders.largest_order",
			"orders.smallest_order", "orders.buyers", "orders.orders_per_buyer")},
		want: `SELECT count(*) AS "orders.count", sum(total) AS "orders.revenue", avg(total) AS "orders.average_order_value",
			max(total) AS "orders.largest_order", min(total) AS "orders.smallest_order", count(DISTINCT anonymous_id) AS "orders.buyers",
			1.0 * count(*) / NULLIF(count(DISTINCT anonymous_id), 0) AS "orders.orders_per_buyer" FROM orders WHERE ` + ws})
	add(cubeCase{name: "events by type",
		query: map[string]any{"measures": measures("events.count", "events.tracks"), "dimensions": []string{"events.type"}},
		want: `SELECT type AS "events.type", count(*) AS "events.count", count(*) FILTER (WHERE type = 'track') AS "events.tracks"
			FROM events WHERE ` + ws + ` GROUP BY 1`})

	// Every granularity, over a range that suits it.
	for _, g := range []struct {
		gran, from, to string
	}{
		{"second", "2026-01-05T17:00:00", "2026-01-05T17:29:59"},
		{"minute", "2026-01-05T00:00:00", "2026-01-06T23:59:59"},
		{"hour", "2026-01-05T00:00:00", "2026-01-11T23:59:59"},
		{"day", "2026-01-05", "2026-03-29"},
		{"week", "2026-01-05", "2026-03-29"},
		{"month", "2026-01-05", "2026-03-29"},
		{"quarter", "2026-01-05", "2026-03-29"},
		{"year", "2026-01-05", "2026-03-29"},
	} {
		from, to := parseLocal(g.from, false), parseLocal(g.to, true)
		add(cubeCase{name: "granularity " + g.gran,
			query: map[string]any{"measures": measures("sessions.count"), "timeDimensions": []map[string]any{
				{"dimension": "sessions.started_at", "granularity": g.gran, "dateRange": []string{g.from, g.to}}}},
			want: fmt.Sprintf(`SELECT %s AS "sessions.started_at.%s", count(*) AS "sessions.count" FROM sessions
				WHERE %s AND started_at >= '%s'::timestamptz AND started_at <= '%s'::timestamptz GROUP BY 1`,
				bucket("started_at", g.gran, "UTC"), g.gran, ws, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)),
			chart: &cubeChart{granularity: g.gran, from: from, to: to, measure: "sessions.count"}})
	}

	// Every filter operator.
	byChannel := func(name string, filters []map[string]any, where string) {
		add(cubeCase{name: name,
			query: map[string]any{"measures": measures("sessions.count"), "dimensions": []string{"sessions.channel_group"}, "filters": filters},
			want: `SELECT channel_group AS "sessions.channel_group", count(*) AS "sessions.count" FROM sessions
				WHERE ` + ws + ` AND (` + where + `) GROUP BY 1`})
	}
	f := func(member, op string, values ...string) map[string]any {
		m := map[string]any{"member": member, "operator": op}
		if values != nil {
			m["values"] = values
		}
		return m
	}
	fs := func(x ...map[string]any) []map[string]any { return x }
	byChannel("equals", fs(f("sessions.channel_group", "equals", "Email", "Direct")), `channel_group IN ('Email', 'Direct')`)
	byChannel("notEquals", fs(f("sessions.channel_group", "notEquals", "Email")), `channel_group <> 'Email'`)
	byChannel("contains", fs(f("sessions.referrer", "contains", "REF1")), `referrer ILIKE '%ref1%'`)
	byChannel("notContains", fs(f("sessions.referrer", "notContains", "ref1")), `referrer NOT ILIKE '%ref1%' OR referrer IS NULL`)
	byChannel("startsWith", fs(f("sessions.referrer", "startsWith", "https://ref0")), `referrer ILIKE 'https://ref0%'`)
	byChannel("notStartsWith", fs(f("sessions.referrer", "notStartsWith", "https://ref0")), `referrer NOT ILIKE 'https://ref0%' OR referrer IS NULL`)
	byChannel("endsWith", fs(f("sessions.landing_page", "endsWith", "/1")), `landing_page ILIKE '%/1'`)
	byChannel("notEndsWith", fs(f("sessions.landing_page", "notEndsWith", "/1")), `landing_page NOT ILIKE '%/1' OR landing_page IS NULL`)
	byChannel("gt", fs(f("sessions.event_count", "gt", "5")), `events > 5`)
	byChannel("gte", fs(f("sessions.event_count", "gte", "5")), `events >= 5`)
	byChannel("lt", fs(f("sessions.event_count", "lt", "3")), `events < 3`)
	byChannel("lte", fs(f("sessions.event_count", "lte", "3")), `events <= 3`)
	byChannel("set", fs(f("sessions.referrer", "set")), `referrer IS NOT NULL`)
	byChannel("notSet", fs(f("sessions.referrer", "notSet")), `referrer IS NULL`)
	byChannel("inDateRange", fs(f("sessions.started_at", "inDateRange", "2026-02-01", "2026-02-28")),
		within("started_at", "2026-02-01", "2026-02-28", "UTC"))
	byChannel("notInDateRange", fs(f("sessions.started_at", "notInDateRange", "2026-02-01", "2026-02-28")),
		`NOT (`+within("started_at", "2026-02-01", "2026-02-28", "UTC")+`)`)
	byChannel("beforeDate", fs(f("sessions.started_at", "beforeDate", "2026-02-01")), `started_at < timestamptz '2026-02-01 00:00Z'`)
	// As Cube's BaseFilter: a date alone stands for its first instant.
	byChannel("beforeOrOnDate", fs(f("sessions.started_at", "beforeOrOnDate", "2026-02-01")), `started_at <= timestamptz '2026-02-01 00:00Z'`)
	byChannel("afterDate", fs(f("sessions.started_at", "afterDate", "2026-03-01")), `started_at > timestamptz '2026-03-01 00:00Z'`)
	byChannel("afterOrOnDate", fs(f("sessions.started_at", "afterOrOnDate", "2026-03-01")), `started_at >= timestamptz '2026-03-01 00:00Z'`)
	byChannel("onTheDate", fs(f("sessions.started_at", "onTheDate", "2026-02-10")), within("started_at", "2026-02-10", "2026-02-10", "UTC"))
	byChannel("nested and/or", fs(map[string]any{"or": fs(
		f("sessions.country", "equals", "FR"),
		map[string]any{"and": fs(f("sessions.device_type", "equals", "mobile"), f("sessions.channel_group", "notEquals", "Email"))},
	)}), `country = 'FR' OR (device_type = 'mobile' AND channel_group <> 'Email')`)
	add(cubeCase{name: "measure filter",
		query: map[string]any{"measures": measures("sessions.count"), "dimensions": []string{"sessions.event_count"},
			"filters": fs(f("sessions.count", "gt", "28"))},
		want: `SELECT events AS "sessions.event_count", count(*) AS "sessions.count" FROM sessions WHERE ` + ws + `
			GROUP BY 1 HAVING count(*) > 28`})

	// Joins.
	add(cubeCase{name: "many_to_one: page views by the session's channel",
		query: map[string]any{"measures": measures("page_views.count"), "dimensions": []string{"sessions.channel_group"}},
		want: `SELECT s.channel_group AS "sessions.channel_group", count(*) AS "page_views.count"
			FROM page_views p JOIN sessions s ON s.workspace_id = p.workspace_id AND s.id = p.session_id
			WHERE p.workspace_id = $1 GROUP BY 1`})
	add(cubeCase{name: "one_to_many: sessions and revenue by page title, not multiplied",
		query: map[string]any{"measures": measures("sessions.count", "sessions.revenue"), "dimensions": []string{"page_views.title"}},
		want: `SELECT title AS "page_views.title", count(*) AS "sessions.count", sum(revenue) AS "sessions.revenue" FROM (
			SELECT DISTINCT p.title, s.id, s.revenue FROM sessions s LEFT JOIN page_views p ON p.workspace_id = s.workspace_id AND p.session_id = s.id
			WHERE s.workspace_id = $1) x GROUP BY 1`})
	add(cubeCase{name: "one_to_many: sessions and orders by channel",
		query: map[string]any{"measures": measures("sessions.count", "orders.count", "orders.revenue"), "dimensions": []string{"sessions.channel_group"}},
		want: `SELECT s.channel_group AS "sessions.channel_group", count(*) AS "sessions.count",
			coalesce(sum(o.n), 0) AS "orders.count", sum(o.total) AS "orders.revenue"
			FROM sessions s LEFT JOIN (SELECT session_id, count(*) AS n, sum(total) AS total FROM orders WHERE workspace_id = $1 GROUP BY 1) o
			ON o.session_id = s.id WHERE s.workspace_id = $1 GROUP BY 1`})
	add(cubeCase{name: "one_to_many: live profiles by their sessions' device",
		query: map[string]any{"measures": measures("profiles.count"), "dimensions": []string{"sessions.device_type"}},
		want: `SELECT s.device_type AS "sessions.device_type", count(DISTINCT p.id) FILTER (WHERE p.merged_into IS NULL) AS "profiles.count"
			FROM profiles p LEFT JOIN sessions s ON s.workspace_id = p.workspace_id AND s.profile_id = p.id::text
			WHERE p.workspace_id = $1 GROUP BY 1`})
	add(cubeCase{name: "one_to_one: a workspace's own sql cube",
		ownCube: true,
		query:   map[string]any{"measures": measures("extras.count", "extras.revenue"), "dimensions": []string{"sessions.device_type"}},
		want: `SELECT device_type AS "sessions.device_type", count(*) AS "extras.count", sum(revenue) AS "extras.revenue"
			FROM sessions WHERE ` + ws + ` AND orders_count > 0 GROUP BY 1`})

	// Segments.
	add(cubeCase{name: "segment",
		query: map[string]any{"measures": measures("sessions.count", "sessions.revenue"), "dimensions": []string{"sessions.channel_group"},
			"segments": []string{"sessions.converted"}},
		want: `SELECT channel_group AS "sessions.channel_group", count(*) AS "sessions.count", sum(revenue) AS "sessions.revenue"
			FROM sessions WHERE ` + ws + ` AND converted GROUP BY 1`})
	add(cubeCase{name: "two segments",
		query: map[string]any{"measures": measures("sessions.count"), "segments": []string{"sessions.bounced", "sessions.identified"}},
		want:  `SELECT count(*) AS "sessions.count" FROM sessions WHERE ` + ws + ` AND bounced AND user_id IS NOT NULL`})

	// Order, limit, offset, total.
	add(cubeCase{name: "order limit offset total", ordered: true,
		query: map[string]any{"measures": measures("sessions.count"), "dimensions": []string{"sessions.event_count"},
			"order": [][]string{{"sessions.count", "desc"}, {"sessions.event_count", "asc"}}, "limit": 3, "offset": 2, "total": true},
		want: `SELECT events AS "sessions.event_count", count(*) AS "sessions.count" FROM sessions WHERE ` + ws + `
			GROUP BY 1 ORDER BY 2 DESC, 1 ASC LIMIT 3 OFFSET 2`,
		total: `SELECT count(DISTINCT events) FROM sessions WHERE ` + ws})
	add(cubeCase{name: "order by a dimension, object form", ordered: true,
		query: map[string]any{"measures": measures("sessions.count"), "dimensions": []string{"sessions.country"},
			"order": map[string]string{"sessions.country": "desc"}},
		want: `SELECT country AS "sessions.country", count(*) AS "sessions.count" FROM sessions WHERE ` + ws + ` GROUP BY 1 ORDER BY 1 DESC`})

	// Timezone.
	add(cubeCase{name: "timezone",
		query: map[string]any{"measures": measures("sessions.count"), "timezone": "America/New_York", "timeDimensions": []map[string]any{
			{"dimension": "sessions.started_at", "granularity": "day", "dateRange": []string{"2026-01-05", "2026-01-31"}}}},
		want: `SELECT ` + bucket("started_at", "day", "America/New_York") + ` AS "sessions.started_at.day", count(*) AS "sessions.count"
			FROM sessions WHERE ` + ws + ` AND ` + within("started_at", "2026-01-05", "2026-01-31", "America/New_York") + ` GROUP BY 1`,
		chart: &cubeChart{granularity: "day", from: parseLocal("2026-01-05", false), to: parseLocal("2026-01-31", true), measure: "sessions.count"}})

	// Relative date ranges, from the clock of the test (UTC).
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	rel := func(name, dateRange, gran string, from, to time.Time) {
		td := map[string]any{"dimension": "sessions.started_at", "dateRange": dateRange}
		c := cubeCase{name: "relative " + name, query: map[string]any{"measures": measures("sessions.count")}}
		cond := fmt.Sprintf(`started_at >= '%s' AND started_at < '%s'`, from.Format(time.RFC3339), to.Format(time.RFC3339))
		if gran != "" {
			td["granularity"] = gran
			c.want = `SELECT ` + bucket("started_at", gran, "UTC") + ` AS "sessions.started_at.` + gran + `", count(*) AS "sessions.count"
				FROM sessions WHERE ` + ws + ` AND ` + cond + ` GROUP BY 1`
			c.chart = &cubeChart{granularity: gran, from: from, to: to.Add(-time.Millisecond), measure: "sessions.count"}
		} else {
			c.want = `SELECT count(*) AS "sessions.count" FROM sessions WHERE ` + ws + ` AND ` + cond
		}
		c.query["timeDimensions"] = []map[string]any{td}
		add(c)
	}
	rel("last 7 days", "last 7 days", "day", today.AddDate(0, 0, -7), today)
	rel("this month", "this month", "", monthStart, monthStart.AddDate(0, 1, 0))
	rel("last month", "last month", "week", monthStart.AddDate(0, -1, 0), monthStart)
	rel("yesterday", "yesterday", "hour", today.AddDate(0, 0, -1), today)
	rel("today", "today", "", today, today.AddDate(0, 0, 1))

	// SQL-looking strings: values are inert, member names and the like
	// refused.
	inert := []string{`x'; DROP TABLE sessions; --`, `' OR '1'='1`, `Email') OR ('1'='1`, `\'; SELECT * FROM api_keys; --`}
	byChannel("SQL-looking values are inert", fs(f("sessions.channel_group", "equals", inert...)), `false`)
	byChannel("SQL-looking pattern values are inert", fs(f("sessions.referrer", "contains", `%' OR 1=1 --`)), `false`)
	for _, q := range []map[string]any{
		{"measures": measures("sessions.count; DROP TABLE sessions")},
		{"measures": measures(`sessions.count") FROM api_keys --`)},
		{"measures": measures("api_keys.count")},
		{"measures": measures("sessions.count"), "dimensions": []string{"sessions.channel_group OR 1=1"}},
		{"measures": measures("sessions.count"), "timezone": "UTC'; DROP TABLE sessions; --"},
		{"measures": measures("sessions.count"), "timeDimensions": []map[string]any{{"dimension": "sessions.started_at", "granularity": "day'); DROP TABLE sessions; --"}}},
		{"measures": measures("sessions.count"), "order": map[string]string{"sessions.count; DROP TABLE sessions": "asc"}},
		{"measures": measures("sessions.count"), "order": map[string]string{"sessions.count": "asc; DROP TABLE sessions"}},
		{"measures": measures("sessions.count"), "filters": fs(f("sessions.channel_group", "equals; DROP TABLE sessions", "x"))},
		{"measures": measures("sessions.count"), "limit": "1; DROP TABLE sessions"},
		{"measures": measures("sessions.count"), "timeDimensions": []map[string]any{{"dimension": "sessions.started_at", "dateRange": "1 day ago'; DROP TABLE sessions; --"}}},
		{"measures": measures("sessions.nope")},
	} {
		b, _ := json.Marshal(q)
		add(cubeCase{name: "refused " + string(b), query: q, bad: true})
	}

	add(cubeCase{name: "meta", kind: "meta"})
	add(cubeCase{name: "sql", kind: "sql",
		query: map[string]any{"measures": measures("sessions.count"), "filters": fs(f("sessions.channel_group", "equals", inert[0]))}})
	return cases
}

// parseLocal reads a date ("2006-01-02") or a local time, as UTC; end
// dates stand for their last millisecond.
func parseLocal(s string, end bool) time.Time {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if end {
			return t.AddDate(0, 0, 1).Add(-time.Millisecond)
		}
		return t
	}
	t, err := time.Parse("2006-01-02T15:04:05", s)
	if err != nil {
		panic(err)
	}
	if end {
		return t.Add(time.Second - time.Millisecond)
	}
	return t
}

// cubeResult is what query.mjs printed for a case.
type cubeResult struct {
	TablePivot []map[string]any `json:"tablePivot"`
	ChartPivot []map[string]any `json:"chartPivot"`
	Total      any              `json:"total"`
	Cubes      []string         `json:"cubes"`
	SQL        string           `json:"sql"`
	Params     []any            `json:"params"`
	Error      string           `json:"error"`
	Status     *int             `json:"status"`
}

// runCubeClient runs test/cube-client/query.mjs for the cases with token.
func runCubeClient(t *testing.T, base, token string, cases []cubeCase) map[string]cubeResult {
	t.Helper()
	type jsCase struct {
		Name  string         `json:"name"`
		Kind  string         `json:"kind,omitempty"`
		Query map[string]any `json:"query,omitempty"`
	}
	var list []jsCase
	for _, c := range cases {
		list = append(list, jsCase{c.name, c.kind, c.query})
	}
	b, err := json.Marshal(list)
	testenv.Must(t, err, "encode cases")
	path := filepath.Join(t.TempDir(), "cases.json")
	testenv.Must(t, os.WriteFile(path, b, 0o600), "write cases")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "query.mjs")
	cmd.Dir = "../cube-client"
	cmd.Env = append(os.Environ(), "EDDY_URL="+base, "EDDY_CUBE_TOKEN="+token, "EDDY_CUBE_CASES="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node query.mjs: %v\nstderr: %s", err, stderr.String())
	}
	out := map[string]cubeResult{}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("query.mjs printed %.2000s: %v", stdout.String(), err)
	}
	return out
}

// checkCubeCase compares what the client made of a case with the numbers
// the case's SQL computes over workspace ws's rows.
func checkCubeCase(t *testing.T, conn *pgx.Conn, ws string, own bool, c cubeCase, got cubeResult) {
	t.Helper()
	ctx := context.Background()
	switch {
	case c.bad || (c.ownCube && !own):
		if got.Status == nil || *got.Status != http.StatusBadRequest || got.Error == "" {
			t.Errorf("got %+v, want a 400 with a message", got)
		}
		return
	case got.Error != "":
		t.Fatalf("the client failed: %s (status %v)", got.Error, ptrInt(got.Status))
	case c.kind == "meta":
		want := []string{"events", "orders", "page_views", "profiles", "sessions"}
		if own {
			want = append(want, "extras")
			sort.Strings(want)
		}
		if strings.Join(got.Cubes, ",") != strings.Join(want, ",") {
			t.Errorf("meta cubes %v, want %v", got.Cubes, want)
		}
		return
	case c.kind == "sql":
		if strings.Contains(got.SQL, "DROP TABLE") || !strings.Contains(fmt.Sprint(got.Params), "DROP TABLE") {
			t.Errorf("the filter value is not a parameter: sql %q, params %v", got.SQL, got.Params)
		}
		return
	}

	rows, err := conn.Query(ctx, `SELECT to_jsonb(x)::text FROM (`+c.want+`) x`, ws)
	testenv.Must(t, err, "expected rows")
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	testenv.Must(t, err, "expected rows")
	var want []map[string]any
	for _, s := range texts {
		var m map[string]any
		testenv.Must(t, json.Unmarshal([]byte(s), &m), "decode expected row")
		want = append(want, m)
	}
	measures, _ := c.query["measures"].([]string)
	gotTable := got.TablePivot
	if c.chart != nil {
		// The client fills the missing buckets of a time series in
		// tablePivot() too: the chartPivot check below covers them.
		gotTable = nil
		for _, r := range got.TablePivot {
			if v, ok := r[c.chart.measure]; ok && norm(v) != "0" {
				gotTable = append(gotTable, r)
			}
		}
	}
	wantRows, gotRows := normRows(want, measures), normRows(gotTable, measures)
	if !c.ordered {
		sort.Strings(wantRows)
		sort.Strings(gotRows)
	}
	if strings.Join(gotRows, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("tablePivot():\n%s\nwant:\n%s", strings.Join(gotRows, "\n"), strings.Join(wantRows, "\n"))
	}
	if len(want) == 0 && own && !strings.Contains(c.name, "inert") {
		t.Errorf("the case's SQL finds no row: a weak case")
	}

	if c.total != "" {
		var total int64
		testenv.Must(t, conn.QueryRow(ctx, c.total, ws).Scan(&total), "expected total")
		if norm(got.Total) != norm(float64(total)) {
			t.Errorf("total %v, want %d", got.Total, total)
		}
	}
	if c.chart != nil {
		byX := map[string]string{}
		for _, r := range want {
			for k, v := range r {
				if strings.HasPrefix(k, "sessions.started_at.") {
					byX[v.(string)] = norm(r[c.chart.measure])
				}
			}
		}
		var wantChart, gotChart []string
		for _, x := range timeSeries(c.chart.granularity, c.chart.from, c.chart.to) {
			v, ok := byX[x]
			if !ok {
				v = "0"
			}
			wantChart = append(wantChart, x+" "+v)
		}
		for _, r := range got.ChartPivot {
			v := r[c.chart.measure]
			if v == nil {
				v = 0.0 // an empty result's series carries no measure
			}
			gotChart = append(gotChart, fmt.Sprint(r["x"])+" "+norm(v))
		}
		if strings.Join(gotChart, "\n") != strings.Join(wantChart, "\n") {
			t.Errorf("chartPivot() (%d points):\n%s\nwant (%d points):\n%s", len(gotChart), clip(gotChart), len(wantChart), clip(wantChart))
		}
	}
}

// timeSeries is every bucket of a granularity from from to to, as Cube's
// client fills a chart (weeks start on Monday).
func timeSeries(gran string, from, to time.Time) []string {
	start := from
	switch gran {
	case "second":
		start = from.Truncate(time.Second)
	case "minute":
		start = from.Truncate(time.Minute)
	case "hour":
		start = from.Truncate(time.Hour)
	case "day":
		start = time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	case "week":
		d := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
		start = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case "month":
		start = time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	case "quarter":
		start = time.Date(from.Year(), (from.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
	case "year":
		start = time.Date(from.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	next := func(t time.Time) time.Time {
		switch gran {
		case "second":
			return t.Add(time.Second)
		case "minute":
			return t.Add(time.Minute)
		case "hour":
			return t.Add(time.Hour)
		case "day":
			return t.AddDate(0, 0, 1)
		case "week":
			return t.AddDate(0, 0, 7)
		case "month":
			return t.AddDate(0, 1, 0)
		case "quarter":
			return t.AddDate(0, 3, 0)
		}
		return t.AddDate(1, 0, 0)
	}
	var out []string
	for t := start; !t.After(to); t = next(t) {
		out = append(out, t.Format("2006-01-02T15:04:05.000"))
	}
	return out
}

// normRows writes each row as its sorted "key=value" pairs. A measure
// without a value is 0, as the client's pivot makes it.
func normRows(rows []map[string]any, measures []string) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		var kv []string
		for k, v := range r {
			if v == nil && slices.Contains(measures, k) {
				v = 0.0
			}
			kv = append(kv, k+"="+norm(v))
		}
		sort.Strings(kv)
		out = append(out, strings.Join(kv, " "))
	}
	return out
}

// norm writes a value the way both sides can agree on: numbers (or
// numeric strings) rounded to 4 decimals, the rest as text.
func norm(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(math.Round(x*1e4)/1e4, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return norm(f)
		}
		return x
	}
	return fmt.Sprint(v)
}

func clip(lines []string) string {
	if len(lines) > 40 {
		lines = append(lines[:40:40], "…")
	}
	return strings.Join(lines, "\n")
}

func ptrInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
