package store_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// newSessionWorkspace inserts a workspace of the default organization.
func newSessionWorkspace(t testing.TB, s *store.Store, slug string) store.Workspace {
	t.Helper()
	w := store.Workspace{Slug: slug}
	testenv.Must(t, s.Pool().QueryRow(context.Background(), `
		INSERT INTO workspaces (slug, name, organization_id)
		VALUES ($1, $1, (SELECT id FROM organizations WHERE slug = 'default')) RETURNING id::text`,
		slug).Scan(&w.ID), "insert workspace %s", slug)
	return w
}

// sessionRun feeds events to the session engine as the worker will, and
// collects what a batch writes.
type sessionRun struct {
	ws       *session.Workspace
	visitors map[string]*session.Visitor
	changes  []session.Change
	pvs      []store.PageView
	orders   []store.Order
}

func newSessionRun(t testing.TB, workspaceID string) *sessionRun {
	t.Helper()
	ws, err := session.NewWorkspace(workspaceID, session.DefaultRules())
	testenv.Must(t, err, "new session workspace")
	return &sessionRun{ws: ws, visitors: map[string]*session.Visitor{}}
}

func (r *sessionRun) apply(t testing.TB, events ...session.Event) {
	t.Helper()
	for i := range events {
		e := &events[i]
		e.WorkspaceID = r.ws.ID()
		v := r.visitors[e.AnonymousID]
		if v == nil {
			v = r.ws.NewVisitor(e.AnonymousID)
			r.visitors[e.AnonymousID] = v
		}
		var err error
		r.changes, err = v.Apply(e, r.changes)
		testenv.Must(t, err, "apply %s", e.MessageID)
		id := r.changes[len(r.changes)-1].Session.ID
		if pv, ok := store.PageViewOf(e, id); ok {
			r.pvs = append(r.pvs, pv)
		}
		if o, ok := store.OrderOf(e, id, ""); ok {
			r.orders = append(r.orders, o)
		}
	}
}

func (r *sessionRun) close(now time.Time) {
	for _, v := range r.visitors {
		r.changes = v.Close(now, r.changes)
	}
}

// batch is what one write gets.
type batch struct {
	changes []session.Change
	pvs     []store.PageView
	orders  []store.Order
}

// take returns the batch collected since the last take.
func (r *sessionRun) take() batch {
	b := batch{r.changes, r.pvs, r.orders}
	r.changes, r.pvs, r.orders = nil, nil, nil
	return b
}

func writeBatch(t testing.TB, s *store.Store, b batch) {
	t.Helper()
	testenv.Must(t, s.WriteSessions(context.Background(), b.changes, b.pvs, b.orders), "write sessions")
}

var st0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func sev(anon, id, typ string, at time.Duration, edit ...func(*session.Event)) session.Event {
	e := session.Event{AnonymousID: anon, MessageID: id, Type: typ, Timestamp: st0.Add(at)}
	for _, f := range edit {
		f(&e)
	}
	return e
}

func page(anon, id string, at time.Duration, url string, edit ...func(*session.Event)) session.Event {
	return sev(anon, id, session.TypePage, at, append([]func(*session.Event){func(e *session.Event) { e.URL = url }}, edit...)...)
}

