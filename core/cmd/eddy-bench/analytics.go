package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/cube"
	"github.com/eddy-cdp/eddy/core/store"
)

// Phase 6: the semantic layer over 10 million events. A database of its
// own is loaded with one workspace's 30 days of events, sessions and
// orders while the shipped rollups exist (so their triggers keep them up
// to date during the load, as in production), then typical dashboard
// queries are sent to the Cube API of a running Eddy (`--roles api`), each
// many times; the same queries compiled without rollups run on the raw
// tables, and both answers must be equal.

const (
	analyticsDB    = "eddy_bench_cube"
	analyticsAddr  = "127.0.0.1:18093"
	analyticsRuns  = 40 // per query, through the API
	analyticsChunk = 500_000
)

type analyticsQuery struct {
	name   string
	q      cube.Query
	rollup string
	p50    time.Duration
	p95    time.Duration
	raw    time.Duration // one run on the raw tables (median of 3)
	rows   int
	equal  bool
}

type analyticsResult struct {
	events, sessions, orders int64
	load                     time.Duration // loading everything with the rollups' triggers
	firstChunk               time.Duration // the first chunk of events, with them
	firstChunkPlain          time.Duration // the same chunk where there are none
	compacted                int64         // groups the compactor wrote after the load
	compactTook              time.Duration
	rollupRows               int64
	queries                  []analyticsQuery
}

func analyticsQueries() []analyticsQuery {
	last30 := "last 30 days"
	return []analyticsQuery{
		{name: "events per day", q: cube.Query{Measures: []string{"events.count"},
			TimeDimensions: []cube.TimeDimension{{Dimension: "events.timestamp", Granularity: "day", DateRange: last30}}}},
		{name: "events per day by type", q: cube.Query{Measures: []string{"events.count"}, Dimensions: []string{"events.type"},
			TimeDimensions: []cube.TimeDimension{{Dimension: "events.timestamp", Granularity: "day", DateRange: last30}}}},
		{name: "top event names", q: cube.Query{Measures: []string{"events.count"}, Dimensions: []string{"events.event"},
			TimeDimensions: []cube.TimeDimension{{Dimension: "events.timestamp", DateRange: last30}},
			Order:          []cube.OrderBy{{Member: "events.count", Desc: true}}, Limit: ptr(10)}},
		{name: "sessions and revenue per day", q: cube.Query{Measures: []string{"sessions.count", "sessions.revenue"},
			TimeDimensions: []cube.TimeDimension{{Dimension: "sessions.started_at", Granularity: "day", DateRange: last30}}}},
		{name: "sessions, revenue, conversion by channel", q: cube.Query{Measures: []string{"sessions.count", "sessions.revenue", "sessions.conversion_rate"},
			Dimensions:     []string{"sessions.channel_group"},
			TimeDimensions: []cube.TimeDimension{{Dimension: "sessions.started_at", DateRange: last30}}}},
		{name: "sessions per day by channel, Europe/Paris", q: cube.Query{Measures: []string{"sessions.count"}, Dimensions: []string{"sessions.channel_group"},
			Timezone:       "Europe/Paris",
			TimeDimensions: []cube.TimeDimension{{Dimension: "sessions.started_at", Granularity: "day", DateRange: last30}}}},
		{name: "orders and revenue per day", q: cube.Query{Measures: []string{"orders.count", "orders.revenue"},
			TimeDimensions: []cube.TimeDimension{{Dimension: "orders.ts", Granularity: "day", DateRange: last30}}}},
	}
}

func ptr[T any](v T) *T { return &v }

