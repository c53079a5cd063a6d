package cube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query is a query of the Cube REST API (the JSON of GET /load?query= or
// of POST /load's {"query": ...}), parsed by ParseQuery.
type Query struct {
	Measures       []string        `json:"measures,omitempty"`
	Dimensions     []string        `json:"dimensions,omitempty"`
	Segments       []string        `json:"segments,omitempty"`
	TimeDimensions []TimeDimension `json:"timeDimensions,omitempty"`
	Filters        []Filter        `json:"filters,omitempty"`
	// Order as given: Cube accepts {"member": "asc"} and [["member",
	// "desc"]]; ParseQuery normalises both to this. nil asks for Cube's
	// default order; an empty, non-nil slice for none.
	Order    []OrderBy `json:"order,omitempty"`
	Limit    *int      `json:"limit,omitempty"`
	Offset   int       `json:"offset,omitempty"`
	Total    bool      `json:"total,omitempty"`
	Timezone string    `json:"timezone,omitempty"`
}

// TimeDimension asks for a time dimension at a granularity (empty: no
// grouping, only the date range filter) over a date range (nil: all).
type TimeDimension struct {
	Dimension   string `json:"dimension"`
	Granularity string `json:"granularity,omitempty"`
	// DateRange is a relative string ("last 7 days") or a pair of
	// absolute dates, as the client sent it.
	DateRange any `json:"dateRange,omitempty"`
}

// Filter is a member filter, or a nested And/Or of filters.
type Filter struct {
	Member   string   `json:"member,omitempty"`
	Operator string   `json:"operator,omitempty"`
	Values   []string `json:"values,omitempty"`
	And      []Filter `json:"and,omitempty"`
	Or       []Filter `json:"or,omitempty"`
}

// OrderBy is one ordering member.
type OrderBy struct {
	Member string
	Desc   bool
}

// Options are what a compilation needs besides the query.
type Options struct {
	// WorkspaceID scopes every cube table (also enforced by row-level
	// security when the plan runs).
	WorkspaceID string
	// Now anchors relative date ranges ("today", "last 7 days"), in the
	// query's timezone.
	Now time.Time
	// Rollups lets the compiler answer from a pre-aggregation that answers
	// the query exactly.
	Rollups bool
}

// Plan is a compiled query.
type Plan struct {
	// SQL and Args answer the query's rows; TotalSQL and TotalArgs, when
	// the query asked for a total, count them without limit and offset.
	SQL       string
	Args      []any
	TotalSQL  string
	TotalArgs []any
	// Query is the normalised query, as the response echoes it.
	Query Query
	// Columns describe the SQL's result columns, in order.
	Columns []Column
	// Rollup names the pre-aggregation that answers it ("cube.name"), or
	// "" for the raw tables.
	Rollup string
}

// Column is one result column: a measure, a dimension, or a time
// dimension at a granularity (Key "cube.dim.granularity"), or the time
// dimension itself (Key "cube.dim") which Cube also fills.
type Column struct {
	Key         string
	Member      string
	Kind        string // "measure", "dimension" or "timeDimension"
	Type        string // the member's type
	Granularity string
}

// Limits of a query: Cube's row limits, and bounds on every count a client
// controls so that a query cannot make the compiler or the database work
// without end.
const (
	DefaultLimit   = 10000
	MaxLimit       = 50000
	maxMembers     = 100
	maxFilters     = 100
	maxValues      = 1000
	maxDepth       = 10
	maxStringLen   = 1000
	maxMemberLen   = 255
	maxOffset      = 1_000_000_000
	maxQueryLength = 1 << 20
)

// QueryError is a query the API must refuse with 400: malformed, unknown
// members, bad values or date ranges. Message names the member or field.
type QueryError struct {
	Message string
}

func (e *QueryError) Error() string { return e.Message }

func queryErrorf(format string, args ...any) error {
	return &QueryError{Message: fmt.Sprintf(format, args...)}
}

// memberName is a member ("cube.member") as Cube names them.
var memberName = regexp.MustCompile(`^[a-zA-Z0-9_]+\.[a-zA-Z0-9_]+$`)

// orderMember also allows a time dimension at a granularity.
var orderMember = regexp.MustCompile(`^[a-zA-Z0-9_]+\.[a-zA-Z0-9_]+(\.[a-z]+)?$`)

// ParseQuery reads a Cube query (JSON) strictly: unknown keys, wrong types
// and values out of bounds give a *QueryError. A missing limit becomes
// DefaultLimit; the timezone is checked (IANA name).
func ParseQuery(raw []byte) (Query, error) {
	var q Query
	if len(raw) > maxQueryLength {
		return q, queryErrorf("query is larger than %d bytes", maxQueryLength)
	}
	obj, err := decodeObject(raw, "query")
	if err != nil {
		return q, err
	}
	for _, kv := range obj {
		switch kv.key {
		case "measures":
			q.Measures, err = decodeMembers(kv.value, "measures")
		case "dimensions":
			q.Dimensions, err = decodeMembers(kv.value, "dimensions")
		case "segments":
			q.Segments, err = decodeMembers(kv.value, "segments")
		case "timeDimensions":
			q.TimeDimensions, err = decodeTimeDimensions(kv.value)
		case "filters":
			n := 0
			q.Filters, err = decodeFilters(kv.value, "filters", 0, &n)
		case "order":
			q.Order, err = decodeOrder(kv.value)
		case "limit":
			var n int
			n, err = decodeInt(kv.value, "limit", 1, MaxLimit)
			if err == nil {
				q.Limit = &n
			}
		case "offset":
			q.Offset, err = decodeInt(kv.value, "offset", 0, maxOffset)
		case "total":
			err = decodeStrict(kv.value, &q.Total, "total", "a boolean")
		case "timezone":
			err = decodeStrict(kv.value, &q.Timezone, "timezone", "a string")
			if err == nil {
				_, err = Location(q.Timezone)
			}
		case "renewQuery":
			// Asks Cube to refresh its cache; Eddy does not cache results.
			var b bool
			err = decodeStrict(kv.value, &b, "renewQuery", "a boolean")
		case "ungrouped":
			var b bool
			err = decodeStrict(kv.value, &b, "ungrouped", "a boolean")
			if err == nil && b {
				err = queryErrorf("ungrouped queries are not supported")
			}
		default:
			err = queryErrorf("unknown query field %q", kv.key)
		}
		if err != nil {
			return Query{}, err
		}
	}
	if n := len(q.Measures) + len(q.Dimensions) + len(q.Segments) + len(q.TimeDimensions); n > maxMembers {
		return Query{}, queryErrorf("query has %d members, more than %d", n, maxMembers)
	}
	if len(q.Measures)+len(q.Dimensions)+len(q.TimeDimensions) == 0 {
		return Query{}, queryErrorf("query needs at least one measure, dimension or time dimension")
	}
	if q.Limit == nil {
		n := DefaultLimit
		q.Limit = &n
	}
	return q, nil
}

// Location returns the IANA time zone named name ("" is UTC).
func Location(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if len(name) > 64 || !tzName.MatchString(name) || name == "Local" {
		return nil, queryErrorf("unknown timezone %q", truncate(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, queryErrorf("unknown timezone %q", name)
	}
	return loc, nil
}

var tzName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)

type keyValue struct {
	key   string
	value json.RawMessage
}

// decodeObject reads a JSON object keeping the order of its keys (Cube's
// order object is ordered).
func decodeObject(raw []byte, what string) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, queryErrorf("%s is not valid JSON: %v", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, queryErrorf("%s must be a JSON object", what)
	}
	var out []keyValue
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, queryErrorf("%s is not valid JSON: %v", what, err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, queryErrorf("%s is not valid JSON: %v", what, err)
		}
		if len(out) >= 2*maxMembers {
			return nil, queryErrorf("%s has too many keys", what)
		}
		out = append(out, keyValue{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, queryErrorf("%s is not valid JSON: %v", what, err)
	}
	if dec.More() {
		return nil, queryErrorf("%s has trailing data", what)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, queryErrorf("%s has trailing data", what)
	}
	return out, nil
}

func decodeStrict(raw json.RawMessage, v any, field, want string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return queryErrorf("%s must be %s", field, want)
	}
	return nil
}

func decodeInt(raw json.RawMessage, field string, lo, hi int) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		// Cube's client may send numbers as strings ("limit": "100").
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, queryErrorf("%s must be an integer", field)
		}
		n = json.Number(s)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, queryErrorf("%s must be an integer", field)
	}
	if i < int64(lo) || i > int64(hi) {
		if field == "limit" && i > int64(hi) {
			return 0, queryErrorf("limit %d is more than the maximum %d", i, hi)
		}
		return 0, queryErrorf("%s must be between %d and %d", field, lo, hi)
	}
	return int(i), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func checkMember(name, field string) error {
	if len(name) > maxMemberLen || !memberName.MatchString(name) {
		return queryErrorf("%s: %q is not a member name (cube.member)", field, truncate(name))
	}
	return nil
}

