package cube

import (
	"fmt"
	"slices"
	"strings"
)

// checkCube records the problems of one cube on its own: names, types,
// required SQL, the syntax of its SQL snippets (see scanSQL), unique member
// names, and its pre-aggregations. References to members and cubes need the
// whole model and are checked by Model.check.
func checkCube(errs *collector, c *Cube) {
	f := c.File
	at := func(l lines, key string, def int) int { return l.at(key, def) }
	what := fmt.Sprintf("cube %q", c.Name)
	switch {
	case c.Name == "":
		what = "cube"
		errs.add(f, c.Line, "cube has no name")
	case !nameRe.MatchString(c.Name):
		errs.add(f, at(c.lines, "name", c.Line), "cube %q: the name must match %s", c.Name, nameRe)
	}
	switch {
	case c.SQLTable == "" && c.SQL == "":
		errs.add(f, c.Line, "%s: needs sql_table or sql", what)
	case c.SQLTable != "" && c.SQL != "":
		errs.add(f, at(c.lines, "sql", c.Line), "%s: has both sql_table and sql (choose one)", what)
	case c.SQLTable != "" && !tableRe.MatchString(c.SQLTable):
		errs.add(f, at(c.lines, "sql_table", c.Line), "%s: sql_table %q is not a table name (name or schema.name)", what, c.SQLTable)
	case c.SQL != "":
		refs, err := scanSQL(c.SQL)
		line := at(c.lines, "sql", c.Line)
		if err != nil {
			errs.add(f, line, "%s: sql: %v", what, err)
		} else if len(refs) > 0 {
			errs.add(f, line, "%s: sql: a cube's sql cannot reference members or cubes ({%s})", what, refs[0].name)
		}
	}

	seen := map[string]string{} // member name -> "measure" etc.
	name := func(kind, n string, l lines, line int) string {
		w := fmt.Sprintf("%s %q", kind, n)
		switch {
		case n == "":
			w = kind
			errs.add(f, line, "%s: a %s has no name", what, kind)
		case !nameRe.MatchString(n):
			errs.add(f, at(l, "name", line), "%s: the name must match %s", w, nameRe)
		case seen[n] != "":
			errs.add(f, at(l, "name", line), "%s: the name is already used by a %s of cube %q (measures, dimensions and segments share names)", w, seen[n], c.Name)
		default:
			seen[n] = kind
		}
		return w
	}
	snippet := func(w, key string, l lines, line int, sql string) {
		if _, err := scanSQL(sql); err != nil {
			errs.add(f, at(l, key, line), "%s: %s: %v", w, key, err)
		}
	}

	for _, m := range c.Measures {
		w := name("measure", m.Name, m.lines, m.Line)
		_, typed := m.lines["type"] // a type that was not text is reported already
		switch {
		case m.Type == "" && typed:
		case m.Type == "":
			errs.add(f, m.Line, "%s: has no type (one of %s)", w, strings.Join(measureTypes, ", "))
		case !slices.Contains(measureTypes, m.Type):
			errs.add(f, at(m.lines, "type", m.Line), "%s: type %q is not one of %s", w, m.Type, strings.Join(measureTypes, ", "))
		}
		if m.SQL == "" && m.Type != Count && slices.Contains(measureTypes, m.Type) {
			errs.add(f, m.Line, "%s: has no sql (only count measures may omit it)", w)
		}
		if m.SQL != "" {
			snippet(w, "sql", m.lines, m.Line, m.SQL)
		}
		if m.Type == Number && len(m.Filters) > 0 {
			errs.add(f, at(m.lines, "filters", m.Line), "%s: a number measure cannot have filters (filter the measures it references)", w)
		}
		for i, fs := range m.Filters {
			key := fmt.Sprintf("filters.%d", i)
			if strings.TrimSpace(fs) == "" {
				errs.add(f, at(m.lines, key, m.Line), "%s: filter #%d has no sql", w, i+1)
				continue
			}
			if _, err := scanSQL(fs); err != nil {
				errs.add(f, at(m.lines, key, m.Line), "%s: filter #%d: %v", w, i+1, err)
			}
		}
		if m.Format != "" && !slices.Contains(formats, m.Format) {
			errs.add(f, at(m.lines, "format", m.Line), "%s: format %q is not one of %s", w, m.Format, strings.Join(formats, ", "))
		}
	}
	for _, d := range c.Dimensions {
		w := name("dimension", d.Name, d.lines, d.Line)
		_, typed := d.lines["type"]
		switch {
		case d.Type == "" && typed:
		case d.Type == "":
			errs.add(f, d.Line, "%s: has no type (one of %s)", w, strings.Join(dimensionTypes, ", "))
		case !slices.Contains(dimensionTypes, d.Type):
			errs.add(f, at(d.lines, "type", d.Line), "%s: type %q is not one of %s", w, d.Type, strings.Join(dimensionTypes, ", "))
		}
		if d.SQL == "" {
			errs.add(f, d.Line, "%s: has no sql", w)
		} else {
			snippet(w, "sql", d.lines, d.Line, d.SQL)
		}
	}
	for _, s := range c.Segments {
		w := name("segment", s.Name, s.lines, s.Line)
		if s.SQL == "" {
			errs.add(f, s.Line, "%s: has no sql", w)
		} else {
			snippet(w, "sql", s.lines, s.Line, s.SQL)
		}
	}

	joined := map[string]bool{}
	for _, j := range c.Joins {
		w := fmt.Sprintf("join %q", j.Name)
		switch {
		case j.Name == "":
			w = "join"
			errs.add(f, j.Line, "%s: a join has no name (the cube it joins)", what)
		case !nameRe.MatchString(j.Name):
			errs.add(f, at(j.lines, "name", j.Line), "%s: the name must match %s", w, nameRe)
		case joined[j.Name]:
			errs.add(f, at(j.lines, "name", j.Line), "%s: cube %q already joins %q", w, c.Name, j.Name)
		default:
			joined[j.Name] = true
		}
		switch {
		case j.Relationship == "":
			errs.add(f, j.Line, "%s: has no relationship (one of %s)", w, strings.Join(relationships, ", "))
		case !slices.Contains(relationships, j.Relationship):
			errs.add(f, at(j.lines, "relationship", j.Line), "%s: relationship %q is not one of %s (or belongs_to, has_many, has_one)", w, j.Relationship, strings.Join(relationships, ", "))
		}
		if j.SQL == "" {
			errs.add(f, j.Line, "%s: has no sql (the join condition)", w)
		} else {
			snippet(w, "sql", j.lines, j.Line, j.SQL)
		}
	}

	rollups := map[string]bool{}
	for _, p := range c.PreAggregations {
		checkPreAggregation(errs, c, p, rollups)
	}
}

