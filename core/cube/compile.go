package cube

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Compile turns a query into PostgreSQL. Every member is checked against
// the model and every value is a parameter: the first ($1) is always the
// workspace id, which scopes every sql_table cube.
//
// The SQL has three levels:
//
//	SELECT <output columns c0, c1…>            -- final: measures as text,
//	FROM (<grouped>) q                          -- number measures composed,
//	[WHERE <measure filters>] ORDER… LIMIT…     -- measure filters (HAVING)
//
// where <grouped> has one row per dimension tuple (d0, d1…) and one column
// per aggregated ("leaf") measure (l0, l1…). <grouped> is one GROUP BY over
// the joined cubes, or, when joins multiply the rows of some measures'
// cubes (a one_to_many hop), one GROUP BY per multiplied cube over the
// DISTINCT (dimensions, primary key, value) of its rows, unioned and
// regrouped by the dimensions. A rollup can answer a query by replacing
// <grouped> with a GROUP BY over its table (see group).
func (m *Model) Compile(q Query, o Options) (*Plan, error) {
	raw, err := m.compileRaw(q, o)
	if err != nil || !o.Rollups {
		return raw, err
	}
	if p, ok := m.answer(q, o); ok {
		p.Query = raw.Query // the normalised query, as the raw plan echoes it
		return p, nil
	}
	return raw, nil
}

// compileRaw compiles q over the cubes' tables.
func (m *Model) compileRaw(q Query, o Options) (*Plan, error) {
	loc, err := Location(q.Timezone)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	p := &planner{m: m, q: q, loc: loc, now: now, args: []any{o.WorkspaceID}, involved: map[string]bool{}}
	return p.compile()
}

type planner struct {
	m        *Model
	q        Query
	loc      *time.Location
	now      time.Time
	args     []any
	tzParam  string
	involved map[string]bool // cubes whose members the query uses
	root     string

	dims   []gdim   // the grouped dimension columns d0, d1…
	leaves []*leaf  // the aggregated measure columns l0, l1…
	where  []string // row conditions
	having []string // measure conditions, over q
	outs   []outCol // the output columns c0, c1…
	cols   []Column // their description
	norm   Query    // the normalised query
	multi  map[string]bool
}

// gdim is a grouped dimension: its SQL over the joined cubes and its type.
type gdim struct {
	sql  string
	typ  string
	cube string
}

// leaf is an aggregated measure, computed at the grouped level.
type leaf struct {
	cube    *Cube
	measure *Measure
}

type outCol struct {
	sql     string // over q
	orderBy string // what ordering by the column sorts on, over q
}

func (p *planner) param(v any, cast string) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args)) + "::" + cast
}

func (p *planner) tz() string {
	if p.tzParam == "" {
		name := p.q.Timezone
		if name == "" {
			name = "UTC"
		}
		p.tzParam = p.param(name, "text")
	}
	return p.tzParam
}

func quoteAlias(name string) string { return `"` + name + `"` }

// member is a resolved member name.
type member struct {
	name    string
	cube    *Cube
	measure *Measure
	dim     *Dimension
	segment *Segment
}

func (m member) kind() string {
	switch {
	case m.measure != nil:
		return "a measure"
	case m.dim != nil:
		return "a dimension"
	}
	return "a segment"
}

func (p *planner) lookup(name string) (member, error) {
	cubeName, field, ok := strings.Cut(name, ".")
	if !ok || !memberName.MatchString(name) {
		return member{}, queryErrorf("%q is not a member name (cube.member)", truncate(name))
	}
	c, ok := p.m.Cube(cubeName)
	if !ok {
		return member{}, queryErrorf("unknown cube %s in member %s", cubeName, name)
	}
	mb := member{name: name, cube: c}
	if x, ok := c.Measure(field); ok {
		mb.measure = x
	} else if x, ok := c.Dimension(field); ok {
		mb.dim = x
	} else if x, ok := c.Segment(field); ok {
		mb.segment = x
	} else {
		return member{}, queryErrorf("unknown member %s", name)
	}
	return mb, nil
}

