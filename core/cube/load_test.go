package cube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// parseModel parses one fixture and, when it parses, validates it as a
// model: the path every workspace model takes.
func parseModel(t *testing.T, path string) error {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cubes, err := Parse(filepath.Base(path), data)
	if err != nil {
		return err
	}
	_, err = NewModel(cubes)
	return err
}

func messages(t *testing.T, err error) []string {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T (%v), want Errors", err, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

// TestBadModels holds one fixture per family of rules, each with every
// problem it must report, in order, as file:line: reason.
func TestBadModels(t *testing.T) {
	tests := []struct {
		fixture string
		want    []string
	}{
		{"cycles", []string{
			"cycles.yml:7: measure \"a\": sql: references form a cycle: shop.a -> shop.b -> shop.a",
			"cycles.yml:13: measure \"c\": sql: references form a cycle: shop.c -> shop.c",
			"cycles.yml:20: dimension \"x\": sql: references form a cycle: shop.x -> shop.y -> shop.x",
		}},
		{"joins", []string{
			"joins.yml:6: join \"customers\": a many_to_one join needs a primary_key dimension in cube \"customers\" (to count its rows once when the join multiplies them)",
			"joins.yml:8: join \"nowhere\": there is no cube \"nowhere\" to join",
			"joins.yml:11: join \"orders\": a cube cannot join itself",
			"joins.yml:24: join \"items\": sql must reference both {CUBE} and {items}",
			"joins.yml:26: join \"orders\": a one_to_many join needs a primary_key dimension in cube \"customers\" (to count its rows once when the join multiplies them)",
			"joins.yml:27: join \"orders\": sql: {items.sku} is of cube \"items\"; a join condition can only reference cubes \"customers\" and \"orders\"",
		}},
		{"measure_type", []string{
			"measure_type.yml:8: measure \"revenue\": type \"total\" is not one of count, count_distinct, sum, avg, min, max, number",
			"measure_type.yml:13: measure \"share\": format \"money\" is not one of currency, percent",
			"measure_type.yml:14: measure \"no_type\": has no type (one of count, count_distinct, sum, avg, min, max, number)",
		}},
		{"missing_sql", []string{
			"missing_sql.yml:7: measure \"revenue\": has no sql (only count measures may omit it)",
			"missing_sql.yml:10: dimension \"currency\": has no sql",
			"missing_sql.yml:12: dimension \"total\": has no type (one of string, number, time, boolean)",
			"missing_sql.yml:15: dimension \"ts\": type \"date\" is not one of string, number, time, boolean",
			"missing_sql.yml:18: segment \"big\": has no sql",
		}},
		{"names", []string{
			"names.yml:2: cube \"1cube\": the name must match ^[a-zA-Z_][a-zA-Z0-9_]*$",
			"names.yml:7: measure \"bad-name\": the name must match ^[a-zA-Z_][a-zA-Z0-9_]*$",
			"names.yml:12: dimension \"count\": the name is already used by a measure of cube \"ok\" (measures, dimensions and segments share names)",
			"names.yml:15: cube \"ok\": a dimension has no name",
			"names.yml:18: segment \"count\": the name is already used by a measure of cube \"ok\" (measures, dimensions and segments share names)",
		}},
		{"pre_aggregations", []string{
			"pre_aggregations.yml:28: pre-aggregation \"not_additive\": measure \"visitors\" is count_distinct; a rollup can only keep additive measures (count, sum): distinct counts of groups do not add up",
			"pre_aggregations.yml:28: pre-aggregation \"not_additive\": measure \"avg_revenue\" is avg; a rollup can only keep additive measures (count, sum): keep a sum and a count of the same rows instead, and divide them in a number measure",
			"pre_aggregations.yml:28: pre-aggregation \"not_additive\": measure \"longest\" is max; a rollup can only keep additive measures (count, sum): a maximum cannot be kept incrementally when rows change or go",
			"pre_aggregations.yml:28: pre-aggregation \"not_additive\": measure \"rate\" is number; a rollup can only keep additive measures (count, sum): list the measures it is computed from instead",
			"pre_aggregations.yml:32: pre-aggregation \"missing\": type \"original_sql\" is not supported (only rollup)",
			"pre_aggregations.yml:33: pre-aggregation \"missing\": cube \"sessions\" has no measure \"revenue\"",
			"pre_aggregations.yml:33: pre-aggregation \"missing\": orders.count is not a member of cube \"sessions\" (a rollup holds its own cube's members)",
			"pre_aggregations.yml:34: pre-aggregation \"missing\": cube \"sessions\" has no dimension \"country\"",
			"pre_aggregations.yml:35: pre-aggregation \"missing\": time_dimension \"channel\" is of type string, not time",
			"pre_aggregations.yml:36: pre-aggregation \"missing\": granularity \"fortnight\" is not one of second, minute, hour, day, week, month, quarter, year",
			"pre_aggregations.yml:39: pre-aggregation \"half\": a granularity needs a time_dimension",
			"pre_aggregations.yml:40: pre-aggregation \"half\": cube \"sessions\" already has a pre-aggregation of that name",
			"pre_aggregations.yml:40: pre-aggregation \"half\": has no measures",
			"pre_aggregations.yml:42: pre-aggregation \"half\": a time_dimension needs a granularity (one of second, minute, hour, day, week, month, quarter, year)",
		}},
		{"references", []string{
			"references.yml:12: measure \"nested\": sql: {revenue} is a measure; only dimensions can be referenced here",
			"references.yml:15: measure \"ratio\": sql: {total} is a dimension; a number measure can only reference measures",
			"references.yml:18: measure \"other\": sql: {nobody.count}: there is no cube \"nobody\"",
			"references.yml:18: measure \"other\": sql: {customers.nothing}: cube \"customers\" has no member \"nothing\"",
			"references.yml:22: measure \"filtered\": filter #1: {missing} is neither a member of cube \"orders\" nor a cube",
			"references.yml:32: dimension \"from_measure\": sql: {count} is a measure; only dimensions can be referenced here",
			"references.yml:35: segment \"big\": sql: {revenue} is a measure; only dimensions can be referenced here",
		}},
		{"snippets", []string{
			"snippets.yml:10: dimension \"two_statements\": sql: ';' outside a string literal (a snippet must be a single expression or statement)",
			"snippets.yml:13: dimension \"commented\": sql: comments are not allowed (a snippet is spliced into a larger statement)",
			"snippets.yml:16: dimension \"open_literal\": sql: unterminated string literal",
			"snippets.yml:19: dimension \"bad_reference\": sql: {CUBE.a.b} is not a reference ({CUBE}, {member}, {cube} or {cube.member})",
			"snippets.yml:24: cube \"derived\": sql: a cube's sql cannot reference members or cubes ({events})",
		}},
		{"source", []string{
			"source.yml:2: cube \"neither\": needs sql_table or sql",
			"source.yml:6: cube \"both\": has both sql_table and sql (choose one)",
			"source.yml:8: cube \"injected\": sql_table \"orders; DROP TABLE orders\" is not a table name (name or schema.name)",
		}},
		{"syntax", []string{
			"syntax.yml:4: mapping values are not allowed in this context",
		}},
		{"unknown_key", []string{
			"unknown_key.yml:3: cube \"orders\": unknown key \"sql_tabel\" (known keys: name, title, description, sql_table, sql, measures, dimensions, joins, segments, pre_aggregations)",
			"unknown_key.yml:8: measure \"count\": unknown key \"aggregation\" (known keys: name, type, sql, filters, title, description, format)",
		}},
		{"values", []string{
			"values.yml:6: join \"items\": relationship \"many_to_many\" is not one of many_to_one, one_to_many, one_to_one (or belongs_to, has_many, has_one)",
			"values.yml:8: cube \"orders\": a join has no name (the cube it joins)",
			"values.yml:10: join \"lines\": has no relationship (one of many_to_one, one_to_many, one_to_one)",
			"values.yml:16: dimension \"id\": primary_key: expected true or false, got \"yes\"",
			"values.yml:17: dimension \"42\": the name must match ^[a-zA-Z_][a-zA-Z0-9_]*$",
			"values.yml:18: dimension \"42\": type: expected text, got a list",
			"values.yml:20: cube \"orders\": measures: expected a list, got \"count\"",
		}},
	}
	files, _ := filepath.Glob("testdata/bad/*.yml")
	if len(files) != len(tests) {
		t.Errorf("%d fixtures in testdata/bad, %d in the table: every fixture needs its expectations", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			err := parseModel(t, filepath.Join("testdata", "bad", tt.fixture+".yml"))
			if err == nil {
				t.Fatal("the model was accepted")
			}
			got := messages(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err.Error() != strings.Join(got, "\n") {
				t.Errorf("Error() = %q, want the problems one a line", err.Error())
			}
		})
	}
}

func TestParseNormalisesAliases(t *testing.T) {
	src := `cubes:
  - name: orders
    sql_table: orders
    joins:
      - {name: customers, relationship: belongs_to, sql: "{CUBE}.customer_id = {customers}.id"}
      - {name: items, relationship: has_many, sql: "{CUBE}.id = {items}.order_id"}
      - {name: invoices, relationship: has_one, sql: "{CUBE}.id = {invoices}.order_id"}
      - {name: notes, relationship: one_to_one, sql: "{CUBE}.id = {notes}.order_id"}
    measures:
      - {name: count, type: count}
    dimensions:
      - {name: id, type: string, sql: "{CUBE}.id", primary_key: true}
      - {name: country, type: string, sql: "{CUBE}.country"}
      - {name: ts, type: time, sql: "{CUBE}.ts"}
    pre_aggregations:
      - name: daily
        type: rollup
        measures: [orders.count]
        dimensions: [orders.country]
        time_dimension: orders.ts
        granularity: day
`
	cubes, err := Parse("orders.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, j := range cubes[0].Joins {
		rels = append(rels, j.Name+":"+j.Relationship)
	}
	want := []string{"customers:many_to_one", "items:one_to_many", "invoices:one_to_one", "notes:one_to_one"}
	if !slices.Equal(rels, want) {
		t.Errorf("relationships %v, want %v", rels, want)
	}
	p := cubes[0].PreAggregations[0]
	got := fmt.Sprintf("%s %v %v %s %s %d", p.Name, p.Measures, p.Dimensions, p.TimeDimension, p.Granularity, p.Line)
	if w := "daily [count] [country] ts day 16"; got != w {
		t.Errorf("pre-aggregation %s, want %s (bare member names, line of its entry)", got, w)
	}
}

func TestParseReadsEveryField(t *testing.T) {
	src := `# A comment first.
cubes:
  - name: shop
    title: The Shop
    description: Orders of the shop.
    sql: SELECT * FROM orders WHERE total > 0
    measures:
      - name: paid
        title: Paid Orders
        description: Orders paid.
        type: count
        filters:
          - sql: "{CUBE}.paid"
          - sql: "{CUBE}.total > 1"
      - name: revenue
        type: sum
        sql: "{CUBE}.total"
        format: currency
    dimensions:
      - name: id
        title: Order
        type: number
        sql: "{CUBE}.id"
        primary_key: true
    segments:
      - name: big
        title: Big Orders
        sql: "{CUBE}.total > 100"
`
	cubes, err := Parse("shop.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(cubes) != 1 {
		t.Fatalf("%d cubes, want 1", len(cubes))
	}
	c := cubes[0]
	got := []any{c.Name, c.Title, c.Description, c.SQLTable, c.SQL, c.File, c.Line,
		c.Measures[0].Name, c.Measures[0].Title, c.Measures[0].description, c.Measures[0].Type, c.Measures[0].Filters, c.Measures[0].Line,
		c.Measures[1].SQL, c.Measures[1].Format,
		c.Dimensions[0].Title, c.Dimensions[0].Type, c.Dimensions[0].SQL, c.Dimensions[0].PrimaryKey, c.Dimensions[0].Line,
		c.Segments[0].Name, c.Segments[0].title, c.Segments[0].SQL, c.Segments[0].Line}
	want := []any{"shop", "The Shop", "Orders of the shop.", "", "SELECT * FROM orders WHERE total > 0", "shop.yml", 3,
		"paid", "Paid Orders", "Orders paid.", "count", []string{"{CUBE}.paid", "{CUBE}.total > 1"}, 8,
		"{CUBE}.total", "currency",
		"Order", "number", "{CUBE}.id", true, 20,
		"big", "Big Orders", "{CUBE}.total > 100", 26}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed\n%v\nwant\n%v", got, want)
	}
}

