package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// liveFeed feeds events to the session engine and publishes its changes to
// the live mirror, as a worker does after each commit.
type liveFeed struct {
	t        testing.TB
	m        *live.Mirror
	ws       *session.Workspace
	visitors map[string]*session.Visitor
	seq      int
}

func newLiveFeed(t testing.TB, m *live.Mirror, workspaceID string) *liveFeed {
	t.Helper()
	ws, err := session.NewWorkspace(workspaceID, session.DefaultRules())
	testenv.Must(t, err, "new session workspace")
	return &liveFeed{t: t, m: m, ws: ws, visitors: map[string]*session.Visitor{}}
}

func (f *liveFeed) visitor(anon string) *session.Visitor {
	v := f.visitors[anon]
	if v == nil {
		v = f.ws.NewVisitor(anon)
		f.visitors[anon] = v
	}
	return v
}

func dueInAnHour(*session.Session) time.Time { return time.Now().Add(time.Hour) }

func (f *liveFeed) publish(changes []session.Change) {
	f.t.Helper()
	testenv.Must(f.t, f.m.Publish(context.Background(), changes, dueInAnHour, time.Now()), "publish")
}

// page applies a page event of anon at at (edit, when set, changes it
// first), publishes the changes and returns the session's id.
func (f *liveFeed) page(anon string, at time.Time, edit func(*session.Event)) string {
	f.t.Helper()
	f.seq++
	e := session.Event{WorkspaceID: f.ws.ID(), MessageID: fmt.Sprintf("live-%d", f.seq), AnonymousID: anon,
		Type: session.TypePage, Timestamp: at, URL: "https://shop.test/" + anon, Name: "Home"}
	if edit != nil {
		edit(&e)
	}
	ch, err := f.visitor(anon).Apply(&e, nil)
	testenv.Must(f.t, err, "apply %s", e.MessageID)
	f.publish(ch)
	return ch[len(ch)-1].Session.ID.String()
}

// setProfile records anon's profile and publishes the change.
func (f *liveFeed) setProfile(anon, profileID string) {
	f.publish(f.visitor(anon).SetProfileID(profileID, nil))
}

// close closes anon's sessions and publishes their closing.
func (f *liveFeed) close(anon string) {
	f.t.Helper()
	ch := f.visitor(anon).Close(time.Now().Add(24*time.Hour), nil)
	if len(ch) == 0 {
		f.t.Fatalf("%s has no session to close", anon)
	}
	f.publish(ch)
}

// listLiveAPI follows the live list's pages and returns the sessions' ids;
// none may be closed.
func listLiveAPI(t *testing.T, c *client, ws, query string, limit int) []string {
	t.Helper()
	var ids []string
	for _, s := range listSessionsAPI(t, c, ws, "sessions/live", query, limit) {
		if s.Closed {
			t.Errorf("a closed session is live: %+v", s)
		}
		ids = append(ids, s.AnonymousID)
	}
	return ids
}

