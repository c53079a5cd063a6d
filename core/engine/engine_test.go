package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// env is a migrated database with one workspace, and a Redis prefix.
type env struct {
	st     *store.Store
	rdb    *redis.Client
	prefix string
	ws     string
	source string
	mirror *live.Mirror
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, dbURL), "migrate")
	st, err := store.Open(ctx, dbURL)
	testenv.Must(t, err, "open store")
	t.Cleanup(st.Close)
	testenv.Must(t, st.SyncWorkspaces(ctx, []store.WorkspaceSpec{{Slug: "shop", Name: "Shop",
		Sources: []store.SourceSpec{{Slug: "web", Name: "Web", WriteKey: "k"}}}}), "sync")
	keys, err := st.SourceKeys(ctx)
	testenv.Must(t, err, "keys")
	rdb, prefix := testenv.Redis(t)
	return &env{st: st, rdb: rdb, prefix: prefix, ws: keys[0].WorkspaceID, source: keys[0].SourceID, mirror: live.New(rdb, prefix)}
}

// clock is a settable clock for closing sessions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// entry builds a queue entry of the env's workspace from a Segment
// message; at is added to t0.
func (e *env) entry(typ, msgID, anon string, at time.Duration, payload string) event.Entry {
	ts := t0.Add(at)
	return event.Entry{WorkspaceID: e.ws, SourceID: e.source, MessageID: msgID, Type: typ, ShardKey: anon,
		ReceivedAt: ts, Timestamp: ts, Payload: []byte(payload)}
}

// visit is a small history of two devices of one customer.
func (e *env) visit() []event.Entry {
	return []event.Entry{
		e.entry("page", "m1", "dev-a", 0, `{"anonymousId":"dev-a","name":"Home","properties":{"url":"https://shop.example/?utm_source=news&utm_medium=email&utm_campaign=nov","referrer":""}}`),
		e.entry("page", "m2", "dev-a", time.Minute, `{"anonymousId":"dev-a","name":"Shoes","properties":{"url":"https://shop.example/shoes"}}`),
		e.entry("track", "m3", "dev-a", 2*time.Minute, `{"anonymousId":"dev-a","event":"Product Added","properties":{"product_id":"p1","name":"Shoe","price":25,"quantity":2}}`),
		e.entry("identify", "m4", "dev-a", 3*time.Minute, `{"anonymousId":"dev-a","userId":"u1","traits":{"email":"Ann@Example.com","plan":"pro"}}`),
		e.entry("track", "m5", "dev-a", 4*time.Minute, `{"anonymousId":"dev-a","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","total":50,"currency":"EUR","products":[{"product_id":"p1","price":25,"quantity":2}]}}`),
		e.entry("identify", "m6", "dev-b", 5*time.Minute, `{"anonymousId":"dev-b","userId":"u1","traits":{"plan":"max"}}`),
		e.entry("page", "m7", "dev-b", 6*time.Minute, `{"anonymousId":"dev-b","userId":"u1","name":"Home","properties":{"url":"https://shop.example/"}}`),
	}
}

// batch wraps entries as one shard's batch with ids first-0, first+1-0...
func batch(shard, first int, entries []event.Entry) queue.Batch {
	b := queue.Batch{Shard: shard}
	for i, en := range entries {
		b.Messages = append(b.Messages, queue.Message{ID: fmt.Sprintf("%d-0", first+i), Shard: shard, Entry: en})
	}
	return b
}

func (e *env) engine(t *testing.T, name string, c *clock) *Engine {
	t.Helper()
	return New(nil, e.st, e.mirror, Options{Consumer: name, Now: c.Now, Logger: slog.New(slog.DiscardHandler)})
}

// row reads one value from the database.
func row[T any](t *testing.T, st *store.Store, sql string, args ...any) T {
	t.Helper()
	var v T
	testenv.Must(t, st.Pool().QueryRow(context.Background(), sql, args...).Scan(&v), "query %s", sql)
	return v
}