// expectedSession is what reading s back must give, but UpdatedAt.
func expectedSession(s *session.Session) store.StoredSession {
	out := store.StoredSession{
		ID: s.ID.String(), AnonymousID: s.AnonymousID, UserID: s.UserID, ProfileID: s.ProfileID,
		StartedAt: s.Start, LastEventAt: s.LastEvent, Duration: s.Duration(),
		Events: s.Events, PageViews: s.PageViews,
		LandingPage: s.LandingPage, CurrentPage: s.CurrentPage, ExitPage: s.ExitPage, Referrer: s.Referrer,
		ChannelGroup: string(s.Channel.Group), Source: s.Channel.Source, Medium: s.Channel.Medium, Campaign: s.Channel.Campaign,
		Term: s.Campaign.Term, Content: s.Campaign.Content, ClickIDParam: s.Campaign.ClickIDParam, ClickID: s.Campaign.ClickID,
		DeviceType: string(s.Device.Type), OS: s.Device.OS, Browser: s.Device.Browser,
		Country: s.Location.Country, City: s.Location.City,
		OrdersCount: s.OrderCount, Revenue: s.Revenue(),
		Converted: s.Converted(), Bounced: s.Bounced, Closed: s.Closed,
	}
	if items := s.Cart.Items(); len(items) > 0 {
		out.Cart = &store.SessionCart{Value: s.Cart.Value()}
		for _, it := range items {
			out.Cart.Items = append(out.Cart.Items, store.CartItem{ProductID: it.ProductID, SKU: it.SKU, Name: it.Name, Price: it.Price, Quantity: it.Quantity})
		}
	}
	return out
}

// lastStates returns the last state of each session of changes.
func lastStates(changes []session.Change) map[session.ID]*session.Session {
	m := map[session.ID]*session.Session{}
	for i := range changes {
		c := &changes[i]
		m[c.Session.ID] = &c.Session
		if c.Kind == session.Merged {
			delete(m, c.Absorbed)
		}
	}
	return m
}

func checkSession(t *testing.T, s *store.Store, w store.Workspace, want *session.Session) store.StoredSession {
	t.Helper()
	got, err := s.Session(context.Background(), w, want.ID.String())
	testenv.Must(t, err, "read session %s", want.ID)
	if got.UpdatedAt.IsZero() {
		t.Errorf("session %s: no updated_at", want.ID)
	}
	read := got
	got.UpdatedAt = time.Time{}
	got.StartedAt, got.LastEventAt = got.StartedAt.UTC(), got.LastEventAt.UTC()
	if exp := expectedSession(want); !reflect.DeepEqual(got, exp) {
		t.Errorf("session %s:\n got %+v\nwant %+v", want.ID, got, exp)
	}
	return read
}

func shopEvents(anon string) []session.Event {
	return []session.Event{
		page(anon, anon+"-1", 0, "https://shop.com/?utm_source=news&utm_medium=email&utm_campaign=spring",
			func(e *session.Event) {
				e.Referrer = "https://mail.example.org/"
				e.Campaign = session.Campaign{Source: "news", Medium: "email", Name: "spring", Term: "shoes", Content: "top", ClickIDParam: "gclid", ClickID: "abc"}
				e.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
				e.Location = session.Location{Country: "FR", City: "Lyon"}
				e.Name = "Home"
			}),
		sev(anon, anon+"-2", session.TypeTrack, time.Minute, func(e *session.Event) {
			e.Name = session.ProductAdded
			e.Products = []session.Product{{ID: "p1", SKU: "S1", Name: "Shoe", Price: 0.1, Quantity: 3}}
		}),
		sev(anon, anon+"-3", session.TypeTrack, 2*time.Minute, func(e *session.Event) {
			e.Name, e.OrderID, e.Total, e.Currency = session.OrderCompleted, "o-"+anon, 0.1, "EUR"
			e.UserID = "user-" + anon
			e.Products = []session.Product{{ID: "p1", Price: 0.1, Quantity: 1}}
		}),
		sev(anon, anon+"-4", session.TypeTrack, 3*time.Minute, func(e *session.Event) {
			e.Name, e.OrderID, e.Total, e.Currency = session.OrderCompleted, "o2-"+anon, 0.2, "EUR"
		}),
		sev(anon, anon+"-5", session.TypeTrack, 4*time.Minute, func(e *session.Event) {
			e.Name = session.ProductAdded
			e.Products = []session.Product{{ID: "p2", Name: "Hat", Price: 12.345678, Quantity: 2}}
		}),
		page(anon, anon+"-6", 5*time.Minute, "https://shop.com/thanks"),
	}
}

