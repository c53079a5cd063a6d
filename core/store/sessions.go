package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eddy-cdp/eddy/core/session"
)

// PageView is one row of page_views: a page or screen call and the session
// it joined.
type PageView struct {
	WorkspaceID, MessageID string
	SessionID              session.ID
	AnonymousID, UserID    string
	Timestamp              time.Time
	URL, Referrer          string
	// Title is the page or screen name.
	Title string
}

// PageViewOf returns the page view of a page or screen event that joined
// the session sessionID (the session of the last change Apply reported for
// it), and false for other events.
func PageViewOf(e *session.Event, sessionID session.ID) (PageView, bool) {
	if e.Type != session.TypePage && e.Type != session.TypeScreen {
		return PageView{}, false
	}
	return PageView{
		WorkspaceID: e.WorkspaceID, MessageID: e.MessageID, SessionID: sessionID,
		AnonymousID: e.AnonymousID, UserID: e.UserID, Timestamp: e.Timestamp,
		URL: e.URL, Referrer: e.Referrer, Title: e.Name,
	}, true
}

// Order is one row of orders: an Order Completed and the session it joined.
type Order struct {
	WorkspaceID string
	// OrderID is the order's id, or the event's message id when it has none.
	OrderID, MessageID             string
	SessionID                      session.ID
	AnonymousID, UserID, ProfileID string
	Timestamp                      time.Time
	Total                          float64
	Currency                       string
	Products                       []session.Product
}

// OrderOf returns the order of an Order Completed event (or its v1 name
// Completed Order) that joined the session sessionID, and false for other
// events.
func OrderOf(e *session.Event, sessionID session.ID, profileID string) (Order, bool) {
	if e.Type != session.TypeTrack || e.Name != session.OrderCompleted && e.Name != "Completed Order" {
		return Order{}, false
	}
	id := e.OrderID
	if id == "" {
		id = e.MessageID
	}
	return Order{
		WorkspaceID: e.WorkspaceID, OrderID: id, MessageID: e.MessageID, SessionID: sessionID,
		AnonymousID: e.AnonymousID, UserID: e.UserID, ProfileID: profileID, Timestamp: e.Timestamp,
		Total: e.Total, Currency: e.Currency, Products: e.Products,
	}, true
}

// CartItem is one product line of a stored cart or order.
type CartItem struct {
	ProductID string  `json:"product_id,omitempty"`
	SKU       string  `json:"sku,omitempty"`
	Name      string  `json:"name,omitempty"`
	Price     float64 `json:"price"`
	Quantity  int     `json:"quantity"`
}

// SessionCart is a session's cart as stored.
type SessionCart struct {
	Items []CartItem `json:"items"`
	Value float64    `json:"value"`
}

// sessionKey identifies a session across workspaces.
type sessionKey struct {
	ws string
	id session.ID
}

// sessionsBatchTable is the temporary table sessions are loaded into; see
// batchTable for why each connection keeps its own.
const sessionsBatchTable = "eddy_sessions_batch"

const createSessionsBatchSQL = `
CREATE TEMP TABLE IF NOT EXISTS eddy_sessions_batch (
    ord bigint, workspace_id text, id uuid, anonymous_id text, user_id text, profile_id text,
    started_at timestamptz, last_event_at timestamptz, events integer, page_views integer,
    landing_page text, current_page text, exit_page text, referrer text,
    channel_group text, source text, medium text, campaign text, term text, content text,
    click_id_param text, click_id text, device_type text, os text, browser text,
    country text, city text, cart jsonb, orders_count integer, revenue numeric,
    bounced boolean, closed boolean
) ON COMMIT DELETE ROWS`

var sessionsBatchColumns = []string{
	"ord", "workspace_id", "id", "anonymous_id", "user_id", "profile_id",
	"started_at", "last_event_at", "events", "page_views",
	"landing_page", "current_page", "exit_page", "referrer",
	"channel_group", "source", "medium", "campaign", "term", "content",
	"click_id_param", "click_id", "device_type", "os", "browser",
	"country", "city", "cart", "orders_count", "revenue",
	"bounced", "closed",
}

