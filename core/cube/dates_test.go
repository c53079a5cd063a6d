package cube

import (
	"testing"
	"time"
)

func TestResolveDateRange(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	ny, _ := time.LoadLocation("America/New_York")
	// Wednesday 2026-03-11 15:00 UTC.
	now := time.Date(2026, 3, 11, 15, 0, 0, 0, time.UTC)
	f := "2006-01-02T15:04:05.000000-07:00"
	for _, c := range []struct {
		in       any
		now      time.Time
		loc      *time.Location
		from, to string
	}{
		{"today", now, time.UTC, "2026-03-11T00:00:00.000000+00:00", "2026-03-11T23:59:59.999999+00:00"},
		{"Yesterday", now, time.UTC, "2026-03-10T00:00:00.000000+00:00", "2026-03-10T23:59:59.999999+00:00"},
		{"tomorrow", now, time.UTC, "2026-03-12T00:00:00.000000+00:00", "2026-03-12T23:59:59.999999+00:00"},
		{"last 7 days", now, time.UTC, "2026-03-04T00:00:00.000000+00:00", "2026-03-10T23:59:59.999999+00:00"},
		{"last 2 weeks", now, time.UTC, "2026-02-23T00:00:00.000000+00:00", "2026-03-08T23:59:59.999999+00:00"},
		{"last 3 months", now, time.UTC, "2025-12-01T00:00:00.000000+00:00", "2026-02-28T23:59:59.999999+00:00"},
		{"last 2 quarters", now, time.UTC, "2025-07-01T00:00:00.000000+00:00", "2025-12-31T23:59:59.999999+00:00"},
		{"last 1 year", now, time.UTC, "2025-01-01T00:00:00.000000+00:00", "2025-12-31T23:59:59.999999+00:00"},
		{"next 2 days", now, time.UTC, "2026-03-12T00:00:00.000000+00:00", "2026-03-13T23:59:59.999999+00:00"},
		{"this week", now, time.UTC, "2026-03-09T00:00:00.000000+00:00", "2026-03-15T23:59:59.999999+00:00"},
		{"last week", now, time.UTC, "2026-03-02T00:00:00.000000+00:00", "2026-03-08T23:59:59.999999+00:00"},
		{"next week", now, time.UTC, "2026-03-16T00:00:00.000000+00:00", "2026-03-22T23:59:59.999999+00:00"},
		{"this month", now, time.UTC, "2026-03-01T00:00:00.000000+00:00", "2026-03-31T23:59:59.999999+00:00"},
		{"last month", time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC), time.UTC, "2026-02-01T00:00:00.000000+00:00", "2026-02-28T23:59:59.999999+00:00"},
		{"next month", now, time.UTC, "2026-04-01T00:00:00.000000+00:00", "2026-04-30T23:59:59.999999+00:00"},
		{"this quarter", now, time.UTC, "2026-01-01T00:00:00.000000+00:00", "2026-03-31T23:59:59.999999+00:00"},
		{"last quarter", now, time.UTC, "2025-10-01T00:00:00.000000+00:00", "2025-12-31T23:59:59.999999+00:00"},
		{"this year", now, time.UTC, "2026-01-01T00:00:00.000000+00:00", "2026-12-31T23:59:59.999999+00:00"},
		{"last year", now, time.UTC, "2025-01-01T00:00:00.000000+00:00", "2025-12-31T23:59:59.999999+00:00"},
		{"from 7 days ago to now", now, time.UTC, "2026-03-04T00:00:00.000000+00:00", "2026-03-11T23:59:59.999999+00:00"},
		{"3 days ago", now, time.UTC, "2026-03-08T00:00:00.000000+00:00", "2026-03-08T23:59:59.999999+00:00"},
		{"from 2026-01-01 to 2026-01-31", now, time.UTC, "2026-01-01T00:00:00.000000+00:00", "2026-01-31T23:59:59.999999+00:00"},
		// In the query's timezone: at 15:00 UTC it is already the 12th in Tokyo-like zones; in New York still the 11th.
		{"today", time.Date(2026, 3, 12, 2, 0, 0, 0, time.UTC), ny, "2026-03-11T00:00:00.000000-04:00", "2026-03-11T23:59:59.999999-04:00"},
		// The week of Paris' DST change (Sunday 2026-03-29): 167 hours.
		{"this week", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), paris, "2026-03-23T00:00:00.000000+01:00", "2026-03-29T23:59:59.999999+02:00"},
		{"yesterday", time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC), paris, "2026-03-29T00:00:00.000000+01:00", "2026-03-29T23:59:59.999999+02:00"},
		// Absolute pairs: a date-only end is inclusive to the day's end.
		{[]string{"2026-01-01", "2026-01-31"}, now, time.UTC, "2026-01-01T00:00:00.000000+00:00", "2026-01-31T23:59:59.999999+00:00"},
		{[]any{"2026-01-01T10:00:00", "2026-01-01T11:30:00.250"}, now, paris, "2026-01-01T10:00:00.000000+01:00", "2026-01-01T11:30:00.250000+01:00"},
		{[]string{"2026-01-01T10:00:00Z", "2026-01-02T00:00:00+02:00"}, now, paris, "2026-01-01T11:00:00.000000+01:00", "2026-01-01T23:00:00.000000+01:00"},
	} {
		from, to, err := ResolveDateRange(c.in, c.now, c.loc)
		if err != nil {
			t.Errorf("%v in %s: %v", c.in, c.loc, err)
			continue
		}
		if from.Format(f) != c.from || to.Format(f) != c.to {
			t.Errorf("%v in %s at %s:\n got %s .. %s\nwant %s .. %s", c.in, c.loc, c.now, from.Format(f), to.Format(f), c.from, c.to)
		}
	}
	for _, bad := range []any{"last fortnight", "2026-02-30", []string{"2026-01-02", "2026-01-01"}, []string{"x", "y"}, 42, "from nowish to now"} {
		if _, _, err := ResolveDateRange(bad, now, time.UTC); err == nil {
			t.Errorf("%v: want an error", bad)
		} else if _, ok := err.(*QueryError); !ok {
			t.Errorf("%v: error %v is not a *QueryError", bad, err)
		}
	}
}
