package live_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

const wsID = "0190a6d2-3b4c-7d8e-9f00-112233445566"

// feed applies events to the session engine and publishes their changes.
type feed struct {
	t        *testing.T
	m        *live.Mirror
	ws       *session.Workspace
	visitors map[string]*session.Visitor
	seq      int
}

func newFeed(t *testing.T, m *live.Mirror) *feed {
	ws, err := session.NewWorkspace(wsID, session.DefaultRules())
	testenv.Must(t, err, "new session workspace")
	return &feed{t: t, m: m, ws: ws, visitors: map[string]*session.Visitor{}}
}

func (f *feed) visitor(anon string) *session.Visitor {
	v := f.visitors[anon]
	if v == nil {
		v = f.ws.NewVisitor(anon)
		f.visitors[anon] = v
	}
	return v
}

// apply applies a page event of anon at at, without publishing.
func (f *feed) apply(out []session.Change, anon string, at time.Time) []session.Change {
	f.t.Helper()
	f.seq++
	e := &session.Event{WorkspaceID: wsID, MessageID: fmt.Sprintf("m-%d", f.seq), AnonymousID: anon,
		Type: session.TypePage, Timestamp: at, URL: "https://shop.test/" + anon}
	out, err := f.visitor(anon).Apply(e, out)
	testenv.Must(f.t, err, "apply %s", e.MessageID)
	return out
}

func dueLater(*session.Session) time.Time { return time.Now().Add(time.Hour) }

func (f *feed) publish(changes []session.Change) {
	f.t.Helper()
	testenv.Must(f.t, f.m.Publish(context.Background(), changes, dueLater, time.Now()), "publish")
}

// subscribe subscribes to the workspace's changes once Redis confirmed.
func subscribe(t *testing.T, m *live.Mirror) <-chan *redis.Message {
	t.Helper()
	sub := m.Subscribe(context.Background(), wsID)
	t.Cleanup(func() { sub.Close() })
	_, err := sub.Receive(context.Background())
	testenv.Must(t, err, "subscribe")
	return sub.Channel()
}

func next(t *testing.T, sub <-chan *redis.Message) live.Change {
	t.Helper()
	select {
	case msg := <-sub:
		c, err := live.DecodeChange(msg.Payload)
		testenv.Must(t, err, "decode")
		return c
	case <-time.After(2 * time.Second):
		t.Fatal("no change within 2s")
	}
	return live.Change{}
}

