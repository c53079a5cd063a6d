package main

// The app is tested as Eddy runs it: built for wasip1 with
// plugintest.Build, loaded into a real wasmhost.Runtime, its state in the
// machine's Redis. (main.go builds only for wasip1; this file runs on the
// host.)

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/wasmhost"
	"github.com/eddy-cdp/eddy/sdk/eddywasm"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

var (
	buildOnce sync.Once
	wasm      []byte
	rt        *wasmhost.Runtime
)

func TestMain(m *testing.M) {
	code := m.Run()
	if rt != nil {
		_ = rt.Close(context.Background())
	}
	os.Exit(code)
}

// runtime builds the app once and returns the runtime shared by the tests
// (compiling dominates under the race detector).
func runtime(t *testing.T) *wasmhost.Runtime {
	t.Helper()
	buildOnce.Do(func() {
		m := plugintest.Build(t, ".")
		var err error
		if wasm, err = os.ReadFile(m.Artifact()); err != nil {
			t.Fatalf("read the module: %v", err)
		}
		if rt, err = wasmhost.NewRuntime(context.Background(), 512, ""); err != nil {
			t.Fatalf("runtime: %v", err)
		}
	})
	if rt == nil {
		t.Fatal("the app was not built (see the first test)")
	}
	return rt
}

// install loads the app as one installation with its Redis state.
func install(t *testing.T, id, config string) (*wasmhost.Module, *wasmhost.RedisState, *redis.Client) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("these tests need Redis at 127.0.0.1:6379: %v", err)
	}
	prefix := fmt.Sprintf("eddytest-cart-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
	state, err := wasmhost.NewRedisState(rdb, prefix, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = state.Clear(context.Background()) })
	m, err := runtime(t).Load(ctx, "app.cart_recovery/"+id, wasm, []byte(config), wasmhost.Options{State: state,
		CallTimeout: 30 * time.Second}) // generous: the test machine's cores are shared
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, state, rdb
}

var ended = time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)

// liveSession writes a session as the live API shows it; cart is the
// cart's JSON ("null" for none).
func liveSession(id, userID, cart string, orders int) json.RawMessage {
	user := "null"
	if userID != "" {
		user = `"` + userID + `"`
	}
	return json.RawMessage(fmt.Sprintf(`{"id":%q,"anonymous_id":"anon-%s","user_id":%s,"profile_id":null,
		"started_at":"2026-11-22T10:00:00Z","last_event_at":%q,"duration_seconds":1800,"events":7,"page_views":4,
		"channel_group":"direct","cart":%s,"orders_count":%d,"revenue":0,"converted":%t,"bounced":false,"closed":true,
		"updated_at":"2026-11-22T10:31:00Z"}`, id, id, user, ended.Format(time.RFC3339), cart, orders, orders > 0))
}

const mugCart = `{"items":[{"product_id":"p1","sku":"MUG-1","name":"Mug","price":9.5,"quantity":2}],"value":19}`

func TestClosedSessionsWithAnAbandonedCart(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		config  string
		change  eddywasm.SessionChange
		want    bool   // one action
		wantTyp string // its type
	}{
		{"closed with a cart and no order", `{}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s1", "u1", mugCart, 0)}, true, "cart_abandoned"},
		{"closed without a cart", `{}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s2", "", "null", 0)}, false, ""},
		{"closed with an empty cart", `{}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s3", "", `{"items":[],"value":0}`, 0)}, false, ""},
		{"closed with a cart and an order", `{}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s4", "", mugCart, 1)}, false, ""},
		{"still open", `{}`, eddywasm.SessionChange{Kind: "updated", Session: liveSession("s5", "", mugCart, 0)}, false, ""},
		{"under the minimum value", `{"min_cart_value":19.01}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s6", "", mugCart, 0)}, false, ""},
		{"at the minimum value", `{"min_cart_value":19}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s7", "", mugCart, 0)}, true, "cart_abandoned"},
		{"configured action type", `{"action_type":"webhook","currency":"EUR"}`, eddywasm.SessionChange{Kind: "closed", Session: liveSession("s8", "u8", mugCart, 0)}, true, "webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := install(t, "inst-1", tt.config)
			actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{tt.change})
			if err != nil {
				t.Fatalf("OnSessions: %v", err)
			}
			if !tt.want {
				if len(actions) != 0 {
					t.Fatalf("actions = %+v, want none", actions)
				}
				return
			}
			if len(actions) != 1 {
				t.Fatalf("actions = %+v, want one", actions)
			}
			var s struct {
				ID          string  `json:"id"`
				AnonymousID string  `json:"anonymous_id"`
				UserID      *string `json:"user_id"`
			}
			_ = json.Unmarshal(tt.change.Session, &s)
			a := actions[0]
			if a.Type != tt.wantTyp || a.AnonymousID != s.AnonymousID || (s.UserID != nil && a.UserID != *s.UserID) {
				t.Fatalf("action = %+v, want type %s for %s/%v", a, tt.wantTyp, s.AnonymousID, s.UserID)
			}
			var data struct {
				SessionID string           `json:"session_id"`
				Items     []map[string]any `json:"items"`
				Value     float64          `json:"value"`
				Currency  string           `json:"currency"`
				EndedAt   time.Time        `json:"ended_at"`
			}
			if err := json.Unmarshal(a.Data, &data); err != nil {
				t.Fatalf("data %s: %v", a.Data, err)
			}
			wantCurrency := ""
			if strings.Contains(tt.config, "EUR") {
				wantCurrency = "EUR"
			}
			if data.SessionID != s.ID || data.Value != 19 || len(data.Items) != 1 || data.Items[0]["sku"] != "MUG-1" ||
				data.Items[0]["quantity"] != 2.0 || data.Currency != wantCurrency || !data.EndedAt.Equal(ended) {
				t.Fatalf("data = %s", a.Data)
			}
		})
	}
}