func TestWriteSessionsRoundTrip(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	w := newSessionWorkspace(t, s, "sess-rt")
	r := newSessionRun(t, w.ID)
	r.apply(t, shopEvents("a1")...)
	r.apply(t, page("a2", "a2-1", 0, "https://shop.com/landing"))
	b := r.take()
	writeBatch(t, s, b)
	states := lastStates(b.changes)
	if len(states) != 2 {
		t.Fatalf("%d sessions, want 2", len(states))
	}
	for _, st := range states {
		got := checkSession(t, s, w, st)
		if st.AnonymousID == "a1" && (got.Browser == "" || got.OS == "" || got.DeviceType == "" || got.City != "Lyon" ||
			got.Cart == nil || len(got.Cart.Items) != 1 || got.Term != "shoes" || got.ClickID != "abc" ||
			got.ChannelGroup != "Paid Search" || got.UserID != "user-a1" || got.OrdersCount != 2 || !got.Converted) {
			t.Errorf("session of a1 misses fields: %+v", got)
		}
		if got.Closed || got.Bounced || got.ExitPage != "" {
			t.Errorf("open session %s: closed %v bounced %v exit %q", got.ID, got.Closed, got.Bounced, got.ExitPage)
		}
	}
	var revenue, cartValue, total string
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT revenue::text, (cart->>'value') FROM sessions WHERE anonymous_id = 'a1'`).Scan(&revenue, &cartValue), "revenue")
	if revenue != "0.300000" || cartValue != "24.691356" {
		t.Errorf("revenue %s, cart value %s; want 0.300000 and 24.691356", revenue, cartValue)
	}
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT string_agg(total::text, ',' ORDER BY ts) FROM orders`).Scan(&total), "orders")
	if total != "0.100000,0.200000" {
		t.Errorf("order totals %s", total)
	}
	if n := count(t, s, `SELECT count(*) FROM page_views`); n != 3 {
		t.Errorf("%d page views, want 3", n)
	}
	var title, url string
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT title, url FROM page_views WHERE message_id = 'a1-1'`).Scan(&title, &url), "page view")
	if title != "Home" || url != shopEvents("a1")[0].URL {
		t.Errorf("page view: title %q url %q", title, url)
	}

	// Closing: exit page and bounce.
	r.close(st0.Add(2 * time.Hour))
	b = r.take()
	if len(b.changes) != 2 {
		t.Fatalf("%d closes, want 2", len(b.changes))
	}
	writeBatch(t, s, b)
	for _, st := range lastStates(b.changes) {
		got := checkSession(t, s, w, st)
		wantBounce := st.AnonymousID == "a2"
		if !got.Closed || got.Bounced != wantBounce || got.ExitPage == "" || got.ExitPage != got.CurrentPage {
			t.Errorf("closed session %s: closed %v bounced %v exit %q", got.ID, got.Closed, got.Bounced, got.ExitPage)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM sessions WHERE converted AND duration = interval '5 minutes'`); n != 1 {
		t.Errorf("%d converted 5-minute sessions, want 1", n)
	}
}

func count(t testing.TB, s *store.Store, sql string, args ...any) int {
	t.Helper()
	var n int
	testenv.Must(t, s.Pool().QueryRow(context.Background(), sql, args...).Scan(&n), "%s", sql)
	return n
}

// snapshot returns the session tables' rows as text, but updated_at.
func snapshot(t testing.TB, s *store.Store) []string {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `
		SELECT x FROM (
		    SELECT 's' || (to_jsonb(s) - 'updated_at')::text AS x FROM sessions s
		    UNION ALL SELECT 'p' || to_jsonb(p)::text FROM page_views p
		    UNION ALL SELECT 'o' || to_jsonb(o)::text FROM orders o
		) u ORDER BY x`)
	testenv.Must(t, err, "snapshot")
	var out []string
	for rows.Next() {
		var x string
		testenv.Must(t, rows.Scan(&x), "snapshot")
		out = append(out, x)
	}
	testenv.Must(t, rows.Err(), "snapshot")
	return out
}