func TestParseEmptyOrShapeless(t *testing.T) {
	tests := []struct{ src, want string }{
		{"", "x.yml: the file is empty (it needs a cubes: list)"},
		{"cubes:\n", ""},
		{"title: x\n", "x.yml:1: the file: unknown key \"title\" (known keys: cubes)\nx.yml:1: the file has no cubes: list"},
		{"- a\n", "x.yml:1: the file: expected a mapping, got a list"},
		{"cubes: {a: 1}\n", "x.yml:1: cubes: expected a list, got a mapping"},
		{"cubes:\n  - plain\n", `x.yml:2: cube #1: expected a mapping, got "plain"`},
		{"cubes:\n  - name: a\n    name: b\n    sql_table: t\n", `x.yml:3: cube "a": key "name" is repeated (first at line 2)`},
	}
	for _, tt := range tests {
		_, err := Parse("x.yml", []byte(tt.src))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestLoadReadsYAMLFilesOfTheFolderOnly(t *testing.T) {
	fsys := fstest.MapFS{
		"models/a.yml":      {Data: []byte("cubes:\n  - {name: a, sql_table: a}\n")},
		"models/b.yaml":     {Data: []byte("cubes:\n  - {name: b, sql_table: b}\n")},
		"models/README.md":  {Data: []byte("cubes: not yaml: at all")},
		"models/sub/c.yml":  {Data: []byte("cubes:\n  - {name: c, sql_table: c}\n")},
		"elsewhere/d.yml":   {Data: []byte("cubes:\n  - {name: d, sql_table: d}\n")},
		"models/e.yml.orig": {Data: []byte("broken: [")},
	}
	m, err := Load(fsys, "models")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range m.Cubes {
		names = append(names, c.Name+"@"+c.File)
	}
	if want := []string{"a@models/a.yml", "b@models/b.yaml"}; !slices.Equal(names, want) {
		t.Errorf("cubes %v, want %v", names, want)
	}
	if _, ok := m.Cube("b"); !ok {
		t.Error(`Cube("b") not found`)
	}
	if _, err := Load(fsys, "missing"); err == nil || !strings.Contains(err.Error(), "read cube models") {
		t.Errorf("Load of a missing folder: %v", err)
	}
}

func TestLoadReportsEveryFile(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yml": {Data: []byte("cubes:\n  - name: a\n")},
		"b.yml": {Data: []byte("cubes:\n  - {name: b, sql_table: b, measures: [{name: n, type: total}]}\n")},
	}
	_, err := Load(fsys, ".")
	want := []string{
		`a.yml:2: cube "a": needs sql_table or sql`,
		`b.yml:2: measure "n": type "total" is not one of count, count_distinct, sum, avg, min, max, number`,
	}
	if got := messages(t, err); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

func TestLoadRefusesACubeDefinedTwice(t *testing.T) {
	_, err := Load(os.DirFS("testdata"), "dupe")
	want := []string{`dupe/b.yml:3: cube "orders" is already defined at dupe/a.yml:2`}
	if got := messages(t, err); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

func TestErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("cubes:\n  - name: many\n    sql_table: t\n    measures:\n")
	for i := range maxErrors + 10 {
		fmt.Fprintf(&b, "      - {name: m%d, type: total}\n", i)
	}
	_, err := Parse("many.yml", []byte(b.String()))
	got := messages(t, err)
	if len(got) != maxErrors+1 {
		t.Fatalf("%d errors, want %d and a last line for the rest", len(got), maxErrors+1)
	}
	if last := got[len(got)-1]; last != "and 10 more problems" {
		t.Errorf("last line %q", last)
	}
	if first := got[0]; first != `many.yml:5: measure "m0": type "total" is not one of count, count_distinct, sum, avg, min, max, number` {
		t.Errorf("first line %q", first)
	}
}

// TestNewModelChecksCubesBuiltInGo: cubes that did not come from YAML are
// checked all the same, with the lines they carry.
func TestNewModelChecksCubesBuiltInGo(t *testing.T) {
	cubes := []*Cube{
		{Name: "a", SQLTable: "a", File: "api", Line: 1,
			Measures: []*Measure{{Name: "x", Type: Sum, Line: 2}, {Name: "r", Type: Number, SQL: "{missing}", Line: 3}},
			Joins:    []*Join{{Name: "b", Relationship: "belongs_to", SQL: "{CUBE}.b = {b}.id", Line: 4}}},
		{Name: "b", SQLTable: "b", File: "api", Line: 10},
	}
	in := slices.Clone(cubes)
	_, err := NewModel(cubes)
	want := []string{
		`api:2: measure "x": has no sql (only count measures may omit it)`,
		`api:4: join "b": relationship "belongs_to" is not one of many_to_one, one_to_many, one_to_one (or belongs_to, has_many, has_one)`,
	}
	if got := messages(t, err); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	if !slices.Equal(cubes, in) {
		t.Error("NewModel changed its argument")
	}
}

func TestMerge(t *testing.T) {
	shipped := Shipped()
	before := len(shipped.Cubes)
	data, err := os.ReadFile("testdata/workspace.yml")
	if err != nil {
		t.Fatal(err)
	}
	own, err := Parse("workspace.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := shipped.Merge(own)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Cubes) != before+1 {
		t.Errorf("merged model has %d cubes, want %d", len(m.Cubes), before+1)
	}
	if c, ok := m.Cube("signups"); !ok || c.Joins[0].Name != "sessions" {
		t.Error("merged model lacks signups")
	}
	if _, ok := m.Cube("sessions"); !ok {
		t.Error("merged model lacks the shipped sessions")
	}
	if _, ok := shipped.Cube("signups"); ok || len(shipped.Cubes) != before {
		t.Error("Merge changed the shipped model")
	}

	data, err = os.ReadFile("testdata/clash.yml")
	if err != nil {
		t.Fatal(err)
	}
	clash, err := Parse("clash.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	sessions, _ := shipped.Cube("sessions")
	_, err = shipped.Merge(clash)
	want := []string{fmt.Sprintf(`clash.yml:4: cube "sessions" is already defined at %s:%d`, sessions.File, sessions.Line)}
	if got := messages(t, err); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}

	// A workspace cube is checked against the shipped ones it references.
	bad, err := Parse("bad.yml", []byte(`cubes:
  - name: extra
    sql_table: extra
    measures:
      - {name: n, type: number, sql: "{sessions.nothing}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = shipped.Merge(bad)
	want = []string{`bad.yml:5: measure "n": sql: {sessions.nothing}: cube "sessions" has no member "nothing"`}
	if got := messages(t, err); !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

func TestScanSQL(t *testing.T) {
	tests := []struct {
		sql  string
		refs []string
		err  string
	}{
		{"{CUBE}.a + {b} + {c.d}", []string{"CUBE", "b", "c.d"}, ""},
		{"'{x}' || \"{y}\" || $$ {z} $$ || $t$ ; $t$ || {w}", []string{"w"}, ""},
		{"E'\\'{x};' || {y}", []string{"y"}, ""},
		{"'it''s {x}' || {y}", []string{"y"}, ""},
		{"$1 + {a}", []string{"a"}, ""},
		{"{CUBE}.a / 2", []string{"CUBE"}, ""},
		{"a; b", nil, "';' outside a string literal (a snippet must be a single expression or statement)"},
		{"a /* x */", nil, "comments are not allowed (a snippet is spliced into a larger statement)"},
		{"a -- x", nil, "comments are not allowed (a snippet is spliced into a larger statement)"},
		{"'open", nil, "unterminated string literal"},
		{"\"open", nil, "unterminated quoted identifier"},
		{"$$ open", nil, "unterminated dollar-quoted literal"},
		{"{a", nil, "unmatched '{'"},
		{"{a {b}", nil, "unmatched '{'"},
		{"a}", nil, "unmatched '}'"},
		{"{}", nil, "{} is not a reference ({CUBE}, {member}, {cube} or {cube.member})"},
		{"{a b}", nil, "{a b} is not a reference ({CUBE}, {member}, {cube} or {cube.member})"},
	}
	for _, tt := range tests {
		refs, err := scanSQL(tt.sql)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		var names []string
		for _, r := range refs {
			names = append(names, r.name)
			if tt.sql[r.start:r.end] != "{"+r.name+"}" {
				t.Errorf("scanSQL(%q): reference %q at [%d:%d] is %q", tt.sql, r.name, r.start, r.end, tt.sql[r.start:r.end])
			}
		}
		if gotErr != tt.err || !slices.Equal(names, tt.refs) {
			t.Errorf("scanSQL(%q) = %v, %q; want %v, %q", tt.sql, names, gotErr, tt.refs, tt.err)
		}
	}
}

func TestResolveRef(t *testing.T) {
	m := Shipped()
	sessions, _ := m.Cube("sessions")
	tests := []struct {
		ref, want string
	}{
		{"CUBE", "cube sessions"},
		{"count", "measure sessions.count"},
		{"channel_group", "dimension sessions.channel_group"},
		{"converted", "segment sessions.converted"},
		{"CUBE.revenue", "measure sessions.revenue"},
		{"orders", "cube orders"},
		{"orders.revenue", "measure orders.revenue"},
		{"nothing", `error {nothing} is neither a member of cube "sessions" nor a cube`},
		{"orders.nothing", `error {orders.nothing}: cube "orders" has no member "nothing"`},
		{"nowhere.count", `error {nowhere.count}: there is no cube "nowhere"`},
	}
	for _, tt := range tests {
		r, err := m.resolveRef(sessions, tt.ref)
		got := ""
		if err != nil {
			got = "error " + err.Error()
		} else if r.kind == refCube {
			got = "cube " + r.cube.Name
		} else {
			got = fmt.Sprintf("%s %s.%s", r.kind, r.cube.Name, r.name)
		}
		if got != tt.want {
			t.Errorf("resolveRef(%q) = %s, want %s", tt.ref, got, tt.want)
		}
	}
}