func TestRedeliveredChangeAsksForNothing(t *testing.T) {
	ctx := context.Background()
	m, _, _ := install(t, "inst-1", `{}`)
	closed := eddywasm.SessionChange{Kind: "closed", Session: liveSession("s1", "", mugCart, 0)}
	// Twice in one batch, then again in the next.
	actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{closed, closed})
	if err != nil || len(actions) != 1 {
		t.Fatalf("first delivery: %+v, %v; want one action", actions, err)
	}
	if actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{closed}); err != nil || len(actions) != 0 {
		t.Fatalf("redelivery: %+v, %v; want none", actions, err)
	}
	// Another session still asks for its own.
	other := eddywasm.SessionChange{Kind: "closed", Session: liveSession("s2", "", mugCart, 0)}
	if actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{closed, other}); err != nil || len(actions) != 1 ||
		!strings.Contains(string(actions[0].Data), `"session_id":"s2"`) {
		t.Fatalf("another session: %+v, %v; want one action for s2", actions, err)
	}
}

// The state stays one key of bounded size however many sessions close:
// the oldest handled ids make room for new ones.
func TestStateStaysBounded(t *testing.T) {
	ctx := context.Background()
	m, state, rdb := install(t, "inst-1", `{}`)
	const n = 600 // more than the app remembers (500)
	changes := make([]eddywasm.SessionChange, n)
	for i := range changes {
		changes[i] = eddywasm.SessionChange{Kind: "closed", Session: liveSession(fmt.Sprintf("0f8fad5b-d9cb-469f-a165-%012d", i), "", mugCart, 0)}
	}
	start := time.Now()
	actions, err := m.OnSessions(ctx, changes)
	t.Logf("%d closed sessions in one call: %s", n, time.Since(start))
	if err != nil || len(actions) != n {
		t.Fatalf("%d closed sessions: %d actions, %v", n, len(actions), err)
	}
	fields, err := rdb.HGetAll(ctx, state.Key()).Result()
	if err != nil || len(fields) != 1 || len(fields["handled_sessions"]) > eddywasm.MaxStateValueBytes {
		t.Fatalf("state = %d keys, handled_sessions %d bytes (%v); want one key within %d bytes",
			len(fields), len(fields["handled_sessions"]), err, eddywasm.MaxStateValueBytes)
	}
	// The newest ids are remembered, the oldest forgotten.
	if actions, err := m.OnSessions(ctx, changes[n-1:]); err != nil || len(actions) != 0 {
		t.Fatalf("the newest session again: %+v, %v; want none", actions, err)
	}
	if actions, err := m.OnSessions(ctx, changes[:1]); err != nil || len(actions) != 1 {
		t.Fatalf("the oldest session again: %+v, %v; want it forgotten, so one action", actions, err)
	}
}

func TestInstallationsDoNotShareState(t *testing.T) {
	ctx := context.Background()
	a, _, _ := install(t, "inst-a", `{}`)
	b, _, _ := install(t, "inst-b", `{"action_type":"webhook"}`)
	closed := []eddywasm.SessionChange{{Kind: "closed", Session: liveSession("s1", "", mugCart, 0)}}
	for _, step := range []struct {
		name string
		m    *wasmhost.Module
		want int
	}{
		{"a first", a, 1}, {"b, which has not seen it", b, 1}, {"a again", a, 0}, {"b again", b, 0},
	} {
		actions, err := step.m.OnSessions(ctx, closed)
		if err != nil || len(actions) != step.want {
			t.Fatalf("%s: %+v, %v; want %d actions", step.name, actions, err, step.want)
		}
	}
}

func TestConfigurationIsCheckedAtLoad(t *testing.T) {
	tests := []struct{ config, field string }{
		{`{"min_cart_value":-1}`, "config.min_cart_value"},
		{`{"min_cart_value":"ten"}`, "min_cart_value"},
		{`{"action_type":""}`, "config.action_type"},
		{`{"action_type":"Cart Abandoned"}`, "config.action_type"},
		{`{"currency":"euro"}`, "config.currency"},
		{`{"url":"https://example.com"}`, "url"},
	}
	for _, tt := range tests {
		_, err := runtime(t).Load(context.Background(), "app.cart_recovery/bad", wasm, []byte(tt.config), wasmhost.Options{})
		var ce *wasmhost.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Message, tt.field) {
			t.Errorf("%s: %v, want a configuration error naming %s", tt.config, err, tt.field)
		}
	}
}