// none checks that no change comes within a little while.
func none(t *testing.T, sub <-chan *redis.Message) {
	t.Helper()
	select {
	case msg := <-sub:
		t.Errorf("unexpected change %s", msg.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

func activeIDs(t *testing.T, m *live.Mirror, f live.Filter, limit int) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 1000 {
		page, nextCursor, err := m.Active(context.Background(), wsID, f, cursor, limit)
		testenv.Must(t, err, "active after %q", cursor)
		if len(page) > limit {
			t.Fatalf("page of %d, limit %d", len(page), limit)
		}
		for _, s := range page {
			ids = append(ids, s.ID)
		}
		if nextCursor == "" {
			return ids
		}
		if len(page) == 0 {
			t.Fatalf("an empty page with cursor %q after %q", nextCursor, cursor)
		}
		cursor = nextCursor
	}
	t.Fatal("more than 1000 pages")
	return nil
}

func TestPublishCoalesces(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	m := live.New(rdb, prefix)
	f := newFeed(t, m)
	sub := subscribe(t, m)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)

	t.Run("started and updated in one batch is started", func(t *testing.T) {
		ch := f.apply(nil, "a", t0)
		ch = f.apply(ch, "a", t0.Add(time.Minute))
		if len(ch) != 2 || ch[0].Kind != session.Started || ch[1].Kind != session.Updated {
			t.Fatalf("engine changes %+v", ch)
		}
		f.publish(ch)
		c := next(t, sub)
		if c.Kind != "started" || c.Session.ID != ch[0].Session.ID.String() || c.Session.Events != 2 || len(c.Absorbed) != 0 {
			t.Fatalf("change %+v", c)
		}
		s, ok, err := m.Session(ctx, wsID, c.Session.ID)
		if err != nil || !ok || s.Events != 2 || !s.LastEventAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("mirrored session %+v %v %v", s, ok, err)
		}
		f.publish(f.apply(nil, "a", t0.Add(2*time.Minute)))
		if c := next(t, sub); c.Kind != "updated" || c.Session.Events != 3 {
			t.Fatalf("change %+v", c)
		}
	})

	t.Run("merge drops the absorbed session and lists it", func(t *testing.T) {
		// Two sessions more than the timeout apart, then an event between
		// them that bridges the gap.
		first := f.apply(nil, "b", t0)
		second := f.apply(nil, "b", t0.Add(50*time.Minute))
		ids := []string{first[0].Session.ID.String(), second[0].Session.ID.String()}
		if ids[0] == ids[1] {
			t.Fatal("one session, want two")
		}
		f.publish(append(first, second...))
		for range 2 {
			if c := next(t, sub); c.Kind != "started" {
				t.Fatalf("change %+v", c)
			}
		}
		ch := f.apply(nil, "b", t0.Add(25*time.Minute))
		if !slices.ContainsFunc(ch, func(c session.Change) bool { return c.Kind == session.Merged }) {
			t.Fatalf("no merge in %+v", ch)
		}
		f.publish(ch)
		c := next(t, sub)
		if c.Kind != "merged" || len(c.Absorbed) != 1 || !slices.Contains(ids, c.Session.ID) || !slices.Contains(ids, c.Absorbed[0]) ||
			c.Absorbed[0] == c.Session.ID || c.Session.Events != 3 {
			t.Fatalf("change %+v, sessions %v", c, ids)
		}
		if _, ok, _ := m.Session(ctx, wsID, c.Absorbed[0]); ok {
			t.Error("the absorbed session is still mirrored")
		}
		if got := activeIDs(t, m, live.Filter{AnonymousID: "b"}, 10); !slices.Equal(got, []string{c.Session.ID}) {
			t.Errorf("b's active sessions %v, want %s", got, c.Session.ID)
		}
		// No second message for the absorbed session.
		none(t, sub)
	})

	t.Run("started and absorbed in one batch is dropped and listed", func(t *testing.T) {
		ch := f.apply(nil, "c", t0)
		ch = f.apply(ch, "c", t0.Add(50*time.Minute))
		ch = f.apply(ch, "c", t0.Add(25*time.Minute))
		f.publish(ch)
		c := next(t, sub)
		if c.Kind != "started" || len(c.Absorbed) != 1 || c.Absorbed[0] == c.Session.ID {
			t.Fatalf("change %+v", c)
		}
		if got := activeIDs(t, m, live.Filter{AnonymousID: "c"}, 10); !slices.Equal(got, []string{c.Session.ID}) {
			t.Errorf("c's active sessions %v, want %s", got, c.Session.ID)
		}
	})

	t.Run("closed removes the keys", func(t *testing.T) {
		ch := f.apply(nil, "d", t0)
		f.publish(ch)
		id := ch[0].Session.ID.String()
		if c := next(t, sub); c.Kind != "started" || c.Session.ID != id {
			t.Fatalf("change %+v", c)
		}
		closed := f.visitor("d").Close(time.Now(), nil)
		if len(closed) != 1 {
			t.Fatalf("closed %+v", closed)
		}
		f.publish(closed)
		if c := next(t, sub); c.Kind != "closed" || c.Session.ID != id || !c.Session.Closed {
			t.Fatalf("change %+v", c)
		}
		if _, ok, _ := m.Session(ctx, wsID, id); ok {
			t.Error("a closed session is still mirrored")
		}
		if n, err := rdb.Exists(ctx, prefix+":live:"+wsID+":s:"+id).Result(); err != nil || n != 0 {
			t.Errorf("session key: %d %v", n, err)
		}
		if _, err := rdb.ZScore(ctx, prefix+":live:"+wsID+":active", id).Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("the closed session is still in the active set: %v", err)
		}
	})

	t.Run("put does not announce", func(t *testing.T) {
		ch := f.apply(nil, "e", t0)
		testenv.Must(t, m.Put(ctx, ch, dueLater, time.Now()), "put")
		if _, ok, _ := m.Session(ctx, wsID, ch[0].Session.ID.String()); !ok {
			t.Error("put did not mirror the session")
		}
		none(t, sub)
	})
}

