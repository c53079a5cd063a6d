package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/event"
	pluginrt "github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// The routes the console needs besides the resources' own: a source's live
// debugger, a sink's dead letters, and the semantic layer with a session.

func TestSourceDebugger(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	ada.source("shop", "web")
	ada.source("shop", "app")
	viewer := p.member("acme", "vic@example.com", "viewer")
	ctx := context.Background()
	ws, err := p.store.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	web, err := p.store.Source(ctx, ws, "web")
	testenv.Must(t, err, "source")
	app, err := p.store.Source(ctx, ws, "app")
	testenv.Must(t, err, "source")

	type page struct {
		Data          []debugger.Entry `json:"data"`
		Cursor        string           `json:"cursor"`
		WatchingUntil time.Time        `json:"watching_until"`
	}
	rec := debugger.NewRecorder(p.rdb, p.prefix, slog.New(slog.DiscardHandler))
	testenv.Must(t, rec.Refresh(ctx), "refresh")
	if rec.Watching(ws.ID, web.ID) {
		t.Fatal("a source nobody opened the debugger of is watched")
	}

	// Opening the debugger (a viewer may) watches the source, and only it.
	var first page
	viewer.must(http.StatusOK, "GET", "/workspaces/shop/sources/web/debugger", nil, &first)
	if len(first.Data) != 0 || first.Cursor != "" || time.Until(first.WatchingUntil) < time.Minute {
		t.Fatalf("first read %+v", first)
	}
	testenv.Must(t, rec.Refresh(ctx), "refresh")
	if !rec.Watching(ws.ID, web.ID) || rec.Watching(ws.ID, app.ID) {
		t.Fatalf("watching web %v, app %v: want web only", rec.Watching(ws.ID, web.ID), rec.Watching(ws.ID, app.ID))
	}

	payload := `{"type":"track","event":"Product Added","messageId":"m-1","anonymousId":"anon-1","properties":{"sku":"A1"}}`
	accepted := debugger.Entry{Stage: debugger.StageCollector, Outcome: debugger.Accepted}
	accepted.Describe([]byte(payload))
	refused := debugger.Entry{Stage: debugger.StageConsent, Outcome: debugger.Rejected, Reason: "no consent"}
	refused.Describe([]byte(`{"type":"page","messageId":"m-2","userId":"u-2","properties":{"big":"` + strings.Repeat("x", debugger.MaxPayloadBytes) + `"}}`))
	rec.Record(ctx, ws.ID, web.ID, accepted, refused)
	rec.Record(ctx, ws.ID, app.ID, accepted) // another source's entries stay there

	var got page
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/web/debugger", nil, &got)
	if len(got.Data) != 2 {
		t.Fatalf("entries %+v, want the two recorded", got.Data)
	}
	a, r := got.Data[0], got.Data[1]
	if a.Outcome != "accepted" || a.Stage != "collector" || a.MessageID != "m-1" || a.Type != "track" ||
		a.Event != "Product Added" || a.AnonymousID != "anon-1" || !jsonEqual(a.Payload, payload) {
		t.Errorf("accepted entry %+v", a)
	}
	if r.Outcome != "rejected" || r.Stage != "consent" || r.Reason != "no consent" || r.MessageID != "m-2" || r.UserID != "u-2" ||
		!strings.Contains(string(r.Payload), `"_omitted"`) || len(r.Payload) > 200 {
		t.Errorf("rejected entry %+v: its oversized payload must be replaced by a note", r)
	}
	if got.Cursor != r.ID {
		t.Errorf("cursor %q, want the last entry's id %q", got.Cursor, r.ID)
	}
	var next page
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/web/debugger?after="+url.QueryEscape(got.Cursor), nil, &next)
	if len(next.Data) != 0 || next.Cursor != got.Cursor {
		t.Errorf("after the cursor: %+v, want nothing new and the same cursor", next)
	}
	rec.Record(ctx, ws.ID, web.ID, accepted)
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/web/debugger?after="+url.QueryEscape(got.Cursor), nil, &next)
	if len(next.Data) != 1 || next.Data[0].MessageID != "m-1" {
		t.Errorf("after the cursor: %+v, want the one new entry", next.Data)
	}
	var limited page
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/web/debugger?limit=1", nil, &limited)
	if len(limited.Data) != 1 || limited.Data[0].ID != next.Data[0].ID {
		t.Errorf("limit=1: %+v, want the latest entry", limited.Data)
	}

	for _, bad := range []string{"?after=0-0%3BDROP", "?after=x", "?limit=0", "?limit=201", "?limit=x"} {
		ada.expect(http.StatusBadRequest, "invalid_request", "GET", "/workspaces/shop/sources/web/debugger"+bad, nil)
	}
	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/sources/ghost/debugger", nil)
}

