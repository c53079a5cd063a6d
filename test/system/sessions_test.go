package system

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// Fault 5: two session-engine workers share the shards; one is killed with
// SIGKILL in the middle of traffic. The survivor takes its shards over from
// their checkpoints, and in the end every device's stored sessions and
// live sessions count exactly the events stored for it: none lost, none
// counted twice.
func TestSessionWorkerKilledMidStreamCountsEveryEventOnce(t *testing.T) {
	e := newEnv(t, "")
	collectorURL := e.serve(e.config(e.dbURL, e.redisURL), server.RoleCollector)
	victim := e.start("worker")
	e.start("worker")

	a := &acked{ids: map[string]bool{}}
	stats := traffic(t, collectorURL, e.writeKey, 1000, 8*time.Second, a)
	time.Sleep(3 * time.Second)
	if n := e.sessionEvents(); n == 0 {
		t.Fatal("no session counted an event in 3 s; cannot test a kill mid-stream")
	}
	victim.kill(t)
	t.Log("killed one of the two workers")

	st := <-stats
	if st.Failed > 0 || st.Rejected > 0 {
		t.Fatalf("collector refused traffic: %+v", st)
	}
	e.waitStored(a.snapshot(), 60*time.Second)

	// The recount: events per device, from the stored events.
	want := e.counts(`SELECT anonymous_id, count(*) FROM events WHERE anonymous_id IS NOT NULL AND anonymous_id <> '' GROUP BY 1`)
	wantPages := e.counts(`SELECT anonymous_id, count(*) FROM events WHERE type IN ('page', 'screen') AND anonymous_id <> '' GROUP BY 1`)
	if len(want) < 50 {
		t.Fatalf("only %d devices in the traffic; want many", len(want))
	}
	var stored, livePer map[string]int
	deadline := time.Now().Add(60 * time.Second)
	for {
		stored = e.counts(`SELECT anonymous_id, sum(events) FROM sessions GROUP BY 1`)
		livePer = e.liveEventsPerDevice()
		if equalCounts(stored, want) && equalCounts(livePer, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the takeover, sessions do not count the stored events:\nstored sessions: %s\nlive sessions:   %s",
				diffCounts(stored, want), diffCounts(livePer, want))
		}
		time.Sleep(300 * time.Millisecond)
	}
	// And session by session: the sessionizer run afresh over the stored
	// events, in event-time order, cuts the same sessions.
	recount := e.resessionize()
	if got := e.sessionsPerDevice(); !equalCounts(flatten(got), flatten(recount)) {
		t.Fatalf("stored sessions differ from a recount of the stored events: %s", diffCounts(flatten(got), flatten(recount)))
	}
	if got := e.liveSessionsPerDevice(); !equalCounts(flatten(got), flatten(recount)) {
		t.Fatalf("live sessions differ from a recount of the stored events: %s", diffCounts(flatten(got), flatten(recount)))
	}
	if got := e.counts(`SELECT anonymous_id, count(*) FROM page_views GROUP BY 1`); !equalCounts(got, wantPages) {
		t.Fatalf("page views do not match the stored page events: %s", diffCounts(got, wantPages))
	}
	if got := e.counts(`SELECT anonymous_id, sum(page_views) FROM sessions GROUP BY 1 HAVING sum(page_views) > 0`); !equalCounts(got, wantPages) {
		t.Fatalf("sessions' page view counts do not match the stored page events: %s", diffCounts(got, wantPages))
	}
	// Orders: each stored Order Completed once, in the orders table and on
	// the profiles.
	orders := e.counts(`SELECT 'all', count(DISTINCT coalesce(properties->>'order_id', message_id)) FROM events WHERE event = 'Order Completed' AND anonymous_id <> ''`)
	if got := e.counts(`SELECT 'all', count(*) FROM orders`); !equalCounts(got, orders) {
		t.Fatalf("orders table: %s", diffCounts(got, orders))
	}
	if got := e.counts(`SELECT 'all', sum(orders_count) FROM profiles WHERE merged_into IS NULL`); !equalCounts(got, orders) {
		t.Fatalf("profiles' orders: %s", diffCounts(got, orders))
	}
}

// sessionEvents is the number of events the stored sessions count.
func (e *env) sessionEvents() int {
	e.t.Helper()
	total := 0
	for _, n := range e.counts(`SELECT 'all', coalesce(sum(events), 0) FROM sessions`) {
		total += n
	}
	return total
}

// counts runs a query of (key, count) rows, such as counts per device.
func (e *env) counts(sql string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	e.eachRow(sql, func(rows pgx.Rows) {
		var k string
		var n int64
		testenv.Must(e.t, rows.Scan(&k, &n), "scan")
		out[k] = int(n)
	})
	return out
}

