// Package cube is Eddy's semantic layer: Cube-style data models (cubes of
// measures, dimensions, segments, joins and pre-aggregations, declared in
// YAML) and the queries of the Cube REST API over them, compiled to
// PostgreSQL with every value as a parameter and every member checked
// against the model.
//
// The package is split by what it holds:
//   - model.go: the model's types (this file);
//   - load.go: reading YAML models (Parse, Load; errors name file, line
//     and reason), building and merging models (NewModel, Merge) and the
//     shipped models (Shipped: cubes/ at the repository root, embedded);
//   - check.go: validation, each cube and the model as a whole; the
//     references of SQL snippets ({CUBE}, {member}, {cube}, {cube.member})
//     and how they resolve;
//   - query.go: the Cube query JSON, parsed and validated;
//   - dates.go: date ranges, absolute and relative ("last 7 days");
//   - compile.go: a query to SQL (joins, filters, time dimensions with
//     granularity and timezone, order, limit, offset, total);
//   - result.go: rows to the Cube REST API's response shape;
//   - meta.go: the /meta response;
//   - rollup.go: pre-aggregations kept up to date incrementally, and the
//     matching of a query to a rollup that answers it exactly.
package cube

import "sync"

// Model is a set of cubes, by name. A workspace's model is the shipped
// cubes plus the workspace's own (Merge).
type Model struct {
	Cubes  []*Cube
	byName map[string]*Cube
	// ready holds the rollup tables EnsureRollups made sure of for this
	// model (shared with the models Merge derives from it): only those
	// answer queries, and only in the database they were made sure of.
	ready *sync.Map
}

// Cube is one cube: a table (SQLTable) or a query (SQL) and its members.
type Cube struct {
	Name        string
	Title       string
	Description string
	// Exactly one of SQLTable and SQL is set. SQLTable names a table of
	// Eddy's database; SQL is a SELECT. Either is read under the
	// workspace's row-level security (the query runs as a role that sees
	// only that workspace's rows), and a SQLTable cube is also filtered by
	// workspace_id explicitly.
	SQLTable string
	SQL      string

	Measures        []*Measure
	Dimensions      []*Dimension
	Segments        []*Segment
	Joins           []*Join
	PreAggregations []*PreAggregation

	// Where it was declared, for error messages.
	File string
	Line int

	lines lines // the line of each key's value, for error messages
}

// Measure types.
const (
	Count         = "count"
	CountDistinct = "count_distinct"
	Sum           = "sum"
	Avg           = "avg"
	Min           = "min"
	Max           = "max"
	Number        = "number" // an expression over other measures
)

// Measure is an aggregate.
type Measure struct {
	Name  string
	Title string
	Type  string
	// SQL is the expression aggregated ({CUBE}.column, {cube}.column);
	// for Number, an expression over measures ({count}, {cube.revenue});
	// empty for Count (rows counted: the primary key when joins could
	// multiply them).
	SQL string
	// Filters restrict the rows aggregated (each an SQL condition).
	Filters []string
	Format  string // "currency", "percent" or ""
	Line    int

	description string
	lines       lines
}

// Dimension types.
const (
	String  = "string"
	NumberD = "number"
	Time    = "time"
	Boolean = "boolean"
)

// Dimension is an attribute rows are grouped or filtered by.
type Dimension struct {
	Name       string
	Title      string
	Type       string // String, NumberD ("number"), Time or Boolean
	SQL        string
	PrimaryKey bool
	Line       int

	description string
	lines       lines
}

// Segment is a named filter.
type Segment struct {
	Name string
	SQL  string
	Line int

	title       string
	description string
	lines       lines
}

// Relationships of joins.
const (
	ManyToOne = "many_to_one"
	OneToMany = "one_to_many"
	OneToOne  = "one_to_one"
)

// Join links a cube to another (Name is the other cube).
type Join struct {
	Name         string
	Relationship string
	// SQL is the join condition, with {CUBE} for this cube and {name} for
	// the other.
	SQL  string
	Line int

	lines lines
}

// Granularities, finest first.
var Granularities = []string{"second", "minute", "hour", "day", "week", "month", "quarter", "year"}

// PreAggregation is a rollup: the cube's additive measures grouped by some
// of its dimensions and a time dimension at a granularity, kept in a table
// of its own and updated as the cube's rows change.
type PreAggregation struct {
	Name          string
	Measures      []string
	Dimensions    []string
	TimeDimension string
	Granularity   string
	Line          int

	lines lines
}

// Cube returns the cube named name.
func (m *Model) Cube(name string) (*Cube, bool) {
	c, ok := m.byName[name]
	return c, ok
}

// Measure returns the measure named name.
func (c *Cube) Measure(name string) (*Measure, bool) {
	for _, x := range c.Measures {
		if x.Name == name {
			return x, true
		}
	}
	return nil, false
}

// Dimension returns the dimension named name.
func (c *Cube) Dimension(name string) (*Dimension, bool) {
	for _, x := range c.Dimensions {
		if x.Name == name {
			return x, true
		}
	}
	return nil, false
}

// Segment returns the segment named name.
func (c *Cube) Segment(name string) (*Segment, bool) {
	for _, x := range c.Segments {
		if x.Name == name {
			return x, true
		}
	}
	return nil, false
}
