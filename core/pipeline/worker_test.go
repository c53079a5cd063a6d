package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

func TestRow(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	base := event.Entry{WorkspaceID: "w", SourceID: "s", MessageID: "m", Type: "track", ReceivedAt: at, Timestamp: at, IP: "203.0.113.9"}
	tests := []struct {
		name    string
		payload string
		batch   string
		check   func(t *testing.T, r store.Event)
	}{
		{"ids, event and objects", `{"event":"Order Completed","userId":7,"anonymousId":"a","properties":{"revenue":1},"traits":null,"integrations":{"All":true}}`, "",
			func(t *testing.T, r store.Event) {
				if r.Event != "Order Completed" || r.UserID != "7" || r.AnonymousID != "a" || string(r.Properties) != `{"revenue":1}` || r.Traits != nil || string(r.Integrations) != `{"All":true}` {
					t.Fatalf("row = %+v", r)
				}
			}},
		{"collector's IP when context has none", `{"event":"x","context":{"locale":"fr"}}`, "",
			func(t *testing.T, r store.Event) {
				if r.IP != "203.0.113.9" || string(r.Context) != `{"locale":"fr"}` {
					t.Fatalf("ip %q context %s", r.IP, r.Context)
				}
			}},
		{"context.ip wins when valid", `{"event":"x","context":{"ip":"2001:db8::1"}}`, "",
			func(t *testing.T, r store.Event) {
				if r.IP != "2001:db8::1" {
					t.Fatalf("ip %q", r.IP)
				}
			}},
		{"invalid context.ip ignored", `{"event":"x","context":{"ip":"not an ip"}}`, "",
			func(t *testing.T, r store.Event) {
				if r.IP != "203.0.113.9" {
					t.Fatalf("ip %q", r.IP)
				}
			}},
		{"batch context under message context", `{"event":"x","context":{"locale":"fr"}}`, `{"locale":"en","library":{"name":"sdk"}}`,
			func(t *testing.T, r store.Event) {
				if string(r.Context) != `{"library":{"name":"sdk"},"locale":"fr"}` {
					t.Fatalf("context %s", r.Context)
				}
			}},
		{"batch context alone", `{"event":"x"}`, `{"library":{"name":"sdk"}}`,
			func(t *testing.T, r store.Event) {
				if string(r.Context) != `{"library":{"name":"sdk"}}` {
					t.Fatalf("context %s", r.Context)
				}
			}},
		{"client's original time kept", `{"event":"x","originalTimestamp":"2026-11-22T09:00:00Z","timestamp":"2026-11-22T09:30:00Z"}`, "",
			func(t *testing.T, r store.Event) {
				if !r.OriginalTimestamp.Equal(at.Add(-time.Hour)) || !r.Timestamp.Equal(at) {
					t.Fatalf("original %s timestamp %s", r.OriginalTimestamp, r.Timestamp)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			e.Payload = []byte(tt.payload)
			if tt.batch != "" {
				e.Context = []byte(tt.batch)
			}
			r, err := Row(e)
			if err != nil {
				t.Fatalf("Row: %v", err)
			}
			tt.check(t, r)
		})
	}
	if _, err := Row(event.Entry{Payload: []byte(`{"event":`)}); err == nil {
		t.Fatal("Row accepted a payload that is not JSON")
	}
}

// A message PostgreSQL refuses goes to the dead-letter stream with its
// error after the bounded attempts; the rest of its batch is stored; replay
// puts it back.
func TestPoisonMessageIsDeadLetteredAndReplayable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, dbURL), "migrate")
	st, err := store.Open(ctx, dbURL)
	testenv.Must(t, err, "open store")
	defer st.Close()
	testenv.Must(t, st.SyncWorkspaces(ctx, []store.WorkspaceSpec{{Slug: "shop", Name: "Shop", Sources: []store.SourceSpec{{Slug: "web", Name: "Web", WriteKey: "k"}}}}), "sync")
	keys, err := st.SourceKeys(ctx)
	testenv.Must(t, err, "keys")
	rdb, prefix := testenv.Redis(t)
	q, err := queue.New(rdb, queue.Options{Prefix: prefix, Shards: 2})
	testenv.Must(t, err, "queue")

	now := time.Now().UTC().Truncate(time.Microsecond)
	var entries []event.Entry
	for i := 0; i < 6; i++ {
		payload := fmt.Sprintf(`{"event":"Viewed","anonymousId":"v1","properties":{"n":%d}}`, i)
		if i == 3 {
			payload = `{"event":"Viewed","anonymousId":"v1","properties":{"n":1e999999}}`
		}
		entries = append(entries, event.Entry{WorkspaceID: keys[0].WorkspaceID, SourceID: keys[0].SourceID, MessageID: fmt.Sprintf("m%d", i),
			Type: "track", ShardKey: "v1", ReceivedAt: now, Timestamp: now, Payload: []byte(payload)})
	}
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	wk := New(q, st, Options{MaxAttempts: 2, LeaseTTL: time.Second, Logger: slog.New(slog.DiscardHandler)})
	go func() { done <- wk.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	testenv.Eventually(t, 30*time.Second, "5 stored and 1 dead letter", func() bool {
		n, _ := q.DeadLetterCount(ctx, Group)
		return countEvents(t, st) == 5 && n == 1
	})
	dead, err := q.DeadLetters(ctx, Group, "", 10)
	testenv.Must(t, err, "dead letters")
	if len(dead) != 1 || dead[0].Entry.MessageID != "m3" || !strings.Contains(dead[0].Reason, "after 2 attempts") || !strings.Contains(dead[0].Reason, "numeric") {
		t.Fatalf("dead letters = %+v, want m3 refused after 2 attempts for numeric overflow", dead)
	}

	n, err := q.Replay(ctx, Group, nil)
	testenv.Must(t, err, "replay")
	if n != 1 {
		t.Fatalf("replayed %d, want 1", n)
	}
	// Replayed, it fails again and returns to the dead-letter stream; the
	// stored events are not doubled.
	testenv.Eventually(t, 30*time.Second, "the replayed poison back in the DLQ", func() bool {
		d, _ := q.DeadLetters(ctx, Group, "", 10)
		return len(d) == 1 && d[0].ID != dead[0].ID
	})
	if got := countEvents(t, st); got != 5 {
		t.Fatalf("%d events stored after replay, want 5", got)
	}
}

