package cube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/cubes"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// TestShippedModelsLoad guards the embedded models: Shipped panics if they
// are invalid, so this is where a broken model is reported.
func TestShippedModelsLoad(t *testing.T) {
	if _, err := Load(cubes.FS(), "."); err != nil {
		t.Fatalf("the shipped models are invalid:\n%v", err)
	}
	m := Shipped()
	if Shipped() != m {
		t.Error("Shipped parses the models more than once")
	}
	var names []string
	for _, c := range m.Cubes {
		names = append(names, c.Name)
	}
	if want := []string{"events", "orders", "page_views", "profiles", "sessions"}; !slices.Equal(names, want) {
		t.Errorf("shipped cubes %v, want %v", names, want)
	}
}

// TestShippedMembers lists the members other parts of Eddy (the console,
// the docs, the rollups) rely on.
func TestShippedMembers(t *testing.T) {
	m := Shipped()
	type member struct{ kind, name, typ string }
	want := map[string][]member{
		"events": {
			{"measure", "count", Count}, {"measure", "visitors", CountDistinct}, {"measure", "users", CountDistinct},
			{"dimension", "message_id", String}, {"dimension", "type", String}, {"dimension", "event", String},
			{"dimension", "name", String}, {"dimension", "timestamp", Time}, {"dimension", "page_url", String},
			{"segment", "page_views", ""},
		},
		"sessions": {
			{"measure", "count", Count}, {"measure", "visitors", CountDistinct}, {"measure", "users", CountDistinct},
			{"measure", "converted_count", Count}, {"measure", "conversion_rate", Number}, {"measure", "bounce_rate", Number},
			{"measure", "revenue", Sum}, {"measure", "avg_revenue", Avg}, {"measure", "orders_count", Sum},
			{"measure", "avg_duration_seconds", Avg}, {"measure", "max_duration_seconds", Max},
			{"dimension", "id", String}, {"dimension", "started_at", Time}, {"dimension", "duration_seconds", NumberD},
			{"dimension", "channel_group", String}, {"dimension", "source", String}, {"dimension", "medium", String},
			{"dimension", "campaign", String}, {"dimension", "device_type", String}, {"dimension", "os", String},
			{"dimension", "browser", String}, {"dimension", "country", String}, {"dimension", "city", String},
			{"dimension", "landing_page", String}, {"dimension", "is_converted", Boolean},
			{"segment", "converted", ""}, {"segment", "bounced", ""},
		},
		"page_views": {
			{"measure", "count", Count}, {"measure", "visitors", CountDistinct}, {"measure", "pages_per_session", Number},
			{"dimension", "ts", Time}, {"dimension", "url", String}, {"dimension", "title", String},
		},
		"orders": {
			{"measure", "count", Count}, {"measure", "revenue", Sum}, {"measure", "average_order_value", Avg},
			{"measure", "smallest_order", Min}, {"measure", "largest_order", Max},
			{"dimension", "order_id", String}, {"dimension", "ts", Time}, {"dimension", "total", NumberD}, {"dimension", "currency", String},
		},
		"profiles": {
			{"measure", "count", Count}, {"measure", "lifetime_revenue", Sum},
			{"dimension", "id", String}, {"dimension", "first_seen", Time}, {"dimension", "last_seen", Time},
			{"segment", "live", ""},
		},
	}
	for cube, members := range want {
		c, ok := m.Cube(cube)
		if !ok {
			t.Errorf("no cube %s", cube)
			continue
		}
		for _, w := range members {
			got := ""
			switch w.kind {
			case "measure":
				if x, ok := c.Measure(w.name); ok {
					got = x.Type
				}
			case "dimension":
				if x, ok := c.Dimension(w.name); ok {
					got = x.Type
				}
			case "segment":
				if _, ok := c.Segment(w.name); !ok {
					got = "missing"
				}
			}
			if got != w.typ {
				t.Errorf("%s.%s: %s of type %q, want %q", cube, w.name, w.kind, got, w.typ)
			}
		}
	}

	// Every relationship is used, and joins go both ways between sessions
	// and its page views and orders.
	var joins []string
	for _, c := range m.Cubes {
		for _, j := range c.Joins {
			joins = append(joins, c.Name+" "+j.Relationship+" "+j.Name)
		}
	}
	for _, w := range []string{
		"sessions many_to_one profiles", "page_views many_to_one sessions", "orders many_to_one sessions",
		"sessions one_to_many page_views", "sessions one_to_many orders", "profiles one_to_many sessions",
	} {
		if !slices.Contains(joins, w) {
			t.Errorf("no join %q in %q", w, joins)
		}
	}

	// The rollups the compiler answers dashboards from.
	for _, tt := range []struct{ cube, rollup, want string }{
		{"sessions", "hourly", "[count converted_count bounced_count revenue orders_count total_page_views total_events total_duration_seconds] [channel_group] started_at hour"},
		{"events", "hourly", "[count] [type event] timestamp hour"},
	} {
		c, _ := m.Cube(tt.cube)
		i := slices.IndexFunc(c.PreAggregations, func(p *PreAggregation) bool { return p.Name == tt.rollup })
		if i < 0 {
			t.Errorf("no pre-aggregation %s.%s", tt.cube, tt.rollup)
			continue
		}
		p := c.PreAggregations[i]
		if got := fmt.Sprintf("%v %v %s %s", p.Measures, p.Dimensions, p.TimeDimension, p.Granularity); got != tt.want {
			t.Errorf("%s.%s = %s, want %s", tt.cube, tt.rollup, got, tt.want)
		}
	}
}