// loadAnalytics fills the database: events (every 30-day minute of the
// workspace, in chunks), sessions and orders, with the rollups in place.
func loadAnalytics(ctx context.Context, pool *pgxpool.Pool, ws string, events int64, r *analyticsResult) error {
	exec := func(sql string, args ...any) error {
		_, err := pool.Exec(ctx, sql, args...)
		return err
	}
	for d := 0; d <= 31; d++ {
		if err := exec(`SELECT eddy_ensure_events_partition((now() - make_interval(days => $1))::date)`, d); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
	}
	const eventsSQL = `INSERT INTO events (workspace_id, received_at, message_id, type, event, anonymous_id, "timestamp", properties)
		SELECT $1::uuid, ts, 'm' || i, (ARRAY['page','track','track','identify'])[1 + i % 4],
		  CASE WHEN i % 4 IN (1, 2) THEN (ARRAY['Product Viewed','Product Added','Checkout Started','Order Completed','Signed Up','Searched'])[1 + (i / 4) % 6] END,
		  'a' || (i % 400000), ts, '{"price": 10}'
		FROM (SELECT i, now() - make_interval(secs => ((i * 7919) % (30 * 86400))) AS ts FROM generate_series($2::bigint, $3::bigint) AS i) AS s`
	start := time.Now()
	for from := int64(0); from < events; from += analyticsChunk {
		to := min(from+analyticsChunk, events) - 1
		chunk := time.Now()
		if err := exec(eventsSQL, ws, from, to); err != nil {
			return fmt.Errorf("load events: %w", err)
		}
		if from == 0 {
			r.firstChunk = time.Since(chunk)
		}
		logf("  events loaded: %d", to+1)
	}
	sessions := events / 10
	if err := exec(`INSERT INTO sessions (workspace_id, id, anonymous_id, started_at, last_event_at, events, page_views,
			channel_group, country, orders_count, revenue, bounced, closed)
		SELECT $1::uuid, gen_random_uuid(), 'a' || (i % 400000), ts, ts + interval '5 minutes', 10, 3,
		  (ARRAY['Direct','Organic Search','Paid Search','Email','Referral','Organic Social','Paid Social','Display'])[1 + i % 8],
		  (ARRAY['FR','DE','US','GB'])[1 + i % 4], CASE WHEN i % 20 = 0 THEN 1 ELSE 0 END, CASE WHEN i % 20 = 0 THEN 49.9 + i % 100 ELSE 0 END,
		  i % 3 = 0, true
		FROM (SELECT i, now() - make_interval(secs => ((i * 104729) % (30 * 86400))) AS ts FROM generate_series(1, $2::bigint) AS i) AS s`, ws, sessions); err != nil {
		return fmt.Errorf("load sessions: %w", err)
	}
	if err := exec(`INSERT INTO orders (workspace_id, order_id, message_id, session_id, anonymous_id, ts, total, currency)
		SELECT workspace_id, 'o-' || id, 'om-' || id, id, anonymous_id, started_at + interval '4 minutes', revenue, 'EUR'
		FROM sessions WHERE workspace_id = $1 AND orders_count > 0`, ws); err != nil {
		return fmt.Errorf("load orders: %w", err)
	}
	r.load = time.Since(start)
	for _, c := range []struct {
		table string
		n     *int64
	}{{"events", &r.events}, {"sessions", &r.sessions}, {"orders", &r.orders}} {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+c.table).Scan(c.n); err != nil {
			return err
		}
	}
	if err := exec(`ANALYZE`); err != nil {
		return err
	}
	return nil
}