func sessionRow(s *session.Session, i int) []any {
	return []any{
		int64(i), s.WorkspaceID, [16]byte(s.ID), clean(s.AnonymousID), clean(s.UserID), clean(s.ProfileID),
		s.Start, s.LastEvent, int32(min(s.Events, math.MaxInt32)), int32(min(s.PageViews, math.MaxInt32)),
		clean(s.LandingPage), clean(s.CurrentPage), clean(s.ExitPage), clean(s.Referrer),
		clean(string(s.Channel.Group)), clean(s.Channel.Source), clean(s.Channel.Medium), clean(s.Channel.Campaign),
		clean(s.Campaign.Term), clean(s.Campaign.Content), clean(s.Campaign.ClickIDParam), clean(s.Campaign.ClickID),
		clean(string(s.Device.Type)), clean(s.Device.OS), clean(s.Device.Browser),
		clean(s.Location.Country), clean(s.Location.City), cartJSON(s.Cart),
		int32(min(s.OrderCount, math.MaxInt32)), micros(s.Revenue()),
		s.Bounced, s.Closed,
	}
}

// upsertSessionsSQL moves eddy_sessions_batch to sessions, emptying it. A
// row of a closed session changes only for another closed state.
const upsertSessionsSQL = `
WITH moved AS (
    DELETE FROM eddy_sessions_batch RETURNING *
), batch AS (
    SELECT DISTINCT ON (workspace_id::uuid, id) *
    FROM moved
    ORDER BY workspace_id::uuid, id, ord DESC
)
INSERT INTO sessions AS s (workspace_id, id, anonymous_id, user_id, profile_id,
    started_at, last_event_at, events, page_views,
    landing_page, current_page, exit_page, referrer,
    channel_group, source, medium, campaign, term, content, click_id_param, click_id,
    device_type, os, browser, country, city, cart, orders_count, revenue,
    bounced, closed, updated_at)
SELECT workspace_id::uuid, id, anonymous_id, NULLIF(user_id, ''), NULLIF(profile_id, ''),
    started_at, last_event_at, events, page_views,
    NULLIF(landing_page, ''), NULLIF(current_page, ''), NULLIF(exit_page, ''), NULLIF(referrer, ''),
    channel_group, NULLIF(source, ''), NULLIF(medium, ''), NULLIF(campaign, ''), NULLIF(term, ''),
    NULLIF(content, ''), NULLIF(click_id_param, ''), NULLIF(click_id, ''),
    NULLIF(device_type, ''), NULLIF(os, ''), NULLIF(browser, ''), NULLIF(country, ''), NULLIF(city, ''),
    cart, orders_count, revenue, bounced, closed, now()
FROM batch
ORDER BY workspace_id::uuid, id
ON CONFLICT (workspace_id, id) DO UPDATE SET
    anonymous_id = EXCLUDED.anonymous_id, user_id = EXCLUDED.user_id, profile_id = EXCLUDED.profile_id,
    started_at = EXCLUDED.started_at, last_event_at = EXCLUDED.last_event_at,
    events = EXCLUDED.events, page_views = EXCLUDED.page_views,
    landing_page = EXCLUDED.landing_page, current_page = EXCLUDED.current_page,
    exit_page = EXCLUDED.exit_page, referrer = EXCLUDED.referrer,
    channel_group = EXCLUDED.channel_group, source = EXCLUDED.source, medium = EXCLUDED.medium,
    campaign = EXCLUDED.campaign, term = EXCLUDED.term, content = EXCLUDED.content,
    click_id_param = EXCLUDED.click_id_param, click_id = EXCLUDED.click_id,
    device_type = EXCLUDED.device_type, os = EXCLUDED.os, browser = EXCLUDED.browser,
    country = EXCLUDED.country, city = EXCLUDED.city, cart = EXCLUDED.cart,
    orders_count = EXCLUDED.orders_count, revenue = EXCLUDED.revenue,
    bounced = EXCLUDED.bounced, closed = EXCLUDED.closed, updated_at = EXCLUDED.updated_at
WHERE NOT s.closed OR EXCLUDED.closed`