func TestLiveSessionsAPI(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@live.test")
	owner.org("live-org")
	owner.workspace("live-org", "shop")
	owner.workspace("live-org", "other")
	owner.workspace("live-org", "crowd")
	ctx := context.Background()
	ws, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	other, err := p.store.WorkspaceBySlug(ctx, "other")
	testenv.Must(t, err, "workspace")
	crowd, err := p.store.WorkspaceBySlug(ctx, "crowd")
	testenv.Must(t, err, "workspace")

	t0 := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	f := newLiveFeed(t, p.mirror, ws.ID)
	f.page("a", t0, func(e *session.Event) {
		e.UserID = "user-a"
		e.Campaign = session.Campaign{Source: "news", Medium: "email"}
		e.Device = session.Device{Type: session.Mobile}
		e.Location = session.Location{Country: "FR"}
	})
	f.page("b", t0.Add(time.Minute), nil)
	profile := "00000000-0000-4000-8000-0000000000b1"
	f.setProfile("b", profile)
	f.page("c", t0.Add(2*time.Minute), func(e *session.Event) {
		e.Device = session.Device{Type: session.Desktop}
		e.Location = session.Location{Country: "DE"}
	})
	gone := f.page("gone", t0.Add(3*time.Minute), nil)
	f.close("gone")
	newLiveFeed(t, p.mirror, other.ID).page("x", t0, nil)

	t.Run("most recently active first, paged", func(t *testing.T) {
		for _, limit := range []int{1, 2, 3, 50} {
			if got := listLiveAPI(t, owner.in(t), "shop", "", limit); !slices.Equal(got, []string{"c", "b", "a"}) {
				t.Errorf("limit %d: %v, want c b a", limit, got)
			}
		}
		if got := listLiveAPI(t, owner.in(t), "other", "", 10); !slices.Equal(got, []string{"x"}) {
			t.Errorf("other: %v, want x", got)
		}
		// The closed session is gone, from the list as from the mirror.
		if _, ok, _ := p.mirror.Session(ctx, ws.ID, gone); ok {
			t.Error("the closed session is still mirrored")
		}
	})

	t.Run("the items are sessions", func(t *testing.T) {
		var page struct{ Data []sessionOut }
		owner.in(t).must(http.StatusOK, "GET", "/workspaces/shop/sessions/live?anonymous_id=a", nil, &page)
		if len(page.Data) != 1 {
			t.Fatalf("a: %+v", page.Data)
		}
		s := page.Data[0]
		if s.UserID == nil || *s.UserID != "user-a" || s.Source == nil || *s.Source != "news" || s.Events != 1 ||
			s.PageViews != 1 || s.Closed || s.Country == nil || *s.Country != "FR" || s.ProfileID != nil {
			t.Errorf("session a: %+v", s)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"anonymous_id=b", []string{"b"}},
			{"anonymous_id=nobody", nil},
			{"anonymous_id=A", nil},
			{"user_id=user-a", []string{"a"}},
			{"user_id=user-b", nil},
			{"profile_id=" + profile, []string{"b"}},
			{"profile_id=" + strings.ToUpper(profile), []string{"b"}},
			{"profile_id=00000000-0000-4000-8000-0000000000b2", nil},
			{"channel_group=email", []string{"a"}},
			{"channel_group=Direct", []string{"c", "b"}},
			{"device_type=MOBILE", []string{"a"}},
			{"device_type=desktop", []string{"c"}},
			{"country=de", []string{"c"}},
			{"country=FR", []string{"a"}},
			{"country=US", nil},
			{"country=FR&device_type=desktop", nil},
			{"channel_group=direct&country=de", []string{"c"}},
		} {
			for _, limit := range []int{1, 50} {
				if got := listLiveAPI(t, owner.in(t), "shop", tc.query, limit); !slices.Equal(got, tc.want) {
					t.Errorf("?%s&limit=%d: %v, want %v", tc.query, limit, got, tc.want)
				}
			}
		}
	})

	t.Run("an update moves a session to the top", func(t *testing.T) {
		f.page("a", t0.Add(4*time.Minute), nil)
		if got := listLiveAPI(t, owner.in(t), "shop", "", 2); !slices.Equal(got, []string{"a", "c", "b"}) {
			t.Errorf("%v, want a c b", got)
		}
	})

	t.Run("paging through one millisecond", func(t *testing.T) {
		// Many sessions whose last events share a millisecond, between
		// newer and older ones.
		cf := newLiveFeed(t, p.mirror, crowd.ID)
		t1 := t0.Add(time.Minute)
		var want []string
		for i := range 3 {
			cf.page(fmt.Sprintf("newer-%d", i), t1.Add(time.Duration(3-i)*time.Second), nil)
			want = append(want, fmt.Sprintf("newer-%d", i))
		}
		ids := map[string]string{}
		var same []string
		for i := range 40 {
			anon := fmt.Sprintf("same-%02d", i)
			ids[anon] = cf.page(anon, t1, nil)
			same = append(same, anon)
		}
		// One millisecond's sessions come by id, descending.
		slices.SortFunc(same, func(x, y string) int { return strings.Compare(ids[y], ids[x]) })
		want = append(want, same...)
		for i := range 3 {
			cf.page(fmt.Sprintf("older-%d", i), t1.Add(-time.Duration(i+1)*time.Second), nil)
			want = append(want, fmt.Sprintf("older-%d", i))
		}
		for _, limit := range []int{1, 3, 7, 40, 45, 46, 200} {
			if got := listLiveAPI(t, owner.in(t), "crowd", "", limit); !slices.Equal(got, want) {
				t.Errorf("limit %d:\n got %v\nwant %v", limit, got, want)
			}
		}
		// A page that ends the list exactly has no cursor.
		var page struct {
			Data       []sessionOut
			NextCursor *string `json:"next_cursor"`
		}
		owner.in(t).must(http.StatusOK, "GET", "/workspaces/crowd/sessions/live?limit=46", nil, &page)
		if len(page.Data) != 46 || page.NextCursor != nil {
			t.Errorf("%d sessions, cursor %v", len(page.Data), page.NextCursor)
		}
	})

	t.Run("stale members are skipped and forgotten", func(t *testing.T) {
		sf := newLiveFeed(t, p.mirror, ws.ID)
		stale := sf.page("stale", t0.Add(5*time.Minute), nil)
		before, err := p.mirror.Count(ctx, ws.ID)
		testenv.Must(t, err, "count")
		// Its worker died and its key expired.
		testenv.Must(t, p.rdb.Del(ctx, p.prefix+":live:"+ws.ID+":s:"+stale).Err(), "delete the session key")
		for _, limit := range []int{1, 50} {
			if got := listLiveAPI(t, owner.in(t), "shop", "", limit); !slices.Equal(got, []string{"a", "c", "b"}) {
				t.Errorf("limit %d: %v, want a c b", limit, got)
			}
		}
		after, err := p.mirror.Count(ctx, ws.ID)
		testenv.Must(t, err, "count")
		if after != before-1 {
			t.Errorf("count %d after the list, want %d", after, before-1)
		}
		if err := p.rdb.ZScore(ctx, p.prefix+":live:"+ws.ID+":active", stale).Err(); err == nil {
			t.Error("the stale session is still in the active set")
		}
	})

	t.Run("bad params", func(t *testing.T) {
		c := owner.in(t)
		cursorOf := func(v any) string {
			b, _ := json.Marshal(v)
			return url.QueryEscape(base64.RawURLEncoding.EncodeToString(b))
		}
		long := strings.Repeat("x", 1025)
		for query, field := range map[string]string{
			"profile_id=nope": "profile_id",
			"profile_id=00000000000040008000000000000b1": "profile_id",
			"anonymous_id=%FF":                           "anonymous_id",
			"anonymous_id=a%00b":                         "anonymous_id",
			"anonymous_id=" + long:                       "anonymous_id",
			"user_id=%FF":                                "user_id",
			"user_id=" + long:                            "user_id",
			"channel_group=%FF":                          "channel_group",
			"channel_group=" + long[:201]:                "channel_group",
			"device_type=%FE":                            "device_type",
			"device_type=" + long[:201]:                  "device_type",
			"country=%FF":                                "country",
			"country=" + long[:201]:                      "country",
			"limit=0":                                    "limit",
			"limit=201":                                  "limit",
			"limit=ten":                                  "limit",
			"cursor=%21%21":                              "cursor",
			"cursor=" + cursorOf("not a cursor"):         "cursor",
			"cursor=" + cursorOf("12:"):                  "cursor",
			"cursor=" + cursorOf(12):                     "cursor",
			"cursor=" + cursorOf("x:y"):                  "cursor",
		} {
			c.do("GET", "/workspaces/shop/sessions/live?"+query, nil).wantInvalid(t, field)
		}
	})

	t.Run("routes next to sessions/:session_id", func(t *testing.T) {
		c := owner.in(t)
		// Paths that only look like the live routes reach the session
		// route, or none.
		c.do("GET", "/workspaces/shop/sessions/livex", nil).wantInvalid(t, "session_id")
		c.do("GET", "/workspaces/shop/sessions/liv", nil).wantInvalid(t, "session_id")
		c.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/sessions/00000000-0000-4000-8000-00000000dead", nil)
		for _, path := range []string{"/workspaces/shop/sessions/live/nope", "/workspaces/shop/sessions/live/stream/x"} {
			resp, err := plain().Get(p.srv.URL + api.Base + path)
			testenv.Must(t, err, "GET %s", path)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "no such API route") {
				t.Errorf("GET %s → %d %s, want a 404 of no route", path, resp.StatusCode, body)
			}
		}
	})

	t.Run("permissions", func(t *testing.T) {
		viewer := p.member("live-org", "viewer@live.test", "viewer")
		viewer.in(t).expect(http.StatusOK, "", "GET", "/workspaces/shop/sessions/live", nil)
		read := owner.apiKey("shop", "reader", "read")
		p.withKey(read.Key).in(t).expect(http.StatusOK, "", "GET", "/workspaces/shop/sessions/live", nil)
		write := owner.apiKey("shop", "writer", "write")
		p.withKey(write.Key).in(t).expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/sessions/live", nil)
		p.withKey(write.Key).in(t).expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/sessions/live/stream", nil)
		// A key of shop does not reach other's live sessions.
		p.withKey(read.Key).in(t).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/other/sessions/live", nil)
		p.withKey(read.Key).in(t).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/other/sessions/live/stream", nil)
		p.anonymous().in(t).expect(http.StatusUnauthorized, "unauthenticated", "GET", "/workspaces/shop/sessions/live/stream", nil)
	})
}

