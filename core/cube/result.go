package cube

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Rows come back as Cube's REST API writes them: keyed by member ("cube.m",
// "cube.dim.granularity" and "cube.dim" for a time dimension), times as
// the wall clock in the query's timezone ("2006-01-02T15:04:05.000", no
// zone), numbers as strings (what Cube's Postgres driver returns for
// bigint and numeric, so counts too), booleans as booleans (the driver's
// bool), NULL as null.

// Row turns one result row (values in Plan.Columns' order) into a Cube
// data entry.
func (p *Plan) Row(values []any) (map[string]any, error) {
	if len(values) != len(p.Columns) {
		return nil, fmt.Errorf("row has %d values for %d columns", len(values), len(p.Columns))
	}
	row := make(map[string]any, len(values))
	for i, c := range p.Columns {
		v, err := formatValue(values[i], c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Key, err)
		}
		row[c.Key] = v
	}
	return row, nil
}

func formatValue(v any, typ string) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case time.Time:
		// Time columns are wall clocks already (AT TIME ZONE): PostgreSQL's
		// timestamp without zone comes back as UTC.
		return x.UTC().Format("2006-01-02T15:04:05.000"), nil
	case string:
		return x, nil
	case bool:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return nil, fmt.Errorf("unexpected %T for a %s member", v, typ)
}

// Annotation is the annotation of a Cube load result: how to read each
// member of the data (ResultSet's tablePivot and chartPivot use it).
type Annotation struct {
	Measures       map[string]MemberAnnotation `json:"measures"`
	Dimensions     map[string]MemberAnnotation `json:"dimensions"`
	Segments       map[string]MemberAnnotation `json:"segments"`
	TimeDimensions map[string]MemberAnnotation `json:"timeDimensions"`
}

// MemberAnnotation describes one member, as Cube's prepareAnnotation does.
type MemberAnnotation struct {
	Title      string `json:"title"`
	ShortTitle string `json:"shortTitle"`
	Type       string `json:"type"`
	Format     string `json:"format,omitempty"`
	// Measures only, written [] and {measures: [], dimensions: []} as
	// Cube does (Eddy's models declare no drill members); nil omits them.
	DrillMembers        []string             `json:"drillMembers,omitzero"`
	DrillMembersGrouped *DrillMembersGrouped `json:"drillMembersGrouped,omitzero"`
}

// DrillMembersGrouped is a measure's drill members by kind.
type DrillMembersGrouped struct {
	Measures   []string `json:"measures"`
	Dimensions []string `json:"dimensions"`
}

// Annotate describes the members of q (a query Compile accepted). Time
// dimensions at a granularity appear under "cube.dim.granularity" and,
// unless the query also selects it as a dimension, "cube.dim".
func (m *Model) Annotate(q Query) Annotation {
	a := Annotation{
		Measures:       map[string]MemberAnnotation{},
		Dimensions:     map[string]MemberAnnotation{},
		Segments:       map[string]MemberAnnotation{},
		TimeDimensions: map[string]MemberAnnotation{},
	}
	find := func(name string) (*Cube, string, bool) {
		cn, field, ok := strings.Cut(name, ".")
		if !ok {
			return nil, "", false
		}
		c, ok := m.Cube(cn)
		return c, field, ok
	}
	for _, name := range q.Measures {
		if c, f, ok := find(name); ok {
			if x, ok := c.Measure(f); ok {
				t, st := Titles(c, x.Name, x.Title)
				a.Measures[name] = MemberAnnotation{Title: t, ShortTitle: st, Type: "number", Format: x.Format,
					DrillMembers: []string{}, DrillMembersGrouped: &DrillMembersGrouped{Measures: []string{}, Dimensions: []string{}}}
			}
		}
	}
	for _, name := range q.Dimensions {
		if c, f, ok := find(name); ok {
			if x, ok := c.Dimension(f); ok {
				t, st := Titles(c, x.Name, x.Title)
				a.Dimensions[name] = MemberAnnotation{Title: t, ShortTitle: st, Type: x.Type}
			}
		}
	}
	for _, name := range q.Segments {
		if c, f, ok := find(name); ok {
			if x, ok := c.Segment(f); ok {
				t, st := Titles(c, x.Name, "")
				a.Segments[name] = MemberAnnotation{Title: t, ShortTitle: st, Type: "boolean"}
			}
		}
	}
	for _, td := range q.TimeDimensions {
		if td.Granularity == "" {
			continue
		}
		c, f, ok := find(td.Dimension)
		if !ok {
			continue
		}
		x, ok := c.Dimension(f)
		if !ok {
			continue
		}
		t, st := Titles(c, x.Name, x.Title)
		ann := MemberAnnotation{Title: t, ShortTitle: st, Type: Time}
		a.TimeDimensions[td.Dimension+"."+td.Granularity] = ann
		if _, dup := a.Dimensions[td.Dimension]; !dup {
			if _, seen := a.TimeDimensions[td.Dimension]; !seen {
				a.TimeDimensions[td.Dimension] = ann
			}
		}
	}
	return a
}

// Titles are a member's title ("Sessions Page Views": the cube's title,
// then the member's) and short title ("Page Views"), as Cube's /meta
// writes them; names are titleized when no title is declared.
func Titles(c *Cube, name, title string) (full, short string) {
	short = title
	if short == "" {
		short = titleize(name)
	}
	ct := c.Title
	if ct == "" {
		ct = titleize(c.Name)
	}
	return ct + " " + short, short
}

// titleize writes page_views and pageViews as "Page Views".
func titleize(s string) string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			cur[0] = unicode.ToUpper(cur[0])
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	prevLower := false
	for _, r := range s {
		switch {
		case r == '_' || r == ' ':
			flush()
			prevLower = false
			continue
		case unicode.IsUpper(r) && prevLower:
			flush()
		}
		cur = append(cur, unicode.ToLower(r))
		prevLower = unicode.IsLower(r) || unicode.IsDigit(r)
	}
	flush()
	return strings.Join(words, " ")
}