// mergeSessionsSQL deletes absorbed sessions and moves their page views and
// orders to their survivors.
const mergeSessionsSQL = `
WITH m AS (
    SELECT ws::uuid AS workspace_id, absorbed, survivor
    FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS u (ws, absorbed, survivor)
), deleted AS (
    DELETE FROM sessions s USING m
    WHERE s.workspace_id = m.workspace_id AND s.id = m.absorbed
), pv AS (
    UPDATE page_views p SET session_id = m.survivor FROM m
    WHERE p.workspace_id = m.workspace_id AND p.session_id = m.absorbed
)
UPDATE orders o SET session_id = m.survivor FROM m
WHERE o.workspace_id = m.workspace_id AND o.session_id = m.absorbed`

const insertPageViewsSQL = `
INSERT INTO page_views (workspace_id, message_id, session_id, anonymous_id, user_id, ts, url, referrer, title)
SELECT ws::uuid, message_id, session_id, anonymous_id, NULLIF(user_id, ''), ts,
       NULLIF(url, ''), NULLIF(referrer, ''), NULLIF(title, '')
FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[],
            $7::text[], $8::text[], $9::text[])
     AS u (ws, message_id, session_id, anonymous_id, user_id, ts, url, referrer, title)
ON CONFLICT (workspace_id, message_id) DO NOTHING`

const upsertOrdersSQL = `
INSERT INTO orders AS o (workspace_id, order_id, message_id, session_id, anonymous_id, user_id, profile_id,
                         ts, total, currency, products)
SELECT ws::uuid, order_id, message_id, session_id, anonymous_id, NULLIF(user_id, ''), NULLIF(profile_id, ''),
       ts, total, NULLIF(currency, ''), products
FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::numeric[], $10::text[], $11::jsonb[])
     AS u (ws, order_id, message_id, session_id, anonymous_id, user_id, profile_id, ts, total, currency, products)
ORDER BY 1, 2
ON CONFLICT (workspace_id, order_id) DO UPDATE SET
    message_id = EXCLUDED.message_id, session_id = EXCLUDED.session_id,
    anonymous_id = EXCLUDED.anonymous_id, user_id = EXCLUDED.user_id, profile_id = EXCLUDED.profile_id,
    ts = EXCLUDED.ts, total = EXCLUDED.total, currency = EXCLUDED.currency, products = EXCLUDED.products
WHERE (EXCLUDED.ts, EXCLUDED.message_id) < (o.ts, o.message_id)`

// WriteSessions writes a batch's session changes, page views and orders in
// a transaction of its own; see [Store.WriteSessionsTx].
func (s *Store) WriteSessions(ctx context.Context, changes []session.Change, pageViews []PageView, orders []Order) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return s.WriteSessionsTx(ctx, tx, changes, pageViews, orders)
	})
}