// sseEvent is one event, or comment, of a stream.
type sseEvent struct {
	event, data, comment string
}

// sseStream is an open live stream.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// openStream opens the live stream of ws as c, failing the test unless it
// answers 200 with the stream's headers.
func openStream(t *testing.T, c *client, ws string) *sseStream {
	t.Helper()
	// The slots of streams a test closed free up as the server notices.
	deadline := time.Now().Add(2 * time.Second)
	resp, err := streamRequest(c, ws)
	for err == nil && resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
		resp, err = streamRequest(c, ws)
	}
	testenv.Must(t, err, "open the stream of %s", ws)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream of %s: %d %s", ws, resp.StatusCode, body)
	}
	for h, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 100)}
	t.Cleanup(s.close)
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "event: "):
				ev.event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			default:
				s.events <- sseEvent{comment: "unexpected line " + line}
			}
		}
	}()
	return s
}

// streamRequest sends a stream request with c's credentials through a
// client that leaves the body to the caller (the harness's reads bodies to
// their end).
func streamRequest(c *client, ws string) (*http.Response, error) {
	req, err := http.NewRequest("GET", c.p.srv.URL+api.Base+"/workspaces/"+ws+"/sessions/live/stream", nil)
	if err != nil {
		return nil, err
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	return (&http.Client{Jar: c.http.Jar}).Do(req)
}

func (s *sseStream) close() { s.resp.Body.Close() }

// next returns the stream's next event (heartbeats skipped) within 2s.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.comment == "ping" && ev.event == "" && ev.data == "" {
				continue
			}
			return ev
		case <-timeout:
			t.Fatal("no event within 2s")
		}
	}
}