func TestWriteSessionsMerge(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	w := newSessionWorkspace(t, s, "sess-merge")
	r := newSessionRun(t, w.ID)
	// Two sessions 40 minutes apart, the second with an order.
	r.apply(t, page("m", "m-1", 0, "https://shop.com/a"), page("m", "m-2", 40*time.Minute, "https://shop.com/b"),
		sev("m", "m-3", session.TypeTrack, 41*time.Minute, func(e *session.Event) {
			e.Name, e.OrderID, e.Total = session.OrderCompleted, "om", 5
		}))
	b1 := r.take()
	writeBatch(t, s, b1)
	if n := count(t, s, `SELECT count(*) FROM sessions`); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	// A page view at 20 minutes bridges them.
	r.apply(t, page("m", "m-4", 20*time.Minute, "https://shop.com/c"))
	b2 := r.take()
	if len(b2.changes) != 1 || b2.changes[0].Kind != session.Merged {
		t.Fatalf("changes %+v, want one merge", b2.changes)
	}
	writeBatch(t, s, b2)
	survivor, absorbed := b2.changes[0].Session.ID, b2.changes[0].Absorbed
	checkSession(t, s, w, &b2.changes[0].Session)
	if _, err := s.Session(ctx, w, absorbed.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("absorbed session: %v, want ErrNotFound", err)
	}
	if n := count(t, s, `SELECT count(*) FROM page_views WHERE session_id = $1`, survivor.String()); n != 3 {
		t.Errorf("%d page views on the survivor, want 3", n)
	}
	if n := count(t, s, `SELECT count(*) FROM orders WHERE session_id = $1`, survivor.String()); n != 1 {
		t.Errorf("%d orders on the survivor, want 1", n)
	}
	want := snapshot(t, s)

	// Replays: each batch again, then both in order, leave the same rows.
	writeBatch(t, s, b2)
	if got := snapshot(t, s); !slices.Equal(got, want) {
		t.Errorf("after replaying the merge:\n got %v\nwant %v", got, want)
	}
	writeBatch(t, s, b1)
	writeBatch(t, s, b2)
	if got := snapshot(t, s); !slices.Equal(got, want) {
		t.Errorf("after replaying both batches:\n got %v\nwant %v", got, want)
	}

	// All in one batch, on another device: page views and orders of the
	// absorbed session land on the survivor directly.
	r.apply(t, page("n", "n-1", 0, "https://shop.com/a"), page("n", "n-2", 40*time.Minute, "https://shop.com/b"),
		sev("n", "n-3", session.TypeTrack, 41*time.Minute, func(e *session.Event) {
			e.Name, e.OrderID, e.Total = session.OrderCompleted, "on", 5
		}),
		page("n", "n-4", 20*time.Minute, "https://shop.com/c"))
	b3 := r.take()
	writeBatch(t, s, b3)
	final := lastStates(b3.changes)
	if len(final) != 1 {
		t.Fatalf("%d sessions, want 1", len(final))
	}
	for id, st := range final {
		checkSession(t, s, w, st)
		if n := count(t, s, `SELECT count(*) FROM sessions WHERE anonymous_id = 'n'`); n != 1 {
			t.Errorf("%d sessions of n, want 1", n)
		}
		if n := count(t, s, `SELECT (SELECT count(*) FROM page_views WHERE session_id = $1) + (SELECT count(*) FROM orders WHERE session_id = $1)`, id.String()); n != 4 {
			t.Errorf("%d page views and orders on the survivor, want 4", n)
		}
	}
}