func (p *planner) lookupAs(name, want string) (member, error) {
	mb, err := p.lookup(name)
	if err != nil {
		return mb, err
	}
	ok := false
	switch want {
	case "measure":
		ok = mb.measure != nil
	case "dimension":
		ok = mb.dim != nil
	case "time dimension":
		ok = mb.dim != nil && mb.dim.Type == Time
	case "segment":
		ok = mb.segment != nil
	case "measure or dimension":
		ok = mb.measure != nil || mb.dim != nil
	}
	if !ok {
		if want == "time dimension" && mb.dim != nil {
			return mb, queryErrorf("%s is a %s dimension, not a time dimension", name, mb.dim.Type)
		}
		return mb, queryErrorf("%s is %s, not a %s", name, mb.kind(), want)
	}
	p.involved[mb.cube.Name] = true
	return mb, nil
}

var memberRef = regexp.MustCompile(`\{([a-zA-Z0-9_]+)(?:\.([a-zA-Z0-9_]+))?\}`)

const maxExpansion = 16

// rowSQL expands a row-level expression of cube c: {CUBE} and {cube} are
// cube aliases, {dim} and {cube.dim} the dimensions' SQL.
func (p *planner) rowSQL(c *Cube, sql string, depth int) (string, error) {
	if depth > maxExpansion {
		return "", fmt.Errorf("cube %s: member references nested too deep (a cycle?)", c.Name)
	}
	var firstErr error
	out := memberRef.ReplaceAllStringFunc(sql, func(ref string) string {
		sm := memberRef.FindStringSubmatch(ref)
		a, b := sm[1], sm[2]
		if b == "" {
			if a == "CUBE" {
				return quoteAlias(c.Name)
			}
			if d, ok := c.Dimension(a); ok {
				s, err := p.rowSQL(c, d.SQL, depth+1)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				return "(" + s + ")"
			}
			if other, ok := p.m.Cube(a); ok {
				p.involved[other.Name] = true
				return quoteAlias(other.Name)
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("cube %s: unknown reference %s in %q", c.Name, ref, sql)
			}
			return ref
		}
		target := c
		if a != "CUBE" {
			t, ok := p.m.Cube(a)
			if !ok {
				if firstErr == nil {
					firstErr = fmt.Errorf("cube %s: unknown cube in %s", c.Name, ref)
				}
				return ref
			}
			target = t
		}
		d, ok := target.Dimension(b)
		if !ok {
			if firstErr == nil {
				firstErr = fmt.Errorf("cube %s: %s is not a dimension", c.Name, ref)
			}
			return ref
		}
		p.involved[target.Name] = true
		s, err := p.rowSQL(target, d.SQL, depth+1)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return "(" + s + ")"
	})
	return out, firstErr
}

// measureSQL is a measure's value over q: a leaf column, or for a number
// measure its expression over other measures.
func (p *planner) measureSQL(c *Cube, ms *Measure, depth int) (string, error) {
	if depth > maxExpansion {
		return "", fmt.Errorf("cube %s: measure references nested too deep (a cycle?)", c.Name)
	}
	p.involved[c.Name] = true
	if ms.Type != Number {
		for i, l := range p.leaves {
			if l.measure == ms {
				return "q.l" + strconv.Itoa(i), nil
			}
		}
		p.leaves = append(p.leaves, &leaf{cube: c, measure: ms})
		return "q.l" + strconv.Itoa(len(p.leaves)-1), nil
	}
	var firstErr error
	out := memberRef.ReplaceAllStringFunc(ms.SQL, func(ref string) string {
		sm := memberRef.FindStringSubmatch(ref)
		target, name := c, sm[1]
		if sm[2] != "" {
			name = sm[2]
			if sm[1] != "CUBE" {
				t, ok := p.m.Cube(sm[1])
				if !ok {
					if firstErr == nil {
						firstErr = fmt.Errorf("measure %s.%s: unknown cube in %s", c.Name, ms.Name, ref)
					}
					return ref
				}
				target = t
			}
		}
		x, ok := target.Measure(name)
		if !ok {
			if firstErr == nil {
				firstErr = fmt.Errorf("measure %s.%s: %s is not a measure", c.Name, ms.Name, ref)
			}
			return ref
		}
		s, err := p.measureSQL(target, x, depth+1)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return "(" + s + ")"
	})
	return out, firstErr
}

