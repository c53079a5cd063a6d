package actions_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/actions"
	"github.com/eddy-cdp/eddy/core/collector"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// keys knows one write key.
type keys map[string]collector.Source

func (k keys) Lookup(key string) (collector.Source, bool) { s, ok := k[key]; return s, ok }

// sse reads a Server-Sent Events stream.
type sse struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

type message struct {
	id, event string
	action    actions.Action
}

// next returns the next event (comments and retry lines skipped).
func (s *sse) next(timeout time.Duration) (message, bool) {
	s.t.Helper()
	got := make(chan message, 1)
	go func() {
		var m message
		for s.sc.Scan() {
			line := s.sc.Text()
			switch {
			case line == "":
				if m.event != "" {
					got <- m
					return
				}
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &m.action); err != nil {
					s.t.Errorf("data %q: %v", line, err)
				}
			}
		}
		close(got)
	}()
	select {
	case m, ok := <-got:
		return m, ok
	case <-time.After(timeout):
		return message{}, false
	}
}

func open(t *testing.T, base, query, lastID string) (*sse, int) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/v1/actions?"+query, nil)
	testenv.Must(t, err, "request")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	testenv.Must(t, err, "get")
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}, resp.StatusCode
}

func TestActionsReachTheVisitorsPages(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	hub := actions.NewHub(rdb, prefix, log)
	go hub.Run(ctx)
	select {
	case <-hub.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the hub did not subscribe")
	}
	streams := &actions.Streams{Keys: keys{"wk_shop": {WorkspaceID: "ws-1", SourceID: "src-1"}, "wk_other": {WorkspaceID: "ws-2"}},
		Hub: hub, Redis: rdb, Prefix: prefix, Max: 3, Heartbeat: time.Hour}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/v1/actions", streams.Serve)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer streams.Close()

	publish := func(ws, anon, typ string) {
		t.Helper()
		testenv.Must(t, actions.Publish(ctx, rdb, prefix, ws, map[string][]actions.Action{
			anon: {{MessageID: "act-" + typ, Type: typ, Data: json.RawMessage(`{"n":"` + typ + `"}`), At: time.Now().UTC()}},
		}), "publish")
	}

	// An action published before the page connected reaches it (it was
	// asked for by the page view that loaded the page).
	publish("ws-1", "anon-1", "early")
	page, status := open(t, srv.URL, "writeKey=wk_shop&anonymousId=anon-1", "")
	if status != http.StatusOK || page.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", status, page.resp.Header)
	}
	m, ok := page.next(5 * time.Second)
	if !ok || m.event != "action" || m.action.Type != "early" || m.id != m.action.ID || string(m.action.Data) != `{"n":"early"}` {
		t.Fatalf("first event %+v", m)
	}
	// Live ones too; another visitor's and another workspace's don't.
	publish("ws-1", "anon-2", "not-mine")
	publish("ws-2", "anon-1", "other-workspace")
	publish("ws-1", "anon-1", "live")
	m, ok = page.next(5 * time.Second)
	if !ok || m.action.Type != "live" || m.action.MessageID != "act-live" {
		t.Fatalf("live event %+v", m)
	}
	last := m.id

	// A page that reconnects with Last-Event-ID gets what came after it,
	// once.
	publish("ws-1", "anon-1", "while-away")
	again, _ := open(t, srv.URL, "writeKey=wk_shop&anonymousId=anon-1", last)
	m, ok = again.next(5 * time.Second)
	if !ok || m.action.Type != "while-away" {
		t.Fatalf("after reconnecting: %+v", m)
	}
	if m, ok := again.next(300 * time.Millisecond); ok {
		t.Fatalf("an action came twice: %+v", m)
	}

	// Bad requests, and the cap on streams (two are open).
	for _, c := range []struct {
		query, lastID string
		want          int
	}{
		{"anonymousId=anon-1", "", http.StatusUnauthorized},
		{"writeKey=nope&anonymousId=anon-1", "", http.StatusUnauthorized},
		{"writeKey=wk_shop", "", http.StatusBadRequest},
		{"writeKey=wk_shop&anonymousId=" + strings.Repeat("a", actions.MaxAnonymousIDLen+1), "", http.StatusBadRequest},
		{"writeKey=wk_shop&anonymousId=anon-1", "not-an-id", http.StatusBadRequest},
	} {
		if _, status := open(t, srv.URL, c.query, c.lastID); status != c.want {
			t.Errorf("%s (Last-Event-ID %q): %d, want %d", c.query, c.lastID, status, c.want)
		}
	}
	open(t, srv.URL, "writeKey=wk_other&anonymousId=x", "")
	if _, status := open(t, srv.URL, "writeKey=wk_other&anonymousId=y", ""); status != http.StatusServiceUnavailable {
		t.Errorf("a fourth stream: %d, want 503", status)
	}
}