func TestSinkDeadLetters(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	viewer := p.member("acme", "vic@example.com", "viewer")
	hook := ada.must(http.StatusCreated, "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.webhook",
		"config": map[string]any{"url": "https://hooks.example.com/in", "secret": "hmac-secret-0123456789"}}, nil).installation(t)
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.tagger"}, nil)

	// Three messages the sink's delivery dead-letters, as its loop does.
	ctx := context.Background()
	q, err := queue.New(p.rdb, queue.Options{Prefix: pluginrt.SinkQueuePrefix(p.prefix, hook.ID), Shards: pluginrt.SinkShards})
	testenv.Must(t, err, "sink queue")
	testenv.Must(t, q.EnsureGroup(ctx, pluginrt.DeliverGroup), "group")
	now := time.Now().UTC()
	var entries []event.Entry
	for _, id := range []string{"m-1", "m-2", "m-3"} {
		entries = append(entries, event.Entry{WorkspaceID: "ws", SourceID: "src", MessageID: id, Type: "track", ShardKey: id,
			ReceivedAt: now, Timestamp: now, Payload: []byte(`{"type":"track","event":"Order Completed","messageId":"` + id + `"}`)})
	}
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, queue.ConsumerOptions{Group: pluginrt.DeliverGroup, Block: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
			func(_ context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
				dead := make([]queue.DeadLetter, len(b.Messages))
				for i, m := range b.Messages {
					dead[i] = queue.DeadLetter{Message: m, Reason: "endpoint answered 400"}
				}
				return dead, nil
			})
	}()
	testenv.Eventually(t, 10*time.Second, "three dead letters", func() bool {
		n, err := q.DeadLetterCount(ctx, pluginrt.DeliverGroup)
		return err == nil && n == 3
	})
	cancel()
	<-done

	type deadPage struct {
		Data []struct {
			ID, Reason, Type string
			MessageID        string `json:"message_id"`
			Event            *string
			Attempts         int
			FailedAt         time.Time `json:"failed_at"`
			Payload          json.RawMessage
		} `json:"data"`
		Total      int    `json:"total"`
		NextCursor string `json:"next_cursor"`
	}
	var pg deadPage
	viewer.must(http.StatusOK, "GET", "/workspaces/shop/plugins/sink.webhook/dead-letters?limit=2", nil, &pg)
	if len(pg.Data) != 2 || pg.Total != 3 || pg.NextCursor != pg.Data[1].ID {
		t.Fatalf("first page %+v", pg)
	}
	d := pg.Data[0]
	if d.Reason != "endpoint answered 400" || d.Type != "track" || d.Event == nil || *d.Event != "Order Completed" ||
		d.FailedAt.IsZero() || !strings.Contains(string(d.Payload), `"Order Completed"`) {
		t.Errorf("dead letter %+v", d)
	}
	var rest deadPage
	viewer.must(http.StatusOK, "GET", "/workspaces/shop/plugins/sink.webhook/dead-letters?after="+pg.NextCursor, nil, &rest)
	if len(rest.Data) != 1 || rest.NextCursor != "" {
		t.Fatalf("second page %+v", rest)
	}
	seen := map[string]bool{pg.Data[0].MessageID: true, pg.Data[1].MessageID: true, rest.Data[0].MessageID: true}
	if len(seen) != 3 {
		t.Errorf("the pages repeat a message: %v", seen)
	}

	// A viewer may not replay; a member may, one or all.
	viewer.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/plugins/sink.webhook/dead-letters/replay", map[string]any{})
	var out struct{ Replayed int }
	ada.must(http.StatusOK, "POST", "/workspaces/shop/plugins/sink.webhook/dead-letters/replay",
		map[string]any{"ids": []string{pg.Data[0].ID, "1-1"}}, &out)
	if out.Replayed != 1 {
		t.Errorf("replayed %d, want 1 (the unknown id is skipped)", out.Replayed)
	}
	if n, _ := q.DeadLetterCount(ctx, pluginrt.DeliverGroup); n != 2 {
		t.Errorf("%d dead letters left, want 2", n)
	}
	ada.must(http.StatusOK, "POST", "/workspaces/shop/plugins/sink.webhook/dead-letters/replay", map[string]any{}, &out)
	if n, _ := q.DeadLetterCount(ctx, pluginrt.DeliverGroup); out.Replayed != 2 || n != 0 {
		t.Errorf("replay all: replayed %d, %d left", out.Replayed, n)
	}
	// The replayed messages are back in the sink's queue.
	stats, err := q.Stats(ctx)
	testenv.Must(t, err, "stats")
	var queued int64
	for _, s := range stats {
		queued += s.Length
	}
	if queued != 6 {
		t.Errorf("the sink's queue holds %d entries, want the 3 delivered and the 3 replayed", queued)
	}
	var audited int
	testenv.Must(t, p.store.Pool().QueryRow(ctx,
		`SELECT count(*) FROM audit_log WHERE action = 'plugin.dead_letters.replay' AND workspace = 'shop' AND target_id = $1`, hook.ID).Scan(&audited), "audit")
	if n := audited; n != 2 {
		t.Errorf("%d replays audited, want 2", n)
	}

	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/plugins/processor.tagger/dead-letters", nil)
	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/plugins/sink.mysql/dead-letters", nil)
	for _, bad := range []map[string]any{{"ids": []string{"nope"}}, {"ids": "1-1"}, {"other": true}} {
		ada.expect(http.StatusBadRequest, "invalid_request", "POST", "/workspaces/shop/plugins/sink.webhook/dead-letters/replay", bad)
	}
	ada.expect(http.StatusBadRequest, "invalid_request", "GET", "/workspaces/shop/plugins/sink.webhook/dead-letters?limit=501", nil)
}