func (p *planner) compile() (*Plan, error) {
	q := p.q
	p.norm = q
	if len(q.Measures)+len(q.Dimensions)+len(q.TimeDimensions) == 0 {
		return nil, queryErrorf("query needs at least one measure, dimension or time dimension")
	}
	limit := DefaultLimit
	if q.Limit != nil {
		limit = *q.Limit
	}
	if limit < 0 || limit > MaxLimit {
		return nil, queryErrorf("limit %d is more than the maximum %d", limit, MaxLimit)
	}
	p.norm.Limit = &limit

	// Dimensions, then time dimensions at a granularity: the grouped
	// columns, in the output's order.
	for _, name := range q.Dimensions {
		mb, err := p.lookupAs(name, "dimension")
		if err != nil {
			return nil, err
		}
		s, err := p.rowSQL(mb.cube, mb.dim.SQL, 0)
		if err != nil {
			return nil, err
		}
		if mb.dim.Type == Time {
			s = "((" + s + ") AT TIME ZONE " + p.tz() + ")"
		}
		p.addOut(name, name, "dimension", mb.dim.Type, "", p.addDim(s, mb.dim.Type, mb.cube.Name))
	}
	p.norm.TimeDimensions = slices.Clone(q.TimeDimensions)
	for i, td := range q.TimeDimensions {
		mb, err := p.lookupAs(td.Dimension, "time dimension")
		if err != nil {
			return nil, err
		}
		raw, err := p.rowSQL(mb.cube, mb.dim.SQL, 0)
		if err != nil {
			return nil, err
		}
		if td.DateRange != nil {
			from, to, err := ResolveDateRange(td.DateRange, p.now, p.loc)
			if err != nil {
				return nil, queryErrorf("timeDimensions %s: %s", td.Dimension, err.Error())
			}
			p.where = append(p.where, fmt.Sprintf("(%s) >= %s AND (%s) <= %s", raw, p.param(from, "timestamptz"), raw, p.param(to, "timestamptz")))
			p.norm.TimeDimensions[i].DateRange = []string{formatLocal(from, p.loc), formatLocal(to, p.loc)}
		}
		if td.Granularity == "" {
			continue
		}
		if !slices.Contains(Granularities, td.Granularity) {
			return nil, queryErrorf("timeDimensions %s: unknown granularity %q", td.Dimension, td.Granularity)
		}
		s := "date_trunc('" + td.Granularity + "', (" + raw + ") AT TIME ZONE " + p.tz() + ")"
		d := p.addDim(s, Time, mb.cube.Name)
		p.addOut(td.Dimension+"."+td.Granularity, td.Dimension, "timeDimension", Time, td.Granularity, d)
	}
	// Cube fills cube.dim with the first granularity's value too.
	for _, c := range slices.Clone(p.cols) {
		if c.Kind == "timeDimension" && !p.hasKey(c.Member) {
			i := slices.IndexFunc(p.cols, func(x Column) bool { return x.Key == c.Key })
			p.outs = append(p.outs, p.outs[i])
			p.cols = append(p.cols, Column{Key: c.Member, Member: c.Member, Kind: "timeDimension", Type: Time, Granularity: c.Granularity})
		}
	}
	for _, name := range q.Measures {
		mb, err := p.lookupAs(name, "measure")
		if err != nil {
			return nil, err
		}
		s, err := p.measureSQL(mb.cube, mb.measure, 0)
		if err != nil {
			return nil, err
		}
		p.outs = append(p.outs, outCol{sql: "(" + s + ")::text", orderBy: "(" + s + ")"})
		p.cols = append(p.cols, Column{Key: name, Member: name, Kind: "measure", Type: Number})
	}
	for _, name := range q.Segments {
		mb, err := p.lookupAs(name, "segment")
		if err != nil {
			return nil, err
		}
		s, err := p.rowSQL(mb.cube, mb.segment.SQL, 0)
		if err != nil {
			return nil, err
		}
		p.where = append(p.where, "("+s+")")
	}
	for i, f := range q.Filters {
		isMeasure, err := p.filterKind(f, fmt.Sprintf("filters[%d]", i))
		if err != nil {
			return nil, err
		}
		s, err := p.filterSQL(f, isMeasure)
		if err != nil {
			return nil, err
		}
		if isMeasure {
			p.having = append(p.having, s)
		} else {
			p.where = append(p.where, s)
		}
	}
	order, err := p.orderSQL()
	if err != nil {
		return nil, err
	}

	// The root: the first measure's cube, else the first dimension's.
	switch {
	case len(q.Measures) > 0:
		p.root, _, _ = strings.Cut(q.Measures[0], ".")
	case len(q.Dimensions) > 0:
		p.root, _, _ = strings.Cut(q.Dimensions[0], ".")
	default:
		p.root, _, _ = strings.Cut(q.TimeDimensions[0].Dimension, ".")
	}
	from, err := p.joins()
	if err != nil {
		return nil, err
	}
	grouped, err := p.grouped(from)
	if err != nil {
		return nil, err
	}

	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, o := range p.outs {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(o.sql + " AS c" + strconv.Itoa(i))
	}
	sb.WriteString("\nFROM (" + grouped + ") AS q")
	if len(p.having) > 0 {
		sb.WriteString("\nWHERE " + strings.Join(p.having, " AND "))
	}
	base := sb.String()
	if order != "" {
		sb.WriteString("\nORDER BY " + order)
	}
	sb.WriteString("\nLIMIT " + strconv.Itoa(limit))
	if q.Offset > 0 {
		sb.WriteString(" OFFSET " + strconv.Itoa(q.Offset))
	}
	plan := &Plan{SQL: sb.String(), Args: p.args, Query: p.norm, Columns: p.cols}
	if q.Total {
		plan.TotalSQL = "SELECT count(*) FROM (" + base + ") AS t"
		plan.TotalArgs = p.args
	}
	return plan, nil
}

