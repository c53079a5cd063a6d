package cube

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// newTestModel builds a model from cubes (NewModel's lookup only).
func newTestModel(cubes ...*Cube) *Model {
	m := &Model{Cubes: cubes, byName: map[string]*Cube{}}
	for _, c := range cubes {
		m.byName[c.Name] = c
	}
	return m
}

func testModel() *Model {
	sessions := &Cube{Name: "sessions", SQLTable: "sessions",
		Measures: []*Measure{
			{Name: "count", Type: Count},
			{Name: "revenue", Type: Sum, SQL: "{CUBE}.revenue"},
			{Name: "avg_revenue", Type: Avg, SQL: "{CUBE}.revenue"},
			{Name: "converted_count", Type: Count, Filters: []string{"{CUBE}.converted"}},
			{Name: "unique_countries", Type: CountDistinct, SQL: "{country}"},
			{Name: "revenue_per_session", Type: Number, SQL: "{revenue} / NULLIF({count}, 0)"},
		},
		Dimensions: []*Dimension{
			{Name: "id", Type: String, SQL: "{CUBE}.id", PrimaryKey: true},
			{Name: "channel", Type: String, SQL: "{CUBE}.channel_group"},
			{Name: "country", Type: String, SQL: "{CUBE}.country"},
			{Name: "started_at", Type: Time, SQL: "{CUBE}.started_at"},
			{Name: "bounced", Type: Boolean, SQL: "{CUBE}.bounced"},
			{Name: "page_views", Type: NumberD, SQL: "{CUBE}.page_views"},
		},
		Segments: []*Segment{{Name: "paid", SQL: "{CUBE}.channel_group = 'Paid'"}},
		Joins: []*Join{
			{Name: "page_views", Relationship: OneToMany, SQL: "{CUBE}.id = {page_views}.session_id"},
			{Name: "orders", Relationship: OneToMany, SQL: "{CUBE}.id = {orders}.session_id"},
			{Name: "session_facts", Relationship: OneToOne, SQL: "{CUBE}.id = {session_facts}.id"},
		},
	}
	pageViews := &Cube{Name: "page_views", SQLTable: "page_views",
		Measures:   []*Measure{{Name: "count", Type: Count}},
		Dimensions: []*Dimension{{Name: "id", Type: String, SQL: "{CUBE}.message_id", PrimaryKey: true}, {Name: "url", Type: String, SQL: "{CUBE}.url"}},
	}
	orders := &Cube{Name: "orders", SQLTable: "orders",
		Measures:   []*Measure{{Name: "count", Type: Count}, {Name: "total", Type: Sum, SQL: "{CUBE}.total"}},
		Dimensions: []*Dimension{{Name: "id", Type: String, SQL: "{CUBE}.order_id", PrimaryKey: true}, {Name: "ts", Type: Time, SQL: "{CUBE}.ts"}},
	}
	// An sql cube: row-level security scopes it.
	facts := &Cube{Name: "session_facts", SQL: "SELECT id, events * 10 AS score FROM sessions",
		Measures:   []*Measure{{Name: "score", Type: Sum, SQL: "{CUBE}.score"}},
		Dimensions: []*Dimension{{Name: "id", Type: String, SQL: "{CUBE}.id", PrimaryKey: true}},
	}
	return newTestModel(sessions, pageViews, orders, facts)
}