func countEvents(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	testenv.Must(t, st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n), "count")
	return n
}

// recordingWriter is a Writer that records what it is given.
type recordingWriter struct{ rows []store.Event }

func (w *recordingWriter) InsertEvents(_ context.Context, rows []store.Event) (int64, error) {
	w.rows = append(w.rows, rows...)
	return int64(len(rows)), nil
}

// A deletion job's forget entry stores nothing and is acknowledged, not
// dead-lettered as an event without a payload.
func TestForgetEntryIsAcknowledgedAndStoresNothing(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	forget := event.Entry{WorkspaceID: "w", MessageID: "forget-1", Type: event.TypeForget, ShardKey: "a1", ReceivedAt: at,
		Payload: []byte(`{"job_id":"j","identities":[{"kind":"anonymous_id","value":"a1"}]}`)}
	track := event.Entry{WorkspaceID: "w", SourceID: "s", MessageID: "m1", Type: "track", ShardKey: "a2", ReceivedAt: at, Timestamp: at,
		Payload: []byte(`{"event":"Viewed","anonymousId":"a2"}`)}
	tests := []struct {
		name     string
		entries  []event.Entry
		wantRows []string
	}{
		{"forget alone", []event.Entry{forget}, nil},
		{"forget among events", []event.Entry{track, forget}, []string{"m1"}},
		{"forget with an empty payload", []event.Entry{{WorkspaceID: "w", MessageID: "f", Type: event.TypeForget, ShardKey: "a1"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &recordingWriter{}
			wk := New(nil, w, Options{Logger: slog.New(slog.DiscardHandler)})
			b := queue.Batch{}
			for i, e := range tc.entries {
				b.Messages = append(b.Messages, queue.Message{ID: fmt.Sprintf("1-%d", i), Entry: e})
			}
			dead, err := wk.Handle(context.Background(), b)
			testenv.Must(t, err, "handle")
			if len(dead) != 0 {
				t.Errorf("Handle dead-lettered %+v, want nothing", dead)
			}
			var got []string
			for _, r := range w.rows {
				got = append(got, r.MessageID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantRows) {
				t.Errorf("stored %v, want %v", got, tc.wantRows)
			}
		})
	}
}
