package cube

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Date ranges follow Cube's dateParser (@cubejs-backend/api-gateway):
//   - today, yesterday, tomorrow: that day;
//   - this|last|next second|minute|hour|day|week|month|quarter|year: that
//     whole period (weeks start on Monday, ISO);
//   - last N units: the N whole units before the current one ("last 7
//     days" is the 7 days before today, today excluded); next N units: the
//     N whole units after the current one;
//   - "N units ago", "N units from now", "now", and "from X to Y" of these
//     or of absolute dates: from the start of X's day (or of its second,
//     minute or hour when the string names one of them) to the end of Y's;
//   - an absolute date alone: that day (or that instant when it has a time).
//
// Everything is computed in the query's timezone. A range's end is its last
// instant: PostgreSQL's timestamps have microseconds, so the end of a day is
// 23:59:59.999999 (Cube writes 23:59:59.999 for millisecond databases).

var (
	relPeriod  = regexp.MustCompile(`^(this|last|next)\s+(second|minute|hour|day|week|month|quarter|year)$`)
	relN       = regexp.MustCompile(`^(last|next)\s+(\d{1,4})\s+(second|minute|hour|day|week|month|quarter|year)s?$`)
	relFromTo  = regexp.MustCompile(`^from\s+(.+?)\s+to\s+(.+)$`)
	relAgo     = regexp.MustCompile(`^(\d{1,4})\s+(second|minute|hour|day|week|month|quarter|year)s?\s+(ago|from now)$`)
	absoluteRe = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$`)
)

// ResolveDateRange turns a time dimension's dateRange — a relative string
// or a pair of absolute dates — into its first and last instants, with now
// and the dates' wall clocks read in loc. Errors are *QueryError.
func ResolveDateRange(v any, now time.Time, loc *time.Location) (from, to time.Time, err error) {
	if loc == nil {
		loc = time.UTC
	}
	now = now.In(loc)
	switch r := v.(type) {
	case string:
		return resolveRelative(r, now, loc)
	case []string:
		if len(r) != 2 {
			return from, to, queryErrorf("dateRange must be a string or two dates")
		}
		return resolvePair(r[0], r[1], loc)
	case []any:
		if len(r) != 2 {
			return from, to, queryErrorf("dateRange must be a string or two dates")
		}
		a, ok1 := r[0].(string)
		b, ok2 := r[1].(string)
		if !ok1 || !ok2 {
			return from, to, queryErrorf("dateRange must be a string or two dates")
		}
		return resolvePair(a, b, loc)
	}
	return from, to, queryErrorf("dateRange must be a string or two dates")
}

func resolvePair(a, b string, loc *time.Location) (from, to time.Time, err error) {
	from, _, err = ParseDate(a, loc)
	if err != nil {
		return from, to, err
	}
	to, dateOnly, err := ParseDate(b, loc)
	if err != nil {
		return from, to, err
	}
	if dateOnly {
		to = endOf(to, "day")
	}
	if to.Before(from) {
		return from, to, queryErrorf("dateRange ends (%s) before it starts (%s)", b, a)
	}
	return from, to, nil
}

// ParseDate reads an absolute date ("2026-01-01", "2026-01-01T10:00:00",
// "2026-01-01T10:00:00.123Z", "2026-01-01 10:00:00+02:00"); without a zone
// it is a wall clock in loc. dateOnly tells that it had no time.
func ParseDate(s string, loc *time.Location) (t time.Time, dateOnly bool, err error) {
	m := absoluteRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return t, false, queryErrorf("can't parse date: %q", truncate(s))
	}
	num := func(i int) int {
		if m[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	y, mo, d, h, mi, sec := num(1), num(2), num(3), num(4), num(5), num(6)
	ns := 0
	if m[7] != "" {
		frac := (m[7] + "000000000")[:9]
		ns, _ = strconv.Atoi(frac)
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, time.Month(mo)) || h > 23 || mi > 59 || sec > 59 {
		return t, false, queryErrorf("can't parse date: %q is not a valid date", truncate(s))
	}
	zone := loc
	if z := m[8]; z != "" {
		off := 0
		if z != "Z" {
			z = strings.ReplaceAll(z[1:], ":", "")
			zh, _ := strconv.Atoi(z[:2])
			zm, _ := strconv.Atoi(z[2:])
			off = zh*3600 + zm*60
			if m[8][0] == '-' {
				off = -off
			}
		}
		zone = time.FixedZone("", off)
	}
	t = time.Date(y, time.Month(mo), d, h, mi, sec, ns, zone).In(loc)
	return t, m[4] == "", nil
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func resolveRelative(s string, now time.Time, loc *time.Location) (from, to time.Time, err error) {
	s = strings.Join(strings.Fields(strings.ToLower(s)), " ")
	switch s {
	case "today":
		return startOf(now, "day"), endOf(now, "day"), nil
	case "yesterday":
		d := shift(now, "day", -1)
		return startOf(d, "day"), endOf(d, "day"), nil
	case "tomorrow":
		d := shift(now, "day", 1)
		return startOf(d, "day"), endOf(d, "day"), nil
	}
	if m := relPeriod.FindStringSubmatch(s); m != nil {
		k := map[string]int{"this": 0, "last": -1, "next": 1}[m[1]]
		d := shift(now, m[2], k)
		return startOf(d, m[2]), endOf(d, m[2]), nil
	}
	if m := relN.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		if n < 1 {
			return from, to, queryErrorf("can't parse date range %q", s)
		}
		unit := m[3]
		if m[1] == "last" {
			return startOf(shift(now, unit, -n), unit), endOf(shift(now, unit, -1), unit), nil
		}
		return startOf(shift(now, unit, 1), unit), endOf(shift(now, unit, n), unit), nil
	}
	gran := "day"
	for _, g := range []string{"second", "minute", "hour"} {
		if strings.Contains(s, g) {
			gran = g
			break
		}
	}
	if m := relFromTo.FindStringSubmatch(s); m != nil {
		a, err := pointInTime(m[1], now, loc)
		if err != nil {
			return from, to, err
		}
		b, err := pointInTime(m[2], now, loc)
		if err != nil {
			return from, to, err
		}
		from, to = startOf(a, gran), endOf(b, gran)
		if to.Before(from) {
			return from, to, queryErrorf("date range %q ends before it starts", s)
		}
		return from, to, nil
	}
	t, err := pointInTime(s, now, loc)
	if err != nil {
		return from, to, err
	}
	if _, dateOnly, err := ParseDate(s, loc); err == nil && !dateOnly {
		return t, t, nil
	}
	return startOf(t, gran), endOf(t, gran), nil
}

// pointInTime reads one end of "from X to Y": now, today, yesterday,
// tomorrow, "N units ago", "N units from now" or an absolute date.
func pointInTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	switch s {
	case "now", "today":
		return now, nil
	case "yesterday":
		return shift(now, "day", -1), nil
	case "tomorrow":
		return shift(now, "day", 1), nil
	}
	if m := relAgo.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		if m[3] == "ago" {
			n = -n
		}
		return shift(now, m[2], n), nil
	}
	t, _, err := ParseDate(s, loc)
	if err != nil {
		return t, queryErrorf("can't parse date: %q", truncate(s))
	}
	return t, nil
}

// shift moves t by n units as moment.js does: calendar units keep the
// wall clock (a day is 23 or 25 hours over a DST change) and a month
// added to the 31st ends on the month's last day.
func shift(t time.Time, unit string, n int) time.Time {
	switch unit {
	case "second":
		return t.Add(time.Duration(n) * time.Second)
	case "minute":
		return t.Add(time.Duration(n) * time.Minute)
	case "hour":
		return t.Add(time.Duration(n) * time.Hour)
	case "day":
		return t.AddDate(0, 0, n)
	case "week":
		return t.AddDate(0, 0, 7*n)
	case "month", "quarter", "year":
		months := n
		switch unit {
		case "quarter":
			months = 3 * n
		case "year":
			months = 12 * n
		}
		y, m, d := t.Date()
		first := time.Date(y, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
		if last := daysIn(first.Year(), first.Month()); d > last {
			d = last
		}
		return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	}
	panic(fmt.Sprintf("cube: unknown unit %q", unit))
}

// startOf is the first instant of t's unit in t's location (weeks start on
// Monday).
func startOf(t time.Time, unit string) time.Time {
	y, m, d := t.Date()
	loc := t.Location()
	switch unit {
	case "second":
		return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), 0, loc)
	case "minute":
		return time.Date(y, m, d, t.Hour(), t.Minute(), 0, 0, loc)
	case "hour":
		// Back by the wall clock's minutes and seconds rather than
		// time.Date: in an hour repeated by a DST change, time.Date may
		// pick the other occurrence.
		return t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	case "day":
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case "week":
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case "month":
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	case "quarter":
		return time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, loc)
	case "year":
		return time.Date(y, 1, 1, 0, 0, 0, 0, loc)
	}
	panic(fmt.Sprintf("cube: unknown unit %q", unit))
}

// endOf is the last instant (to the microsecond, PostgreSQL's precision)
// of t's unit.
func endOf(t time.Time, unit string) time.Time {
	s := startOf(t, unit)
	var next time.Time
	switch unit {
	case "second":
		next = s.Add(time.Second)
	case "minute":
		next = s.Add(time.Minute)
	case "hour":
		next = s.Add(time.Hour)
	case "day":
		next = s.AddDate(0, 0, 1)
	case "week":
		next = s.AddDate(0, 0, 7)
	case "month":
		next = s.AddDate(0, 1, 0)
	case "quarter":
		next = s.AddDate(0, 3, 0)
	case "year":
		next = s.AddDate(1, 0, 0)
	}
	return next.Add(-time.Microsecond)
}

// formatLocal writes t as Cube writes times: the wall clock in loc with
// milliseconds and no zone.
func formatLocal(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02T15:04:05.000")
}