func (p *planner) hasKey(key string) bool {
	return slices.ContainsFunc(p.cols, func(c Column) bool { return c.Key == key })
}

// addDim adds a grouped column (or finds the same one) and returns its
// name over q.
func (p *planner) addDim(sql, typ, cube string) string {
	for i, d := range p.dims {
		if d.sql == sql {
			return "q.d" + strconv.Itoa(i)
		}
	}
	p.dims = append(p.dims, gdim{sql: sql, typ: typ, cube: cube})
	return "q.d" + strconv.Itoa(len(p.dims)-1)
}

func (p *planner) addOut(key, member, kind, typ, gran, col string) {
	out := outCol{sql: col, orderBy: col}
	if typ == String || typ == NumberD {
		out.sql = col + "::text"
	}
	p.outs = append(p.outs, out)
	p.cols = append(p.cols, Column{Key: key, Member: member, Kind: kind, Type: typ, Granularity: gran})
}

// orderSQL is the ORDER BY over q. Members the query does not select are
// ignored, as Cube does; an absent order is Cube's default: the first time
// dimension ascending, else the first measure descending, else the first
// dimension ascending.
func (p *planner) orderSQL() (string, error) {
	order := p.q.Order
	if order == nil {
		order = []OrderBy{}
		switch {
		case slices.ContainsFunc(p.q.TimeDimensions, func(td TimeDimension) bool { return td.Granularity != "" }):
			for _, td := range p.q.TimeDimensions {
				if td.Granularity != "" {
					order = append(order, OrderBy{Member: td.Dimension})
					break
				}
			}
		case len(p.q.Measures) > 0:
			order = append(order, OrderBy{Member: p.q.Measures[0], Desc: true})
		case len(p.q.Dimensions) > 0:
			order = append(order, OrderBy{Member: p.q.Dimensions[0]})
		}
	}
	p.norm.Order = order
	var parts []string
	for _, o := range order {
		name := o.Member
		if strings.Count(name, ".") == 2 {
			i := strings.LastIndexByte(name, '.')
			if !slices.Contains(Granularities, name[i+1:]) {
				return "", queryErrorf("order: unknown granularity in %s", name)
			}
			if _, err := p.lookupAs(name[:i], "time dimension"); err != nil {
				return "", queryErrorf("order: %s", err.Error())
			}
		} else if _, err := p.lookupAs(name, "measure or dimension"); err != nil {
			return "", queryErrorf("order: %s", err.Error())
		}
		i := slices.IndexFunc(p.cols, func(c Column) bool { return c.Key == name })
		if i < 0 {
			continue
		}
		dir := " ASC"
		if o.Desc {
			dir = " DESC"
		}
		parts = append(parts, p.outs[i].orderBy+dir)
	}
	return strings.Join(parts, ", "), nil
}

