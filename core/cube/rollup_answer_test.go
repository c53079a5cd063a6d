package cube

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/cubes"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// insertEvents stores n events through the store's own insert (the path
// the rollup's triggers see in production), spread over November 2026.
func insertEvents(t *testing.T, st *store.Store, rng *rand.Rand, wss []string, n, from int) {
	t.Helper()
	types := []string{"page", "track", "identify"}
	names := []string{"Product Viewed", "Order Completed", "Signed Up"}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	events := make([]store.Event, n)
	for i := range events {
		ts := base.Add(time.Duration(rng.IntN(29*24*60)) * time.Minute)
		e := store.Event{WorkspaceID: wss[rng.IntN(len(wss))], MessageID: fmt.Sprintf("m-%d", from+i), Type: types[rng.IntN(len(types))],
			AnonymousID: fmt.Sprintf("a-%d", rng.IntN(50)), Timestamp: ts, ReceivedAt: ts}
		if e.Type == "track" {
			e.Event = names[rng.IntN(len(names))]
		}
		events[i] = e
	}
	_, err := st.InsertEvents(context.Background(), events)
	testenv.Must(t, err, "insert events")
}

// runPlan runs a plan as the API does (store.InAnalytics: read-only, as
// the analytics role, under the workspace's row-level security) and
// returns its rows as JSON.
func runPlan(t *testing.T, st *store.Store, ws string, p *Plan) string {
	t.Helper()
	var out string
	err := st.InAnalytics(context.Background(), ws, 0, func(tx pgx.Tx) error {
		data, total, err := Run(context.Background(), tx, p)
		if err != nil {
			return err
		}
		b, err := json.Marshal(struct {
			Data  []map[string]any
			Total *int64
		}{data, total})
		out = string(b)
		return err
	})
	testenv.Must(t, err, "run %s", p.SQL)
	return out
}