func TestActivePaging(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	m := live.New(rdb, prefix)
	f := newFeed(t, m)
	ctx := context.Background()
	t1 := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)

	// 450 sessions whose last events share one millisecond, more than two
	// of Active's chunks, between 3 newer and 3 older ones.
	var ch []session.Change
	for i := range 450 {
		ch = f.apply(ch, fmt.Sprintf("same-%03d", i), t1)
	}
	for i := range 3 {
		ch = f.apply(ch, fmt.Sprintf("newer-%d", i), t1.Add(time.Duration(i+1)*time.Second))
		ch = f.apply(ch, fmt.Sprintf("older-%d", i), t1.Add(-time.Duration(i+1)*time.Second))
	}
	f.publish(ch)
	all := activeIDs(t, m, live.Filter{}, 1000)
	if len(all) != 456 {
		t.Fatalf("%d sessions, want 456", len(all))
	}
	for _, limit := range []int{1, 7, 100, 199, 200, 201, 455, 456} {
		if got := activeIDs(t, m, live.Filter{}, limit); !slices.Equal(got, all) {
			t.Errorf("limit %d: %d sessions, not the one-page order", limit, len(got))
		}
	}
	// The order: newest first; one millisecond's ids in reverse order.
	var stamps []int64
	for _, id := range all {
		s, ok, err := m.Session(ctx, wsID, id)
		if err != nil || !ok {
			t.Fatalf("session %s: %v %v", id, ok, err)
		}
		stamps = append(stamps, s.LastEventAt.UnixMilli())
	}
	for i := 1; i < len(all); i++ {
		if stamps[i] > stamps[i-1] || stamps[i] == stamps[i-1] && all[i] > all[i-1] {
			t.Fatalf("position %d out of order: %s@%d after %s@%d", i, all[i], stamps[i], all[i-1], stamps[i-1])
		}
	}
	n, err := m.Count(ctx, wsID)
	if err != nil || n != 456 {
		t.Errorf("count %d %v", n, err)
	}

	t.Run("a full last page has no cursor", func(t *testing.T) {
		page, cursor, err := m.Active(ctx, wsID, live.Filter{}, "", 456)
		if err != nil || len(page) != 456 || cursor != "" {
			t.Errorf("%d sessions, cursor %q, %v", len(page), cursor, err)
		}
	})

	t.Run("filter", func(t *testing.T) {
		if got := activeIDs(t, m, live.Filter{AnonymousID: "older-1"}, 1); len(got) != 1 {
			t.Errorf("older-1: %v", got)
		}
	})

	t.Run("invalid cursors", func(t *testing.T) {
		for _, c := range []string{"x", "12", "12:", "abc:def", ":id"} {
			if _, _, err := m.Active(ctx, wsID, live.Filter{}, c, 10); !errors.Is(err, live.ErrInvalidCursor) {
				t.Errorf("cursor %q: %v", c, err)
			}
		}
	})

	t.Run("stale members are skipped and forgotten", func(t *testing.T) {
		// The keys of the 250 most recent sessions expire: a page must
		// still find the live ones after them, across chunks.
		for _, id := range all[:250] {
			testenv.Must(t, rdb.Del(ctx, prefix+":live:"+wsID+":s:"+id).Err(), "delete")
		}
		got := activeIDs(t, m, live.Filter{}, 200)
		if !slices.Equal(got, all[250:]) {
			t.Errorf("%d sessions after the stale ones, want %d", len(got), len(all)-250)
		}
		n, err := m.Count(ctx, wsID)
		if err != nil || n != int64(len(all)-250) {
			t.Errorf("count %d %v after forgetting, want %d", n, err, len(all)-250)
		}
	})
}

// The announcement written by hand decodes as the Change it stands for.
func TestAnnouncementIsTheChangeAsJSON(t *testing.T) {
	for _, absorbed := range [][]string{nil, {"0193a0c4-1111-7000-8000-000000000001", "0193a0c4-1111-7000-8000-000000000002"}} {
		b := live.Announcement("merged", []byte(`{"ID":"s1","Events":3}`), absorbed)
		c, err := live.DecodeChange(string(b))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if c.Kind != "merged" || c.Session.ID != "s1" || c.Session.Events != 3 || !slices.Equal(c.Absorbed, absorbed) {
			t.Fatalf("decoded %+v from %s", c, b)
		}
	}
}