type fixture struct {
	st   *store.Store
	a, b string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	url := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, url), "migrate")
	st, err := store.Open(ctx, url)
	testenv.Must(t, err, "open store")
	t.Cleanup(st.Close)
	f := &fixture{st: st}
	ws := func(slug string) string {
		var id string
		testenv.Must(t, st.Pool().QueryRow(ctx, `INSERT INTO workspaces (slug, name, organization_id)
			VALUES ($1, $1, (SELECT id FROM organizations WHERE slug = 'default')) RETURNING id::text`, slug).Scan(&id), "workspace")
		return id
	}
	f.a, f.b = ws("a"), ws("b")
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := st.Pool().Exec(ctx, sql, args...)
		testenv.Must(t, err, "fixture %s", sql)
	}
	// id, started_at, channel, country, revenue, orders, bounced, page views, events
	type sess struct {
		ws, id, at, channel string
		country             any
		revenue             string
		orders              int
		bounced             bool
		pvs, events         int
	}
	for _, s := range []sess{
		{f.a, "00000000-0000-7000-8000-000000000001", "2026-03-02T10:00:00Z", "Organic", "FR", "0", 0, true, 1, 1},
		{f.a, "00000000-0000-7000-8000-000000000002", "2026-03-02T23:30:00Z", "Paid", "US", "100", 2, false, 3, 5},
		{f.a, "00000000-0000-7000-8000-000000000003", "2026-03-05T12:00:00Z", "Paid", nil, "50", 1, false, 2, 4},
		{f.a, "00000000-0000-7000-8000-000000000004", "2026-03-10T08:00:00Z", "Direct", "DE", "0", 0, true, 0, 1},
		{f.b, "00000000-0000-7000-8000-000000000005", "2026-03-02T10:00:00Z", "Paid", "US", "1000", 1, false, 2, 3},
	} {
		exec(`INSERT INTO sessions (workspace_id, id, anonymous_id, started_at, last_event_at, events, page_views,
			channel_group, country, orders_count, revenue, bounced, closed)
			VALUES ($1, $2, 'anon', $3, $3, $4, $5, $6, $7, $8, $9, $10, true)`,
			s.ws, s.id, s.at, s.events, s.pvs, s.channel, s.country, s.orders, s.revenue, s.bounced)
	}
	pv := func(ws, msg, sess, url string) {
		exec(`INSERT INTO page_views (workspace_id, message_id, session_id, anonymous_id, ts, url)
			VALUES ($1, $2, $3, 'anon', '2026-03-02T10:00:00Z', $4)`, ws, msg, sess, url)
	}
	pv(f.a, "p1", "00000000-0000-7000-8000-000000000001", "/home")
	pv(f.a, "p2", "00000000-0000-7000-8000-000000000002", "/home")
	pv(f.a, "p3", "00000000-0000-7000-8000-000000000002", "/cart")
	pv(f.a, "p4", "00000000-0000-7000-8000-000000000002", "/checkout")
	pv(f.a, "p5", "00000000-0000-7000-8000-000000000003", "/home")
	pv(f.a, "p6", "00000000-0000-7000-8000-000000000003", "/a_b%")
	pv(f.b, "p7", "00000000-0000-7000-8000-000000000005", "/home")
	pv(f.b, "p8", "00000000-0000-7000-8000-000000000005", "/cart")
	order := func(ws, id, sess, total string) {
		exec(`INSERT INTO orders (workspace_id, order_id, message_id, session_id, anonymous_id, ts, total)
			VALUES ($1, $2, $2, $3, 'anon', '2026-03-02T10:00:00Z', $4)`, ws, id, sess, total)
	}
	order(f.a, "o1", "00000000-0000-7000-8000-000000000002", "60")
	order(f.a, "o2", "00000000-0000-7000-8000-000000000002", "40")
	order(f.a, "o3", "00000000-0000-7000-8000-000000000003", "50")
	order(f.b, "o9", "00000000-0000-7000-8000-000000000005", "1000")
	return f
}

var testNow = time.Date(2026, 3, 11, 15, 0, 0, 0, time.UTC)