// sessionsDump is the stored sessions as comparable text, ordered, without
// the ids, which hash the workspace's id.
func sessionsDump(t *testing.T, st *store.Store) string {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `
		SELECT anonymous_id, coalesce(user_id, ''), profile_id IS NOT NULL, started_at, last_event_at, events, page_views,
		       coalesce(landing_page, ''), coalesce(current_page, ''), coalesce(exit_page, ''), channel_group, coalesce(source, ''),
		       coalesce(cart::text, ''), orders_count, revenue::text, bounced, closed
		FROM sessions ORDER BY anonymous_id, started_at`)
	testenv.Must(t, err, "dump sessions")
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		vals, err := rows.Values()
		testenv.Must(t, err, "scan session")
		fmt.Fprintln(&b, vals...)
	}
	testenv.Must(t, rows.Err(), "dump sessions")
	return b.String()
}

// A customer's visit on two devices becomes two live sessions, one
// profile with both devices, an order, page views, and a live mirror; when
// the sessions close, the profile counts them and the mirror empties.
func TestBatchBuildsSessionsProfileAndLiveState(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := &clock{t: t0.Add(7 * time.Minute)}
	eng := e.engine(t, "w1", c)
	testenv.Must(t, eng.acquire(ctx, 0), "acquire")
	dead, err := eng.handle(ctx, batch(0, 1, e.visit()))
	testenv.Must(t, err, "handle")
	if len(dead) != 0 {
		t.Fatalf("dead letters: %+v", dead)
	}

	if n := row[int](t, e.st, `SELECT count(*) FROM sessions WHERE NOT closed`); n != 2 {
		t.Fatalf("%d open sessions stored, want 2", n)
	}
	if n := row[int](t, e.st, `SELECT count(*) FROM page_views`); n != 3 {
		t.Fatalf("%d page views, want 3", n)
	}
	a := row[string](t, e.st, `SELECT format('%s/%s/%s/%s/%s/%s', events, page_views, channel_group, orders_count, revenue, coalesce(cart->>'value', 'empty'))
		FROM sessions WHERE anonymous_id = 'dev-a'`)
	if a != "5/2/Email/1/50.000000/empty" {
		t.Fatalf("dev-a session = %s, want 5 events, 2 page views, Email, 1 order of 50, cart emptied by the order", a)
	}
	profile := row[string](t, e.st, `SELECT profile_id::text FROM identities WHERE kind = 'user_id' AND value = 'u1'`)
	if got := row[string](t, e.st, `SELECT string_agg(kind || ':' || value, ',' ORDER BY kind, value) FROM identities WHERE profile_id = $1`, profile); got != "anonymous_id:dev-a,anonymous_id:dev-b,email:ann@example.com,user_id:u1" {
		t.Fatalf("identities of the profile = %s", got)
	}
	if got := row[string](t, e.st, `SELECT format('%s/%s/%s', orders_count, sessions_count, traits->'plan'->>'value') FROM profiles WHERE id = $1`, profile); !strings.HasPrefix(got, "1/0/") {
		t.Fatalf("profile orders/sessions/plan = %s, want 1 order and no closed session yet", got)
	}
	if n := row[int](t, e.st, `SELECT count(DISTINCT profile_id) FROM sessions`); n != 1 {
		t.Fatalf("sessions point at %d profiles, want 1", n)
	}
	if n, err := e.mirror.Count(ctx, e.ws); err != nil || n != 2 {
		t.Fatalf("live count = %d, %v; want 2", n, err)
	}
	page, _, err := e.mirror.Active(ctx, e.ws, live.Filter{AnonymousID: "dev-a"}, "", 10)
	testenv.Must(t, err, "active")
	if len(page) != 1 || page[0].Events != 5 || page[0].ProfileID != profile || page[0].OrdersCount != 1 || page[0].Revenue != 50 {
		t.Fatalf("live dev-a = %+v", page)
	}

	// Nothing is due yet; then both sessions close.
	testenv.Must(t, eng.tick(ctx, 0), "tick")
	if n := row[int](t, e.st, `SELECT count(*) FROM sessions WHERE closed`); n != 0 {
		t.Fatalf("%d sessions closed early", n)
	}
	c.Set(t0.Add(2 * time.Hour))
	testenv.Must(t, eng.tick(ctx, 0), "tick")
	if got := row[string](t, e.st, `SELECT string_agg(format('%s:%s:%s', anonymous_id, closed, coalesce(exit_page, '')), ',' ORDER BY anonymous_id) FROM sessions`); got != "dev-a:t:https://shop.example/shoes,dev-b:t:https://shop.example/" {
		t.Fatalf("closed sessions = %s", got)
	}
	if n := row[int64](t, e.st, `SELECT sessions_count FROM profiles WHERE id = $1`, profile); n != 2 {
		t.Fatalf("profile counts %d sessions after close, want 2", n)
	}
	if n, _ := e.mirror.Count(ctx, e.ws); n != 0 {
		t.Fatalf("live count after close = %d, want 0", n)
	}
	if s := eng.Stats(); s.LiveSessions != 0 || s.Visitors != 2 {
		t.Fatalf("stats after close = %+v, want 0 sessions and 2 idle visitors", s)
	}
	// After the grace period the idle visitors are dropped, from memory and
	// from the checkpoint.
	c.Set(t0.Add(3 * time.Hour))
	testenv.Must(t, eng.tick(ctx, 0), "tick")
	if s := eng.Stats(); s.Visitors != 0 {
		t.Fatalf("stats after drop = %+v, want no visitors", s)
	}
	if n := row[int](t, e.st, `SELECT count(*) FROM session_visitors`); n != 0 {
		t.Fatalf("%d visitors left in the checkpoint", n)
	}
}