// Why a measure type cannot be kept by a rollup. A rollup is kept up to date
// incrementally as rows arrive and change, and answers coarser queries by
// adding its groups up, so it keeps only measures whose values add: counts
// and sums. An average is answered from a rollup that keeps a sum and a
// count of the same rows (a number measure dividing them).
var notAdditive = map[string]string{
	CountDistinct: "distinct counts of groups do not add up",
	Avg:           "keep a sum and a count of the same rows instead, and divide them in a number measure",
	Min:           "a minimum cannot be kept incrementally when rows change or go",
	Max:           "a maximum cannot be kept incrementally when rows change or go",
	Number:        "list the measures it is computed from instead",
}

func checkPreAggregation(errs *collector, c *Cube, p *PreAggregation, seen map[string]bool) {
	f := c.File
	w := fmt.Sprintf("pre-aggregation %q", p.Name)
	switch {
	case p.Name == "":
		w = "pre-aggregation"
		errs.add(f, p.Line, "cube %q: a pre-aggregation has no name", c.Name)
	case !nameRe.MatchString(p.Name):
		errs.add(f, p.lines.at("name", p.Line), "%s: the name must match %s", w, nameRe)
	case seen[p.Name]:
		errs.add(f, p.lines.at("name", p.Line), "%s: cube %q already has a pre-aggregation of that name", w, c.Name)
	default:
		seen[p.Name] = true
	}
	other := func(key, n string) bool {
		if strings.Contains(n, ".") {
			errs.add(f, p.lines.at(key, p.Line), "%s: %s is not a member of cube %q (a rollup holds its own cube's members)", w, n, c.Name)
			return true
		}
		return false
	}
	if len(p.Measures) == 0 {
		errs.add(f, p.Line, "%s: has no measures", w)
	}
	for _, n := range p.Measures {
		if other("measures", n) {
			continue
		}
		m, ok := c.Measure(n)
		switch {
		case !ok:
			errs.add(f, p.lines.at("measures", p.Line), "%s: cube %q has no measure %q", w, c.Name, n)
		case notAdditive[m.Type] != "":
			errs.add(f, p.lines.at("measures", p.Line), "%s: measure %q is %s; a rollup can only keep additive measures (count, sum): %s", w, n, m.Type, notAdditive[m.Type])
		}
	}
	for _, n := range p.Dimensions {
		if other("dimensions", n) {
			continue
		}
		if _, ok := c.Dimension(n); !ok {
			errs.add(f, p.lines.at("dimensions", p.Line), "%s: cube %q has no dimension %q", w, c.Name, n)
		}
	}
	switch {
	case p.TimeDimension == "" && p.Granularity != "":
		errs.add(f, p.lines.at("granularity", p.Line), "%s: a granularity needs a time_dimension", w)
	case p.TimeDimension != "" && p.Granularity == "":
		errs.add(f, p.lines.at("time_dimension", p.Line), "%s: a time_dimension needs a granularity (one of %s)", w, strings.Join(Granularities, ", "))
	}
	if p.TimeDimension != "" && !other("time_dimension", p.TimeDimension) {
		d, ok := c.Dimension(p.TimeDimension)
		switch {
		case !ok:
			errs.add(f, p.lines.at("time_dimension", p.Line), "%s: cube %q has no dimension %q", w, c.Name, p.TimeDimension)
		case d.Type != Time:
			errs.add(f, p.lines.at("time_dimension", p.Line), "%s: time_dimension %q is of type %s, not time", w, p.TimeDimension, d.Type)
		}
	}
	if p.Granularity != "" && !slices.Contains(Granularities, p.Granularity) {
		errs.add(f, p.lines.at("granularity", p.Line), "%s: granularity %q is not one of %s", w, p.Granularity, strings.Join(Granularities, ", "))
	}
}