// joinEdge is a join seen from one of its cubes.
type joinEdge struct {
	to       string
	rel      string // from this cube to the other
	declarer *Cube
	sql      string
}

func reverse(rel string) string {
	switch rel {
	case ManyToOne:
		return OneToMany
	case OneToMany:
		return ManyToOne
	}
	return rel
}

// joins finds the join tree from the root to every cube involved (shortest
// paths over the declared joins, either direction), marks the cubes whose
// rows it multiplies, and returns the FROM clause.
func (p *planner) joins() (string, error) {
	adj := map[string][]joinEdge{}
	for _, c := range p.m.Cubes {
		for _, j := range c.Joins {
			if _, ok := p.m.Cube(j.Name); !ok {
				continue
			}
			adj[c.Name] = append(adj[c.Name], joinEdge{to: j.Name, rel: j.Relationship, declarer: c, sql: j.SQL})
			adj[j.Name] = append(adj[j.Name], joinEdge{to: c.Name, rel: reverse(j.Relationship), declarer: c, sql: j.SQL})
		}
	}
	parent := map[string]joinEdge{}
	from := map[string]string{}
	seen := map[string]bool{p.root: true}
	bfs := []string{p.root}
	for i := 0; i < len(bfs); i++ {
		for _, e := range adj[bfs[i]] {
			if !seen[e.to] {
				seen[e.to] = true
				parent[e.to] = e
				from[e.to] = bfs[i]
				bfs = append(bfs, e.to)
			}
		}
	}
	inTree := map[string]bool{p.root: true}
	var names []string
	for n := range p.involved {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !seen[n] {
			return "", queryErrorf("can't join %s to %s: no join path between them", n, p.root)
		}
		for x := n; !inTree[x]; x = from[x] {
			inTree[x] = true
		}
	}
	var tree []string
	for _, n := range bfs {
		if inTree[n] {
			tree = append(tree, n)
		}
	}
	// subtree lists a cube and the cubes joined through it.
	subtree := func(n string) map[string]bool {
		s := map[string]bool{n: true}
		for _, x := range tree {
			for y := x; y != p.root; y = from[y] {
				if y == n {
					s[x] = true
					break
				}
			}
		}
		return s
	}
	p.multi = map[string]bool{}
	for _, n := range tree[1:] {
		e := parent[n]
		sub := subtree(n)
		for _, x := range tree {
			if (e.rel == OneToMany && !sub[x]) || (e.rel == ManyToOne && sub[x]) {
				p.multi[x] = true
			}
		}
	}
	var sb strings.Builder
	root, _ := p.m.Cube(p.root)
	sb.WriteString(p.source(root))
	for _, n := range tree[1:] {
		c, _ := p.m.Cube(n)
		e := parent[n]
		// {other} in a join is the joined cube, even if the declaring cube
		// has a member of that name.
		other := n
		if e.declarer.Name == n {
			other = from[n]
		}
		on, err := p.rowSQL(e.declarer, strings.ReplaceAll(e.sql, "{"+other+"}", quoteAlias(other)), 0)
		if err != nil {
			return "", err
		}
		sb.WriteString("\nLEFT JOIN " + p.source(c) + " ON " + on)
	}
	return sb.String(), nil
}

func (p *planner) usesTable() bool {
	for n := range p.involved {
		if c, ok := p.m.Cube(n); ok && c.SQLTable != "" {
			return true
		}
	}
	return false
}

// source is a cube's rows: a table scoped to the workspace, or its SQL
// (which row-level security scopes when the plan runs).
func (p *planner) source(c *Cube) string {
	if c.SQLTable != "" {
		return "(SELECT * FROM " + c.SQLTable + " WHERE workspace_id = $1::uuid) AS " + quoteAlias(c.Name)
	}
	return "(" + c.SQL + ") AS " + quoteAlias(c.Name)
}

func (p *planner) primaryKey(c *Cube) []string {
	var out []string
	for _, d := range c.Dimensions {
		if d.PrimaryKey {
			s, err := p.rowSQL(c, d.SQL, 0)
			if err == nil {
				out = append(out, "("+s+")")
			}
		}
	}
	return out
}

