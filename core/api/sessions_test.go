package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// sessionWriter feeds events to the session engine as the worker will and
// writes what it reports through the store.
type sessionWriter struct {
	t        testing.TB
	st       *store.Store
	ws       *session.Workspace
	visitors map[string]*session.Visitor
	changes  []session.Change
	pvs      []store.PageView
	orders   []store.Order
	// ids are the last session id of each anonymous id.
	ids map[string]string
}

func newSessionWriter(t testing.TB, st *store.Store, workspaceID string) *sessionWriter {
	t.Helper()
	ws, err := session.NewWorkspace(workspaceID, session.DefaultRules())
	testenv.Must(t, err, "new session workspace")
	return &sessionWriter{t: t, st: st, ws: ws, visitors: map[string]*session.Visitor{}, ids: map[string]string{}}
}

func (w *sessionWriter) visitor(anon string) *session.Visitor {
	v := w.visitors[anon]
	if v == nil {
		v = w.ws.NewVisitor(anon)
		w.visitors[anon] = v
	}
	return v
}

func (w *sessionWriter) apply(events ...session.Event) {
	w.t.Helper()
	for i := range events {
		e := &events[i]
		e.WorkspaceID = w.ws.ID()
		var err error
		w.changes, err = w.visitor(e.AnonymousID).Apply(e, w.changes)
		testenv.Must(w.t, err, "apply %s", e.MessageID)
		id := w.changes[len(w.changes)-1].Session.ID
		w.ids[e.AnonymousID] = id.String()
		if pv, ok := store.PageViewOf(e, id); ok {
			w.pvs = append(w.pvs, pv)
		}
		if o, ok := store.OrderOf(e, id, ""); ok {
			w.orders = append(w.orders, o)
		}
	}
}

func (w *sessionWriter) setProfile(anon, profileID string) {
	w.changes = w.visitor(anon).SetProfileID(profileID, w.changes)
}

func (w *sessionWriter) close(now time.Time) {
	for _, v := range w.visitors {
		w.changes = v.Close(now, w.changes)
	}
}

// flush writes what was collected since the last flush.
func (w *sessionWriter) flush() {
	w.t.Helper()
	testenv.Must(w.t, w.st.WriteSessions(context.Background(), w.changes, w.pvs, w.orders), "write sessions")
	w.changes, w.pvs, w.orders = nil, nil, nil
}

func sessPage(anon, id string, at time.Time, url string) session.Event {
	return session.Event{AnonymousID: anon, MessageID: id, Type: session.TypePage, Timestamp: at, URL: url, Name: "Home"}
}

// applyIdentity applies an identity event through the store.
func applyIdentity(t testing.TB, st *store.Store, ev identity.Event) identity.Changes {
	t.Helper()
	ch, err := st.Identities().Apply(context.Background(), ev)
	testenv.Must(t, err, "apply identity event %s", ev.MessageID)
	return ch
}

type sessionOut struct {
	ID              string  `json:"id"`
	AnonymousID     string  `json:"anonymous_id"`
	UserID          *string `json:"user_id"`
	ProfileID       *string `json:"profile_id"`
	StartedAt       string  `json:"started_at"`
	DurationSeconds float64 `json:"duration_seconds"`
	Events          int     `json:"events"`
	PageViews       int     `json:"page_views"`
	LandingPage     *string `json:"landing_page"`
	Source          *string `json:"source"`
	Medium          *string `json:"medium"`
	Country         *string `json:"country"`
	OrdersCount     int     `json:"orders_count"`
	Revenue         float64 `json:"revenue"`
	Converted       bool    `json:"converted"`
	Closed          bool    `json:"closed"`
	Cart            *struct {
		Items []struct {
			ProductID *string `json:"product_id"`
			Price     float64 `json:"price"`
			Quantity  int     `json:"quantity"`
		} `json:"items"`
		Value float64 `json:"value"`
	} `json:"cart"`
}

type profileOut struct {
	ID                string                         `json:"id"`
	UserID            *string                        `json:"user_id"`
	FirstSeen         *time.Time                     `json:"first_seen"`
	LastSeen          *time.Time                     `json:"last_seen"`
	SessionsCount     int                            `json:"sessions_count"`
	OrdersCount       int                            `json:"orders_count"`
	Revenue           float64                        `json:"revenue"`
	AverageOrderValue float64                        `json:"average_order_value"`
	LastOrder         *struct{ ID, Currency string } `json:"last_order"`
	Traits            map[string]json.RawMessage     `json:"traits"`
	Consent           map[string]bool                `json:"consent"`
	Identities        []struct{ Kind, Value string } `json:"identities"`
}