// What a reference in SQL points at.
type refKind int

const (
	refCube refKind = iota + 1
	refMeasure
	refDimension
	refSegment
)

func (k refKind) String() string {
	return [...]string{"", "cube", "measure", "dimension", "segment"}[k]
}

// refTarget is a resolved reference: a cube, or one of its members.
type refTarget struct {
	kind      refKind
	cube      *Cube
	measure   *Measure
	dimension *Dimension
	name      string // the member's name; the cube's for refCube
}

// resolveRef resolves the text of a reference {name} in a snippet of cube
// self: "CUBE" is self; "CUBE.x" and "c.x" are member x of self or of cube c;
// a bare "x" is a member of self if it has one, else the cube x.
func (m *Model) resolveRef(self *Cube, name string) (refTarget, error) {
	cubeName, member, qualified := strings.Cut(name, ".")
	if !qualified {
		if name == "CUBE" {
			return refTarget{kind: refCube, cube: self, name: self.Name}, nil
		}
		if t, ok := memberOf(self, name); ok {
			return t, nil
		}
		if c, ok := m.byName[name]; ok {
			return refTarget{kind: refCube, cube: c, name: c.Name}, nil
		}
		return refTarget{}, fmt.Errorf("{%s} is neither a member of cube %q nor a cube", name, self.Name)
	}
	c := self
	if cubeName != "CUBE" {
		var ok bool
		if c, ok = m.byName[cubeName]; !ok {
			return refTarget{}, fmt.Errorf("{%s}: there is no cube %q", name, cubeName)
		}
	}
	t, ok := memberOf(c, member)
	if !ok {
		return refTarget{}, fmt.Errorf("{%s}: cube %q has no member %q", name, c.Name, member)
	}
	return t, nil
}

func memberOf(c *Cube, name string) (refTarget, bool) {
	if x, ok := c.Measure(name); ok {
		return refTarget{kind: refMeasure, cube: c, measure: x, name: name}, true
	}
	if x, ok := c.Dimension(name); ok {
		return refTarget{kind: refDimension, cube: c, dimension: x, name: name}, true
	}
	if _, ok := c.Segment(name); ok {
		return refTarget{kind: refSegment, cube: c, name: name}, true
	}
	return refTarget{}, false
}

