package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var (
	day1 = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
	day2 = day1.AddDate(0, 0, 1)
)

// minimalEvent returns a valid event with only the required fields.
func minimalEvent(workspaceID string, receivedAt time.Time) store.Event {
	return store.Event{
		WorkspaceID: workspaceID,
		MessageID:   newUUID(),
		Type:        "track",
		Timestamp:   receivedAt.Add(-time.Second),
		ReceivedAt:  receivedAt,
	}
}

// storedEvent is an events row read back.
type storedEvent struct {
	WorkspaceID, SourceID, MessageID, Type                     *string
	Event, Name, AnonymousID, UserID, GroupID, PreviousID      *string
	Timestamp, ReceivedAt, OriginalTimestamp, SentAt, LoadedAt *time.Time
	IP                                                         *netip.Addr
	Properties, Context, Traits, Integrations                  map[string]any
	Partition                                                  string
}

const selectEvents = `
	SELECT workspace_id::text, source_id::text, message_id, type, event, name, anonymous_id, user_id,
	       group_id, previous_id, "timestamp", received_at, original_timestamp, sent_at, loaded_at,
	       ip, properties, context, traits, integrations, tableoid::regclass::text
	FROM events`

func readEvents(t *testing.T, s *store.Store, where string, args ...any) []storedEvent {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), selectEvents+" "+where+" ORDER BY received_at, message_id", args...)
	testenv.Must(t, err, "read events")
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedEvent])
	testenv.Must(t, err, "read events")
	for i := range events {
		e := &events[i]
		for _, tp := range []**time.Time{&e.Timestamp, &e.ReceivedAt, &e.OriginalTimestamp, &e.SentAt, &e.LoadedAt} {
			if *tp != nil {
				*tp = ptr((*tp).UTC())
			}
		}
	}
	return events
}

func countRows(t *testing.T, s *store.Store, table string) int {
	t.Helper()
	var n int
	err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	testenv.Must(t, err, "count %s", table)
	return n
}

func ptr[T any](v T) *T { return &v }

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if b == nil {
		return nil
	}
	var m map[string]any
	testenv.Must(t, json.Unmarshal(b, &m), "decode %s", b)
	return m
}

func insert(t *testing.T, s *store.Store, events ...store.Event) int64 {
	t.Helper()
	n, err := s.InsertEvents(context.Background(), events)
	testenv.Must(t, err, "insert %d events", len(events))
	return n
}