func TestWriteSessionsIdempotentAndClosedFinal(t *testing.T) {
	s, _ := newStore(t)
	w := newSessionWorkspace(t, s, "sess-idem")
	r := newSessionRun(t, w.ID)
	r.apply(t, shopEvents("i")...)
	b1 := r.take()
	writeBatch(t, s, b1)
	want := snapshot(t, s)
	writeBatch(t, s, b1)
	if got := snapshot(t, s); !slices.Equal(got, want) {
		t.Errorf("after replay:\n got %v\nwant %v", got, want)
	}
	// An order replayed with a later time keeps the first.
	late := b1.orders[0]
	late.Timestamp, late.MessageID, late.Total = late.Timestamp.Add(time.Hour), "later", 99
	testenv.Must(t, s.WriteSessions(context.Background(), nil, nil, []store.Order{late}), "write late order")
	if got := snapshot(t, s); !slices.Equal(got, want) {
		t.Errorf("a later order event changed the order")
	}

	// Two writes in one transaction, as the worker may do.
	err := pgx.BeginFunc(context.Background(), s.Pool(), func(tx pgx.Tx) error {
		for range 2 {
			if err := s.WriteSessionsTx(context.Background(), tx, b1.changes, b1.pvs, b1.orders); err != nil {
				return err
			}
		}
		return nil
	})
	testenv.Must(t, err, "two writes in one transaction")
	if got := snapshot(t, s); !slices.Equal(got, want) {
		t.Errorf("after two writes in one transaction:\n got %v\nwant %v", got, want)
	}

	r.close(st0.Add(2 * time.Hour))
	b2 := r.take()
	writeBatch(t, s, b2)
	closed := snapshot(t, s)
	// A replay of the open state does not reopen the closed session.
	writeBatch(t, s, b1)
	if got := snapshot(t, s); !slices.Equal(got, closed) {
		t.Errorf("replaying the open state changed the closed session:\n got %v\nwant %v", got, closed)
	}
}