func decodeMembers(raw json.RawMessage, field string) ([]string, error) {
	var names []string
	if err := json.Unmarshal(raw, &names); err != nil {
		return nil, queryErrorf("%s must be an array of member names", field)
	}
	if len(names) > maxMembers {
		return nil, queryErrorf("%s has %d members, more than %d", field, len(names), maxMembers)
	}
	for _, n := range names {
		if err := checkMember(n, field); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func decodeTimeDimensions(raw json.RawMessage) ([]TimeDimension, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, queryErrorf("timeDimensions must be an array")
	}
	if len(items) > maxMembers {
		return nil, queryErrorf("timeDimensions has %d entries, more than %d", len(items), maxMembers)
	}
	out := make([]TimeDimension, 0, len(items))
	for i, item := range items {
		field := fmt.Sprintf("timeDimensions[%d]", i)
		obj, err := decodeObject(item, field)
		if err != nil {
			return nil, err
		}
		var td TimeDimension
		for _, kv := range obj {
			switch kv.key {
			case "dimension":
				err = decodeStrict(kv.value, &td.Dimension, field+".dimension", "a string")
			case "granularity":
				if string(kv.value) == "null" {
					continue
				}
				err = decodeStrict(kv.value, &td.Granularity, field+".granularity", "a string")
				if err == nil && !slices.Contains(Granularities, td.Granularity) {
					err = queryErrorf("%s.granularity %q is not one of %s", field, truncate(td.Granularity), strings.Join(Granularities, ", "))
				}
			case "dateRange":
				td.DateRange, err = decodeDateRange(kv.value, field+".dateRange")
			case "compareDateRange":
				err = queryErrorf("%s.compareDateRange is not supported", field)
			default:
				err = queryErrorf("unknown field %q in %s", kv.key, field)
			}
			if err != nil {
				return nil, err
			}
		}
		if td.Dimension == "" {
			return nil, queryErrorf("%s needs a dimension", field)
		}
		if err := checkMember(td.Dimension, field+".dimension"); err != nil {
			return nil, err
		}
		out = append(out, td)
	}
	return out, nil
}

// decodeDateRange keeps a string or a pair of strings; ResolveDateRange
// reads them.
func decodeDateRange(raw json.RawMessage, field string) (any, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if len(s) > 100 {
			return nil, queryErrorf("%s is too long", field)
		}
		return s, nil
	}
	var pair []string
	if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
		return nil, queryErrorf("%s must be a string or an array of two dates", field)
	}
	for _, p := range pair {
		if len(p) > 100 {
			return nil, queryErrorf("%s is too long", field)
		}
	}
	return []string{pair[0], pair[1]}, nil
}