// WriteSessionsTx writes, in the caller's transaction (of the database
// owner: row-level security would hide the rows), the session changes of a
// batch in the order Apply and Close reported them, and the page views and
// orders of the batch's events. Page views and orders naming a session
// that a later change of the batch absorbed are moved to the survivor.
// [IsDataError] tells whether the rows are at fault.
func (s *Store) WriteSessionsTx(ctx context.Context, tx pgx.Tx, changes []session.Change, pageViews []PageView, orders []Order) error {
	final, merges := coalesce(changes)
	if err := upsertSessions(ctx, tx, final); err != nil {
		return fmt.Errorf("write sessions: %w", err)
	}
	survivor := func(ws string, id session.ID) session.ID {
		if to, ok := merges[sessionKey{ws, id}]; ok {
			return to
		}
		return id
	}
	if len(merges) > 0 {
		keys := make([]sessionKey, 0, len(merges))
		for k := range merges {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b sessionKey) int {
			if c := strings.Compare(a.ws, b.ws); c != 0 {
				return c
			}
			return slices.Compare(a.id[:], b.id[:])
		})
		ws, absorbed, to := make([]string, len(keys)), make([][16]byte, len(keys)), make([][16]byte, len(keys))
		for i, k := range keys {
			ws[i], absorbed[i], to[i] = k.ws, k.id, merges[k]
		}
		if _, err := tx.Exec(ctx, mergeSessionsSQL, ws, absorbed, to); err != nil {
			return fmt.Errorf("write session merges: %w", err)
		}
	}
	if len(pageViews) > 0 {
		n := len(pageViews)
		ws, msg, sid, anon, user := make([]string, n), make([]string, n), make([][16]byte, n), make([]string, n), make([]string, n)
		ts, url, ref, title := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n)
		for i := range pageViews {
			p := &pageViews[i]
			ws[i], msg[i], sid[i] = p.WorkspaceID, clean(p.MessageID), survivor(p.WorkspaceID, p.SessionID)
			anon[i], user[i], ts[i] = clean(p.AnonymousID), clean(p.UserID), p.Timestamp
			url[i], ref[i], title[i] = clean(p.URL), clean(p.Referrer), clean(p.Title)
		}
		if _, err := tx.Exec(ctx, insertPageViewsSQL, ws, msg, sid, anon, user, ts, url, ref, title); err != nil {
			return fmt.Errorf("write page views: %w", err)
		}
	}
	if len(orders) > 0 {
		// Keep the earliest of each order id: one statement cannot update a
		// row twice.
		first := make(map[[2]string]int, len(orders))
		var kept []int
		for i := range orders {
			o := &orders[i]
			k := [2]string{o.WorkspaceID, clean(o.OrderID)}
			j, ok := first[k]
			switch {
			case !ok:
				first[k] = len(kept)
				kept = append(kept, i)
			case orderBefore(o, &orders[kept[j]]):
				kept[j] = i
			}
		}
		n := len(kept)
		ws, oid, msg, sid := make([]string, n), make([]string, n), make([]string, n), make([][16]byte, n)
		anon, user, prof, ts := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
		total, cur, prods := make([]pgtype.Numeric, n), make([]string, n), make([][]byte, n)
		for j, i := range kept {
			o := &orders[i]
			ws[j], oid[j], msg[j], sid[j] = o.WorkspaceID, clean(o.OrderID), clean(o.MessageID), survivor(o.WorkspaceID, o.SessionID)
			anon[j], user[j], prof[j], ts[j] = clean(o.AnonymousID), clean(o.UserID), clean(o.ProfileID), o.Timestamp
			total[j], cur[j], prods[j] = micros(o.Total), clean(o.Currency), productsJSON(o.Products)
		}
		if _, err := tx.Exec(ctx, upsertOrdersSQL, ws, oid, msg, sid, anon, user, prof, ts, total, cur, prods); err != nil {
			return fmt.Errorf("write orders: %w", err)
		}
	}
	return nil
}

// upsertSessions writes sessions' states, at most one per session.
func upsertSessions(ctx context.Context, tx pgx.Tx, final []*session.Session) error {
	if len(final) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, createSessionsBatchSQL); err != nil {
		return err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{sessionsBatchTable}, sessionsBatchColumns,
		pgx.CopyFromSlice(len(final), func(i int) ([]any, error) { return sessionRow(final[i], i), nil }))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, upsertSessionsSQL)
	return err
}

func orderBefore(a, b *Order) bool {
	return a.Timestamp.Before(b.Timestamp) || a.Timestamp.Equal(b.Timestamp) && a.MessageID < b.MessageID
}

// coalesce returns the last state of each session changes leave, in order
// of first appearance, and the absorbed sessions that remain absorbed with
// the session that finally holds them.
func coalesce(changes []session.Change) (final []*session.Session, merges map[sessionKey]session.ID) {
	at := make(map[sessionKey]int, len(changes))
	for i := range changes {
		c := &changes[i]
		k := sessionKey{c.Session.WorkspaceID, c.Session.ID}
		if j, ok := at[k]; ok && final[j] != nil {
			final[j] = &c.Session
		} else {
			at[k] = len(final)
			final = append(final, &c.Session)
		}
		delete(merges, k) // the id lives (again)
		if c.Kind != session.Merged || c.Absorbed == c.Session.ID {
			continue
		}
		a := sessionKey{c.Session.WorkspaceID, c.Absorbed}
		if j, ok := at[a]; ok {
			final[j] = nil
		}
		if merges == nil {
			merges = make(map[sessionKey]session.ID)
		}
		merges[a] = c.Session.ID
		for from, to := range merges {
			if to == c.Absorbed && from.ws == a.ws {
				merges[from] = c.Session.ID
			}
		}
	}
	return slices.DeleteFunc(final, func(s *session.Session) bool { return s == nil }), merges
}