// A worker that takes a shard over restores the checkpoint, skips the
// entries committed before the failure, and ends with exactly what one
// worker processing everything once leaves; the worker that lost the
// shard can no longer write.
func TestTakeoverReplaysExactlyAndFencesTheOldOwner(t *testing.T) {
	ctx := context.Background()
	all := func(e *env) []event.Entry { return e.visit() }

	// Reference: one worker, every entry once.
	ref := newEnv(t)
	c := &clock{t: t0.Add(7 * time.Minute)}
	one := ref.engine(t, "ref", c)
	testenv.Must(t, one.acquire(ctx, 0), "acquire")
	_, err := one.handle(ctx, batch(0, 1, all(ref)))
	testenv.Must(t, err, "handle")

	e := newEnv(t)
	entries := all(e)
	a := e.engine(t, "a", c)
	testenv.Must(t, a.acquire(ctx, 0), "a acquires")
	_, err = a.handle(ctx, batch(0, 1, entries[:4]))
	testenv.Must(t, err, "a handles the first entries")
	// a dies before acknowledging: b acquires and is delivered everything.
	b := e.engine(t, "b", c)
	testenv.Must(t, b.acquire(ctx, 0), "b acquires")
	_, err = b.handle(ctx, batch(0, 1, entries))
	testenv.Must(t, err, "b handles the redelivered entries")
	// a, paused rather than dead, wakes up and tries to commit.
	if _, err := a.handle(ctx, batch(0, 5, entries[4:])); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("the old owner's commit: err = %v, want ErrFenced", err)
	}

	if got, want := sessionsDump(t, e.st), sessionsDump(t, ref.st); got != want {
		t.Fatalf("sessions after takeover:\n%s\nwant (one worker):\n%s", got, want)
	}
	for _, q := range []string{
		`SELECT count(*) FROM page_views`,
		`SELECT count(*) FROM orders`,
		`SELECT sum(orders_count) FROM profiles`,
		`SELECT sum(revenue_micros)::bigint FROM profiles`,
		`SELECT count(*) FROM identities`,
	} {
		if got, want := row[int64](t, e.st, q), row[int64](t, ref.st, q); got != want {
			t.Errorf("%s = %d after takeover, want %d", q, got, want)
		}
	}
}