// run parses, compiles and runs a query as the API does: in a workspace
// transaction under row-level security.
func (f *fixture) run(t *testing.T, m *Model, ws, query string) ([]map[string]any, *int64, error) {
	t.Helper()
	q, err := ParseQuery([]byte(query))
	if err != nil {
		return nil, nil, err
	}
	plan, err := m.Compile(q, Options{WorkspaceID: ws, Now: testNow})
	if err != nil {
		return nil, nil, err
	}
	var data []map[string]any
	var total *int64
	err = f.st.InWorkspace(context.Background(), ws, func(tx pgx.Tx) error {
		var err error
		data, total, err = Run(context.Background(), tx, plan)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w\nSQL: %s\nargs: %v", err, plan.SQL, plan.Args)
	}
	return data, total, nil
}

// sameData compares rows, numbers by value ("150.000000" is 150).
func sameData(got, want []map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return false
		}
		for k, w := range want[i] {
			g, ok := got[i][k]
			if !ok {
				return false
			}
			gs, gok := g.(string)
			ws, wok := w.(string)
			if gok && wok {
				gf, err1 := strconv.ParseFloat(gs, 64)
				wf, err2 := strconv.ParseFloat(ws, 64)
				if err1 == nil && err2 == nil {
					if gf-wf > 1e-9 || wf-gf > 1e-9 {
						return false
					}
					continue
				}
			}
			if g != w {
				return false
			}
		}
	}
	return true
}

func rows(kv ...any) []map[string]any {
	// rows("k", v, "k2", v2, nil, "k", v…): nil separates rows.
	out := []map[string]any{{}}
	for i := 0; i < len(kv); {
		if kv[i] == nil {
			out = append(out, map[string]any{})
			i++
			continue
		}
		out[len(out)-1][kv[i].(string)] = kv[i+1]
		i += 2
	}
	return out
}

func count(n string) []map[string]any { return rows("sessions.count", n) }