// check records the problems that need the whole model: references in SQL,
// joins, and cycles of references. Cubes are already checked one by one.
func (m *Model) check(errs *collector) {
	// deps are the member references of each measure and dimension
	// ("cube.member"), for cycle detection.
	deps := map[string][]string{}
	for _, c := range m.Cubes {
		f := c.File
		// refs checks one snippet: every reference resolves and is of a
		// kind allowed there. It returns the targets.
		refs := func(w, key string, line int, sql string, allowCubes bool, allowed ...refKind) []refTarget {
			rs, err := scanSQL(sql)
			if err != nil {
				return nil // reported by checkCube
			}
			var out []refTarget
			for _, r := range rs {
				t, err := m.resolveRef(c, r.name)
				if err != nil {
					errs.add(f, line, "%s: %s: %v", w, key, err)
					continue
				}
				switch {
				case t.kind == refCube && !allowCubes:
					errs.add(f, line, "%s: %s: {%s} is a cube; only measures can be referenced here", w, key, r.name)
				case t.kind != refCube && !slices.Contains(allowed, t.kind):
					errs.add(f, line, "%s: %s: {%s} is a %s; %s", w, key, r.name, t.kind, onlyRefs(allowed))
				default:
					out = append(out, t)
				}
			}
			return out
		}
		depsOf := func(ts []refTarget) []string {
			var out []string
			for _, t := range ts {
				if t.kind == refMeasure || t.kind == refDimension {
					out = append(out, t.cube.Name+"."+t.name)
				}
			}
			return out
		}
		for _, x := range c.Measures {
			w := fmt.Sprintf("measure %q", x.Name)
			key := c.Name + "." + x.Name
			if x.Type == Number {
				deps[key] = depsOf(refs(w, "sql", x.lines.at("sql", x.Line), x.SQL, false, refMeasure))
				continue
			}
			ts := refs(w, "sql", x.lines.at("sql", x.Line), x.SQL, true, refDimension)
			for i, fs := range x.Filters {
				ts = append(ts, refs(w, fmt.Sprintf("filter #%d", i+1), x.lines.at(fmt.Sprintf("filters.%d", i), x.Line), fs, true, refDimension)...)
			}
			deps[key] = depsOf(ts)
		}
		for _, x := range c.Dimensions {
			w := fmt.Sprintf("dimension %q", x.Name)
			deps[c.Name+"."+x.Name] = depsOf(refs(w, "sql", x.lines.at("sql", x.Line), x.SQL, true, refDimension))
		}
		for _, x := range c.Segments {
			refs(fmt.Sprintf("segment %q", x.Name), "sql", x.lines.at("sql", x.Line), x.SQL, true, refDimension)
		}
		for _, j := range c.Joins {
			m.checkJoin(errs, c, j)
		}
	}
	m.checkCycles(errs, deps)
}

func onlyRefs(allowed []refKind) string {
	if len(allowed) == 1 && allowed[0] == refMeasure {
		return "a number measure can only reference measures"
	}
	return "only dimensions can be referenced here"
}

func (m *Model) checkJoin(errs *collector, c *Cube, j *Join) {
	f := c.File
	w := fmt.Sprintf("join %q", j.Name)
	target, ok := m.byName[j.Name]
	switch {
	case !ok:
		errs.add(f, j.lines.at("name", j.Line), "%s: there is no cube %q to join", w, j.Name)
		return
	case target == c:
		errs.add(f, j.lines.at("name", j.Line), "%s: a cube cannot join itself", w)
		return
	}
	// The condition may reference the two cubes and their dimensions, and
	// must reference both.
	line := j.lines.at("sql", j.Line)
	rs, err := scanSQL(j.SQL)
	if err != nil {
		return // reported by checkCube
	}
	var self, other bool
	for _, r := range rs {
		t, err := m.resolveRef(c, r.name)
		switch {
		case err != nil:
			errs.add(f, line, "%s: sql: %v", w, err)
			continue
		case t.cube != c && t.cube != target:
			errs.add(f, line, "%s: sql: {%s} is of cube %q; a join condition can only reference cubes %q and %q", w, r.name, t.cube.Name, c.Name, target.Name)
			continue
		case t.kind != refCube && t.kind != refDimension:
			errs.add(f, line, "%s: sql: {%s} is a %s; only dimensions can be referenced here", w, r.name, t.kind)
			continue
		}
		self = self || t.cube == c
		other = other || t.cube == target
	}
	if !self || !other {
		errs.add(f, line, "%s: sql must reference both {CUBE} and {%s}", w, target.Name)
	}
	// A join that multiplies rows needs the primary keys of both sides so
	// that measures count each row once (Cube does the same).
	if j.Relationship == OneToMany || j.Relationship == ManyToOne {
		for _, x := range []*Cube{c, target} {
			if !hasPrimaryKey(x) {
				errs.add(f, j.lines.at("relationship", j.Line), "%s: a %s join needs a primary_key dimension in cube %q (to count its rows once when the join multiplies them)", w, j.Relationship, x.Name)
			}
		}
	}
}

