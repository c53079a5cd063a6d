package system

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/pipeline"
	"github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// A person's deletion while their events are in flight: accepted and
// waiting in the ingest queue, processed and waiting in the events queue,
// and their open session held in the session engine's memory (restored
// from its checkpoint). The job waits, running, until the workers are back
// and have passed those events; then nothing of the person is left in any
// table or live key, the engine does not write their session back when it
// would have closed, and their next event, without fresh consent, is
// dropped.
func TestDeletePersonWithEventsInFlight(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.config(e.dbURL, e.redisURL)
	base := e.serve(cfg, server.RoleCollector, server.RoleAPI)
	admin := e.ownerConsole(base)
	ctx := context.Background()
	run := testenv.RandomName("")
	anon, user, email := "anon-"+run, "user-"+run, "mail-"+run+"@example.org"
	events, err := queue.New(e.rdb, queue.Options{Prefix: e.prefix, Shards: 4})
	testenv.Must(t, err, "events queue")
	ingest, err := queue.New(e.rdb, queue.Options{Prefix: server.IngestPrefix(e.prefix), Shards: 4})
	testenv.Must(t, err, "ingest queue")
	ws := e.value(`SELECT id::text FROM workspaces WHERE slug = 'shop'`)
	src := e.value(`SELECT id::text FROM sources WHERE slug = 'web'`)
	// A bystander on the person's shard: the engine's handling of the
	// person must not hold up the shard's other visitors.
	otherAnon := ""
	for i := 0; otherAnon == ""; i++ {
		if b := fmt.Sprintf("bystander-%s-%d", run, i); events.ShardOf(ws, b) == events.ShardOf(ws, anon) {
			otherAnon = b
		}
	}

	// The person's session closes (timeout 30 min + grace 10 min after its
	// last event) a little after the job has run: the engine must not
	// write it back then.
	start := time.Now()
	closesAt := start.Add(14 * time.Second)
	last := closesAt.Add(-40 * time.Minute)
	at := func(d time.Duration) string { return last.Add(d).UTC().Format(time.RFC3339Nano) }
	post := func(path, body string) {
		t.Helper()
		if status, _, b := e.post(base, path, body); status != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, status, b)
		}
	}
	post("/v1/page", fmt.Sprintf(`{"anonymousId":%q,"name":"Home","timestamp":%q,"properties":{"url":"https://shop.example/"}}`, anon, at(-2*time.Second)))
	post("/v1/identify", fmt.Sprintf(`{"anonymousId":%q,"userId":%q,"timestamp":%q,"traits":{"email":%q}}`, anon, user, at(-time.Second), email))
	post("/v1/page", fmt.Sprintf(`{"anonymousId":%q,"name":"Home","timestamp":%q,"properties":{"url":"https://shop.example/"}}`, otherAnon, at(0)))

	// 1. A worker stores and sessionizes them, then dies.
	worker := e.start("worker")
	var profile string
	testenv.Eventually(t, 20*time.Second, "the person's profile, session and checkpoint, and the bystander's session", func() bool {
		profile = e.value(`SELECT coalesce(min(profile_id::text), '') FROM identities WHERE kind = 'user_id' AND value = $1`, user)
		return profile != "" &&
			e.value(`SELECT count(*)::text FROM sessions WHERE anonymous_id = $1`, anon) == "1" &&
			e.value(`SELECT count(*)::text FROM session_visitors WHERE anonymous_id = $1`, anon) == "1" &&
			e.value(`SELECT count(*)::text FROM sessions WHERE anonymous_id = $1`, otherAnon) == "1"
	})
	worker.kill(t)

	// 2. Events in flight: accepted by the collector (ingest queue), and
	// one already processed (events queue), both of the same visit.
	post("/v1/track", fmt.Sprintf(`{"anonymousId":%q,"userId":%q,"event":"Viewed","timestamp":%q}`, anon, user, at(0)))
	post("/v1/track", fmt.Sprintf(`{"userId":%q,"event":"Server side","timestamp":%q}`, user, at(0)))
	ts := last
	testenv.Must(t, events.Enqueue(ctx, []event.Entry{{WorkspaceID: ws, SourceID: src, MessageID: "processed-" + run, Type: "page",
		ShardKey: anon, ReceivedAt: time.Now(), Timestamp: ts,
		Payload: fmt.Appendf(nil, `{"anonymousId":%q,"userId":%q,"name":"Cart","properties":{"url":"https://shop.example/cart"}}`, anon, user)}}), "enqueue a processed event")

	// 3. The deletion waits for the workers.
	var job struct {
		ID, Status string
		Counts     map[string]int64
	}
	admin.call(http.StatusAccepted, "DELETE", "/workspaces/shop/profiles/"+profile, "", &job)
	jobPath := "/workspaces/shop/deletions/" + job.ID
	for range 8 {
		time.Sleep(200 * time.Millisecond)
		admin.call(http.StatusOK, "GET", jobPath, "", &job)
		if job.Status != "running" {
			t.Fatalf("deletion job %s while no worker runs, want running (waiting for the events in flight)", job.Status)
		}
	}

	// 4. A worker comes back (in this process, to read its metrics): it
	// restores the person's visitor from the checkpoint, the gate drops
	// the ingested events, the forget entries follow the processed one,
	// and the job finishes.
	workerURL := e.serve(cfg, server.RoleWorker)
	testenv.Eventually(t, 30*time.Second, "the deletion job to finish", func() bool {
		admin.call(http.StatusOK, "GET", jobPath, "", &job)
		return job.Status != "running" && job.Status != "pending"
	})
	if job.Status != "done" || job.Counts["forget_entries"] != 2 || job.Counts["profiles"] != 1 {
		t.Fatalf("deletion job %s with counts %v, want done, 2 forget entries (anonymous id, user id), 1 profile", job.Status, job.Counts)
	}

	// 5. Nothing of the person in the database, nor live.
	person := []string{anon, user, email, profile}
	for _, v := range person {
		if where := e.databaseHolds(v); len(where) > 0 {
			t.Errorf("after the deletion the database holds an identifier of the person in %v", where)
		}
	}
	liveKeys, err := e.rdb.Keys(ctx, e.prefix+":live:*").Result()
	testenv.Must(t, err, "live keys")
	for _, k := range liveKeys {
		dump, err := e.rdb.Dump(ctx, k).Result()
		testenv.Must(t, err, "dump %s", k)
		for _, v := range person {
			if strings.Contains(k+dump, v) {
				t.Errorf("live key %s refers to the person", k)
			}
		}
	}
	if n := e.value(`SELECT count(*)::text FROM sessions WHERE anonymous_id = $1`, otherAnon); n != "1" {
		t.Errorf("the bystander has %s sessions, want 1", n)
	}

	// 6. The person's session would have closed by now: the engine holds
	// nothing of them to write back.
	time.Sleep(time.Until(closesAt.Add(3 * time.Second)))
	testenv.Eventually(t, 10*time.Second, "the bystander's session closes", func() bool {
		return e.value(`SELECT count(*)::text FROM sessions WHERE anonymous_id = $1 AND closed`, otherAnon) == "1"
	})
	for _, v := range person {
		if where := e.databaseHolds(v); len(where) > 0 {
			t.Errorf("after the person's session would have closed, the database holds an identifier of theirs in %v", where)
		}
	}
	// A visitor left in memory would have made the close fail (its
	// profile is gone) or written its session back.
	_, _, metrics := do(t, mustGet(t, workerURL+"/metrics"))
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "eddy_engine_failures_total") && !strings.HasSuffix(line, " 0") {
			t.Errorf("the session engine failed: %s", line)
		}
	}

	// 7. Their next event, without fresh consent, is dropped.
	post("/v1/track", fmt.Sprintf(`{"anonymousId":%q,"event":"Back again"}`, anon))
	e.waitPassed(ingest, plugins.ProcessGroup)
	e.waitPassed(events, pipeline.Group)
	if where := e.databaseHolds(anon); len(where) > 0 {
		t.Errorf("a new event of the deleted person was stored: %v", where)
	}
}