func TestInsertEventsStoresEveryColumn(t *testing.T) {
	s, _ := newStore(t)
	ws, src := newUUID(), newUUID()
	tests := []struct {
		name  string
		event store.Event
		want  storedEvent
	}{
		{
			name: "all fields set",
			event: store.Event{
				WorkspaceID: ws, SourceID: src, MessageID: "msg-all", Type: "track",
				Event: "Order Completed", Name: "Checkout", AnonymousID: "anon-1", UserID: "user-1",
				GroupID: "group-1", PreviousID: "prev-1",
				Timestamp:         day1.Add(-2 * time.Second),
				ReceivedAt:        day1,
				OriginalTimestamp: day1.Add(-3 * time.Second),
				SentAt:            day1.Add(-time.Second),
				IP:                "203.0.113.7",
				Properties:        []byte(`{"revenue": 42.5, "currency": "EUR", "items": [{"sku": "a"}], "note": "été ✓"}`),
				Context:           []byte(`{"library": {"name": "analytics.js"}, "page": {"url": "https://example.com/?q=1"}}`),
				Traits:            []byte(`{"email": "a@example.com"}`),
				Integrations:      []byte(`{"All": true, "Mixpanel": false}`),
			},
			want: storedEvent{
				WorkspaceID: &ws, SourceID: &src, MessageID: ptr("msg-all"), Type: ptr("track"),
				Event: ptr("Order Completed"), Name: ptr("Checkout"), AnonymousID: ptr("anon-1"), UserID: ptr("user-1"),
				GroupID: ptr("group-1"), PreviousID: ptr("prev-1"),
				Timestamp:         ptr(day1.Add(-2 * time.Second).Truncate(time.Microsecond)),
				ReceivedAt:        ptr(day1.Truncate(time.Microsecond)),
				OriginalTimestamp: ptr(day1.Add(-3 * time.Second).Truncate(time.Microsecond)),
				SentAt:            ptr(day1.Add(-time.Second).Truncate(time.Microsecond)),
				IP:                ptr(netip.MustParseAddr("203.0.113.7")),
				Properties:        map[string]any{"revenue": 42.5, "currency": "EUR", "items": []any{map[string]any{"sku": "a"}}, "note": "été ✓"},
				Context:           map[string]any{"library": map[string]any{"name": "analytics.js"}, "page": map[string]any{"url": "https://example.com/?q=1"}},
				Traits:            map[string]any{"email": "a@example.com"},
				Integrations:      map[string]any{"All": true, "Mixpanel": false},
				Partition:         "events_p20250314",
			},
		},
		{
			name: "empty optional fields are NULL",
			event: store.Event{
				WorkspaceID: ws, MessageID: "msg-min", Type: "identify",
				Timestamp: day1, ReceivedAt: day1,
				Properties: []byte{},
			},
			want: storedEvent{
				WorkspaceID: &ws, MessageID: ptr("msg-min"), Type: ptr("identify"),
				Timestamp: ptr(day1.Truncate(time.Microsecond)), ReceivedAt: ptr(day1.Truncate(time.Microsecond)),
				Partition: "events_p20250314",
			},
		},
		{
			name: "IPv6 address, time in another zone",
			event: store.Event{
				WorkspaceID: ws, MessageID: "msg-v6", Type: "page", Name: "Home",
				Timestamp:  time.Date(2025, 3, 15, 1, 0, 0, 0, time.FixedZone("UTC+3", 3*3600)),
				ReceivedAt: time.Date(2025, 3, 15, 1, 30, 0, 0, time.FixedZone("UTC+3", 3*3600)),
				IP:         "2001:db8::1",
			},
			want: storedEvent{
				WorkspaceID: &ws, MessageID: ptr("msg-v6"), Type: ptr("page"), Name: ptr("Home"),
				Timestamp:  ptr(time.Date(2025, 3, 14, 22, 0, 0, 0, time.UTC)),
				ReceivedAt: ptr(time.Date(2025, 3, 14, 22, 30, 0, 0, time.UTC)),
				IP:         ptr(netip.MustParseAddr("2001:db8::1")),
				// The partition is the UTC day of received_at.
				Partition: "events_p20250314",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			if n := insert(t, s, tt.event); n != 1 {
				t.Fatalf("inserted %d rows, want 1", n)
			}
			got := readEvents(t, s, "WHERE message_id = $1", tt.event.MessageID)
			if len(got) != 1 {
				t.Fatalf("read %d rows for message %s, want 1", len(got), tt.event.MessageID)
			}
			g := got[0]
			if g.LoadedAt == nil || g.LoadedAt.Before(before.Add(-time.Minute)) || g.LoadedAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("loaded_at = %v, want about %v", g.LoadedAt, before)
			}
			g.LoadedAt = nil
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("stored row differs\n got: %s\nwant: %s", describe(g), describe(tt.want))
			}
		})
	}
}

// describe prints a storedEvent with pointers followed.
func describe(e storedEvent) string {
	v := reflect.ValueOf(e)
	var b strings.Builder
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				fmt.Fprintf(&b, "%s=NULL ", v.Type().Field(i).Name)
				continue
			}
			f = f.Elem()
		}
		fmt.Fprintf(&b, "%s=%v ", v.Type().Field(i).Name, f.Interface())
	}
	return b.String()
}