// A commit that fails leaves the visitors ahead of storage: the shard
// reloads its checkpoint before the batch comes again, so nothing counts
// twice.
func TestFailedCommitReloadsTheCheckpoint(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := &clock{t: t0.Add(7 * time.Minute)}
	a := e.engine(t, "a", c)
	entries := e.visit()
	testenv.Must(t, a.acquire(ctx, 0), "acquire")
	_, err := a.handle(ctx, batch(0, 1, entries[:3]))
	testenv.Must(t, err, "handle")
	// Another worker holds the shard for a moment: a's next commit fails
	// after the batch was applied in memory.
	_, err = e.st.AcquireSessionShard(ctx, 0, "intruder")
	testenv.Must(t, err, "intrude")
	if _, err := a.handle(ctx, batch(0, 4, entries[3:])); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("handle while fenced: err = %v, want ErrFenced", err)
	}
	_, err = a.handle(ctx, batch(0, 4, entries[3:]))
	testenv.Must(t, err, "handle again")
	if got := row[string](t, e.st, `SELECT string_agg(format('%s:%s', anonymous_id, events), ',' ORDER BY anonymous_id) FROM sessions`); got != "dev-a:5,dev-b:2" {
		t.Fatalf("events per session = %s, want dev-a:5,dev-b:2", got)
	}
	if got := row[int64](t, e.st, `SELECT sum(orders_count)::bigint FROM profiles`); got != 1 {
		t.Fatalf("orders counted = %d, want 1", got)
	}
	page, _, err := e.mirror.Active(ctx, e.ws, live.Filter{AnonymousID: "dev-a"}, "", 10)
	testenv.Must(t, err, "active")
	if len(page) != 1 || page[0].Events != 5 {
		t.Fatalf("live dev-a = %+v, want 5 events", page)
	}
}

// The session engine reads a workspace's own domains from its settings: a
// page referred by another of the workspace's sites continues the visit,
// where a referral from a site it does not own starts a new one.
func TestOwnDomainsFromWorkspaceSettings(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w, err := e.st.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	st := w.Settings
	st.OwnDomains = []string{"shop-blog.example"}
	_, err = e.st.UpdateWorkspace(ctx, store.Change{Actor: store.Actor{Type: "cli", Label: "test"}}, w, w.Name, st)
	testenv.Must(t, err, "update settings")

	page := func(id, anon string, at time.Duration, referrer string) event.Entry {
		return e.entry("page", id, anon, at, fmt.Sprintf(`{"anonymousId":%q,"properties":{"url":"https://shop.example/p","referrer":%q}}`, anon, referrer))
	}
	c := &clock{t: t0.Add(10 * time.Minute)}
	eng := e.engine(t, "w1", c)
	testenv.Must(t, eng.acquire(ctx, 0), "acquire")
	_, err = eng.handle(ctx, batch(0, 1, []event.Entry{
		page("o1", "own", 0, ""), page("o2", "own", time.Minute, "https://www.shop-blog.example/post"),
		page("x1", "ext", 0, ""), page("x2", "ext", time.Minute, "https://news.example/article"),
	}))
	testenv.Must(t, err, "handle")
	if got := row[string](t, e.st, `SELECT string_agg(format('%s:%s', anonymous_id, n), ',' ORDER BY anonymous_id)
		FROM (SELECT anonymous_id, count(*) AS n FROM sessions GROUP BY 1) s`); got != "ext:2,own:1" {
		t.Fatalf("sessions per device = %s, want ext:2 (an external referral starts a visit), own:1", got)
	}
}