func decodeFilters(raw json.RawMessage, field string, depth int, count *int) ([]Filter, error) {
	if depth > maxDepth {
		return nil, queryErrorf("%s: filters are nested more than %d levels deep", field, maxDepth)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, queryErrorf("%s must be an array", field)
	}
	out := make([]Filter, 0, len(items))
	for i, item := range items {
		*count++
		if *count > maxFilters {
			return nil, queryErrorf("query has more than %d filters", maxFilters)
		}
		f, err := decodeFilter(item, fmt.Sprintf("%s[%d]", field, i), depth, count)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func decodeFilter(raw json.RawMessage, field string, depth int, count *int) (Filter, error) {
	var f Filter
	obj, err := decodeObject(raw, field)
	if err != nil {
		return f, err
	}
	hasValues := false
	for _, kv := range obj {
		switch kv.key {
		case "member", "dimension", "measure":
			if f.Member != "" {
				return f, queryErrorf("%s has more than one of member, dimension and measure", field)
			}
			err = decodeStrict(kv.value, &f.Member, field+"."+kv.key, "a string")
			if err == nil {
				err = checkMember(f.Member, field+"."+kv.key)
			}
		case "operator":
			err = decodeStrict(kv.value, &f.Operator, field+".operator", "a string")
			if err == nil && !slices.Contains(Operators, f.Operator) {
				err = queryErrorf("%s: unknown operator %q", field, truncate(f.Operator))
			}
		case "values":
			hasValues = string(kv.value) != "null"
			f.Values, err = decodeValues(kv.value, field+".values")
		case "and":
			f.And, err = decodeFilters(kv.value, field+".and", depth+1, count)
			if err == nil && f.And == nil {
				f.And = []Filter{}
			}
		case "or":
			f.Or, err = decodeFilters(kv.value, field+".or", depth+1, count)
			if err == nil && f.Or == nil {
				f.Or = []Filter{}
			}
		default:
			err = queryErrorf("unknown field %q in %s", kv.key, field)
		}
		if err != nil {
			return f, err
		}
	}
	logical := f.And != nil || f.Or != nil
	switch {
	case f.And != nil && f.Or != nil:
		return f, queryErrorf("%s has both and and or", field)
	case logical && (f.Member != "" || f.Operator != "" || hasValues):
		return f, queryErrorf("%s mixes and/or with member, operator or values", field)
	case logical:
		if len(f.And)+len(f.Or) == 0 {
			return f, queryErrorf("%s has an empty and/or", field)
		}
		return f, nil
	case f.Member == "":
		return f, queryErrorf("%s needs a member", field)
	case f.Operator == "":
		return f, queryErrorf("%s (%s) needs an operator", field, f.Member)
	}
	switch f.Operator {
	case "set", "notSet":
		if len(f.Values) > 0 {
			return f, queryErrorf("%s: operator %s on %s takes no values", field, f.Operator, f.Member)
		}
	case "inDateRange", "notInDateRange":
		if len(f.Values) != 2 && len(f.Values) != 1 {
			return f, queryErrorf("%s: operator %s on %s takes two dates (or one relative range)", field, f.Operator, f.Member)
		}
	case "beforeDate", "beforeOrOnDate", "afterDate", "afterOrOnDate", "onTheDate", "gt", "gte", "lt", "lte":
		if len(f.Values) != 1 {
			return f, queryErrorf("%s: operator %s on %s takes one value", field, f.Operator, f.Member)
		}
	default:
		if len(f.Values) == 0 {
			return f, queryErrorf("%s: operator %s on %s needs values", field, f.Operator, f.Member)
		}
	}
	return f, nil
}

// Operators are the filter operators of Cube's REST API.
var Operators = []string{
	"equals", "notEquals", "contains", "notContains", "startsWith", "notStartsWith",
	"endsWith", "notEndsWith", "gt", "gte", "lt", "lte", "set", "notSet",
	"inDateRange", "notInDateRange", "beforeDate", "beforeOrOnDate", "afterDate",
	"afterOrOnDate", "onTheDate",
}

// decodeValues takes strings, and numbers and booleans as the strings
// Cube's client would send for them.
func decodeValues(raw json.RawMessage, field string) ([]string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, queryErrorf("%s must be an array", field)
	}
	if len(items) > maxValues {
		return nil, queryErrorf("%s has %d values, more than %d", field, len(items), maxValues)
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		var s string
		if strings.TrimSpace(string(item)) == "null" {
			return nil, queryErrorf("%s[%d] is null: use the set or notSet operator", field, i)
		}
		if json.Unmarshal(item, &s) == nil {
			if len(s) > maxStringLen {
				return nil, queryErrorf("%s[%d] is longer than %d bytes", field, i, maxStringLen)
			}
			out = append(out, s)
			continue
		}
		t := strings.TrimSpace(string(item))
		switch {
		case t == "true" || t == "false":
			out = append(out, t)
		case t == "null":
			return nil, queryErrorf("%s[%d] is null: use the set or notSet operator", field, i)
		default:
			if _, err := strconv.ParseFloat(t, 64); err != nil || len(t) > 100 {
				return nil, queryErrorf("%s[%d] must be a string, number or boolean", field, i)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// decodeOrder reads {"member": "asc", ...} (ordered) or [["member",
// "desc"], ...]. An empty order is kept empty (non-nil): no ordering.
func decodeOrder(raw json.RawMessage) ([]OrderBy, error) {
	out := []OrderBy{}
	add := func(member, dir string) error {
		if len(member) > maxMemberLen || !orderMember.MatchString(member) {
			return queryErrorf("order: %q is not a member name", truncate(member))
		}
		switch dir {
		case "asc":
			out = append(out, OrderBy{Member: member})
		case "desc":
			out = append(out, OrderBy{Member: member, Desc: true})
		default:
			return queryErrorf("order of %s must be asc or desc, not %q", member, truncate(dir))
		}
		if len(out) > maxMembers {
			return queryErrorf("order has more than %d members", maxMembers)
		}
		return nil
	}
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '[' {
		var pairs [][]string
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, queryErrorf("order must be an object or an array of [member, direction] pairs")
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return nil, queryErrorf("order must be an object or an array of [member, direction] pairs")
			}
			if err := add(p[0], p[1]); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	obj, err := decodeObject(raw, "order")
	if err != nil {
		return nil, err
	}
	for _, kv := range obj {
		var dir string
		if err := json.Unmarshal(kv.value, &dir); err != nil {
			return nil, queryErrorf("order of %s must be asc or desc", truncate(kv.key))
		}
		if err := add(kv.key, dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}