func TestInsertEventsIsIdempotent(t *testing.T) {
	ws1, ws2 := newUUID(), newUUID()
	a, b, c := minimalEvent(ws1, day1), minimalEvent(ws1, day1), minimalEvent(ws1, day1)
	retried := a
	retried.ReceivedAt = day2 // a client's retry, received the next day
	retried.Event = "retry"
	dupInCall := b
	dupInCall.Event = "second copy"
	otherWorkspace := a
	otherWorkspace.WorkspaceID = ws2

	type call struct {
		events       []store.Event
		wantInserted int64
	}
	tests := []struct {
		name  string
		calls []call
		// wantEvents are the distinct (workspace, message) keys stored, with
		// the event name the stored row must carry.
		wantRows map[[2]string]string
	}{
		{
			name: "same events twice are stored once",
			calls: []call{
				{[]store.Event{a, b, c}, 3},
				{[]store.Event{a, b, c}, 0},
			},
			wantRows: map[[2]string]string{{ws1, a.MessageID}: "", {ws1, b.MessageID}: "", {ws1, c.MessageID}: ""},
		},
		{
			name:     "duplicates inside one call are stored once, the first wins",
			calls:    []call{{[]store.Event{b, a, dupInCall, a}, 2}},
			wantRows: map[[2]string]string{{ws1, a.MessageID}: "", {ws1, b.MessageID}: ""},
		},
		{
			name: "a retry received on another day is still stored once",
			calls: []call{
				{[]store.Event{a}, 1},
				{[]store.Event{retried}, 0},
			},
			wantRows: map[[2]string]string{{ws1, a.MessageID}: ""},
		},
		{
			name: "a stored message repeated among new ones",
			calls: []call{
				{[]store.Event{a}, 1},
				{[]store.Event{b, retried, c}, 2},
			},
			wantRows: map[[2]string]string{{ws1, a.MessageID}: "", {ws1, b.MessageID}: "", {ws1, c.MessageID}: ""},
		},
		{
			name:     "the same message id in two workspaces is two rows",
			calls:    []call{{[]store.Event{a, otherWorkspace}, 2}},
			wantRows: map[[2]string]string{{ws1, a.MessageID}: "", {ws2, a.MessageID}: ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			for i, c := range tt.calls {
				if n := insert(t, s, c.events...); n != c.wantInserted {
					t.Errorf("call %d: inserted %d, want %d", i+1, n, c.wantInserted)
				}
			}
			got := make(map[[2]string]string)
			for _, e := range readEvents(t, s, "") {
				key := [2]string{*e.WorkspaceID, *e.MessageID}
				if _, dup := got[key]; dup {
					t.Errorf("message %v stored twice", key)
				}
				name := ""
				if e.Event != nil {
					name = *e.Event
				}
				got[key] = name
				if !e.ReceivedAt.Equal(day1.Truncate(time.Microsecond)) {
					t.Errorf("message %v stored with received_at %v, want the first receipt %v", key, e.ReceivedAt, day1)
				}
			}
			if !reflect.DeepEqual(got, tt.wantRows) {
				t.Errorf("stored rows (key -> event name) = %v, want %v", got, tt.wantRows)
			}
			if n := countRows(t, s, "event_ids"); n != len(tt.wantRows) {
				t.Errorf("event_ids has %d rows, want %d", n, len(tt.wantRows))
			}
		})
	}
}

func partitions(t *testing.T, s *store.Store) []string {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(),
		"SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass ORDER BY 1")
	testenv.Must(t, err, "list partitions")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	testenv.Must(t, err, "list partitions")
	return names
}

func TestInsertEventsCreatesDayPartitions(t *testing.T) {
	s, _ := newStore(t)
	ws := newUUID()
	var events []store.Event
	for _, at := range []time.Time{
		time.Date(2020, 2, 29, 23, 59, 59, 999999000, time.UTC), // a worker catching up after a long outage
		time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC),            // the first instant of a day
		time.Date(2025, 3, 14, 23, 59, 59, 999999000, time.UTC), // its last
		time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 16, 12, 0, 0, 0, time.UTC),
	} {
		events = append(events, minimalEvent(ws, at))
	}
	if n := insert(t, s, events...); n != int64(len(events)) {
		t.Fatalf("inserted %d, want %d", n, len(events))
	}
	want := []string{"events_p20200229", "events_p20250314", "events_p20250315", "events_p20250316"}
	if got := partitions(t, s); !slices.Equal(got, want) {
		t.Fatalf("partitions = %q, want %q", got, want)
	}
	for _, e := range readEvents(t, s, "") {
		if want := "events_p" + e.ReceivedAt.UTC().Format("20060102"); e.Partition != want {
			t.Errorf("event received at %v is in %s, want %s", e.ReceivedAt, e.Partition, want)
		}
	}

	// A partition dropped behind the store's back (by retention, say) is
	// created again.
	_, err := s.Pool().Exec(context.Background(), "DROP TABLE events_p20250316")
	testenv.Must(t, err, "drop partition")
	late := minimalEvent(ws, time.Date(2025, 3, 16, 13, 0, 0, 0, time.UTC))
	if n := insert(t, s, late); n != 1 {
		t.Fatalf("after dropping a partition: inserted %d, want 1", n)
	}
	if got := partitions(t, s); !slices.Equal(got, want) {
		t.Fatalf("after dropping a partition: partitions = %q, want %q", got, want)
	}
}