// TestShippedSQLRunsOnEddysSchema plans every snippet of the shipped models
// (each dimension, measure, filter, segment, join and pre-aggregation
// grouping) against a database migrated to Eddy's schema, so a column
// renamed by a migration breaks this test, not a dashboard.
func TestShippedSQLRunsOnEddysSchema(t *testing.T) {
	ctx := context.Background()
	url := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, url), "migrate")
	conn, err := pgx.Connect(ctx, url)
	testenv.Must(t, err, "connect")
	defer conn.Close(ctx)

	m := Shipped()
	run := func(what, sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, "EXPLAIN "+sql); err != nil {
			t.Errorf("%s: %v\n%s", what, err, sql)
		}
	}
	from := func(c *Cube) string {
		if c.SQLTable != "" {
			return c.SQLTable + " AS " + quoteIdent(c.Name)
		}
		return "(" + c.SQL + ") AS " + quoteIdent(c.Name)
	}
	for _, c := range m.Cubes {
		for _, d := range c.Dimensions {
			run(c.Name+"."+d.Name, fmt.Sprintf("SELECT %s FROM %s", expandTest(t, m, c, d.SQL), from(c)))
		}
		for _, x := range c.Measures {
			run(c.Name+"."+x.Name, fmt.Sprintf("SELECT %s FROM %s", aggregateTest(t, m, c, x), from(c)))
		}
		for _, s := range c.Segments {
			run(c.Name+"."+s.Name, fmt.Sprintf("SELECT 1 FROM %s WHERE %s", from(c), expandTest(t, m, c, s.SQL)))
		}
		for _, j := range c.Joins {
			target, _ := m.Cube(j.Name)
			run(c.Name+" join "+j.Name, fmt.Sprintf("SELECT 1 FROM %s JOIN %s ON %s", from(c), from(target), expandTest(t, m, c, j.SQL)))
		}
		for _, p := range c.PreAggregations {
			var cols, groups []string
			for _, n := range p.Dimensions {
				d, _ := c.Dimension(n)
				cols = append(cols, expandTest(t, m, c, d.SQL))
			}
			groups = slices.Clone(cols)
			if p.TimeDimension != "" {
				d, _ := c.Dimension(p.TimeDimension)
				cols = append(cols, fmt.Sprintf("date_trunc('%s', %s)", p.Granularity, expandTest(t, m, c, d.SQL)))
				groups = append(groups, cols[len(cols)-1])
			}
			for _, n := range p.Measures {
				x, _ := c.Measure(n)
				cols = append(cols, aggregateTest(t, m, c, x))
			}
			q := fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ", "), from(c))
			if len(groups) > 0 {
				q += " GROUP BY " + strings.Join(groups, ", ")
			}
			run(c.Name+"."+p.Name, q)
		}
	}
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// expandTest substitutes the references of a snippet of c the simple way
// (cubes by their alias, dimensions and measures by their expressions):
// enough to plan the snippet, not the compiler's job.
func expandTest(t *testing.T, m *Model, c *Cube, sql string) string {
	t.Helper()
	refs, err := scanSQL(sql)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	last := 0
	for _, r := range refs {
		b.WriteString(sql[last:r.start])
		last = r.end
		target, err := m.resolveRef(c, r.name)
		if err != nil {
			t.Fatal(err)
		}
		switch target.kind {
		case refCube:
			b.WriteString(quoteIdent(target.cube.Name))
		case refDimension:
			b.WriteString("(" + expandTest(t, m, target.cube, target.dimension.SQL) + ")")
		case refMeasure:
			b.WriteString("(" + aggregateTest(t, m, target.cube, target.measure) + ")")
		default:
			t.Fatalf("cube %s: {%s} is a %s", c.Name, r.name, target.kind)
		}
	}
	return b.String() + sql[last:]
}

func aggregateTest(t *testing.T, m *Model, c *Cube, x *Measure) string {
	t.Helper()
	if x.Type == Number {
		return expandTest(t, m, c, x.SQL)
	}
	arg := "*"
	if x.SQL != "" {
		arg = expandTest(t, m, c, x.SQL)
	}
	var agg string
	switch x.Type {
	case Count:
		agg = "count(" + arg + ")"
	case CountDistinct:
		agg = "count(DISTINCT " + arg + ")"
	default:
		agg = x.Type + "(" + arg + ")"
	}
	if len(x.Filters) > 0 {
		var fs []string
		for _, f := range x.Filters {
			fs = append(fs, "("+expandTest(t, m, c, f)+")")
		}
		agg += " FILTER (WHERE " + strings.Join(fs, " AND ") + ")"
	}
	return agg
}