func TestCompileAndRun(t *testing.T) {
	f := newFixture(t)
	m := testModel()
	filter := func(member, op string, values ...string) string {
		vs, _ := json.Marshal(values)
		if len(values) == 0 {
			return fmt.Sprintf(`{"measures":["sessions.count"],"filters":[{"member":%q,"operator":%q}]}`, member, op)
		}
		return fmt.Sprintf(`{"measures":["sessions.count"],"filters":[{"member":%q,"operator":%q,"values":%s}]}`, member, op, vs)
	}
	cases := []struct {
		name  string
		query string
		want  []map[string]any
	}{
		{"count", `{"measures":["sessions.count"]}`, count("4")},
		{"sum avg count_distinct filtered count", `{"measures":["sessions.revenue","sessions.avg_revenue","sessions.unique_countries","sessions.converted_count"]}`,
			rows("sessions.revenue", "150", "sessions.avg_revenue", "37.5", "sessions.unique_countries", "3", "sessions.converted_count", "2")},
		{"number measure", `{"measures":["sessions.revenue_per_session"]}`, rows("sessions.revenue_per_session", "37.5")},
		{"by dimension ordered", `{"measures":["sessions.count"],"dimensions":["sessions.channel"],"order":[["sessions.count","desc"],["sessions.channel","asc"]]}`,
			rows("sessions.channel", "Paid", "sessions.count", "2", nil, "sessions.channel", "Direct", "sessions.count", "1", nil, "sessions.channel", "Organic", "sessions.count", "1")},
		{"boolean and number dimensions", `{"measures":["sessions.count"],"dimensions":["sessions.bounced"],"order":{"sessions.bounced":"asc"}}`,
			rows("sessions.bounced", false, "sessions.count", "2", nil, "sessions.bounced", true, "sessions.count", "2")},
		{"null dimension", `{"measures":["sessions.count"],"dimensions":["sessions.country"],"order":{"sessions.country":"asc"}}`,
			rows("sessions.country", "DE", "sessions.count", "1", nil, "sessions.country", "FR", "sessions.count", "1", nil, "sessions.country", "US", "sessions.count", "1", nil, "sessions.country", nil, "sessions.count", "1")},
		{"dimensions only", `{"dimensions":["sessions.channel"]}`,
			rows("sessions.channel", "Direct", nil, "sessions.channel", "Organic", nil, "sessions.channel", "Paid")},

		// Joins.
		{"one_to_many fan-out: session revenue not multiplied by page views", `{"measures":["sessions.revenue","sessions.count","page_views.count"]}`,
			rows("sessions.revenue", "150", "sessions.count", "4", "page_views.count", "6")},
		{"one_to_many fan-out by dimension", `{"measures":["sessions.revenue","page_views.count"],"dimensions":["sessions.channel"],"order":{"sessions.channel":"asc"}}`,
			rows("sessions.channel", "Direct", "sessions.revenue", "0", "page_views.count", "0", nil,
				"sessions.channel", "Organic", "sessions.revenue", "0", "page_views.count", "1", nil,
				"sessions.channel", "Paid", "sessions.revenue", "150", "page_views.count", "5")},
		{"fan-out by the many side's dimension", `{"measures":["sessions.revenue","sessions.count"],"dimensions":["page_views.url"],"order":{"page_views.url":"asc"}}`,
			rows("page_views.url", "/a_b%", "sessions.revenue", "50", "sessions.count", "1", nil,
				"page_views.url", "/cart", "sessions.revenue", "100", "sessions.count", "1", nil,
				"page_views.url", "/checkout", "sessions.revenue", "100", "sessions.count", "1", nil,
				"page_views.url", "/home", "sessions.revenue", "150", "sessions.count", "3", nil,
				"page_views.url", nil, "sessions.revenue", "0", "sessions.count", "1")},
		{"many_to_one from orders: sessions counted once", `{"measures":["orders.total","sessions.count","sessions.revenue"],"dimensions":["sessions.channel"]}`,
			rows("sessions.channel", "Paid", "orders.total", "150", "sessions.count", "2", "sessions.revenue", "150")},
		{"one_to_one sql cube", `{"measures":["sessions.count","session_facts.score"]}`,
			rows("sessions.count", "4", "session_facts.score", "110")},
		{"two fanned-out cubes", `{"measures":["sessions.count","page_views.count","orders.count","orders.total"]}`,
			rows("sessions.count", "4", "page_views.count", "6", "orders.count", "3", "orders.total", "150")},

		// Time dimensions.
		{"day in UTC", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"day","dateRange":["2026-03-01","2026-03-05"]}]}`,
			rows("sessions.started_at.day", "2026-03-02T00:00:00.000", "sessions.started_at", "2026-03-02T00:00:00.000", "sessions.count", "2", nil,
				"sessions.started_at.day", "2026-03-05T00:00:00.000", "sessions.started_at", "2026-03-05T00:00:00.000", "sessions.count", "1")},
		{"day in Paris", `{"measures":["sessions.count"],"timezone":"Europe/Paris","timeDimensions":[{"dimension":"sessions.started_at","granularity":"day","dateRange":["2026-03-01","2026-03-05"]}]}`,
			rows("sessions.started_at.day", "2026-03-02T00:00:00.000", "sessions.started_at", "2026-03-02T00:00:00.000", "sessions.count", "1", nil,
				"sessions.started_at.day", "2026-03-03T00:00:00.000", "sessions.started_at", "2026-03-03T00:00:00.000", "sessions.count", "1", nil,
				"sessions.started_at.day", "2026-03-05T00:00:00.000", "sessions.started_at", "2026-03-05T00:00:00.000", "sessions.count", "1")},
		{"week starts Monday", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"week"}]}`,
			rows("sessions.started_at.week", "2026-03-02T00:00:00.000", "sessions.started_at", "2026-03-02T00:00:00.000", "sessions.count", "3", nil,
				"sessions.started_at.week", "2026-03-09T00:00:00.000", "sessions.started_at", "2026-03-09T00:00:00.000", "sessions.count", "1")},
		{"month", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"month"}]}`,
			rows("sessions.started_at.month", "2026-03-01T00:00:00.000", "sessions.started_at", "2026-03-01T00:00:00.000", "sessions.count", "4")},
		{"quarter", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"quarter"}]}`,
			rows("sessions.started_at.quarter", "2026-01-01T00:00:00.000", "sessions.started_at", "2026-01-01T00:00:00.000", "sessions.count", "4")},
		{"year", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"year"}]}`,
			rows("sessions.started_at.year", "2026-01-01T00:00:00.000", "sessions.started_at", "2026-01-01T00:00:00.000", "sessions.count", "4")},
		{"hour minute second", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"hour","dateRange":"2026-03-02"},{"dimension":"sessions.started_at","granularity":"minute","dateRange":"2026-03-02"},{"dimension":"sessions.started_at","granularity":"second","dateRange":"2026-03-02"}]}`,
			rows("sessions.started_at.hour", "2026-03-02T10:00:00.000", "sessions.started_at.minute", "2026-03-02T10:00:00.000", "sessions.started_at.second", "2026-03-02T10:00:00.000", "sessions.started_at", "2026-03-02T10:00:00.000", "sessions.count", "1", nil,
				"sessions.started_at.hour", "2026-03-02T23:00:00.000", "sessions.started_at.minute", "2026-03-02T23:30:00.000", "sessions.started_at.second", "2026-03-02T23:30:00.000", "sessions.started_at", "2026-03-02T23:00:00.000", "sessions.count", "1")},
		{"relative range last 7 days", `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","dateRange":"last 7 days"}]}`, count("2")},
		{"time dimension as a plain dimension, in the timezone", `{"dimensions":["sessions.started_at"],"timezone":"America/New_York","filters":[{"member":"sessions.channel","operator":"equals","values":["Organic"]}]}`,
			rows("sessions.started_at", "2026-03-02T05:00:00.000")},

		// Filters.
		{"equals", filter("sessions.channel", "equals", "Paid"), count("2")},
		{"equals many", filter("sessions.channel", "equals", "Paid", "Direct"), count("3")},
		{"notEquals keeps NULLs", filter("sessions.country", "notEquals", "US"), count("3")},
		{"notEquals many", filter("sessions.country", "notEquals", "US", "FR"), count("2")},
		{"contains is case-insensitive", filter("sessions.channel", "contains", "AID"), count("2")},
		{"contains many", filter("sessions.channel", "contains", "aid", "rect"), count("3")},
		{"notContains keeps NULLs", filter("sessions.country", "notContains", "U"), count("3")},
		{"startsWith", filter("sessions.channel", "startsWith", "or"), count("1")},
		{"notStartsWith", filter("sessions.channel", "notStartsWith", "Or"), count("3")},
		{"endsWith", filter("sessions.channel", "endsWith", "CT"), count("1")},
		{"notEndsWith", filter("sessions.channel", "notEndsWith", "ct"), count("3")},
		{"wildcards are literal", filter("sessions.country", "contains", "%"), count("0")},
		{"underscore literal", `{"measures":["page_views.count"],"filters":[{"member":"page_views.url","operator":"contains","values":["_"]}]}`, rows("page_views.count", "1")},
		{"gt number", filter("sessions.page_views", "gt", "1"), count("2")},
		{"gte number", filter("sessions.page_views", "gte", "1"), count("3")},
		{"lt number", filter("sessions.page_views", "lt", "1"), count("1")},
		{"lte number", filter("sessions.page_views", "lte", "2.5"), count("3")},
		{"gt time", filter("sessions.started_at", "gt", "2026-03-05"), count("2")},
		{"lt time", filter("sessions.started_at", "lt", "2026-03-05"), count("2")},
		{"set", filter("sessions.country", "set"), count("3")},
		{"notSet", filter("sessions.country", "notSet"), count("1")},
		{"boolean equals", filter("sessions.bounced", "equals", "true"), count("2")},
		{"inDateRange", filter("sessions.started_at", "inDateRange", "2026-03-02", "2026-03-02"), count("2")},
		{"inDateRange relative", filter("sessions.started_at", "inDateRange", "this month"), count("4")},
		{"notInDateRange", filter("sessions.started_at", "notInDateRange", "2026-03-02", "2026-03-02"), count("2")},
		{"beforeDate", filter("sessions.started_at", "beforeDate", "2026-03-05"), count("2")},
		{"beforeOrOnDate", filter("sessions.started_at", "beforeOrOnDate", "2026-03-05T12:00:00"), count("3")},
		{"afterDate", filter("sessions.started_at", "afterDate", "2026-03-05T12:00:00"), count("1")},
		{"afterOrOnDate", filter("sessions.started_at", "afterOrOnDate", "2026-03-05T12:00:00"), count("2")},
		{"onTheDate", filter("sessions.started_at", "onTheDate", "2026-03-05"), count("1")},
		{"onTheDate in Paris", `{"measures":["sessions.count"],"timezone":"Europe/Paris","filters":[{"member":"sessions.started_at","operator":"onTheDate","values":["2026-03-03"]}]}`, count("1")},
		{"or", `{"measures":["sessions.count"],"filters":[{"or":[{"member":"sessions.channel","operator":"equals","values":["Organic"]},{"member":"sessions.country","operator":"equals","values":["DE"]}]}]}`, count("2")},
		{"and in or", `{"measures":["sessions.count"],"filters":[{"or":[{"and":[{"member":"sessions.channel","operator":"equals","values":["Paid"]},{"member":"sessions.country","operator":"set"}]},{"dimension":"sessions.channel","operator":"equals","values":["Direct"]}]}]}`, count("2")},
		{"measure filter (HAVING)", `{"measures":["sessions.count"],"dimensions":["sessions.channel"],"filters":[{"member":"sessions.count","operator":"gt","values":["1"]}]}`,
			rows("sessions.channel", "Paid", "sessions.count", "2")},
		{"segment", `{"measures":["sessions.count"],"segments":["sessions.paid"]}`, count("2")},
		{"SQL-looking values are parameters", filter("sessions.channel", "equals", "'; DROP TABLE sessions; --"), count("0")},
		{"SQL-looking LIKE values", filter("sessions.channel", "contains", "' OR 1=1 --"), count("0")},
		{"still there", `{"measures":["sessions.count"]}`, count("4")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := f.run(t, m, f.a, c.query)
			if err != nil {
				t.Fatalf("query %s: %v", c.query, err)
			}
			if !sameData(got, c.want) {
				t.Errorf("query %s\n got %v\nwant %v", c.query, got, c.want)
			}
		})
	}
}