// The shipped rollups answer exactly what the tables answer, for the
// queries they can answer (checked to be answered from them), before and
// after new rows arrive and old ones change or go; queries they cannot
// answer exactly are answered from the tables.
func TestRollupsAnswerLikeTheTables(t *testing.T) {
	pool, wss := rollupDB(t)
	ctx := context.Background()
	st, err := store.Open(ctx, pool.Config().ConnString())
	testenv.Must(t, err, "open store")
	t.Cleanup(st.Close)
	rng := rand.New(rand.NewPCG(3, 4))
	var ids []string
	for i := range 400 {
		ids = append(ids, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	upsertSessions(t, pool, rng, wss, ids)
	insertEvents(t, st, rng, wss, 2000, 0)

	m, err := Load(cubes.FS(), ".") // its own: Shipped() is shared by the package's tests
	testenv.Must(t, err, "load the shipped models")
	testenv.Must(t, m.EnsureRollups(ctx, pool), "ensure rollups")
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	november := []string{"2026-11-01", "2026-11-30"}
	queries := []struct {
		name   string
		q      Query
		rollup string // "" when no rollup may answer it
	}{
		{"sessions per day", Query{Measures: []string{"sessions.count"},
			TimeDimensions: []TimeDimension{{Dimension: "sessions.started_at", Granularity: "day", DateRange: november}}}, "sessions.hourly"},
		{"revenue by channel per week", Query{Measures: []string{"sessions.count", "sessions.revenue", "sessions.orders_count"}, Dimensions: []string{"sessions.channel_group"},
			TimeDimensions: []TimeDimension{{Dimension: "sessions.started_at", Granularity: "week", DateRange: november}}}, "sessions.hourly"},
		{"conversion rate by channel", Query{Measures: []string{"sessions.conversion_rate"}, Dimensions: []string{"sessions.channel_group"},
			TimeDimensions: []TimeDimension{{Dimension: "sessions.started_at", DateRange: "last 30 days"}}}, "sessions.hourly"},
		{"filtered by channel, in Paris, monthly", Query{Measures: []string{"sessions.count", "sessions.revenue"}, Timezone: "Europe/Paris",
			Filters:        []Filter{{Member: "sessions.channel_group", Operator: "notEquals", Values: []string{"Direct"}}},
			TimeDimensions: []TimeDimension{{Dimension: "sessions.started_at", Granularity: "month", DateRange: november}}}, "sessions.hourly"},
		{"contains, ordered, limited, total", Query{Measures: []string{"sessions.count"}, Dimensions: []string{"sessions.channel_group"},
			Filters: []Filter{{Member: "sessions.channel_group", Operator: "contains", Values: []string{"search"}}},
			Order:   []OrderBy{{Member: "sessions.count", Desc: true}}, Limit: ptr(1), Total: true}, "sessions.hourly"},
		{"measure filter", Query{Measures: []string{"sessions.count"}, Dimensions: []string{"sessions.channel_group"},
			Filters: []Filter{{Member: "sessions.count", Operator: "gt", Values: []string{"40"}}}}, "sessions.hourly"},
		{"events per day by type", Query{Measures: []string{"events.count"}, Dimensions: []string{"events.type"},
			TimeDimensions: []TimeDimension{{Dimension: "events.timestamp", Granularity: "day", DateRange: "last month"}}}, "events.hourly"},
		{"events by name, hourly, New York", Query{Measures: []string{"events.count"}, Dimensions: []string{"events.event"}, Timezone: "America/New_York",
			TimeDimensions: []TimeDimension{{Dimension: "events.timestamp", Granularity: "hour", DateRange: []string{"2026-11-10", "2026-11-12"}}}}, "events.hourly"},
		// Not answerable exactly from a rollup:
		{"a member the rollup lacks", Query{Measures: []string{"sessions.count"}, Dimensions: []string{"sessions.country"}}, ""},
		{"minute granularity", Query{Measures: []string{"events.count"},
			TimeDimensions: []TimeDimension{{Dimension: "events.timestamp", Granularity: "minute", DateRange: []string{"2026-11-10", "2026-11-10"}}}}, ""},
		{"a range off the hour", Query{Measures: []string{"events.count"},
			TimeDimensions: []TimeDimension{{Dimension: "events.timestamp", DateRange: []string{"2026-11-10T10:30:00", "2026-11-12"}}}}, ""},
		{"a half-hour timezone", Query{Measures: []string{"events.count"}, Timezone: "Asia/Kolkata",
			TimeDimensions: []TimeDimension{{Dimension: "events.timestamp", Granularity: "day", DateRange: november}}}, ""},
		{"a segment", Query{Measures: []string{"sessions.count"}, Segments: []string{"sessions.converted"}}, ""},
		{"count distinct", Query{Measures: []string{"sessions.visitors"}, Dimensions: []string{"sessions.channel_group"}}, ""},
	}
	compare := func(when string) {
		for _, tc := range queries {
			for _, ws := range wss {
				opts := Options{WorkspaceID: ws, Now: now}
				raw, err := m.Compile(tc.q, opts)
				testenv.Must(t, err, "%s: compile raw", tc.name)
				opts.Rollups = true
				rolled, err := m.Compile(tc.q, opts)
				testenv.Must(t, err, "%s: compile with rollups", tc.name)
				if rolled.Rollup != tc.rollup {
					t.Errorf("%s: answered from %q, want %q", tc.name, rolled.Rollup, tc.rollup)
				}
				want, got := runPlan(t, st, ws, raw), runPlan(t, st, ws, rolled)
				if got != want {
					t.Errorf("%s, %s, workspace %s:\nrollup %.300s\ntables %.300s", when, tc.name, ws, got, want)
				}
				if want == `{"Data":[],"Total":null}` && tc.rollup != "" {
					t.Errorf("%s: %s answers nothing: the comparison is blind", when, tc.name)
				}
			}
		}
	}
	compare("at first")

	// Another model, whose rollups were not made sure of (another
	// database's, say), answers from the tables.
	other, err := Load(cubes.FS(), ".")
	testenv.Must(t, err, "load")
	p, err := other.Compile(queries[0].q, Options{WorkspaceID: wss[0], Now: now, Rollups: true})
	testenv.Must(t, err, "compile")
	if p.Rollup != "" {
		t.Errorf("a model whose rollups were not made sure of answered from %s", p.Rollup)
	}

	// New rows arrive, others change or go.
	var more []string
	for i := 400; i < 700; i++ {
		more = append(more, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	upsertSessions(t, pool, rng, wss, more)
	upsertSessions(t, pool, rng, wss, ids[:150])
	insertEvents(t, st, rng, wss, 1500, 2000)
	_, err = pool.Exec(ctx, `DELETE FROM events WHERE message_id LIKE '%7'`)
	testenv.Must(t, err, "delete events")
	_, err = pool.Exec(ctx, `DELETE FROM sessions WHERE id::text LIKE '%3'`)
	testenv.Must(t, err, "delete sessions")
	compare("after changes")
	_, err = m.CompactRollups(ctx, pool)
	testenv.Must(t, err, "compact")
	compare("after compaction")
}

func ptr[T any](v T) *T { return &v }