// countRollupRows counts the rows of every rollup table.
func countRollupRows(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE tablename LIKE 'cube\_rollup\_%'`)
	if err != nil {
		return 0, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tables {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// loadWithoutRollups measures one chunk of events on a table without
// rollup triggers, for the triggers' cost.
func loadWithoutRollups(ctx context.Context, dbBase string) (time.Duration, error) {
	const name = "eddy_bench_cube_plain"
	dbURL, err := withDatabase(dbBase, name)
	if err != nil {
		return 0, err
	}
	if err := recreateDatabase(ctx, dbBase, name); err != nil {
		return 0, err
	}
	defer dropDatabase(dbBase, name)
	if err := store.Migrate(ctx, dbURL); err != nil {
		return 0, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	var ws string
	if err := pool.QueryRow(ctx, `INSERT INTO workspaces (slug, organization_id) SELECT 'plain', id FROM organizations WHERE slug = 'default' RETURNING id::text`).Scan(&ws); err != nil {
		return 0, err
	}
	var r analyticsResult
	if err := loadAnalytics(ctx, pool, ws, analyticsChunk, &r); err != nil {
		return 0, err
	}
	return r.firstChunk, nil
}

func analyticsBenchmarks(ctx context.Context, binary, dbBase, redisURL string, events int64) (analyticsResult, error) {
	var r analyticsResult
	dbURL, err := withDatabase(dbBase, analyticsDB)
	if err != nil {
		return r, err
	}
	if err := recreateDatabase(ctx, dbBase, analyticsDB); err != nil {
		return r, err
	}
	defer dropDatabase(dbBase, analyticsDB)
	if err := store.Migrate(ctx, dbURL); err != nil {
		return r, err
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return r, err
	}
	defer st.Close()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	org, err := st.OrganizationBySlug(ctx, store.DefaultOrganization)
	if err != nil {
		return r, err
	}
	who := store.Change{Actor: store.Actor{Type: "cli", Label: "eddy-bench"}}
	w, err := st.CreateWorkspace(ctx, who, org, "shop", "Shop", store.DefaultSettings())
	if err != nil {
		return r, err
	}
	model := cube.Shipped()
	if err := model.EnsureRollups(ctx, pool); err != nil {
		return r, err
	}
	logf("  loading %d events (and sessions, orders) with the rollups' triggers", events)
	if err := loadAnalytics(ctx, pool, w.ID, events, &r); err != nil {
		return r, err
	}
	// The workers compact the rollups' deltas every cube.CompactEvery; the
	// queries meet them compacted, plus at most that much of deltas.
	start := time.Now()
	if r.compacted, err = model.CompactRollups(ctx, pool); err != nil {
		return r, err
	}
	r.compactTook = time.Since(start)
	if r.rollupRows, err = countRollupRows(ctx, pool); err != nil {
		return r, err
	}
	if r.firstChunkPlain, err = loadWithoutRollups(ctx, dbBase); err != nil {
		return r, err
	}
	key := auth.NewSecret(auth.APIKeyPrefix)
	if _, err := st.CreateAPIKey(ctx, who, w, "bench", []string{auth.ScopeRead}, store.HashSecret(key), auth.DisplayPrefix(key)); err != nil {
		return r, err
	}

	dir, err := os.MkdirTemp("", "eddy-bench-cube-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "api.yaml")
	if err := os.WriteFile(cfg, []byte("version: 1\nqueue:\n  prefix: \"eddybench:cube\"\n"), 0o600); err != nil {
		return r, err
	}
	p, err := startEddy(binary, cfg, dbURL, redisURL, analyticsAddr, "api", "")
	if err != nil {
		return r, err
	}
	defer p.stop()

	client := &http.Client{Timeout: time.Minute}
	load := func(q cube.Query) (json.RawMessage, time.Duration, error) {
		b, err := wireQuery(q)
		if err != nil {
			return nil, 0, err
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+analyticsAddr+"/cubejs-api/v1/load?queryType=multi&query="+url.QueryEscape(string(b)), nil)
		req.Header.Set("Authorization", key)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		took := time.Since(start)
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("load %s: %d %s", b, resp.StatusCode, body)
		}
		var out struct {
			Results []struct {
				Data json.RawMessage `json:"data"`
			} `json:"results"`
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Results) != 1 {
			return nil, 0, fmt.Errorf("load %s: %v %s", b, err, body)
		}
		return out.Results[0].Data, took, nil
	}
	for _, aq := range analyticsQueries() {
		plan, err := model.Compile(aq.q, cube.Options{WorkspaceID: w.ID, Rollups: true})
		if err != nil {
			return r, err
		}
		aq.rollup = plan.Rollup
		var took []time.Duration
		var data json.RawMessage
		for i := 0; i < analyticsRuns+2; i++ {
			d, t, err := load(aq.q)
			if err != nil {
				return r, err
			}
			if i >= 2 { // warm
				took = append(took, t)
			}
			data = d
		}
		slices.Sort(took)
		aq.p50, aq.p95 = took[len(took)/2], took[len(took)*95/100]

		raw, err := model.Compile(aq.q, cube.Options{WorkspaceID: w.ID})
		if err != nil {
			return r, err
		}
		var rawData []map[string]any
		var rawTook []time.Duration
		for range 3 {
			start := time.Now()
			err := st.InAnalytics(ctx, w.ID, 5*time.Minute, func(tx pgx.Tx) error {
				var err error
				rawData, _, err = cube.Run(ctx, tx, raw)
				return err
			})
			if err != nil {
				return r, err
			}
			rawTook = append(rawTook, time.Since(start))
		}
		slices.Sort(rawTook)
		aq.raw = rawTook[1]
		got, err := rowSet(data)
		if err != nil {
			return r, err
		}
		rawJSON, err := json.Marshal(rawData)
		if err != nil {
			return r, err
		}
		want, err := rowSet(rawJSON)
		if err != nil {
			return r, err
		}
		// As sets of rows: rows the query's order leaves tied may come in
		// any order.
		aq.rows, aq.equal = len(got), slices.Equal(got, want) && len(got) > 0
		logf("  %s: p50 %s p95 %s from %q; raw tables %s; %d rows, equal %v", aq.name, aq.p50, aq.p95, aq.rollup, aq.raw, aq.rows, aq.equal)
		r.queries = append(r.queries, aq)
	}
	return r, nil
}

func renderAnalytics(w func(string, ...any), r analyticsResult) {
	w("## 6. Analytics (semantic layer)\n\n")
	w("One workspace with %d events over the last 30 days, %d sessions and %d orders, loaded while the shipped rollups exist: their statement-level triggers keep them up to date during the load (%s in all), appending deltas that the compactor (which the workers run every 10 s) then folded into %d groups in %s (%d rollup rows in all after). Each query is sent %d times (after 2 warm-up runs) to `GET /cubejs-api/v1/load` of `eddy serve --roles api` with an API key; latency is the HTTP round trip. The same query compiled without rollups runs on the raw tables (median of 3, in process), and both answers must be equal.\n\n",
		r.events, r.sessions, r.orders, r.load.Round(time.Second), r.compacted, r.compactTook.Round(time.Millisecond), r.rollupRows, analyticsRuns)
	w("| query | answered from | p50 | p95 | raw tables | rows | equal to the raw tables |\n|---|---|---|---|---|---|---|\n")
	for _, q := range r.queries {
		from := q.rollup
		if from == "" {
			from = "raw tables"
		}
		w("| %s | %s | %s | **%s** | %s | %d | %v |\n", q.name, from, q.p50.Round(100*time.Microsecond), q.p95.Round(100*time.Microsecond), q.raw.Round(time.Millisecond), q.rows, q.equal)
	}
	w("\nCost of keeping the rollups: the first %d events took %s to insert (one statement) with the rollups' triggers, %s in a database without rollups.\n\n",
		analyticsChunk, r.firstChunk.Round(time.Millisecond), r.firstChunkPlain.Round(time.Millisecond))
}

// analyticsP95 is the worst p95 of the queries answered from rollups, and
// whether every answer equalled the raw tables'.
func (r analyticsResult) worst() (p95 time.Duration, allEqual bool) {
	allEqual = len(r.queries) > 0
	for _, q := range r.queries {
		p95 = max(p95, q.p95)
		allEqual = allEqual && q.equal
	}
	return p95, allEqual
}

// wireQuery is a query as the Cube client sends it (order as pairs).
func wireQuery(q cube.Query) ([]byte, error) {
	b, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(q.Order) > 0 {
		pairs := make([][2]string, len(q.Order))
		for i, o := range q.Order {
			pairs[i] = [2]string{o.Member, map[bool]string{false: "asc", true: "desc"}[o.Desc]}
		}
		m["order"] = pairs
	}
	return json.Marshal(m)
}

// rowSet is a result's rows, each as canonical JSON, sorted.
func rowSet(data []byte) ([]string, error) {
	var rows []map[string]any
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r) // map keys sorted
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out, nil
}