func TestSessionsListAndRLS(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	a, b := newSessionWorkspace(t, s, "sess-a"), newSessionWorkspace(t, s, "sess-b")
	ra, rb := newSessionRun(t, a.ID), newSessionRun(t, b.ID)
	for i, anon := range []string{"x", "y", "z"} {
		ra.apply(t, page(anon, anon+"-a", time.Duration(i)*time.Hour, "https://shop.com/"))
	}
	rb.apply(t, page("x", "x-b", 0, "https://shop.com/"))
	ra.close(st0.Add(30 * time.Minute)) // none yet
	ba, bb := ra.take(), rb.take()
	writeBatch(t, s, ba)
	writeBatch(t, s, bb)
	// Close x's session only.
	ra.close(st0.Add(50 * time.Minute))
	bc := ra.take()
	if len(bc.changes) != 1 {
		t.Fatalf("%d closes, want 1", len(bc.changes))
	}
	writeBatch(t, s, bc)

	ids := func(list []store.StoredSession) []string {
		var out []string
		for _, x := range list {
			out = append(out, x.AnonymousID)
		}
		return out
	}
	list, err := s.Sessions(ctx, a, store.SessionFilter{}, store.Page{Limit: 10})
	testenv.Must(t, err, "sessions")
	if got := ids(list); !slices.Equal(got, []string{"z", "y", "x"}) {
		t.Errorf("sessions of a: %v, want z y x", got)
	}
	list, err = s.Sessions(ctx, a, store.SessionFilter{}, store.Page{Limit: 2, After: list[0].ID})
	testenv.Must(t, err, "sessions")
	if got := ids(list); !slices.Equal(got, []string{"y", "x"}) {
		t.Errorf("second page: %v, want y x", got)
	}
	list, err = s.Sessions(ctx, a, store.SessionFilter{Open: true}, store.Page{Limit: 10})
	testenv.Must(t, err, "open sessions")
	if got := ids(list); !slices.Equal(got, []string{"z", "y"}) {
		t.Errorf("open sessions: %v, want z y", got)
	}
	list, err = s.Sessions(ctx, a, store.SessionFilter{Closed: true}, store.Page{Limit: 10})
	testenv.Must(t, err, "closed sessions")
	if got := ids(list); !slices.Equal(got, []string{"x"}) {
		t.Errorf("closed sessions: %v, want x", got)
	}
	list, err = s.Sessions(ctx, a, store.SessionFilter{AnonymousID: "y", From: st0, To: st0.Add(2 * time.Hour)}, store.Page{Limit: 10})
	testenv.Must(t, err, "sessions of y")
	if got := ids(list); !slices.Equal(got, []string{"y"}) {
		t.Errorf("sessions of y: %v", got)
	}
	list, err = s.Sessions(ctx, a, store.SessionFilter{From: st0.Add(90 * time.Minute)}, store.Page{Limit: 10})
	testenv.Must(t, err, "sessions from")
	if got := ids(list); !slices.Equal(got, []string{"z"}) {
		t.Errorf("sessions from 11:30: %v, want z", got)
	}
	if _, err := s.Sessions(ctx, a, store.SessionFilter{}, store.Page{Limit: 10, After: "nope"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v", err)
	}

	// Row-level security: b's session is invisible from a.
	bID := lastStates(bb.changes)
	for id := range bID {
		if _, err := s.Session(ctx, a, id.String()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("b's session read from a: %v", err)
		}
		if _, err := s.Session(ctx, b, id.String()); err != nil {
			t.Errorf("b's session from b: %v", err)
		}
	}
	for _, table := range []string{"sessions", "page_views", "orders"} {
		var n int
		err := s.InWorkspace(ctx, a.ID, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE workspace_id = $1`, b.ID).Scan(&n)
		})
		testenv.Must(t, err, "count %s", table)
		if n != 0 {
			t.Errorf("%d rows of b's %s visible from a", n, table)
		}
	}
	if _, err := s.Session(ctx, a, "not-a-uuid"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bad id: %v", err)
	}
}

func TestWriteSessionsBadData(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	w := newSessionWorkspace(t, s, "sess-bad")
	r := newSessionRun(t, w.ID)
	r.apply(t, page("b\x00ad", "b-1", 0, "https://shop.com/\x00x\xff", func(e *session.Event) {
		e.Referrer, e.Name, e.UserID = "ref\x00", "T\xc3", "u\x00"
		e.Location.City = "C\x00ity"
	}))
	r.apply(t, sev("b\x00ad", "b-2", session.TypeTrack, time.Minute, func(e *session.Event) {
		e.Name, e.OrderID, e.Currency, e.Total = session.OrderCompleted, "o\x00", "E\x00UR", 1e300
		e.Products = []session.Product{{Name: "n\x00", Price: math.Inf(1)}}
	}))
	b := r.take()
	testenv.Must(t, s.WriteSessions(ctx, b.changes, b.pvs, b.orders), "write bad data")
	list, err := s.Sessions(ctx, w, store.SessionFilter{}, store.Page{Limit: 10})
	testenv.Must(t, err, "sessions")
	if len(list) != 1 {
		t.Fatalf("%d sessions, want 1", len(list))
	}
	got := list[0]
	if got.AnonymousID != "bad" || got.LandingPage != "https://shop.com/x\uFFFD" || got.Referrer != "ref" || got.City != "City" || got.UserID != "u" {
		t.Errorf("cleaned session: %+v", got)
	}
	var url, title, orderID, currency string
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT url, title FROM page_views`).Scan(&url, &title), "page view")
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT order_id, currency FROM orders`).Scan(&orderID, &currency), "order")
	if url != "https://shop.com/x\uFFFD" || title != "T\uFFFD" || orderID != "o" || currency != "EUR" {
		t.Errorf("cleaned rows: %q %q %q %q", url, title, orderID, currency)
	}

	// A malformed workspace id is the rows' fault.
	bad := b.changes[0]
	bad.Session.WorkspaceID = "not-a-uuid"
	err = s.WriteSessions(ctx, []session.Change{bad}, nil, nil)
	if err == nil || !store.IsDataError(err) {
		t.Errorf("malformed workspace id: %v, want a data error", err)
	}
}