// value is a leaf measure's row value (filters applied) and its aggregate.
func (p *planner) value(l *leaf) (val string, err error) {
	c, ms := l.cube, l.measure
	var conds []string
	for _, f := range ms.Filters {
		s, err := p.rowSQL(c, f, 0)
		if err != nil {
			return "", err
		}
		conds = append(conds, "("+s+")")
	}
	if ms.SQL == "" {
		pk := p.primaryKey(c)
		if len(pk) == 0 {
			val = "1"
		} else {
			conds = append([]string{pk[0] + " IS NOT NULL"}, conds...)
			val = "1"
		}
	} else {
		s, err := p.rowSQL(c, ms.SQL, 0)
		if err != nil {
			return "", err
		}
		val = "(" + s + ")"
	}
	if len(conds) > 0 {
		val = "CASE WHEN " + strings.Join(conds, " AND ") + " THEN " + val + " END"
	}
	return val, nil
}

func aggregate(typ, v string) string {
	switch typ {
	case Count:
		return "count(" + v + ")"
	case CountDistinct:
		return "count(DISTINCT " + v + ")"
	}
	return typ + "(" + v + ")"
}

// multiplied tells whether a leaf must be aggregated over its cube's
// distinct rows: its cube's rows are multiplied by the joins and its
// aggregate counts duplicates (count_distinct, min and max do not).
func (p *planner) multiplied(l *leaf) bool {
	t := l.measure.Type
	return p.multi[l.cube.Name] && (t == Count || t == Sum || t == Avg)
}