// quiet checks that no event (heartbeats aside) comes within a little while.
func (s *sseStream) quiet(t *testing.T) {
	t.Helper()
	timeout := time.After(300 * time.Millisecond)
	for {
		select {
		case ev, ok := <-s.events:
			if ok && ev.comment == "ping" {
				continue
			}
			t.Errorf("unexpected event %+v (open %v)", ev, ok)
			return
		case <-timeout:
			return
		}
	}
}

// ended checks that the stream ends within 2s.
func (s *sseStream) ended(t *testing.T) {
	t.Helper()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the stream did not end within 2s")
		}
	}
}

// change checks an event: its name and data's kind are kind, its data a
// LiveChange whose session renders as the live list renders it (when the
// session is still listed), and returns the data.
func (s *sseStream) change(t *testing.T, c *client, ws, kind string) liveChangeOut {
	t.Helper()
	ev := s.next(t)
	if ev.event != kind {
		t.Fatalf("event %q, want %q: %+v", ev.event, kind, ev)
	}
	var raw map[string]json.RawMessage
	testenv.Must(t, json.Unmarshal([]byte(ev.data), &raw), "decode %s", ev.data)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range raw {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, []string{"absorbed", "kind", "session"}) {
		t.Errorf("data fields %v, want absorbed, kind, session", keys)
	}
	var out liveChangeOut
	testenv.Must(t, json.Unmarshal([]byte(ev.data), &out), "decode %s", ev.data)
	if out.Kind != kind || out.Absorbed == nil {
		t.Errorf("change %s: kind %q, absorbed %v", ev.data, out.Kind, out.Absorbed)
	}
	if kind != "closed" {
		// The same rendering as the list's (which the harness checks
		// against the document).
		var page struct{ Data []json.RawMessage }
		c.must(http.StatusOK, "GET", "/workspaces/"+ws+"/sessions/live?anonymous_id="+url.QueryEscape(out.Session.AnonymousID), nil, &page)
		var listed []string
		for _, d := range page.Data {
			var b bytes.Buffer
			testenv.Must(t, json.Compact(&b, d), "compact")
			listed = append(listed, b.String())
		}
		if !slices.Contains(listed, string(raw["session"])) {
			t.Errorf("streamed session %s\nis not as listed: %v", raw["session"], listed)
		}
	}
	return out
}