func hasPrimaryKey(c *Cube) bool {
	for _, d := range c.Dimensions {
		if d.PrimaryKey {
			return true
		}
	}
	return false
}

// checkCycles reports each cycle of member references once, at the member
// where it was first entered.
func (m *Model) checkCycles(errs *collector, deps map[string][]string) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var stack []string
	var visit func(k string)
	visit = func(k string) {
		state[k] = visiting
		stack = append(stack, k)
		for _, d := range deps[k] {
			switch state[d] {
			case visiting:
				i := slices.Index(stack, d)
				cycle := append(slices.Clone(stack[i:]), d)
				m.cycleError(errs, d, cycle)
			case 0:
				visit(d)
			}
		}
		stack = stack[:len(stack)-1]
		state[k] = done
	}
	for _, c := range m.Cubes {
		for _, x := range c.Measures {
			if k := c.Name + "." + x.Name; state[k] == 0 {
				visit(k)
			}
		}
		for _, x := range c.Dimensions {
			if k := c.Name + "." + x.Name; state[k] == 0 {
				visit(k)
			}
		}
	}
}

func (m *Model) cycleError(errs *collector, key string, cycle []string) {
	cubeName, name, _ := strings.Cut(key, ".")
	c := m.byName[cubeName]
	path := strings.Join(cycle, " -> ")
	if x, ok := c.Measure(name); ok {
		errs.add(c.File, x.lines.at("sql", x.Line), "measure %q: sql: references form a cycle: %s", name, path)
		return
	}
	x, _ := c.Dimension(name)
	errs.add(c.File, x.lines.at("sql", x.Line), "dimension %q: sql: references form a cycle: %s", name, path)
}

// sqlRef is a reference {name} in an SQL snippet, at s[start:end].
type sqlRef struct {
	start, end int
	name       string
}

// scanSQL finds the references of an SQL snippet, outside string literals
// and quoted identifiers. The SQL itself is not parsed (it runs read-only
// under row-level security), but a snippet is spliced into a larger
// statement, so it may not hold a ';' (a second statement) or a comment
// (which would swallow what follows it) outside literals.
func scanSQL(s string) ([]sqlRef, error) {
	var refs []sqlRef
	identChar := func(b byte) bool {
		return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '\'':
			escapes := i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i == 1 || !identChar(s[i-2]))
			j := i + 1
			for ; j < len(s); j++ {
				if escapes && s[j] == '\\' {
					j++
					continue
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string literal")
			}
			i = j
		case b == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quoted identifier")
			}
			i += j + 1
		case b == '$' && (i == 0 || !identChar(s[i-1])):
			// A dollar-quoted literal: $$...$$ or $tag$...$tag$.
			j := i + 1
			for j < len(s) && identChar(s[j]) && !(j == i+1 && s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j >= len(s) || s[j] != '$' {
				continue // $1 and the like
			}
			tag := s[i : j+1]
			k := strings.Index(s[j+1:], tag)
			if k < 0 {
				return nil, fmt.Errorf("unterminated dollar-quoted literal")
			}
			i = j + 1 + k + len(tag) - 1
		case b == ';':
			return nil, fmt.Errorf("';' outside a string literal (a snippet must be a single expression or statement)")
		case b == '-' && i+1 < len(s) && s[i+1] == '-', b == '/' && i+1 < len(s) && s[i+1] == '*':
			return nil, fmt.Errorf("comments are not allowed (a snippet is spliced into a larger statement)")
		case b == '{':
			j := strings.IndexAny(s[i+1:], "{}")
			if j < 0 || s[i+1+j] == '{' {
				return nil, fmt.Errorf("unmatched '{'")
			}
			name := s[i+1 : i+1+j]
			if !refRe.MatchString(name) {
				return nil, fmt.Errorf("{%s} is not a reference ({CUBE}, {member}, {cube} or {cube.member})", name)
			}
			refs = append(refs, sqlRef{start: i, end: i + j + 2, name: name})
			i += j + 1
		case b == '}':
			return nil, fmt.Errorf("unmatched '}'")
		}
	}
	return refs, nil
}

// refRe is the text of a reference: name or qualifier.name.
var refRe = tableRe