// TestInsertEventsConcurrently has several stores (so several partition
// caches, as in several worker processes) insert overlapping batches on new
// days at once: each message must be stored once, counted once, and no call
// may fail.
func TestInsertEventsConcurrently(t *testing.T) {
	ctx := context.Background()
	_, dbURL := newStore(t)
	ws := newUUID()
	var pool []store.Event
	for i := range 600 {
		pool = append(pool, minimalEvent(ws, day1.Add(time.Duration(i)*7*time.Minute))) // about 3 days
	}
	const stores, workers, rounds = 3, 4, 5
	var total int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for si := range stores {
		s, err := store.Open(ctx, dbURL)
		testenv.Must(t, err, "open store")
		defer s.Close()
		for wi := range workers {
			wg.Go(func() {
				for r := range rounds {
					// Overlapping windows of the pool, in an order of its own.
					start := (si*workers + wi + r) * 37 % len(pool)
					batch := make([]store.Event, 0, 250)
					for k := range 250 {
						batch = append(batch, pool[(start+k*(wi+1))%len(pool)])
					}
					n, err := s.InsertEvents(ctx, batch)
					if err != nil {
						t.Errorf("store %d worker %d round %d: %v", si, wi, r, err)
						return
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	check, err := store.Open(ctx, dbURL)
	testenv.Must(t, err, "open store")
	defer check.Close()
	stored := countRows(t, check, "events")
	var distinct int
	err = check.Pool().QueryRow(ctx, "SELECT count(DISTINCT message_id) FROM events").Scan(&distinct)
	testenv.Must(t, err, "count distinct messages")
	if stored != distinct {
		t.Errorf("events has %d rows for %d distinct messages", stored, distinct)
	}
	if int64(stored) != total {
		t.Errorf("calls reported %d inserted, events has %d rows", total, stored)
	}
	if stored == 0 || stored > len(pool) {
		t.Errorf("events has %d rows, want between 1 and %d", stored, len(pool))
	}
}

func TestInsertEventsOfNoEventsDoesNothing(t *testing.T) {
	s, _ := newStore(t)
	n, err := s.InsertEvents(context.Background(), nil)
	if n != 0 || err != nil {
		t.Fatalf("InsertEvents(nil) = %d, %v; want 0, nil", n, err)
	}
}

func TestIsDataError(t *testing.T) {
	s, dbURL := newStore(t)
	ws := newUUID()
	with := func(change func(*store.Event)) []store.Event {
		good := minimalEvent(ws, day1)
		bad := minimalEvent(ws, day1)
		change(&bad)
		return []store.Event{good, bad}
	}
	huge := make([]byte, 20000)
	_, _ = rand.Read(huge)

	tests := []struct {
		name   string
		events []store.Event
	}{
		{"JSON with an escaped NUL", with(func(e *store.Event) { e.Properties = []byte(`{"a": "x\u0000y"}`) })},
		{"malformed JSON", with(func(e *store.Event) { e.Context = []byte(`{"a": `) })},
		{"malformed inet", with(func(e *store.Event) { e.IP = "300.1.2.3" })},
		{"malformed workspace id", with(func(e *store.Event) { e.WorkspaceID = "not-a-uuid" })},
		{"malformed source id", with(func(e *store.Event) { e.SourceID = "42" })},
		{"NUL byte in text", with(func(e *store.Event) { e.UserID = "a\x00b" })},
		{"invalid UTF-8 in text", with(func(e *store.Event) { e.Event = "\xff\xfe" })},
		{"id too large for its index", with(func(e *store.Event) { e.AnonymousID = hex.EncodeToString(huge) })},
		{"no message id", with(func(e *store.Event) { e.MessageID = "" })},
		{"no workspace id", with(func(e *store.Event) { e.WorkspaceID = "" })},
		{"no type", with(func(e *store.Event) { e.Type = "" })},
		{"no timestamp", with(func(e *store.Event) { e.Timestamp = time.Time{} })},
		{"no received at", with(func(e *store.Event) { e.ReceivedAt = time.Time{} })},
	}
	for _, tt := range tests {
		t.Run("rows at fault: "+tt.name, func(t *testing.T) {
			n, err := s.InsertEvents(context.Background(), tt.events)
			if err == nil {
				t.Fatalf("InsertEvents succeeded (%d rows), want an error", n)
			}
			t.Logf("error: %.200s", err)
			if !store.IsDataError(err) {
				t.Errorf("IsDataError(%v) = false, want true", err)
			}
			if !strings.HasPrefix(err.Error(), "insert events: ") {
				t.Errorf("error %q lacks the context \"insert events: \"", err)
			}
			// All or nothing: the good row of the batch is not stored.
			if got := countRows(t, s, "events"); got != 0 {
				t.Errorf("events has %d rows after a failed batch, want 0", got)
			}
			if got := countRows(t, s, "event_ids"); got != 0 {
				t.Errorf("event_ids has %d rows after a failed batch, want 0", got)
			}
		})
	}

	t.Run("not the rows' fault: cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.InsertEvents(ctx, []store.Event{minimalEvent(ws, day1)})
		if err == nil || store.IsDataError(err) {
			t.Fatalf("InsertEvents with a cancelled context: err = %v, IsDataError = %v; want an error that is not a data error", err, store.IsDataError(err))
		}
	})
	t.Run("not the rows' fault: context cancelled during the write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		// Hold the dedup table so that the write waits, then cancel it.
		conn := connect(t, dbURL)
		tx, err := conn.Begin(context.Background())
		testenv.Must(t, err, "begin")
		defer tx.Rollback(context.Background())
		_, err = tx.Exec(context.Background(), "LOCK TABLE event_ids IN EXCLUSIVE MODE")
		testenv.Must(t, err, "lock event_ids")
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err = s.InsertEvents(ctx, []store.Event{minimalEvent(ws, day1)})
		if err == nil || store.IsDataError(err) {
			t.Fatalf("InsertEvents cancelled while waiting: err = %v, IsDataError = %v; want an error that is not a data error", err, store.IsDataError(err))
		}
	})
	t.Run("not the rows' fault: closed store", func(t *testing.T) {
		closed, err := store.Open(context.Background(), dbURL)
		testenv.Must(t, err, "open store")
		closed.Close()
		_, err = closed.InsertEvents(context.Background(), []store.Event{minimalEvent(ws, day1)})
		if err == nil || store.IsDataError(err) {
			t.Fatalf("InsertEvents on a closed store: err = %v, IsDataError = %v; want an error that is not a data error", err, store.IsDataError(err))
		}
	})
	t.Run("not the rows' fault: server unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		down, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/eddy?sslmode=disable&connect_timeout=2")
		testenv.Must(t, err, "open store on a closed port")
		defer down.Close()
		_, err = down.InsertEvents(ctx, []store.Event{minimalEvent(ws, day1)})
		if err == nil || store.IsDataError(err) {
			t.Fatalf("InsertEvents with no server: err = %v, IsDataError = %v; want an error that is not a data error", err, store.IsDataError(err))
		}
		if err := down.Ping(ctx); err == nil {
			t.Error("Ping with no server: got nil error")
		}
	})
	t.Run("not the rows' fault: other errors", func(t *testing.T) {
		for _, err := range []error{nil, errors.New("boom"), context.DeadlineExceeded, fmt.Errorf("insert events: %w", context.Canceled)} {
			if store.IsDataError(err) {
				t.Errorf("IsDataError(%v) = true, want false", err)
			}
		}
	})

	// The store still works after all that.
	if n := insert(t, s, minimalEvent(ws, day1)); n != 1 {
		t.Fatalf("after the failures: inserted %d, want 1", n)
	}
}

// TestInsertEventsAcrossAnOutage cuts the connection to PostgreSQL: the
// errors are not data errors, and once the server is back the same store
// stores a retried batch exactly once.
func TestInsertEventsAcrossAnOutage(t *testing.T) {
	ctx := context.Background()
	_, dbURL := newStore(t)
	u, err := url.Parse(dbURL)
	testenv.Must(t, err, "parse %s", dbURL)
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	s, err := store.Open(ctx, u.String())
	testenv.Must(t, err, "open store through the proxy")
	defer s.Close()

	ws := newUUID()
	first := []store.Event{minimalEvent(ws, day1), minimalEvent(ws, day1)}
	if n := insert(t, s, first...); n != 2 {
		t.Fatalf("before the outage: inserted %d, want 2", n)
	}

	proxy.Cut()
	batch := []store.Event{minimalEvent(ws, day1), first[0], minimalEvent(ws, day2)}
	_, err = s.InsertEvents(ctx, batch)
	if err == nil || store.IsDataError(err) {
		t.Fatalf("InsertEvents during the outage: err = %v, IsDataError = %v; want an error that is not a data error", err, store.IsDataError(err))
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping during the outage: got nil error")
	}

	proxy.Restore()
	var n int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The caller's retry: the pool replaces its broken connections.
		n, err = s.InsertEvents(ctx, batch)
		if err == nil || time.Now().After(deadline) {
			break
		}
		if store.IsDataError(err) {
			t.Fatalf("InsertEvents after the outage: data error %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	testenv.Must(t, err, "insert after the outage")
	if n != 2 {
		t.Errorf("after the outage: inserted %d, want 2 (one of the 3 was stored before)", n)
	}
	if got := countRows(t, s, "events"); got != 4 {
		t.Errorf("events has %d rows, want 4", got)
	}
}