type liveChangeOut struct {
	Kind     string     `json:"kind"`
	Session  sessionOut `json:"session"`
	Absorbed []string   `json:"absorbed"`
}

func TestLiveStreamAPI(t *testing.T) {
	p := newPlatform(t, func(o *api.Options) {
		o.MaxLiveStreams = 3
		o.LiveHeartbeat = 100 * time.Millisecond
	})
	owner := p.newAdmin("owner@stream.test")
	owner.org("stream-org")
	owner.workspace("stream-org", "shop")
	owner.workspace("stream-org", "other")
	ctx := context.Background()
	ws, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	other, err := p.store.WorkspaceBySlug(ctx, "other")
	testenv.Must(t, err, "workspace")
	f := newLiveFeed(t, p.mirror, ws.ID)
	of := newLiveFeed(t, p.mirror, other.ID)
	t0 := time.Now().Add(-time.Hour).UTC()

	t.Run("changes after the headers arrive", func(t *testing.T) {
		c := owner.in(t)
		s := openStream(t, c, "shop")
		defer s.close()
		id := f.page("a", t0, func(e *session.Event) { e.UserID = "user-a" })
		ch := s.change(t, c, "shop", "started")
		if ch.Session.ID != id || ch.Session.AnonymousID != "a" || ch.Session.Events != 1 || ch.Session.Closed ||
			ch.Session.UserID == nil || *ch.Session.UserID != "user-a" || len(ch.Absorbed) != 0 {
			t.Errorf("started: %+v", ch)
		}
		f.page("a", t0.Add(time.Minute), nil)
		if ch := s.change(t, c, "shop", "updated"); ch.Session.ID != id || ch.Session.Events != 2 {
			t.Errorf("updated: %+v", ch)
		}
		// A session more than the timeout later, then an event bridging
		// the two: a merge.
		later := f.page("a", t0.Add(50*time.Minute), nil)
		if ch := s.change(t, c, "shop", "started"); ch.Session.ID != later {
			t.Errorf("second session: %+v", ch)
		}
		f.page("a", t0.Add(25*time.Minute), nil)
		ch = s.change(t, c, "shop", "merged")
		if !slices.Contains([]string{id, later}, ch.Session.ID) || len(ch.Absorbed) != 1 || ch.Absorbed[0] == ch.Session.ID ||
			!slices.Contains([]string{id, later}, ch.Absorbed[0]) || ch.Session.Events != 4 {
			t.Errorf("merged: %+v (sessions %s, %s)", ch, id, later)
		}
		merged := ch.Session.ID
		f.close("a")
		ch = s.change(t, c, "shop", "closed")
		if ch.Session.ID != merged || !ch.Session.Closed {
			t.Errorf("closed: %+v", ch)
		}
		if got := listLiveAPI(t, c, "shop", "", 10); len(got) != 0 {
			t.Errorf("live sessions after the close: %v", got)
		}
	})

	t.Run("heartbeats", func(t *testing.T) {
		s := openStream(t, owner.in(t), "shop")
		defer s.close()
		select {
		case ev := <-s.events:
			if ev != (sseEvent{comment: "ping"}) {
				t.Errorf("first event %+v, want a ping", ev)
			}
		case <-time.After(2 * time.Second):
			t.Error("no heartbeat within 2s")
		}
	})

	t.Run("only the workspace's changes", func(t *testing.T) {
		c := owner.in(t)
		s := openStream(t, c, "other")
		defer s.close()
		f.page("b", t0, nil)
		s.quiet(t)
		id := of.page("x", t0, nil)
		if ch := s.change(t, c, "other", "started"); ch.Session.ID != id {
			t.Errorf("other's change: %+v", ch)
		}
	})

	t.Run("a read key streams", func(t *testing.T) {
		read := owner.apiKey("shop", "stream reader", "read")
		c := p.withKey(read.Key).in(t)
		s := openStream(t, c, "shop")
		defer s.close()
		id := f.page("k", t0, nil)
		if ch := s.change(t, c, "shop", "started"); ch.Session.ID != id {
			t.Errorf("change: %+v", ch)
		}
	})

	t.Run("streams are capped; a disconnect frees a slot", func(t *testing.T) {
		c := owner.in(t)
		var open []*sseStream
		for range 3 {
			open = append(open, openStream(t, c, "shop"))
		}
		r := c.expect(http.StatusServiceUnavailable, "unavailable", "GET", "/workspaces/shop/sessions/live/stream", nil)
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		open[0].close()
		// The server notices the disconnect at once, or at its next write
		// (a heartbeat).
		var again *http.Response
		testenv.Eventually(t, 2*time.Second, "a stream after a disconnect", func() bool {
			resp, err := streamRequest(c, "shop")
			testenv.Must(t, err, "stream")
			if resp.StatusCode == http.StatusOK {
				again = resp
				return true
			}
			resp.Body.Close()
			return false
		})
		again.Body.Close()
		for _, s := range open {
			s.close()
		}
	})

	t.Run("streams outlive the server's write timeout", func(t *testing.T) {
		// The server's WriteTimeout would cut every stream after it: each
		// write sets its own deadline.
		srv := httptest.NewUnstartedServer(p.router)
		srv.Config.WriteTimeout = 300 * time.Millisecond
		srv.Start()
		defer srv.Close()
		read := owner.apiKey("shop", "slow reader", "read")
		req, err := http.NewRequest("GET", srv.URL+api.Base+"/workspaces/shop/sessions/live/stream", nil)
		testenv.Must(t, err, "request")
		req.Header.Set("Authorization", "Bearer "+read.Key)
		resp, err := http.DefaultClient.Do(req)
		testenv.Must(t, err, "stream")
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		time.Sleep(time.Second)
		f.page("slow", t0, nil)
		sc := bufio.NewScanner(resp.Body)
		got := make(chan string, 1)
		go func() {
			for sc.Scan() {
				if line := sc.Text(); strings.HasPrefix(line, "event: ") {
					got <- line
					return
				}
			}
			got <- "ended: " + fmt.Sprint(sc.Err())
		}()
		select {
		case line := <-got:
			if line != "event: started" {
				t.Errorf("after the write timeout: %s", line)
			}
		case <-time.After(2 * time.Second):
			t.Error("no event within 2s")
		}
	})

	t.Run("Close ends the streams", func(t *testing.T) {
		c := owner.in(t)
		s := openStream(t, c, "shop")
		p.api.Close()
		s.ended(t)
		c.expect(http.StatusServiceUnavailable, "unavailable", "GET", "/workspaces/shop/sessions/live/stream", nil)
	})
}