// clean returns s without NUL bytes and with invalid UTF-8 replaced, which
// PostgreSQL text refuses.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// micros returns v as an exact numeric with 6 decimals, the precision of
// the session engine's money; NaN and infinities are 0, as the engine
// counts them.
func micros(v float64) pgtype.Numeric {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e12 {
		v = 0
	}
	return pgtype.Numeric{Int: big.NewInt(int64(math.Round(v * 1e6))), Exp: -6, Valid: true}
}

func cartJSON(c session.Cart) []byte {
	sc := cartOf(c)
	if sc == nil {
		return nil
	}
	b, _ := json.Marshal(sc) // plain fields, finite numbers
	return b
}

// cartOf returns the cart as stored, nil when it is empty.
func cartOf(c session.Cart) *SessionCart {
	items := c.Items()
	if len(items) == 0 {
		return nil
	}
	sc := &SessionCart{Items: make([]CartItem, len(items)), Value: finite(c.Value())}
	for i, it := range items {
		sc.Items[i] = CartItem{ProductID: clean(it.ProductID), SKU: clean(it.SKU), Name: clean(it.Name), Price: finite(it.Price), Quantity: it.Quantity}
	}
	return sc
}

func productsJSON(ps []session.Product) []byte {
	if len(ps) == 0 {
		return nil
	}
	items := make([]CartItem, len(ps))
	for i, p := range ps {
		items[i] = CartItem{ProductID: clean(p.ID), SKU: clean(p.SKU), Name: clean(p.Name), Price: finite(p.Price), Quantity: p.Quantity}
	}
	b, _ := json.Marshal(items)
	return b
}

// finite returns v, or 0 for NaN and infinities, which JSON cannot hold.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// StoredSession is a session as the API reads it back.
type StoredSession struct {
	ID, AnonymousID, UserID, ProfileID                    string
	StartedAt, LastEventAt                                time.Time
	Duration                                              time.Duration
	Events, PageViews                                     int
	LandingPage, CurrentPage, ExitPage, Referrer          string
	ChannelGroup, Source, Medium, Campaign, Term, Content string
	ClickIDParam, ClickID                                 string
	DeviceType, OS, Browser, Country, City                string
	// Cart is nil when the cart is empty.
	Cart                       *SessionCart
	OrdersCount                int
	Revenue                    float64
	Converted, Bounced, Closed bool
	UpdatedAt                  time.Time
}

const sessionColumns = `
	s.id::text, s.anonymous_id, coalesce(s.user_id, ''), coalesce(s.profile_id, ''),
	s.started_at, s.last_event_at, s.duration, s.events, s.page_views,
	coalesce(s.landing_page, ''), coalesce(s.current_page, ''), coalesce(s.exit_page, ''), coalesce(s.referrer, ''),
	s.channel_group, coalesce(s.source, ''), coalesce(s.medium, ''), coalesce(s.campaign, ''),
	coalesce(s.term, ''), coalesce(s.content, ''), coalesce(s.click_id_param, ''), coalesce(s.click_id, ''),
	coalesce(s.device_type, ''), coalesce(s.os, ''), coalesce(s.browser, ''), coalesce(s.country, ''), coalesce(s.city, ''),
	s.cart, s.orders_count, s.revenue::float8, s.converted, s.bounced, s.closed, s.updated_at`

func scanSession(row pgx.Row) (StoredSession, error) {
	var s StoredSession
	var d pgtype.Interval
	var cart []byte
	err := row.Scan(&s.ID, &s.AnonymousID, &s.UserID, &s.ProfileID,
		&s.StartedAt, &s.LastEventAt, &d, &s.Events, &s.PageViews,
		&s.LandingPage, &s.CurrentPage, &s.ExitPage, &s.Referrer,
		&s.ChannelGroup, &s.Source, &s.Medium, &s.Campaign,
		&s.Term, &s.Content, &s.ClickIDParam, &s.ClickID,
		&s.DeviceType, &s.OS, &s.Browser, &s.Country, &s.City,
		&cart, &s.OrdersCount, &s.Revenue, &s.Converted, &s.Bounced, &s.Closed, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, err
	}
	// A duration is under 7 days: no months in the interval.
	s.Duration = time.Duration(d.Days)*24*time.Hour + time.Duration(d.Microseconds)*time.Microsecond
	if cart != nil {
		s.Cart = new(SessionCart)
		if err := json.Unmarshal(cart, s.Cart); err != nil {
			return s, fmt.Errorf("cart of session %s: %w", s.ID, err)
		}
	}
	return s, nil
}

