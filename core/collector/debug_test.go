package collector

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

type staticKeys map[string]Source

func (k staticKeys) Lookup(key string) (Source, bool) { s, ok := k[key]; return s, ok }

// The collector records what became of a watched source's requests for
// the console's live debugger, and nothing of the others.
func TestCollectorFeedsTheDebugger(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	q, err := queue.New(rdb, queue.Options{Prefix: prefix, Shards: 2})
	testenv.Must(t, err, "queue")
	log := slog.New(slog.DiscardHandler)
	cfg := config.Collector{MaxEventBytes: 32 << 10, MaxRequestBytes: 500 << 10, MaxBatchMessages: 100, MaxDepth: 8, MaxKeys: 50,
		MaxFutureSkew: time.Hour, EnqueueTimeout: 3 * time.Second}
	keys := staticKeys{"wk_web": {WorkspaceID: "ws", SourceID: "web"}, "wk_app": {WorkspaceID: "ws", SourceID: "app"}}
	c := New(q, keys, cfg, log)
	rec := debugger.NewRecorder(rdb, prefix, log)
	c.SetDebugger(rec)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	c.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	post := func(key, body string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/v1/batch", strings.NewReader(body))
		req.SetBasicAuth(key, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		testenv.Must(t, err, "post")
		resp.Body.Close()
		return resp.StatusCode
	}
	testenv.Must(t, debugger.Watch(ctx, rdb, prefix, "ws", "web"), "watch")
	testenv.Must(t, rec.Refresh(ctx), "refresh")

	if s := post("wk_web", `{"batch":[{"type":"track","event":"Product Added","messageId":"ok-1","anonymousId":"a1"}]}`); s != 200 {
		t.Fatalf("valid batch: %d", s)
	}
	if s := post("wk_web", `{"batch":[{"type":"track","event":"Fine","messageId":"ok-2","anonymousId":"a1"},{"type":"track","event":"No id","messageId":"bad-1"}]}`); s != 400 {
		t.Fatalf("batch with an invalid message: %d", s)
	}
	if s := post("wk_web", `{"batch":[`); s != 400 {
		t.Fatalf("broken JSON: %d", s)
	}
	if s := post("wk_app", `{"batch":[{"type":"track","event":"Unwatched","messageId":"app-1","anonymousId":"a2"}]}`); s != 200 {
		t.Fatalf("other source: %d", s)
	}

	got, err := debugger.Read(ctx, rdb, prefix, "ws", "web", "", 50)
	testenv.Must(t, err, "read")
	type row struct{ outcome, message, reason string }
	var rows []row
	for _, e := range got {
		rows = append(rows, row{e.Outcome, e.MessageID, e.Reason})
	}
	if len(rows) != 4 {
		t.Fatalf("entries %+v, want 4", rows)
	}
	if rows[0] != (row{"accepted", "ok-1", ""}) {
		t.Errorf("first entry %+v, want ok-1 accepted", rows[0])
	}
	if rows[1].outcome != "rejected" || !strings.HasPrefix(rows[1].reason, "message 1: ") || !strings.Contains(rows[1].reason, "anonymousId") {
		t.Errorf("second entry %+v, want message 1's problem", rows[1])
	}
	if rows[2].outcome != "rejected" || rows[2].message != "ok-2" || !strings.Contains(rows[2].reason, "invalid messages") {
		t.Errorf("third entry %+v, want the valid message refused with its request", rows[2])
	}
	if rows[3].outcome != "rejected" || rows[3].message != "" || rows[3].reason == "" {
		t.Errorf("fourth entry %+v, want the broken request with its reason", rows[3])
	}
	if other, _ := debugger.Read(ctx, rdb, prefix, "ws", "app", "", 50); len(other) != 0 {
		t.Errorf("an unwatched source's requests were recorded: %+v", other)
	}
}