func TestCubeWithConsoleSession(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	viewer := p.member("acme", "vic@example.com", "viewer")
	eve := p.newAdmin("eve@example.com")
	eve.org("evil")
	eve.workspace("evil", "lair")

	query := map[string]any{"query": map[string]any{"measures": []string{"events.count"}}}
	var load struct {
		Data  []map[string]any
		Query map[string]any
	}
	viewer.must(http.StatusOK, "POST", "/workspaces/shop/cube/load", query, &load)
	if len(load.Data) != 1 || load.Data[0]["events.count"] == nil {
		t.Fatalf("load %+v", load)
	}
	var meta struct{ Cubes []struct{ Name string } }
	viewer.must(http.StatusOK, "GET", "/workspaces/shop/cube/meta", nil, &meta)
	if len(meta.Cubes) < 5 {
		t.Errorf("meta lists %d cubes", len(meta.Cubes))
	}
	var sql struct {
		SQL struct{ SQL []any } `json:"sql"`
	}
	ada.must(http.StatusOK, "GET", "/workspaces/shop/cube/sql?query="+url.QueryEscape(`{"measures":["events.count"]}`), nil, &sql)
	if len(sql.SQL.SQL) != 2 {
		t.Errorf("sql %+v", sql)
	}
	// A bad query answers Cube's error shape; another organization's
	// workspace is not found.
	r := viewer.do("POST", "/workspaces/shop/cube/load", map[string]any{"query": map[string]any{"measures": []string{"events.nope"}}})
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"error":"`) {
		t.Errorf("bad query: %d %s", r.status, r.body)
	}
	eve.expect(http.StatusNotFound, "not_found", "POST", "/workspaces/shop/cube/load", query)
	eve.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/cube/meta", nil)
}

func jsonEqual(raw json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && jsonString(a) == jsonString(b)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
