package cube

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/eddy-cdp/eddy/cubes"
)

// Error is one problem of a model, where it was found.
type Error struct {
	File    string
	Line    int
	Message string
}

func (e Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	case e.File != "":
		return e.File + ": " + e.Message
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return e.Message
}

// Errors are every problem found in a model, in file and line order, one a
// line when printed. Parse, Load, NewModel and Merge return them as their
// error.
type Errors []Error

// maxErrors caps the problems reported at once: past it, more are noise.
const maxErrors = 50

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// collector gathers Errors up to maxErrors.
type collector struct {
	errs Errors
	more int // problems past the cap
}

func (c *collector) add(file string, line int, format string, args ...any) {
	if len(c.errs) >= maxErrors {
		c.more++
		return
	}
	c.errs = append(c.errs, Error{File: file, Line: line, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems sorted by file and line, or nil.
func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	es := slices.Clone(c.errs)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		return es[i].Line < es[j].Line
	})
	if c.more > 0 {
		es = append(es, Error{Message: fmt.Sprintf("and %d more problems", c.more)})
	}
	return es
}

// lines maps a key of a YAML mapping to the line of its value.
type lines map[string]int

// at returns the line of key's value, or def when the key was not in the
// file (or the element was built in Go).
func (l lines) at(key string, def int) int {
	if n, ok := l[key]; ok {
		return n
	}
	return def
}