// value runs a query of one text value on the env's database.
func (e *env) value(sql string, args ...any) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dbURL)
	testenv.Must(e.t, err, "connect")
	defer conn.Close(ctx)
	var v string
	testenv.Must(e.t, conn.QueryRow(ctx, sql, args...).Scan(&v), "query %s", sql)
	return v
}

// databaseHolds returns the columns ("table.column") of any table where
// value appears in a text, JSON, uuid, address or array column.
func (e *env) databaseHolds(value string) []string {
	e.t.Helper()
	var cols [][2]string
	e.eachRow(`
		SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		  AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'uuid', 'inet', 'ARRAY')
		ORDER BY 1, 2`, func(rows pgx.Rows) {
		var c [2]string
		testenv.Must(e.t, rows.Scan(&c[0], &c[1]), "scan column")
		cols = append(cols, c)
	})
	if len(cols) < 20 {
		e.t.Fatalf("the column search found only %d columns", len(cols))
	}
	var found []string
	for _, c := range cols {
		q := fmt.Sprintf(`SELECT count(*)::text FROM %s WHERE strpos(lower(%s::text), lower($1)) > 0`,
			pgx.Identifier{c[0]}.Sanitize(), pgx.Identifier{c[1]}.Sanitize())
		if e.value(q, value) != "0" {
			found = append(found, c[0]+"."+c[1])
		}
	}
	return found
}

// waitPassed waits until group has acknowledged everything appended to q
// so far.
func (e *env) waitPassed(q *queue.Queue, group string) {
	e.t.Helper()
	ctx := context.Background()
	mark, err := q.Mark(ctx)
	testenv.Must(e.t, err, "mark")
	testenv.Eventually(e.t, 20*time.Second, group+" passes the mark", func() bool {
		ok, err := q.Passed(ctx, group, mark)
		testenv.Must(e.t, err, "passed")
		return ok
	})
}