// validUUID reports whether s is a UUID in its canonical text form (any
// case), so that a bad id in a URL is a not-found, not a database error.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Session returns a workspace's session by id, or ErrNotFound.
func (s *Store) Session(ctx context.Context, w Workspace, id string) (StoredSession, error) {
	if !validUUID(id) {
		return StoredSession{}, ErrNotFound
	}
	var out StoredSession
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		out, err = scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions s
			WHERE s.workspace_id = $1 AND s.id = $2::uuid`, w.ID, id))
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return out, fmt.Errorf("session %s of %s: %w", id, w.Slug, err)
	}
	return out, err
}

// SessionFilter selects a workspace's sessions. Empty fields do not filter.
type SessionFilter struct {
	AnonymousID, ProfileID string
	// Open keeps the sessions not closed yet; Closed keeps the closed ones.
	Open, Closed bool
	// From (inclusive) and To (exclusive) bound the start.
	From, To time.Time
}

// ErrInvalidCursor is returned for a Page.After that no listing returned.
var ErrInvalidCursor = errors.New("invalid cursor")

// Sessions lists a workspace's sessions, newest first by id (which sorts
// by start time); Page.After is the id of the last session of the previous
// page.
func (s *Store) Sessions(ctx context.Context, w Workspace, f SessionFilter, p Page) ([]StoredSession, error) {
	if p.After != "" && !validUUID(p.After) {
		return nil, ErrInvalidCursor
	}
	var after any // NULL for the first page
	if p.After != "" {
		after = p.After
	}
	var out []StoredSession
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+sessionColumns+` FROM sessions s
			WHERE s.workspace_id = $1
			  AND ($2 = '' OR s.anonymous_id = $2) AND ($3 = '' OR s.profile_id = $3)
			  AND (NOT $4 OR NOT s.closed) AND (NOT $9 OR s.closed)
			  AND ($5::timestamptz IS NULL OR s.started_at >= $5)
			  AND ($6::timestamptz IS NULL OR s.started_at < $6)
			  AND ($7::uuid IS NULL OR s.id < $7::uuid)
			ORDER BY s.id DESC
			LIMIT $8`,
			w.ID, f.AnonymousID, f.ProfileID, f.Open, timestamptz(f.From), timestamptz(f.To), after, p.Limit, f.Closed)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanSession, "sessions")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", w.Slug, err)
	}
	return out, nil
}

// StateOf returns a session's state as the API reads it, for the live view
// of a session that storage may not have caught up with. It is what the
// session's row holds once written, UpdatedAt aside (the caller's clock).
func StateOf(s *session.Session, updatedAt time.Time) StoredSession {
	st := StoredSession{
		ID: s.ID.String(), AnonymousID: clean(s.AnonymousID), UserID: clean(s.UserID), ProfileID: clean(s.ProfileID),
		StartedAt: s.Start, LastEventAt: s.LastEvent, Duration: s.Duration(),
		Events: s.Events, PageViews: s.PageViews,
		LandingPage: clean(s.LandingPage), CurrentPage: clean(s.CurrentPage), ExitPage: clean(s.ExitPage), Referrer: clean(s.Referrer),
		ChannelGroup: clean(string(s.Channel.Group)), Source: clean(s.Channel.Source), Medium: clean(s.Channel.Medium),
		Campaign: clean(s.Channel.Campaign), Term: clean(s.Campaign.Term), Content: clean(s.Campaign.Content),
		ClickIDParam: clean(s.Campaign.ClickIDParam), ClickID: clean(s.Campaign.ClickID),
		DeviceType: clean(string(s.Device.Type)), OS: clean(s.Device.OS), Browser: clean(s.Device.Browser),
		Country: clean(s.Location.Country), City: clean(s.Location.City),
		OrdersCount: s.OrderCount, Revenue: finite(s.Revenue()),
		Converted: s.Converted(), Bounced: s.Bounced, Closed: s.Closed, UpdatedAt: updatedAt,
	}
	st.Cart = cartOf(s.Cart)
	return st
}
