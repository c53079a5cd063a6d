package api_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// eventsBase is the time of the first test event.
var eventsBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// eventsPlatform is a platform whose workspace shop has seven events
// (m01 … m07, newest last; m04 and m05 share a timestamp), and whose
// workspace other has one.
func eventsPlatform(t *testing.T) (*platform, *client) {
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	ada.workspace("acme", "other")
	ada.source("shop", "web")
	ctx := context.Background()
	shop, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace shop")
	other, err := p.store.WorkspaceBySlug(ctx, "other")
	testenv.Must(t, err, "workspace other")
	web, err := p.store.Source(ctx, shop, "web")
	testenv.Must(t, err, "source web")

	at := func(m int) time.Time { return eventsBase.Add(time.Duration(m) * time.Minute) }
	now := time.Now().UTC()
	ev := func(id, typ string, ts time.Time, f func(*store.Event)) store.Event {
		e := store.Event{WorkspaceID: shop.ID, SourceID: web.ID, MessageID: id, Type: typ, Timestamp: ts, ReceivedAt: now}
		f(&e)
		return e
	}
	events := []store.Event{
		ev("m01", "track", at(0), func(e *store.Event) {
			e.Event, e.UserID, e.Properties = "Order Completed", "u1", []byte(`{"total": 42.5, "currency": "EUR"}`)
		}),
		ev("m02", "page", at(1), func(e *store.Event) { e.Name, e.AnonymousID = "Home", "a1" }),
		ev("m03", "identify", at(2), func(e *store.Event) {
			e.UserID, e.AnonymousID, e.Traits = "u1", "a1", []byte(`{"plan": "pro"}`)
		}),
		ev("m04", "track", at(3), func(e *store.Event) { e.Event, e.UserID = "Order Completed", "u2" }),
		ev("m05", "track", at(3), func(e *store.Event) { e.Event, e.AnonymousID, e.SourceID = "Signed Up", "a2", "" }),
		ev("m06", "screen", at(4), func(e *store.Event) { e.Name, e.UserID, e.IP = "Settings", "u2", "203.0.113.9" }),
		ev("m07", "group", at(5), func(e *store.Event) { e.UserID, e.GroupID = "u1", "g1" }),
		{WorkspaceID: other.ID, MessageID: "m99", Type: "track", Event: "Order Completed", UserID: "u1", Timestamp: at(2), ReceivedAt: now},
	}
	n, err := p.store.InsertEvents(ctx, events)
	testenv.Must(t, err, "insert events")
	if n != int64(len(events)) {
		t.Fatalf("inserted %d events, want %d", n, len(events))
	}
	return p, ada
}

type eventJSON struct {
	MessageID   string          `json:"message_id"`
	SourceID    *string         `json:"source_id"`
	Type        string          `json:"type"`
	Event       *string         `json:"event"`
	UserID      *string         `json:"user_id"`
	IP          *string         `json:"ip"`
	Timestamp   time.Time       `json:"timestamp"`
	ReceivedAt  time.Time       `json:"received_at"`
	Properties  map[string]any  `json:"properties"`
	Traits      map[string]any  `json:"traits"`
	OriginalTS  *time.Time      `json:"original_timestamp"`
	Integration *map[string]any `json:"integrations"`
}

type eventPage struct {
	Data       []eventJSON `json:"data"`
	NextCursor string      `json:"next_cursor"`
}

// ids returns the message ids of a page.
func (p eventPage) ids() []string {
	var out []string
	for _, e := range p.Data {
		out = append(out, e.MessageID)
	}
	return out
}