// grouped builds <grouped>: one row per dimension tuple, with the leaves.
func (p *planner) grouped(from string) (string, error) {
	where := slices.Clone(p.where)
	if !p.usesTable() {
		// Keep $1 in the statement (PostgreSQL refuses unused parameters).
		where = append(where, "$1::uuid IS NOT NULL")
	}
	whereSQL := ""
	if len(where) > 0 {
		whereSQL = "\nWHERE " + strings.Join(where, " AND ")
	}
	groupBy := ""
	if len(p.dims) > 0 {
		var ns []string
		for i := range p.dims {
			ns = append(ns, strconv.Itoa(i+1))
		}
		groupBy = "\nGROUP BY " + strings.Join(ns, ", ")
	}
	dimCols := func(prefix string, raw bool) []string {
		var out []string
		for i, d := range p.dims {
			if raw {
				out = append(out, d.sql+" AS d"+strconv.Itoa(i))
			} else {
				out = append(out, prefix+"d"+strconv.Itoa(i))
			}
		}
		return out
	}
	// Regular leaves go in one group; each multiplied cube gets its own.
	type group struct {
		cube   string
		leaves []int
	}
	var groups []group
	idx := map[string]int{}
	for i, l := range p.leaves {
		key := ""
		if p.multiplied(l) {
			key = l.cube.Name
			if len(p.primaryKey(l.cube)) == 0 {
				return "", queryErrorf("measure %s.%s can't be computed: the joins multiply the rows of cube %s, which has no primary key dimension", l.cube.Name, l.measure.Name, l.cube.Name)
			}
		}
		g, ok := idx[key]
		if !ok {
			g = len(groups)
			idx[key] = g
			groups = append(groups, group{cube: key})
		}
		groups[g].leaves = append(groups[g].leaves, i)
	}
	if len(groups) == 0 {
		groups = append(groups, group{})
	}
	var parts []string
	for _, g := range groups {
		var cols []string
		if g.cube == "" {
			cols = dimCols("", true)
			for _, li := range g.leaves {
				l := p.leaves[li]
				v, err := p.value(l)
				if err != nil {
					return "", err
				}
				cols = append(cols, aggregate(l.measure.Type, v)+" AS l"+strconv.Itoa(li))
			}
			if len(groups) > 1 {
				cols = p.nullLeaves(cols, g.leaves)
			}
			parts = append(parts, "SELECT "+strings.Join(cols, ", ")+"\nFROM "+from+whereSQL+groupBy)
			continue
		}
		c, _ := p.m.Cube(g.cube)
		inner := dimCols("", true)
		for i, k := range p.primaryKey(c) {
			inner = append(inner, k+" AS k"+strconv.Itoa(i))
		}
		cols = dimCols("s.", false)
		for _, li := range g.leaves {
			l := p.leaves[li]
			v, err := p.value(l)
			if err != nil {
				return "", err
			}
			inner = append(inner, v+" AS v"+strconv.Itoa(li))
			cols = append(cols, aggregate(l.measure.Type, "s.v"+strconv.Itoa(li))+" AS l"+strconv.Itoa(li))
		}
		if len(groups) > 1 {
			cols = p.nullLeaves(cols, g.leaves)
		}
		parts = append(parts, "SELECT "+strings.Join(cols, ", ")+"\nFROM (SELECT DISTINCT "+strings.Join(inner, ", ")+"\nFROM "+from+whereSQL+") AS s"+groupBy)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	// Every group has a row for each dimension tuple of the joined rows:
	// regroup the union, each leaf's one value taken by max.
	cols := dimCols("u.", false)
	for i := range p.leaves {
		cols = append(cols, "max(u.l"+strconv.Itoa(i)+") AS l"+strconv.Itoa(i))
	}
	return "SELECT " + strings.Join(cols, ", ") + "\nFROM (" + strings.Join(parts, "\nUNION ALL\n") + ") AS u" + groupBy, nil
}

// nullLeaves completes a group's columns with NULL for the leaves of other
// groups, in leaf order, for the union.
func (p *planner) nullLeaves(cols []string, mine []int) []string {
	out := slices.Clone(cols[:len(p.dims)])
	k := len(p.dims)
	for i := range p.leaves {
		if slices.Contains(mine, i) {
			out = append(out, cols[k])
			k++
			continue
		}
		out = append(out, "NULL::numeric AS l"+strconv.Itoa(i))
	}
	return out
}

// filterKind tells whether a filter is on measures (true) or dimensions;
// an and/or group must not mix them.
func (p *planner) filterKind(f Filter, field string) (bool, error) {
	if f.Member != "" {
		mb, err := p.lookupAs(f.Member, "measure or dimension")
		if err != nil {
			return false, queryErrorf("%s: %s", field, err.Error())
		}
		return mb.measure != nil, nil
	}
	subs := f.And
	if f.Or != nil {
		subs = f.Or
	}
	if len(subs) == 0 {
		return false, queryErrorf("%s: empty and/or", field)
	}
	var kind bool
	for i, s := range subs {
		k, err := p.filterKind(s, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return false, err
		}
		if i > 0 && k != kind {
			return false, queryErrorf("%s: an and/or group can't mix measure and dimension filters", field)
		}
		kind = k
	}
	return kind, nil
}

func (p *planner) filterSQL(f Filter, isMeasure bool) (string, error) {
	if f.Member == "" {
		subs, op := f.And, " AND "
		if f.Or != nil {
			subs, op = f.Or, " OR "
		}
		var parts []string
		for _, s := range subs {
			x, err := p.filterSQL(s, isMeasure)
			if err != nil {
				return "", err
			}
			parts = append(parts, x)
		}
		return "(" + strings.Join(parts, op) + ")", nil
	}
	mb, err := p.lookupAs(f.Member, "measure or dimension")
	if err != nil {
		return "", err
	}
	var col, typ string
	if mb.measure != nil {
		col, err = p.measureSQL(mb.cube, mb.measure, 0)
		typ = NumberD
	} else {
		col, err = p.rowSQL(mb.cube, mb.dim.SQL, 0)
		typ = mb.dim.Type
	}
	if err != nil {
		return "", err
	}
	col = "(" + col + ")"
	s, err := p.condition(f, col, typ)
	if err != nil {
		return "", err
	}
	return "(" + s + ")", nil
}

// typedParam checks a value against a member's type and allocates it.
func (p *planner) typedParam(f Filter, v, typ string) (string, error) {
	switch typ {
	case NumberD:
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || x != x || x > 1e300 || x < -1e300 {
			return "", queryErrorf("filter on %s: %q is not a number", f.Member, truncate(v))
		}
		return p.param(strings.TrimSpace(v), "numeric"), nil
	case Boolean:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return "", queryErrorf("filter on %s: %q is not true or false", f.Member, truncate(v))
		}
		return p.param(b, "boolean"), nil
	case Time:
		t, _, err := ParseDate(v, p.loc)
		if err != nil {
			return "", queryErrorf("filter on %s: %s", f.Member, err.Error())
		}
		return p.param(t, "timestamptz"), nil
	}
	return p.param(v, "text"), nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

func (p *planner) condition(f Filter, col, typ string) (string, error) {
	op := f.Operator
	if typ == String {
		col = col + "::text"
	}
	switch op {
	case "set":
		return col + " IS NOT NULL", nil
	case "notSet":
		return col + " IS NULL", nil
	case "equals", "notEquals":
		var ps []string
		for _, v := range f.Values {
			x, err := p.typedParam(f, v, typ)
			if err != nil {
				return "", err
			}
			ps = append(ps, x)
		}
		if op == "equals" {
			if len(ps) == 1 {
				return col + " = " + ps[0], nil
			}
			return col + " IN (" + strings.Join(ps, ", ") + ")", nil
		}
		// Cube keeps the rows where the member is NULL.
		if len(ps) == 1 {
			return col + " <> " + ps[0] + " OR " + col + " IS NULL", nil
		}
		return col + " NOT IN (" + strings.Join(ps, ", ") + ") OR " + col + " IS NULL", nil
	case "contains", "notContains", "startsWith", "notStartsWith", "endsWith", "notEndsWith":
		if typ != String {
			return "", queryErrorf("filter on %s: operator %s applies to string dimensions only", f.Member, op)
		}
		not := strings.HasPrefix(op, "not")
		kind := strings.ToLower(strings.TrimPrefix(op, "not"))
		var parts []string
		for _, v := range f.Values {
			pat := p.param(likeEscaper.Replace(v), "text")
			switch kind {
			case "contains":
				pat = "'%' || " + pat + " || '%'"
			case "startswith":
				pat = pat + " || '%'"
			case "endswith":
				pat = "'%' || " + pat
			}
			if not {
				parts = append(parts, col+" NOT ILIKE "+pat)
			} else {
				parts = append(parts, col+" ILIKE "+pat)
			}
		}
		if not {
			// As Cube: NULLs do not contain the value.
			return "(" + strings.Join(parts, " AND ") + ") OR " + col + " IS NULL", nil
		}
		return strings.Join(parts, " OR "), nil
	case "gt", "gte", "lt", "lte":
		if typ != NumberD && typ != Time {
			return "", queryErrorf("filter on %s: operator %s applies to numbers and times only", f.Member, op)
		}
		x, err := p.typedParam(f, f.Values[0], typ)
		if err != nil {
			return "", err
		}
		sym := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
		return col + " " + sym + " " + x, nil
	}
	// Date operators.
	if typ != Time {
		return "", queryErrorf("filter on %s: operator %s applies to time dimensions only", f.Member, op)
	}
	var from, to time.Time
	var err error
	switch op {
	case "inDateRange", "notInDateRange":
		if len(f.Values) == 1 {
			from, to, err = ResolveDateRange(f.Values[0], p.now, p.loc)
		} else {
			from, to, err = ResolveDateRange([]string{f.Values[0], f.Values[1]}, p.now, p.loc)
		}
	case "onTheDate":
		var t time.Time
		t, _, err = ParseDate(f.Values[0], p.loc)
		from, to = startOf(t, "day"), endOf(t, "day")
	default:
		// Cube reads the value as a range's start: a date is its midnight.
		from, _, err = ParseDate(f.Values[0], p.loc)
	}
	if err != nil {
		return "", queryErrorf("filter on %s: %s", f.Member, err.Error())
	}
	switch op {
	case "inDateRange", "onTheDate":
		return col + " >= " + p.param(from, "timestamptz") + " AND " + col + " <= " + p.param(to, "timestamptz"), nil
	case "notInDateRange":
		return col + " < " + p.param(from, "timestamptz") + " OR " + col + " > " + p.param(to, "timestamptz"), nil
	case "beforeDate":
		return col + " < " + p.param(from, "timestamptz"), nil
	case "beforeOrOnDate":
		return col + " <= " + p.param(from, "timestamptz"), nil
	case "afterDate":
		return col + " > " + p.param(from, "timestamptz"), nil
	case "afterOrOnDate":
		return col + " >= " + p.param(from, "timestamptz"), nil
	}
	return "", queryErrorf("filter on %s: unknown operator %q", f.Member, op)
}