func TestProfileLiveSessions(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@profile-live.test")
	owner.org("pl-org")
	owner.workspace("pl-org", "shop")
	owner.workspace("pl-org", "other")
	ctx := context.Background()
	ws, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	other, err := p.store.WorkspaceBySlug(ctx, "other")
	testenv.Must(t, err, "workspace")

	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	anon := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: "m1", Type: "track",
		AnonymousID: "anon-1", Timestamp: t0}).Profile
	user := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: "m2", Type: "identify",
		AnonymousID: "anon-2", UserID: "user-1", Timestamp: t0}).Profile
	w := newSessionWriter(t, p.store, ws.ID)
	for _, v := range []struct{ anon, profile string }{{"anon-1", anon}, {"anon-2", user}, {"anon-3", user}} {
		w.setProfile(v.anon, v.profile)
	}
	w.apply(sessPage("anon-3", "p3", t0.Add(-3*time.Hour), "https://shop.test/3"))
	w.flush()
	w.close(t0.Add(-time.Hour)) // anon-3's session closes
	w.flush()
	w.apply(sessPage("anon-1", "p1", t0, "https://shop.test/1"), sessPage("anon-2", "p2", t0.Add(time.Minute), "https://shop.test/2"))
	w.flush()
	// A session of another workspace recorded on the same profile id is
	// not the profile's (user's list below has anon-2's only).
	ow := newSessionWriter(t, p.store, other.ID)
	ow.setProfile("anon-9", user)
	ow.apply(sessPage("anon-9", "p9", t0, "https://other.test/"))
	ow.flush()

	type profileLive struct {
		ID           string       `json:"id"`
		LiveSessions []sessionOut `json:"live_sessions"`
	}
	liveOf := func(t *testing.T, path string) (string, []string) {
		t.Helper()
		var pr profileLive
		owner.in(t).must(http.StatusOK, "GET", path, nil, &pr)
		var anons []string
		for _, s := range pr.LiveSessions {
			if s.Closed {
				t.Errorf("%s: a closed session is live: %+v", path, s)
			}
			anons = append(anons, s.AnonymousID)
		}
		return pr.ID, anons
	}
	if _, got := liveOf(t, "/workspaces/shop/profiles/"+user); !slices.Equal(got, []string{"anon-2"}) {
		t.Errorf("user's open sessions %v, want anon-2", got)
	}
	if _, got := liveOf(t, "/workspaces/shop/profiles/"+anon); !slices.Equal(got, []string{"anon-1"}) {
		t.Errorf("anon's open sessions %v, want anon-1", got)
	}

	// anon-1 logs in: one profile absorbs the other, and the survivor has
	// both open sessions, whichever id it is asked by.
	ch := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: "m3", Type: "identify",
		AnonymousID: "anon-1", UserID: "user-1", Timestamp: t0.Add(2 * time.Minute)})
	if len(ch.Merged) != 1 {
		t.Fatalf("merges: %+v", ch.Merged)
	}
	for _, path := range []string{"/workspaces/shop/profiles/" + anon, "/workspaces/shop/profiles/" + user,
		"/workspaces/shop/profiles?identity=user_id:user-1", "/workspaces/shop/profiles?identity=anonymous_id:anon-1"} {
		id, got := liveOf(t, path)
		if id != ch.Merged[0].Survivor {
			t.Errorf("%s: profile %s, want %s", path, id, ch.Merged[0].Survivor)
		}
		// Newest first: anon-2's session started after anon-1's.
		if !slices.Equal(got, []string{"anon-2", "anon-1"}) {
			t.Errorf("%s: open sessions %v, want anon-2 anon-1", path, got)
		}
	}
	// Closing them empties the list.
	w.close(time.Now().Add(24 * time.Hour))
	w.flush()
	if _, got := liveOf(t, "/workspaces/shop/profiles/"+user); got != nil {
		t.Errorf("open sessions after closing: %v", got)
	}
}

// headersOnly returns a copy of c whose responses of type
// text/event-stream end right after their headers (the harness reads
// bodies to their end, and a stream does not end): the headers and status
// are still checked against the document.
func (c *client) headersOnly() *client {
	base := &http.Client{Jar: c.http.Jar, Timeout: c.http.Timeout, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			resp.Body.Close()
			resp.Body = io.NopCloser(strings.NewReader(""))
		}
		return resp, err
	})}
	return &client{p: c.p, http: c.p.spec.Client(c.p.t, base), bearer: c.bearer, csrf: c.csrf}
}