func sessionIDs(list []sessionOut) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.AnonymousID)
	}
	return out
}

// listSessionsAPI follows a session list's pages (path under the
// workspace: "sessions" or "sessions/live") and returns every session,
// checking that no page holds more than limit.
func listSessionsAPI(t *testing.T, c *client, ws, path, query string, limit int) []sessionOut {
	t.Helper()
	var all []sessionOut
	cursor := ""
	for range 1000 {
		q := query + "&limit=" + fmt.Sprint(limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Data       []sessionOut
			NextCursor string `json:"next_cursor"`
		}
		c.must(http.StatusOK, "GET", "/workspaces/"+ws+"/"+path+"?"+q, nil, &page)
		if len(page.Data) > limit {
			t.Fatalf("%s?%s: %d sessions in a page of %d", path, q, len(page.Data), limit)
		}
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
	t.Fatalf("more than 1000 pages")
	return nil
}

func TestSessionsAPI(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@sessions.test")
	owner.org("sess-org")
	owner.workspace("sess-org", "shop")
	owner.workspace("sess-org", "other")
	ctx := context.Background()
	ws, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	other, err := p.store.WorkspaceBySlug(ctx, "other")
	testenv.Must(t, err, "workspace")

	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	w := newSessionWriter(t, p.store, ws.ID)
	for i, anon := range []string{"x", "y", "z"} {
		e := sessPage(anon, anon+"-1", t0.Add(time.Duration(i)*time.Hour), "https://shop.com/?utm_source=news&utm_medium=email")
		e.Campaign = session.Campaign{Source: "news", Medium: "email"}
		w.apply(e)
	}
	w.apply(session.Event{AnonymousID: "z", MessageID: "z-2", Type: session.TypeTrack, Name: session.ProductAdded,
		Timestamp: t0.Add(2*time.Hour + time.Minute), Products: []session.Product{{ID: "p1", Price: 5, Quantity: 2}}})
	w.apply(session.Event{AnonymousID: "z", MessageID: "z-3", Type: session.TypeTrack, Name: session.OrderCompleted,
		Timestamp: t0.Add(2*time.Hour + 2*time.Minute), OrderID: "o-1", Total: 12.5, Currency: "EUR", UserID: "user-z"})
	w.setProfile("y", "00000000-0000-4000-8000-0000000000a1")
	w.flush()
	// x's session closes, the others stay open.
	w.close(t0.Add(50 * time.Minute))
	w.flush()
	ow := newSessionWriter(t, p.store, other.ID)
	ow.apply(sessPage("x", "other-x-1", t0, "https://other.com/"))
	ow.flush()

	t.Run("list newest first, paged", func(t *testing.T) {
		for _, limit := range []int{1, 2, 50} {
			got := listSessionsAPI(t, owner.in(t), "shop", "sessions", "", limit)
			if ids := sessionIDs(got); !slices.Equal(ids, []string{"z", "y", "x"}) {
				t.Errorf("limit %d: %v, want z y x", limit, ids)
			}
		}
	})
	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"open=true", []string{"z", "y"}},
			{"open=false", []string{"x"}},
			{"anonymous_id=y", []string{"y"}},
			{"anonymous_id=nobody", nil},
			{"profile_id=00000000-0000-4000-8000-0000000000a1", []string{"y"}},
			{"profile_id=00000000-0000-4000-8000-0000000000a2", nil},
			{"from=" + t0.Add(30*time.Minute).Format(time.RFC3339), []string{"z", "y"}},
			{"to=" + t0.Add(90*time.Minute).Format(time.RFC3339), []string{"y", "x"}},
			{"from=" + t0.Format(time.RFC3339) + "&to=" + t0.Add(time.Hour).Format(time.RFC3339), []string{"x"}},
		} {
			got := listSessionsAPI(t, owner.in(t), "shop", "sessions", tc.query, 1)
			if ids := sessionIDs(got); !slices.Equal(ids, tc.want) {
				t.Errorf("?%s: %v, want %v", tc.query, ids, tc.want)
			}
		}
	})
	t.Run("get", func(t *testing.T) {
		var s sessionOut
		owner.in(t).must(http.StatusOK, "GET", "/workspaces/shop/sessions/"+w.ids["z"], nil, &s)
		if s.ID != w.ids["z"] || s.AnonymousID != "z" || s.Events != 3 || s.PageViews != 1 || s.OrdersCount != 1 ||
			s.Revenue != 12.5 || !s.Converted || s.Closed || s.UserID == nil || *s.UserID != "user-z" ||
			s.Source == nil || *s.Source != "news" || s.DurationSeconds != 120 || s.ProfileID != nil {
			t.Errorf("session z: %+v", s)
		}
		if s.LandingPage == nil || *s.LandingPage == "" {
			t.Errorf("session z has no landing page: %+v", s)
		}
		s = sessionOut{}
		owner.in(t).must(http.StatusOK, "GET", "/workspaces/shop/sessions/"+w.ids["x"], nil, &s)
		if !s.Closed || s.Cart != nil || s.UserID != nil {
			t.Errorf("session x: %+v", s)
		}
		// Another workspace's session, an unknown one: 404.
		owner.in(t).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/sessions/"+ow.ids["x"], nil)
		owner.in(t).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/sessions/00000000-0000-4000-8000-00000000dead", nil)
		owner.in(t).expect(http.StatusOK, "", "GET", "/workspaces/other/sessions/"+ow.ids["x"], nil)
		owner.in(t).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/nope/sessions/"+ow.ids["x"], nil)
	})
	t.Run("bad params", func(t *testing.T) {
		c := owner.in(t)
		c.do("GET", "/workspaces/shop/sessions/not-a-uuid", nil).wantInvalid(t, "session_id")
		for query, field := range map[string]string{
			"open=maybe":              "open",
			"profile_id=nope":         "profile_id",
			"from=yesterday":          "from",
			"to=2026-13-01T00:00:00Z": "to",
			"from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00Z": "to",
			"limit=0":                 "limit",
			"limit=201":               "limit",
			"cursor=%21%21":           "cursor",
			"cursor=Im5vdC1hLXV1aWQi": "cursor", // "not-a-uuid", well-formed but no session id
			"anonymous_id=%FF":        "anonymous_id",
		} {
			c.do("GET", "/workspaces/shop/sessions?"+query, nil).wantInvalid(t, field)
		}
	})
	t.Run("viewer and read key may read; key without read may not", func(t *testing.T) {
		viewer := p.member("sess-org", "viewer@sessions.test", "viewer")
		viewer.in(t).expect(http.StatusOK, "", "GET", "/workspaces/shop/sessions", nil)
		read := owner.apiKey("shop", "reader", "read")
		p.withKey(read.Key).in(t).expect(http.StatusOK, "", "GET", "/workspaces/shop/sessions/"+w.ids["y"], nil)
		write := owner.apiKey("shop", "writer", "write")
		p.withKey(write.Key).in(t).expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/sessions", nil)
		p.withKey(write.Key).in(t).expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/profiles/00000000-0000-4000-8000-00000000dead", nil)
		// A key of shop does not reach other.
		p.withKey(read.Key).in(t).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/other/sessions", nil)
	})
}