// eachRow runs a query on the env's database and calls f on each row.
func (e *env) eachRow(sql string, f func(pgx.Rows)) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dbURL)
	testenv.Must(e.t, err, "connect")
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql)
	testenv.Must(e.t, err, "query %s", sql)
	defer rows.Close()
	for rows.Next() {
		f(rows)
	}
	testenv.Must(e.t, rows.Err(), "rows of %s", sql)
}

// liveEventsPerDevice sums the events of the live sessions in Redis per
// device.
func (e *env) liveEventsPerDevice() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for dev, ss := range e.liveSessionsPerDevice() {
		for _, s := range ss {
			out[dev] += s.events
		}
	}
	return out
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// diffCounts describes how got differs from want, briefly.
func diffCounts(got, want map[string]int) string {
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %d want %d", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %d want none", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	return fmt.Sprintf("%d devices differ: %s", len(diffs), strings.Join(diffs, "; "))
}

// sessionShape is a session as the recount compares it.
type sessionShape struct {
	start  time.Time
	events int
}

// flatten turns sessions per device into counts keyed by device and start,
// for equalCounts and diffCounts.
func flatten(m map[string][]sessionShape) map[string]int {
	out := map[string]int{}
	for dev, ss := range m {
		for _, s := range ss {
			out[dev+"@"+s.start.UTC().Format(time.RFC3339Nano)] += s.events
		}
	}
	return out
}

// sessionsPerDevice reads the stored sessions.
func (e *env) sessionsPerDevice() map[string][]sessionShape {
	e.t.Helper()
	out := map[string][]sessionShape{}
	e.eachRow(`SELECT anonymous_id, started_at, events FROM sessions`, func(rows pgx.Rows) {
		var dev string
		var s sessionShape
		testenv.Must(e.t, rows.Scan(&dev, &s.start, &s.events), "scan")
		out[dev] = append(out[dev], s)
	})
	return out
}

// liveSessionsPerDevice reads the live sessions in Redis.
func (e *env) liveSessionsPerDevice() map[string][]sessionShape {
	e.t.Helper()
	ctx := context.Background()
	out := map[string][]sessionShape{}
	iter := e.rdb.Scan(ctx, 0, e.prefix+":live:*:s:*", 1000).Iterator()
	for iter.Next(ctx) {
		b, err := e.rdb.Get(ctx, iter.Val()).Bytes()
		if err == redis.Nil {
			continue
		}
		testenv.Must(e.t, err, "get")
		var s struct {
			AnonymousID string
			StartedAt   time.Time
			Events      int
		}
		testenv.Must(e.t, json.Unmarshal(b, &s), "decode")
		out[s.AnonymousID] = append(out[s.AnonymousID], sessionShape{s.StartedAt, s.Events})
	}
	testenv.Must(e.t, iter.Err(), "scan live keys")
	return out
}

// resessionize runs the session engine afresh over the stored events, in
// event-time order, under the default rules the workspace has.
func (e *env) resessionize() map[string][]sessionShape {
	e.t.Helper()
	visitors := map[string]*session.Visitor{}
	var ws *session.Workspace
	e.eachRow(`
		SELECT workspace_id::text, message_id, type, anonymous_id, coalesce(user_id, ''), coalesce(event, ''), coalesce(name, ''),
		       "timestamp", coalesce(properties, '{}'), coalesce(context, '{}')
		FROM events WHERE anonymous_id <> '' ORDER BY anonymous_id, "timestamp", message_id`, func(rows pgx.Rows) {
		var en event.Entry
		var anon, user, name, title string
		var props, ctxJSON json.RawMessage
		testenv.Must(e.t, rows.Scan(&en.WorkspaceID, &en.MessageID, &en.Type, &anon, &user, &name, &title, &en.Timestamp, &props, &ctxJSON), "scan")
		payload, err := json.Marshal(map[string]any{"type": en.Type, "anonymousId": anon, "userId": user,
			"event": name, "name": title, "properties": props, "context": ctxJSON})
		testenv.Must(e.t, err, "encode")
		en.Payload = payload
		if ws == nil {
			ws, err = session.NewWorkspace(en.WorkspaceID, session.DefaultRules())
			testenv.Must(e.t, err, "workspace")
		}
		ev, err := session.FromEntry(&en)
		testenv.Must(e.t, err, "event %s", en.MessageID)
		v := visitors[anon]
		if v == nil {
			v = ws.NewVisitor(anon)
			visitors[anon] = v
		}
		_, err = v.Apply(&ev, nil)
		testenv.Must(e.t, err, "apply %s", en.MessageID)
	})
	out := map[string][]sessionShape{}
	for anon, v := range visitors {
		for _, s := range v.Sessions() {
			out[anon] = append(out[anon], sessionShape{s.Start, s.Events})
		}
	}
	return out
}
