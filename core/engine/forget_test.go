package engine

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// forgetEntry is a deletion job's forget entry for one identifier.
func (e *env) forgetEntry(t *testing.T, msgID, key string) event.Entry {
	t.Helper()
	payload, err := json.Marshal(event.Forget{JobID: "job", Identities: []event.ForgetIdentity{{Kind: "anonymous_id", Value: key}}})
	testenv.Must(t, err, "encode forget")
	return event.Entry{WorkspaceID: e.ws, MessageID: msgID, Type: event.TypeForget, ShardKey: key, ReceivedAt: t0, Payload: payload}
}

// tapped records the devices whose changes the mirror published.
type tapped struct {
	mu   sync.Mutex
	anon []string
}

func (tp *tapped) tap(_ context.Context, _ redis.Pipeliner, _ string, c *live.Change) {
	tp.mu.Lock()
	tp.anon = append(tp.anon, c.Session.AnonymousID)
	tp.mu.Unlock()
}

func (tp *tapped) reset() []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	out := tp.anon
	tp.anon = nil
	return out
}

// A forget entry drops its visitor from the shard without writing its open
// session: once the job deleted the stored rows, nothing of the visitor
// comes back when its session would have closed, nor in the checkpoint,
// nor live; the shard's other visitors carry on.
func TestForgetDropsTheVisitorWithoutWritingItsSession(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tp := &tapped{}
	e.mirror.SetTap(tp.tap)
	c := &clock{t: t0.Add(7 * time.Minute)}
	eng := e.engine(t, "w1", c)
	testenv.Must(t, eng.acquire(ctx, 0), "acquire")
	other := e.entry("page", "o1", "dev-o", 6*time.Minute, `{"anonymousId":"dev-o","properties":{"url":"https://shop.example/"}}`)
	_, err := eng.handle(ctx, batch(0, 1, append(e.visit(), other)))
	testenv.Must(t, err, "handle the visit")
	if s := eng.Stats(); s.Visitors != 3 || s.LiveSessions != 3 {
		t.Fatalf("stats before forget = %+v, want 3 visitors with 3 open sessions", s)
	}
	tp.reset()

	// The forget entries of the person's two devices, the second one
	// twice, and one of a device the shard never saw.
	dead, err := eng.handle(ctx, batch(0, 20, []event.Entry{
		e.forgetEntry(t, "f1", "dev-a"), e.forgetEntry(t, "f2", "dev-b"), e.forgetEntry(t, "f3", "dev-b"), e.forgetEntry(t, "f4", "dev-never"),
	}))
	testenv.Must(t, err, "handle the forget entries")
	if len(dead) != 0 {
		t.Fatalf("forget entries dead-lettered: %+v", dead)
	}
	if s := eng.Stats(); s.Visitors != 1 || s.LiveSessions != 1 {
		t.Fatalf("stats after forget = %+v, want only the other visitor and its session", s)
	}
	if got := row[string](t, e.st, `SELECT coalesce(string_agg(anonymous_id, ',' ORDER BY anonymous_id), '') FROM session_visitors`); got != "dev-o" {
		t.Fatalf("checkpointed visitors after forget = %q, want dev-o", got)
	}
	// The deletion job deletes the person's stored sessions once the
	// group has passed the entries.
	_, err = e.st.Pool().Exec(ctx, `DELETE FROM sessions WHERE anonymous_id IN ('dev-a', 'dev-b')`)
	testenv.Must(t, err, "delete the person's sessions")

	// A forget entry already delivered, again: nothing happens.
	_, err = eng.handle(ctx, batch(0, 30, []event.Entry{e.forgetEntry(t, "f5", "dev-a")}))
	testenv.Must(t, err, "handle a second forget")

	c.Set(t0.Add(2 * time.Hour))
	testenv.Must(t, eng.tick(ctx, 0), "tick after the close timeout")
	if got := row[string](t, e.st, `SELECT coalesce(string_agg(format('%s:%s', anonymous_id, closed), ',' ORDER BY anonymous_id), '') FROM sessions`); got != "dev-o:t" {
		t.Fatalf("sessions after the close timeout = %q, want only dev-o's, closed", got)
	}
	if got := tp.reset(); slices.ContainsFunc(got, func(a string) bool { return a != "dev-o" }) || len(got) == 0 {
		t.Fatalf("published after forget for devices %v, want dev-o's close only", got)
	}
	// A worker taking the shard over restores no state of the person.
	b := e.engine(t, "w2", c)
	testenv.Must(t, b.acquire(ctx, 0), "takeover")
	if s := b.Stats(); s.Visitors != 1 {
		t.Fatalf("visitors restored by a successor = %d, want 1 (dev-o)", s.Visitors)
	}
}

// Forget entries in the same batch as the visitor's events: nothing of
// the visitor is written or published, the other events of the batch are.
func TestForgetInTheBatchOfTheVisitorsEvents(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tp := &tapped{}
	e.mirror.SetTap(tp.tap)
	c := &clock{t: t0.Add(7 * time.Minute)}
	eng := e.engine(t, "w1", c)
	testenv.Must(t, eng.acquire(ctx, 0), "acquire")
	other := e.entry("page", "o1", "dev-o", 6*time.Minute, `{"anonymousId":"dev-o","properties":{"url":"https://shop.example/"}}`)
	entries := append(e.visit(), other, e.forgetEntry(t, "f1", "dev-a"), e.forgetEntry(t, "f2", "dev-b"))
	dead, err := eng.handle(ctx, batch(0, 1, entries))
	testenv.Must(t, err, "handle")
	if len(dead) != 0 {
		t.Fatalf("dead letters: %+v", dead)
	}
	for table, want := range map[string]string{
		"sessions":         "dev-o",
		"page_views":       "dev-o",
		"orders":           "",
		"session_visitors": "dev-o",
	} {
		got := row[string](t, e.st, `SELECT coalesce(string_agg(anonymous_id, ',' ORDER BY anonymous_id), '') FROM `+table)
		if got != want {
			t.Errorf("%s hold devices %q, want %q", table, got, want)
		}
	}
	if got := tp.reset(); !slices.Equal(got, []string{"dev-o"}) {
		t.Errorf("published changes of devices %v, want [dev-o]", got)
	}
	if s := eng.Stats(); s.Visitors != 1 {
		t.Errorf("visitors held = %d, want 1", s.Visitors)
	}
}
