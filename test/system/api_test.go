package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// console is an admin logged in to the management API through a cookie
// session, as the console is.
type console struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

// ownerConsole creates an admin who owns the default organization (where
// plugins.yaml's workspaces live) and logs them in at base.
func (e *env) ownerConsole(base string) *console {
	e.t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, e.dbURL)
	testenv.Must(e.t, err, "open store")
	defer st.Close()
	hash, err := auth.HashPassword("a long enough password")
	testenv.Must(e.t, err, "hash")
	admin, err := st.CreateAdmin(ctx, "owner@example.com", "Owner", hash)
	testenv.Must(e.t, err, "create admin")
	org, err := st.OrganizationBySlug(ctx, store.DefaultOrganization)
	testenv.Must(e.t, err, "default organization")
	testenv.Must(e.t, st.AddMember(ctx, store.Change{Actor: store.Actor{Type: "system"}}, org, admin.ID, auth.RoleOwner), "add owner")

	jar, _ := cookiejar.New(nil)
	c := &console{t: e.t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	var login struct {
		CSRFToken string `json:"csrf_token"`
	}
	c.call(http.StatusOK, "POST", "/auth/login", `{"email":"owner@example.com","password":"a long enough password"}`, &login)
	c.csrf = login.CSRFToken
	return c
}

// call sends a request to the API and decodes the answer, failing the test
// unless the status is want.
func (c *console) call(want int, method, path, body string, out any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+"/api/v1"+path, strings.NewReader(body))
	testenv.Must(c.t, err, "request")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.http.Do(req)
	testenv.Must(c.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		testenv.Must(c.t, json.Unmarshal(b, out), "decode %s", b)
	}
}

// trackWith posts one track call with a write key to a collector.
func trackWith(t *testing.T, collector, writeKey, messageID string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, collector+"/v1/track",
		bytes.NewBufferString(fmt.Sprintf(`{"messageId":%q,"anonymousId":"a1","event":"Tested"}`, messageID)))
	testenv.Must(t, err, "request")
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	status, _, _ := do(t, req)
	return status
}

// TestWriteKeyChangesReachCollectors creates, rotates and revokes a source
// through the API and checks the collectors honour each change: at once in
// the API's own process, and within moments in a collector running
// separately (told through Redis), long before its periodic reload.
func TestWriteKeyChangesReachCollectors(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.config(e.dbURL, e.redisURL)
	all := e.serve(cfg)                         // collector, worker, api
	other := e.serve(cfg, server.RoleCollector) // a collector elsewhere
	admin := e.ownerConsole(all)

	var src struct {
		WriteKey string `json:"write_key"`
	}
	admin.call(http.StatusCreated, "POST", "/workspaces/shop/sources", `{"id":"app","name":"App"}`, &src)
	if got := trackWith(t, all, src.WriteKey, "m1"); got != http.StatusOK {
		t.Fatalf("a new write key right after creation: %d, want 200 from the API's process", got)
	}
	soon := func(collector, key string, want int, what string) {
		t.Helper()
		testenv.Eventually(t, 2*time.Second, what, func() bool {
			return trackWith(t, collector, key, testenv.RandomName("m")) == want
		})
	}
	soon(other, src.WriteKey, http.StatusOK, "the other collector accepts the new key")

	old := src.WriteKey
	admin.call(http.StatusOK, "POST", "/workspaces/shop/sources/app/rotate", "", &src)
	if got := trackWith(t, all, old, "m2"); got != http.StatusUnauthorized {
		t.Fatalf("the rotated-out key right after rotation: %d, want 401", got)
	}
	if got := trackWith(t, all, src.WriteKey, "m3"); got != http.StatusOK {
		t.Fatalf("the rotated-in key: %d, want 200", got)
	}
	soon(other, old, http.StatusUnauthorized, "the other collector refuses the rotated-out key")

	admin.call(http.StatusNoContent, "DELETE", "/workspaces/shop/sources/app", "", nil)
	if got := trackWith(t, all, src.WriteKey, "m4"); got != http.StatusUnauthorized {
		t.Fatalf("a revoked source's key: %d, want 401", got)
	}
	soon(other, src.WriteKey, http.StatusUnauthorized, "the other collector refuses the revoked key")
}

// TestEventsReadBackThroughTheAPI sends events through the collector and
// reads them back with an API key, filtered and paged.
func TestEventsReadBackThroughTheAPI(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))
	admin := e.ownerConsole(base)
	var key struct{ Key string }
	admin.call(http.StatusCreated, "POST", "/workspaces/shop/api-keys", `{"name":"reader","scopes":["read"]}`, &key)

	want := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("evt-%d", i)
		want[id] = true
		status, _, body := e.post(base, "/v1/track", fmt.Sprintf(
			`{"messageId":%q,"userId":"u%d","event":"Order Completed","timestamp":"2026-11-2%dT10:00:00Z"}`, id, i%2, i))
		if status != http.StatusOK {
			t.Fatalf("track: %d %s", status, body)
		}
	}
	e.waitStored(want, 30*time.Second)

	read := func(query string) (ids []string, next string) {
		req, err := http.NewRequest(http.MethodGet, base+"/api/v1/workspaces/shop/events?"+query, nil)
		testenv.Must(t, err, "request")
		req.Header.Set("Authorization", "Bearer "+key.Key)
		status, _, body := do(t, req)
		if status != http.StatusOK {
			t.Fatalf("events?%s: %d %s", query, status, body)
		}
		var page struct {
			Data []struct {
				MessageID string `json:"message_id"`
				SourceID  string `json:"source_id"`
			}
			NextCursor string `json:"next_cursor"`
		}
		testenv.Must(t, json.Unmarshal([]byte(body), &page), "decode")
		for _, ev := range page.Data {
			if ev.SourceID != "web" {
				t.Errorf("event %s: source_id %q, want web", ev.MessageID, ev.SourceID)
			}
			ids = append(ids, ev.MessageID)
		}
		return ids, page.NextCursor
	}
	ids, next := read("limit=3")
	if strings.Join(ids, ",") != "evt-4,evt-3,evt-2" || next == "" {
		t.Fatalf("first page = %v (next %q), want the three newest and a cursor", ids, next)
	}
	ids, next = read("limit=3&cursor=" + next)
	if strings.Join(ids, ",") != "evt-1,evt-0" || next != "" {
		t.Fatalf("second page = %v (next %q), want the two oldest and no cursor", ids, next)
	}
	ids, _ = read("user_id=u1&from=2026-11-21T00:00:00Z")
	if strings.Join(ids, ",") != "evt-3,evt-1" {
		t.Fatalf("user u1 from the 21st = %v, want evt-3,evt-1", ids)
	}
}