func TestLimitOffsetTotal(t *testing.T) {
	f := newFixture(t)
	got, total, err := f.run(t, testModel(), f.a, `{"measures":["sessions.count"],"dimensions":["sessions.channel"],"order":{"sessions.channel":"asc"},"limit":1,"offset":1,"total":true}`)
	if err != nil {
		t.Fatal(err)
	}
	want := rows("sessions.channel", "Organic", "sessions.count", "1")
	if !sameData(got, want) || total == nil || *total != 3 {
		t.Errorf("got %v total %v, want %v total 3", got, total, want)
	}
}

func TestDefaultOrder(t *testing.T) {
	f := newFixture(t)
	m := testModel()
	// First measure descending.
	got, _, err := f.run(t, m, f.a, `{"measures":["sessions.revenue"],"dimensions":["sessions.channel"],"filters":[{"member":"sessions.channel","operator":"notEquals","values":["Direct"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["sessions.channel"] != "Paid" {
		t.Errorf("default order by first measure desc: got %v", got)
	}
	// Time dimension ascending.
	got, _, err = f.run(t, m, f.a, `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"day"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	for _, r := range got {
		days = append(days, r["sessions.started_at.day"].(string))
	}
	if strings.Join(days, ",") != "2026-03-02T00:00:00.000,2026-03-05T00:00:00.000,2026-03-10T00:00:00.000" {
		t.Errorf("default order by time ascending: got %v", days)
	}
}

func TestWorkspaceIsolation(t *testing.T) {
	f := newFixture(t)
	m := testModel()
	for _, c := range []struct {
		ws, query string
		want      []map[string]any
	}{
		{f.b, `{"measures":["sessions.count","sessions.revenue"]}`, rows("sessions.count", "1", "sessions.revenue", "1000")},
		{f.b, `{"measures":["sessions.count","page_views.count","orders.total"]}`, rows("sessions.count", "1", "page_views.count", "2", "orders.total", "1000")},
		{f.b, `{"measures":["session_facts.score"]}`, rows("session_facts.score", "30")},
		{f.a, `{"measures":["session_facts.score"]}`, rows("session_facts.score", "110")},
		{f.b, `{"measures":["sessions.count"],"filters":[{"member":"sessions.channel","operator":"equals","values":["x' OR workspace_id IS NOT NULL --"]}]}`, count("0")},
	} {
		got, _, err := f.run(t, m, c.ws, c.query)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if !sameData(got, c.want) {
			t.Errorf("workspace %s query %s\n got %v\nwant %v", c.ws, c.query, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	m := testModel()
	for _, c := range []struct{ query, want string }{
		{`{"measures":["sessions.foo"]}`, "unknown member sessions.foo"},
		{`{"measures":["nope.count"]}`, "unknown cube nope"},
		{`{"measures":["sessions.channel"]}`, "sessions.channel is a dimension, not a measure"},
		{`{"dimensions":["sessions.count"]}`, "sessions.count is a measure, not a dimension"},
		{`{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.channel","granularity":"day"}]}`, "not a time dimension"},
		{`{"measures":["sessions.count"],"segments":["sessions.count"]}`, "not a segment"},
		{`{"measures":["sessions.count"],"filters":[{"member":"sessions.page_views","operator":"gt","values":["abc"]}]}`, `"abc" is not a number`},
		{`{"measures":["sessions.count"],"filters":[{"member":"sessions.bounced","operator":"equals","values":["abc"]}]}`, "not true or false"},
		{`{"measures":["sessions.count"],"filters":[{"member":"sessions.page_views","operator":"contains","values":["1"]}]}`, "string dimensions only"},
		{`{"measures":["sessions.count"],"filters":[{"member":"sessions.channel","operator":"inDateRange","values":["2026-01-01","2026-01-02"]}]}`, "time dimensions only"},
		{`{"measures":["sessions.count"],"filters":[{"member":"sessions.started_at","operator":"gt","values":["yesterdayish"]}]}`, "can't parse date"},
		{`{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","dateRange":"last fortnight"}]}`, "can't parse date"},
		{`{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","dateRange":["2026-02-01","2026-01-01"]}]}`, "ends"},
		{`{"measures":["sessions.count"],"filters":[{"or":[{"member":"sessions.count","operator":"gt","values":["1"]},{"member":"sessions.channel","operator":"set"}]}]}`, "can't mix"},
		{`{"measures":["sessions.count"],"order":{"sessions.nope":"asc"}}`, "unknown member sessions.nope"},
	} {
		q, err := ParseQuery([]byte(c.query))
		if err == nil {
			_, err = m.Compile(q, Options{WorkspaceID: "00000000-0000-0000-0000-000000000000", Now: testNow})
		}
		var qe *QueryError
		if err == nil || !errorAs(err, &qe) || !strings.Contains(qe.Message, c.want) {
			t.Errorf("%s: got %v, want a QueryError containing %q", c.query, err, c.want)
		}
	}
}

func errorAs(err error, qe **QueryError) bool {
	x, ok := err.(*QueryError)
	if ok {
		*qe = x
	}
	return ok
}