var (
	// nameRe is what cube and member names must match (Cube's member
	// names are cube.member with both parts of [a-zA-Z0-9_]).
	nameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// tableRe is a table, optionally schema-qualified: it is written into
	// SQL as is, so nothing else is allowed.
	tableRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)?$`)
)

var (
	measureTypes   = []string{Count, CountDistinct, Sum, Avg, Min, Max, Number}
	dimensionTypes = []string{String, NumberD, Time, Boolean}
	relationships  = []string{ManyToOne, OneToMany, OneToOne}
	// relationshipAliases are Cube's older names for the relationships.
	relationshipAliases = map[string]string{"belongs_to": ManyToOne, "has_many": OneToMany, "has_one": OneToOne,
		"belongsTo": ManyToOne, "hasMany": OneToMany, "hasOne": OneToOne}
	formats = []string{"currency", "percent"}
)

// Keys each element accepts.
var (
	fileKeys      = []string{"cubes"}
	cubeKeys      = []string{"name", "title", "description", "sql_table", "sql", "measures", "dimensions", "joins", "segments", "pre_aggregations"}
	measureKeys   = []string{"name", "type", "sql", "filters", "title", "description", "format"}
	filterKeys    = []string{"sql"}
	dimensionKeys = []string{"name", "type", "sql", "primary_key", "title", "description"}
	joinKeys      = []string{"name", "relationship", "sql"}
	segmentKeys   = []string{"name", "sql", "title", "description"}
	preAggKeys    = []string{"name", "type", "measures", "dimensions", "time_dimension", "granularity"}
)

// Parse reads one YAML file of cubes (Cube's YAML schema: a top-level
// "cubes" list) and checks each cube on its own; references to other cubes
// are checked when the cubes form a model (NewModel). The error, if any, is
// an Errors naming file, line and reason of every problem found.
func Parse(file string, data []byte) ([]*Cube, error) {
	p := &parser{file: file}
	cubes := p.parse(data)
	for _, c := range cubes {
		checkCube(&p.collector, c)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return cubes, nil
}

// Load reads every *.yml and *.yaml file of dir in fsys (not its
// subfolders), in name order, and validates them as one model.
func Load(fsys fs.FS, dir string) (*Model, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read cube models: %w", err)
	}
	var all []*Cube
	var errs collector
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || (!strings.HasSuffix(name, ".yml") && !strings.HasSuffix(name, ".yaml")) {
			continue
		}
		file := path.Join(dir, name)
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("read cube model: %w", err)
		}
		cs, err := Parse(file, data)
		if err != nil {
			for _, e := range err.(Errors) {
				errs.add(e.File, e.Line, "%s", e.Message)
			}
			continue
		}
		all = append(all, cs...)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return NewModel(all)
}

// NewModel validates cubes as a whole (each cube, unique names, references
// between members and cubes, joins, pre-aggregations) and indexes them. The
// cubes are not modified.
func NewModel(cubes []*Cube) (*Model, error) {
	m := &Model{Cubes: slices.Clone(cubes), byName: make(map[string]*Cube, len(cubes))}
	var errs collector
	for _, c := range m.Cubes {
		checkCube(&errs, c)
		if prev, ok := m.byName[c.Name]; ok {
			errs.add(c.File, c.Line, "cube %q is already defined at %s", c.Name, where(prev))
			continue
		}
		m.byName[c.Name] = c
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	m.check(&errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// Merge returns a model of m's cubes and extra (a workspace's own on top of
// the shipped ones), validated as a whole. A cube of extra named like one of
// m is an error. m is unchanged.
func (m *Model) Merge(extra []*Cube) (*Model, error) {
	var errs collector
	for _, c := range extra {
		if prev, ok := m.byName[c.Name]; ok {
			errs.add(c.File, c.Line, "cube %q is already defined at %s", c.Name, where(prev))
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	out, err := NewModel(append(slices.Clone(m.Cubes), extra...))
	if err != nil {
		return nil, err
	}
	out.ready = m.readySet() // the base's rollups answer for the merge too
	return out, nil
}

var shipped = sync.OnceValue(func() *Model {
	m, err := Load(cubes.FS(), ".")
	if err != nil {
		panic(fmt.Sprintf("the shipped cube models are invalid: %v", err))
	}
	return m
})

// Shipped returns the models shipped with Eddy (cubes/ at the repository
// root, embedded in the binary), parsed once.
func Shipped() *Model { return shipped() }

func where(c *Cube) string {
	if c.File == "" {
		return "an earlier cube"
	}
	return fmt.Sprintf("%s:%d", c.File, c.Line)
}

// parser decodes one file's YAML nodes into cubes, recording problems.
type parser struct {
	collector
	file string
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.add(p.file, line, format, args...)
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func (p *parser) parse(data []byte) []*Cube {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = err.Error()[len(m[0]):]
		}
		p.errorf(line, "%s", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorf(0, "the file is empty (it needs a cubes: list)")
		return nil
	}
	fields := p.mapping(doc.Content[0], "the file", fileKeys)
	if fields == nil {
		return nil
	}
	list, ok := fields["cubes"]
	if !ok {
		p.errorf(doc.Content[0].Line, "the file has no cubes: list")
		return nil
	}
	var out []*Cube
	for i, n := range p.sequence(list.val, "cubes") {
		if c := p.cube(n, i); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// field is a mapping's value and its key's node.
type field struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping of known keys, each once, and returns
// them by key; nil if n is not a mapping.
func (p *parser) mapping(n *yaml.Node, what string, known []string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: expected a mapping, got %s", what, kind(n))
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		switch {
		case !slices.Contains(known, k.Value):
			p.errorf(k.Line, "%s: unknown key %q (known keys: %s)", what, k.Value, strings.Join(known, ", "))
		case out[k.Value].key != nil:
			p.errorf(k.Line, "%s: key %q is repeated (first at line %d)", what, k.Value, out[k.Value].key.Line)
		default:
			out[k.Value] = field{k, v}
		}
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolve(n.Content[0])
	}
	return n
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (p *parser) sequence(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty list written as "measures:"
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "%s: expected a list, got %s", what, kind(n))
		return nil
	}
	return n.Content
}

// str returns the text of fields[key] (empty if absent), recording its
// line in l.
func (p *parser) str(fields map[string]field, key, what string, l lines) string {
	f, ok := fields[key]
	if !ok {
		return ""
	}
	l[key] = f.val.Line
	if f.val.Kind != yaml.ScalarNode || f.val.Tag == "!!null" {
		p.errorf(f.val.Line, "%s: %s: expected text, got %s", what, key, kind(f.val))
		return ""
	}
	return f.val.Value
}

func (p *parser) boolean(fields map[string]field, key, what string, l lines) bool {
	f, ok := fields[key]
	if !ok {
		return false
	}
	l[key] = f.val.Line
	if f.val.Kind != yaml.ScalarNode || f.val.Tag != "!!bool" {
		p.errorf(f.val.Line, "%s: %s: expected true or false, got %s", what, key, kind(f.val))
		return false
	}
	return f.val.Value == "true"
}

func (p *parser) strs(fields map[string]field, key, what string, l lines) []string {
	f, ok := fields[key]
	if !ok {
		return nil
	}
	l[key] = f.val.Line
	var out []string
	for _, n := range p.sequence(f.val, what+": "+key) {
		n = resolve(n)
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			p.errorf(n.Line, "%s: %s: expected a member name, got %s", what, key, kind(n))
			continue
		}
		out = append(out, n.Value)
	}
	return out
}

// label names an element in messages: `measure "revenue"`, or by position
// when it has no usable name.
func label(kind string, fields map[string]field, i int) string {
	if f, ok := fields["name"]; ok && f.val.Kind == yaml.ScalarNode && f.val.Value != "" {
		return fmt.Sprintf("%s %q", kind, f.val.Value)
	}
	return fmt.Sprintf("%s #%d", kind, i+1)
}

func (p *parser) cube(n *yaml.Node, i int) *Cube {
	n = resolve(n)
	what := fmt.Sprintf("cube #%d", i+1)
	if n.Kind == yaml.MappingNode {
		what = label("cube", p.peek(n), i)
	}
	f := p.mapping(n, what, cubeKeys)
	if f == nil {
		return nil
	}
	c := &Cube{File: p.file, Line: n.Line, lines: lines{}}
	c.Name = p.str(f, "name", what, c.lines)
	c.Title = p.str(f, "title", what, c.lines)
	c.Description = p.str(f, "description", what, c.lines)
	c.SQLTable = p.str(f, "sql_table", what, c.lines)
	c.SQL = p.str(f, "sql", what, c.lines)
	if x, ok := f["measures"]; ok {
		for j, n := range p.sequence(x.val, what+": measures") {
			if m := p.measure(n, j); m != nil {
				c.Measures = append(c.Measures, m)
			}
		}
	}
	if x, ok := f["dimensions"]; ok {
		for j, n := range p.sequence(x.val, what+": dimensions") {
			if d := p.dimension(n, j); d != nil {
				c.Dimensions = append(c.Dimensions, d)
			}
		}
	}
	if x, ok := f["segments"]; ok {
		for j, n := range p.sequence(x.val, what+": segments") {
			if s := p.segment(n, j); s != nil {
				c.Segments = append(c.Segments, s)
			}
		}
	}
	if x, ok := f["joins"]; ok {
		for j, n := range p.sequence(x.val, what+": joins") {
			if jn := p.join(n, j); jn != nil {
				c.Joins = append(c.Joins, jn)
			}
		}
	}
	if x, ok := f["pre_aggregations"]; ok {
		for j, n := range p.sequence(x.val, what+": pre_aggregations") {
			if pa := p.preAggregation(n, j, c.Name); pa != nil {
				c.PreAggregations = append(c.PreAggregations, pa)
			}
		}
	}
	return c
}

// peek reads a mapping's keys without checking them, to name it.
func (p *parser) peek(n *yaml.Node) map[string]field {
	out := map[string]field{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if _, seen := out[n.Content[i].Value]; !seen {
			out[n.Content[i].Value] = field{n.Content[i], resolve(n.Content[i+1])}
		}
	}
	return out
}

func (p *parser) element(n *yaml.Node, kindName string, i int, keys []string) (map[string]field, string, *yaml.Node) {
	n = resolve(n)
	what := fmt.Sprintf("%s #%d", kindName, i+1)
	if n.Kind == yaml.MappingNode {
		what = label(kindName, p.peek(n), i)
	}
	return p.mapping(n, what, keys), what, n
}

func (p *parser) measure(n *yaml.Node, i int) *Measure {
	f, what, n := p.element(n, "measure", i, measureKeys)
	if f == nil {
		return nil
	}
	m := &Measure{Line: n.Line, lines: lines{}}
	m.Name = p.str(f, "name", what, m.lines)
	m.Type = p.str(f, "type", what, m.lines)
	m.SQL = p.str(f, "sql", what, m.lines)
	m.Title = p.str(f, "title", what, m.lines)
	m.description = p.str(f, "description", what, m.lines)
	m.Format = p.str(f, "format", what, m.lines)
	if x, ok := f["filters"]; ok {
		m.lines["filters"] = x.val.Line
		for j, fn := range p.sequence(x.val, what+": filters") {
			ff := p.mapping(fn, fmt.Sprintf("%s: filter #%d", what, j+1), filterKeys)
			if ff == nil {
				continue
			}
			fl := lines{}
			s := p.str(ff, "sql", fmt.Sprintf("%s: filter #%d", what, j+1), fl)
			if _, ok := ff["sql"]; !ok {
				p.errorf(resolve(fn).Line, "%s: filter #%d has no sql", what, j+1)
				continue
			}
			m.Filters = append(m.Filters, s)
			m.lines["filters."+strconv.Itoa(len(m.Filters)-1)] = fl.at("sql", resolve(fn).Line)
		}
	}
	return m
}

func (p *parser) dimension(n *yaml.Node, i int) *Dimension {
	f, what, n := p.element(n, "dimension", i, dimensionKeys)
	if f == nil {
		return nil
	}
	d := &Dimension{Line: n.Line, lines: lines{}}
	d.Name = p.str(f, "name", what, d.lines)
	d.Type = p.str(f, "type", what, d.lines)
	d.SQL = p.str(f, "sql", what, d.lines)
	d.Title = p.str(f, "title", what, d.lines)
	d.description = p.str(f, "description", what, d.lines)
	d.PrimaryKey = p.boolean(f, "primary_key", what, d.lines)
	return d
}

func (p *parser) segment(n *yaml.Node, i int) *Segment {
	f, what, n := p.element(n, "segment", i, segmentKeys)
	if f == nil {
		return nil
	}
	s := &Segment{Line: n.Line, lines: lines{}}
	s.Name = p.str(f, "name", what, s.lines)
	s.SQL = p.str(f, "sql", what, s.lines)
	s.title = p.str(f, "title", what, s.lines)
	s.description = p.str(f, "description", what, s.lines)
	return s
}

func (p *parser) join(n *yaml.Node, i int) *Join {
	f, what, n := p.element(n, "join", i, joinKeys)
	if f == nil {
		return nil
	}
	j := &Join{Line: n.Line, lines: lines{}}
	j.Name = p.str(f, "name", what, j.lines)
	j.Relationship = p.str(f, "relationship", what, j.lines)
	if r, ok := relationshipAliases[j.Relationship]; ok {
		j.Relationship = r
	}
	j.SQL = p.str(f, "sql", what, j.lines)
	return j
}

func (p *parser) preAggregation(n *yaml.Node, i int, cube string) *PreAggregation {
	f, what, n := p.element(n, "pre-aggregation", i, preAggKeys)
	if f == nil {
		return nil
	}
	pa := &PreAggregation{Line: n.Line, lines: lines{}}
	pa.Name = p.str(f, "name", what, pa.lines)
	if _, ok := f["type"]; ok {
		if t := p.str(f, "type", what, pa.lines); t != "rollup" {
			p.errorf(pa.lines.at("type", pa.Line), "%s: type %q is not supported (only rollup)", what, t)
		}
	}
	// Members may be written "count" or "cube.count"; they are kept bare.
	// A member of another cube keeps its prefix and is refused by
	// checkCube (a rollup holds one cube's members).
	bare := func(s string) string {
		if c, m, ok := strings.Cut(s, "."); ok && c == cube {
			return m
		}
		return s
	}
	for _, s := range p.strs(f, "measures", what, pa.lines) {
		pa.Measures = append(pa.Measures, bare(s))
	}
	for _, s := range p.strs(f, "dimensions", what, pa.lines) {
		pa.Dimensions = append(pa.Dimensions, bare(s))
	}
	pa.TimeDimension = bare(p.str(f, "time_dimension", what, pa.lines))
	pa.Granularity = p.str(f, "granularity", what, pa.lines)
	return pa
}