// eventIDs lists events with query q (all pages) and returns their ids.
func eventIDs(t *testing.T, c *client, q string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 20 {
		path := "/workspaces/shop/events?" + q
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page eventPage
		c.must(http.StatusOK, "GET", path, nil, &page)
		out = append(out, page.ids()...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	t.Fatalf("events?%s: more than 20 pages", q)
	return nil
}

func TestListEvents(t *testing.T) {
	t.Parallel()
	p, ada := eventsPlatform(t)
	ts := func(m int) string {
		return url.QueryEscape(eventsBase.Add(time.Duration(m) * time.Minute).Format(time.RFC3339))
	}

	all := []string{"m07", "m06", "m05", "m04", "m03", "m02", "m01"}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", all},
		{"type=track", []string{"m05", "m04", "m01"}},
		{"event=" + url.QueryEscape("Order Completed"), []string{"m04", "m01"}},
		{"user_id=u1", []string{"m07", "m03", "m01"}},
		{"anonymous_id=a1", []string{"m03", "m02"}},
		{"type=track&user_id=u2", []string{"m04"}},
		{"from=" + ts(2), []string{"m07", "m06", "m05", "m04", "m03"}},
		{"to=" + ts(2), []string{"m02", "m01"}},
		{"from=" + ts(1) + "&to=" + ts(4), []string{"m05", "m04", "m03", "m02"}},
		{"from=" + url.QueryEscape("2026-03-01T13:01:00+01:00"), []string{"m07", "m06", "m05", "m04", "m03", "m02"}},
		{"user_id=nobody", nil},
		{"user_id=U1", nil},
		{"limit=200", all},
	} {
		t.Run(tc.query, func(t *testing.T) {
			if got := eventIDs(t, ada.in(t), tc.query); !slices.Equal(got, tc.want) {
				t.Fatalf("events?%s = %v, want %v", tc.query, got, tc.want)
			}
		})
	}

	// Pages of 2 walk all events in order, without duplicates or gaps;
	// only the last page has no next_cursor.
	var pages [][]string
	cursor := ""
	for {
		path := "/workspaces/shop/events?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page eventPage
		ada.must(http.StatusOK, "GET", path, nil, &page)
		pages = append(pages, page.ids())
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if len(pages) > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if want := [][]string{{"m07", "m06"}, {"m05", "m04"}, {"m03", "m02"}, {"m01"}}; !slices.EqualFunc(pages, want, slices.Equal) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
	// Filters and cursors combine; pages of 1 too.
	if got := eventIDs(t, ada, "type=track&limit=1"); !slices.Equal(got, []string{"m05", "m04", "m01"}) {
		t.Fatalf("tracks one by one: %v", got)
	}
	if got := eventIDs(t, ada, "limit=3&from="+ts(1)); !slices.Equal(got, all[:6]) {
		t.Fatalf("from with pages of 3: %v", got)
	}

	// What an event looks like.
	var page eventPage
	ada.must(http.StatusOK, "GET", "/workspaces/shop/events?limit=7", nil, &page)
	byID := map[string]eventJSON{}
	for _, e := range page.Data {
		byID[e.MessageID] = e
	}
	m01, m05, m06 := byID["m01"], byID["m05"], byID["m06"]
	if m01.SourceID == nil || *m01.SourceID != "web" || m01.Event == nil || *m01.Event != "Order Completed" ||
		m01.Properties["total"] != 42.5 || !m01.Timestamp.Equal(eventsBase) || m01.ReceivedAt.IsZero() || m01.OriginalTS != nil {
		t.Fatalf("m01 = %+v", m01)
	}
	if m05.SourceID != nil || m05.UserID != nil {
		t.Fatalf("m05 = %+v, want no source nor user", m05)
	}
	if m06.IP == nil || *m06.IP != "203.0.113.9" {
		t.Fatalf("m06 ip = %v", m06.IP)
	}
	if byID["m03"].Traits["plan"] != "pro" {
		t.Fatalf("m03 traits = %v", byID["m03"].Traits)
	}

	// Another workspace's events stay there.
	var others eventPage
	ada.must(http.StatusOK, "GET", "/workspaces/other/events", nil, &others)
	if ids := others.ids(); !slices.Equal(ids, []string{"m99"}) {
		t.Fatalf("other's events %v", ids)
	}
	// A read key reads events; a key of another workspace does not.
	p.withKey(ada.apiKey("shop", "r", "read").Key).must(http.StatusOK, "GET", "/workspaces/shop/events", nil, nil)
	p.withKey(ada.apiKey("other", "r", "read").Key).expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/events", nil)
}

func TestListEventsBadParameters(t *testing.T) {
	t.Parallel()
	_, ada := eventsPlatform(t)
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		query, field string
	}{
		{"limit=0", "limit"},
		{"limit=201", "limit"},
		{"limit=-1", "limit"},
		{"limit=abc", "limit"},
		{"limit=1.5", "limit"},
		{"limit=" + strings.Repeat("9", 30), "limit"},
		{"cursor=!!!", "cursor"},
		{"cursor=" + b64("not json"), "cursor"},
		{"cursor=" + b64(`{"t": "yesterday", "m": "m01"}`), "cursor"},
		{"cursor=" + b64(`[1, 2]`), "cursor"},
		{"cursor=" + strings.Repeat("A", 2000), "cursor"},
		{"from=yesterday", "from"},
		{"from=2026-03-01", "from"},
		{"from=1700000000", "from"},
		{"to=2026-13-01T00:00:00Z", "to"},
		{"from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "to"},
		{"from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z", "to"},
		{"type=click", "type"},
		{"type=TRACK", "type"},
		{"event=" + strings.Repeat("e", 1025), "event"},
		{"user_id=" + strings.Repeat("u", 1025), "user_id"},
		{"anonymous_id=" + strings.Repeat("a", 1025), "anonymous_id"},
	} {
		t.Run(tc.query[:min(len(tc.query), 40)], func(t *testing.T) {
			ada.in(t).do("GET", "/workspaces/shop/events?"+tc.query, nil).wantInvalid(t, tc.field)
		})
	}
	// Every wrong filter is named at once.
	r := ada.do("GET", "/workspaces/shop/events?type=x&from=y&to=z", nil)
	if f := r.fields(t); !slices.Equal(f, []string{"type", "from", "to"}) {
		t.Fatalf("fields %v", f)
	}
}
