package cube

import (
	"strings"
	"testing"
)

func TestParseQueryErrors(t *testing.T) {
	long := strings.Repeat("x", maxStringLen+1)
	for _, c := range []struct{ query, want string }{
		{`[]`, "must be a JSON object"},
		{`{"measures":["a.b"],"bogus":1}`, `unknown query field "bogus"`},
		{`{"measures":["a"]}`, "not a member name"},
		{`{"measures":"a.b"}`, "measures must be an array"},
		{`{}`, "at least one measure"},
		{`{"measures":["a.b"],"limit":50001}`, "maximum 50000"},
		{`{"measures":["a.b"],"limit":-1}`, "limit must be between"},
		{`{"measures":["a.b"],"offset":-1}`, "offset must be between"},
		{`{"measures":["a.b"],"timezone":"Mars/Olympus"}`, "unknown timezone"},
		{`{"measures":["a.b"],"timezone":"../../etc/passwd"}`, "unknown timezone"},
		{`{"measures":["a.b"],"ungrouped":true}`, "ungrouped queries are not supported"},
		{`{"measures":["a.b"],"order":{"a.b":"up"}}`, "asc or desc"},
		{`{"measures":["a.b"],"order":[["a.b"]]}`, "pairs"},
		{`{"measures":["a.b"],"timeDimensions":[{"dimension":"a.t","granularity":"fortnight"}]}`, "granularity"},
		{`{"measures":["a.b"],"timeDimensions":[{"dimension":"a.t","extra":1}]}`, `unknown field "extra" in timeDimensions[0]`},
		{`{"measures":["a.b"],"timeDimensions":[{"dimension":"a.t","dateRange":["2026-01-01"]}]}`, "two dates"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"like","values":["x"]}]}`, `unknown operator "like"`},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"equals"}]}`, "needs values"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"set","values":["x"]}]}`, "takes no values"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"equals","values":[null]}]}`, "null"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"equals","values":[{}]}]}`, "string, number or boolean"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"equals","values":["` + long + `"]}]}`, "longer than"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"equals","values":["x"],"oops":1}]}`, `unknown field "oops" in filters[0]`},
		{`{"measures":["a.b"],"filters":[{"and":[],"member":"a.b"}]}`, "mixes"},
		{`{"measures":["a.b"],"filters":[{"and":[{"member":"a.b","operator":"set"}],"or":[{"member":"a.b","operator":"set"}]}]}`, "both and and or"},
		{`{"measures":["a.b"],"filters":[` + strings.Repeat(`{"and":[`, 12) + `{"member":"a.b","operator":"set"}` + strings.Repeat(`]}`, 12) + `]}`, "nested more than"},
		{`{"measures":["a.b"],"filters":[` + strings.TrimSuffix(strings.Repeat(`{"member":"a.b","operator":"set"},`, 101), ",") + `]}`, "more than 100 filters"},
		{`{"measures":["a.b"],"filters":[{"member":"a.b","operator":"equals","values":[` + strings.TrimSuffix(strings.Repeat(`"x",`, 1001), ",") + `]}]}`, "more than 1000"},
		{`{"measures":[` + strings.TrimSuffix(strings.Repeat(`"a.b",`, 101), ",") + `]}`, "more than 100"},
		{`{"measures":["a.b"]} {}`, "trailing"},
	} {
		_, err := ParseQuery([]byte(c.query))
		qe, ok := err.(*QueryError)
		if !ok || !strings.Contains(qe.Message, c.want) {
			q := c.query
			if len(q) > 120 {
				q = q[:120] + "…"
			}
			t.Errorf("%s: got %v, want a QueryError containing %q", q, err, c.want)
		}
	}
}

func TestParseQueryShapes(t *testing.T) {
	q, err := ParseQuery([]byte(`{"measures":["a.m"],"dimensions":["a.d"],
		"timeDimensions":[{"dimension":"a.t","granularity":"day","dateRange":"last 7 days"},{"dimension":"a.t","dateRange":["2026-01-01","2026-01-31"]}],
		"filters":[{"dimension":"a.d","operator":"equals","values":["x",1.5,true]},{"or":[{"member":"a.m","operator":"gt","values":["2"]}]}],
		"order":{"a.m":"desc","a.d":"asc"},"offset":5,"total":true,"timezone":"Europe/Paris"}`))
	if err != nil {
		t.Fatal(err)
	}
	if *q.Limit != DefaultLimit || q.Offset != 5 || !q.Total || q.Timezone != "Europe/Paris" {
		t.Errorf("limit/offset/total/timezone: got %d %d %v %q", *q.Limit, q.Offset, q.Total, q.Timezone)
	}
	if len(q.Order) != 2 || q.Order[0] != (OrderBy{"a.m", true}) || q.Order[1] != (OrderBy{"a.d", false}) {
		t.Errorf("order object keeps key order: got %v", q.Order)
	}
	if f := q.Filters[0]; f.Member != "a.d" || strings.Join(f.Values, ",") != "x,1.5,true" {
		t.Errorf("legacy dimension key and non-string values: got %+v", f)
	}
	if q.TimeDimensions[0].DateRange != "last 7 days" || len(q.TimeDimensions[1].DateRange.([]string)) != 2 {
		t.Errorf("date ranges: got %v", q.TimeDimensions)
	}
	q, err = ParseQuery([]byte(`{"measures":["a.m"],"order":[["a.m","asc"]],"limit":"20"}`))
	if err != nil || *q.Limit != 20 || len(q.Order) != 1 {
		t.Errorf("order array and string limit: got %+v, %v", q, err)
	}
	q, err = ParseQuery([]byte(`{"measures":["a.m"],"order":{}}`))
	if err != nil || q.Order == nil || len(q.Order) != 0 {
		t.Errorf("empty order must stay non-nil and empty (no default order): got %#v, %v", q.Order, err)
	}
}