func TestProfilesAPI(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@profiles.test")
	owner.org("prof-org")
	owner.workspace("prof-org", "shop")
	owner.workspace("prof-org", "other")
	ctx := context.Background()
	ws, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	other, err := p.store.WorkspaceBySlug(ctx, "other")
	testenv.Must(t, err, "workspace")

	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	// An anonymous visitor, then a known user on another device.
	anon := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: "m1", Type: "track",
		AnonymousID: "anon-1", Timestamp: t0}).Profile
	user := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: "m2", Type: "identify",
		AnonymousID: "anon-2", UserID: "user-1", Timestamp: t0.Add(time.Minute),
		Traits:  json.RawMessage(`{"email": " Ada@Example.COM ", "plan": "pro", "age": 36}`),
		Consent: map[string]bool{"marketing": true, "analytics": false}}).Profile
	if anon == "" || user == "" || anon == user {
		t.Fatalf("profiles %q and %q", anon, user)
	}
	_, err = p.store.Identities().RecordSession(ctx, ws.ID, user, identity.Session{ID: "s-1", Start: t0.Add(time.Minute)})
	testenv.Must(t, err, "record session")
	_, err = p.store.Identities().RecordOrder(ctx, ws.ID, user, identity.Order{ID: "o-1", At: t0.Add(2 * time.Minute), Value: 30, Currency: "EUR"})
	testenv.Must(t, err, "record order")
	_, err = p.store.Identities().RecordOrder(ctx, ws.ID, user, identity.Order{ID: "o-2", At: t0.Add(3 * time.Minute), Value: 10, Currency: "EUR"})
	testenv.Must(t, err, "record order")
	// The same user id in another workspace is another profile.
	otherProfile := applyIdentity(t, p.store, identity.Event{WorkspaceID: other.ID, MessageID: "o1", Type: "identify",
		AnonymousID: "anon-9", UserID: "user-1", Timestamp: t0}).Profile

	var got profileOut
	owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles/"+user, nil, &got)
	if got.ID != user || got.UserID == nil || *got.UserID != "user-1" || got.SessionsCount != 1 || got.OrdersCount != 2 ||
		got.Revenue != 40 || got.AverageOrderValue != 20 || got.LastOrder == nil || got.LastOrder.ID != "o-2" ||
		got.FirstSeen == nil || !got.FirstSeen.Equal(t0.Add(time.Minute)) || got.LastSeen == nil {
		t.Errorf("profile: %+v", got)
	}
	if string(got.Traits["plan"]) != `"pro"` || string(got.Traits["age"]) != "36" {
		t.Errorf("traits: %s", got.Traits)
	}
	if len(got.Consent) != 2 || !got.Consent["marketing"] || got.Consent["analytics"] {
		t.Errorf("consent: %v", got.Consent)
	}
	kinds := map[string]string{}
	for _, id := range got.Identities {
		kinds[id.Kind] = id.Value
	}
	if len(got.Identities) != 3 || kinds["anonymous_id"] != "anon-2" || kinds["user_id"] != "user-1" || kinds["email"] != "ada@example.com" {
		t.Errorf("identities: %+v", got.Identities)
	}

	// By each kind of identity.
	for _, q := range []string{"user_id:user-1", "anonymous_id:anon-2", "email:ada@example.com", "email:ADA@example.com"} {
		var byID profileOut
		owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles?identity="+url.QueryEscape(q), nil, &byID)
		if byID.ID != user {
			t.Errorf("?identity=%s: profile %s, want %s", q, byID.ID, user)
		}
	}
	got = profileOut{}
	owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles?identity=anonymous_id:anon-1", nil, &got)
	if got.ID != anon || got.UserID != nil || got.LastOrder != nil || len(got.Traits) != 0 || len(got.Identities) != 1 {
		t.Errorf("anonymous profile: %+v", got)
	}
	owner.must(http.StatusOK, "GET", "/workspaces/other/profiles?identity=user_id:user-1", nil, &got)
	if got.ID != otherProfile {
		t.Errorf("other's user-1: %s, want %s", got.ID, otherProfile)
	}
	for _, q := range []string{"user_id:nobody", "anonymous_id:anon-9", "email:nobody@example.com", "user_id:anon-1"} {
		owner.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/profiles?identity="+url.QueryEscape(q), nil)
	}
	// Another workspace's profile, an unknown id: 404.
	owner.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/profiles/"+otherProfile, nil)
	owner.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/profiles/00000000-0000-4000-8000-00000000dead", nil)

	// Bad parameters.
	owner.do("GET", "/workspaces/shop/profiles/not-a-uuid", nil).wantInvalid(t, "profile_id")
	for _, q := range []string{"", "?identity=", "?identity=user-1", "?identity=phone:123", "?identity=user_id:", "?identity=user_id:%FF"} {
		owner.do("GET", "/workspaces/shop/profiles"+q, nil).wantInvalid(t, "identity")
	}

	// The anonymous visitor logs in: one profile absorbs the other, and the
	// absorbed id answers the survivor.
	ch := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: "m3", Type: "identify",
		AnonymousID: "anon-1", UserID: "user-1", Timestamp: t0.Add(time.Hour)})
	if len(ch.Merged) != 1 {
		t.Fatalf("merges: %+v", ch.Merged)
	}
	survivor, absorbed := ch.Merged[0].Survivor, ch.Merged[0].Absorbed
	if !slices.Contains([]string{anon, user}, absorbed) || survivor != ch.Profile {
		t.Fatalf("merge %+v of %s and %s", ch.Merged[0], anon, user)
	}
	for _, id := range []string{anon, user} {
		got = profileOut{}
		owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles/"+id, nil, &got)
		if got.ID != survivor || len(got.Identities) != 4 {
			t.Errorf("profile %s after the merge: %+v, want %s with 4 identities", id, got, survivor)
		}
	}
	owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles?identity=anonymous_id:anon-1", nil, &got)
	if got.ID != survivor {
		t.Errorf("anon-1 after the merge: %s, want %s", got.ID, survivor)
	}
}
