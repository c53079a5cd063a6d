package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// sourceKeyHashes returns the hashes of the write keys the collector accepts.
func (p *platform) sourceKeyHashes() map[string]string {
	p.t.Helper()
	keys, err := p.store.SourceKeys(context.Background())
	testenv.Must(p.t, err, "source keys")
	m := make(map[string]string)
	for _, k := range keys {
		m[k.KeyHash] = k.WorkspaceSlug + "/" + k.SourceSlug
	}
	return m
}

func TestSources(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	p.drainKeysChanged()

	var web sourceCreated
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/sources", map[string]any{"id": "web", "name": "Web site"}, &web)
	if !strings.HasPrefix(web.WriteKey, "eddy_wk_") || len(web.WriteKey) < 40 ||
		!strings.HasPrefix(web.WriteKey, web.WriteKeyPrefix) || len(web.WriteKeyPrefix) < len("eddy_wk_")+1 ||
		len(web.WriteKeyPrefix) > len(web.WriteKey)/2 {
		t.Fatalf("write key %q with prefix %q", web.WriteKey, web.WriteKeyPrefix)
	}
	if web.Name != "Web site" || web.RevokedAt != nil || web.Managed {
		t.Fatalf("created %+v", web)
	}
	if n := p.drainKeysChanged(); n != 1 {
		t.Fatalf("KeysChanged called %d times on create, want 1", n)
	}
	if got := p.sourceKeyHashes()[store.HashSecret(web.WriteKey)]; got != "shop/web" {
		t.Fatalf("the new write key leads to %q", got)
	}
	// The name defaults to the id.
	ios := ada.source("shop", "ios")
	if ios.Name != "ios" || ios.WriteKey == web.WriteKey {
		t.Fatalf("second source %+v", ios)
	}
	p.drainKeysChanged()
	ada.expect(http.StatusConflict, "conflict", "POST", "/workspaces/shop/sources", map[string]any{"id": "web"})
	if n := p.drainKeysChanged(); n != 0 {
		t.Fatalf("a refused create called KeysChanged %d times", n)
	}

	// The key is shown once: never in reads.
	for _, path := range []string{"/workspaces/shop/sources", "/workspaces/shop/sources/web", "/workspaces/shop/sources?limit=1"} {
		r := ada.must(http.StatusOK, "GET", path, nil, nil)
		if strings.Contains(string(r.body), web.WriteKey) || strings.Contains(string(r.body), ios.WriteKey) ||
			strings.Contains(string(r.body), `"write_key"`) {
			t.Fatalf("GET %s shows a write key: %s", path, r.body)
		}
	}
	var page struct {
		Data       []sourceCreated
		NextCursor string `json:"next_cursor"`
	}
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources?limit=1", nil, &page)
	if len(page.Data) != 1 || page.Data[0].ID != "ios" || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	cursor := page.NextCursor
	page.NextCursor = ""
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources?limit=1&cursor="+cursor, nil, &page)
	if len(page.Data) != 1 || page.Data[0].ID != "web" || page.NextCursor != "" {
		t.Fatalf("second page %+v", page)
	}

	// Rename.
	var got sourceCreated
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop/sources/web", map[string]any{"name": "Website"}, &got)
	if got.Name != "Website" || got.WriteKey != "" || got.WriteKeyPrefix != web.WriteKeyPrefix {
		t.Fatalf("renamed %+v", got)
	}

	// Rotate: a new key; the old one stops working.
	var rotated sourceCreated
	ada.must(http.StatusOK, "POST", "/workspaces/shop/sources/web/rotate", nil, &rotated)
	if rotated.WriteKey == "" || rotated.WriteKey == web.WriteKey || !strings.HasPrefix(rotated.WriteKey, rotated.WriteKeyPrefix) ||
		rotated.Name != "Website" {
		t.Fatalf("rotated %+v (old key %q)", rotated, web.WriteKey)
	}
	if n := p.drainKeysChanged(); n != 1 {
		t.Fatalf("KeysChanged called %d times on rotate, want 1", n)
	}
	hashes := p.sourceKeyHashes()
	if hashes[store.HashSecret(rotated.WriteKey)] != "shop/web" {
		t.Fatal("the rotated key is not accepted")
	}
	if _, ok := hashes[store.HashSecret(web.WriteKey)]; ok {
		t.Fatal("the old key is still accepted after rotation")
	}
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/web", nil, &got)
	if got.WriteKeyPrefix != rotated.WriteKeyPrefix {
		t.Fatalf("prefix after rotation %q, want %q", got.WriteKeyPrefix, rotated.WriteKeyPrefix)
	}

	// Revoke.
	ada.must(http.StatusNoContent, "DELETE", "/workspaces/shop/sources/web", nil, nil)
	if n := p.drainKeysChanged(); n != 1 {
		t.Fatalf("KeysChanged called %d times on revoke, want 1", n)
	}
	ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/web", nil, &got)
	if got.RevokedAt == nil {
		t.Fatalf("revoked source %+v has no revoked_at", got)
	}
	if _, ok := p.sourceKeyHashes()[store.HashSecret(rotated.WriteKey)]; ok {
		t.Fatal("a revoked source's key is still accepted")
	}
	ada.expect(http.StatusConflict, "conflict", "POST", "/workspaces/shop/sources/web/rotate", nil)
	ada.expect(http.StatusConflict, "conflict", "DELETE", "/workspaces/shop/sources/web", nil)
	ada.expect(http.StatusConflict, "conflict", "PATCH", "/workspaces/shop/sources/web", map[string]any{"name": "Back"})
	if n := p.drainKeysChanged(); n != 0 {
		t.Fatalf("refused changes called KeysChanged %d times", n)
	}
	// Its id stays taken.
	ada.expect(http.StatusConflict, "conflict", "POST", "/workspaces/shop/sources", map[string]any{"id": "web"})
	// ios is untouched.
	if p.sourceKeyHashes()[store.HashSecret(ios.WriteKey)] != "shop/ios" {
		t.Fatal("revoking web touched ios")
	}

	// Missing sources and workspaces.
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/workspaces/shop/sources/nope", nil},
		{"PATCH", "/workspaces/shop/sources/nope", map[string]any{"name": "X"}},
		{"DELETE", "/workspaces/shop/sources/nope", nil},
		{"POST", "/workspaces/shop/sources/nope/rotate", nil},
		{"GET", "/workspaces/nope/sources", nil},
		{"POST", "/workspaces/nope/sources", map[string]any{"id": "x"}},
		{"GET", "/workspaces/nope/sources/web", nil},
	} {
		ada.expect(http.StatusNotFound, "not_found", tc.method, tc.path, tc.body)
	}
}

func TestWhoMayChangeSources(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	ada.source("shop", "web")
	read := p.withKey(ada.apiKey("shop", "read", "read").Key)
	write := p.withKey(ada.apiKey("shop", "write", "write").Key)
	admin := p.withKey(ada.apiKey("shop", "admin", "admin").Key)
	viewer := p.member("acme", "viewer@example.com", "viewer")
	member := p.member("acme", "member@example.com", "member")

	for name, c := range map[string]*client{"read key": read, "admin key": admin, "viewer": viewer} {
		t.Run(name, func(t *testing.T) {
			c := c.in(t)
			c.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/sources", map[string]any{"id": "x"})
			c.expect(http.StatusForbidden, "forbidden", "PATCH", "/workspaces/shop/sources/web", map[string]any{"name": "X"})
			c.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/sources/web/rotate", nil)
			c.expect(http.StatusForbidden, "forbidden", "DELETE", "/workspaces/shop/sources/web", nil)
		})
	}
	read.must(http.StatusOK, "GET", "/workspaces/shop/sources/web", nil, nil)
	viewer.must(http.StatusOK, "GET", "/workspaces/shop/sources/web", nil, nil)
	// admin implies nothing else, not even reading.
	admin.expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/sources/web", nil)
	write.expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/sources/web", nil)

	for name, c := range map[string]*client{"write key": write, "member": member} {
		t.Run(name, func(t *testing.T) {
			c := c.in(t)
			id := strings.ReplaceAll(name, " ", "-")
			c.must(http.StatusCreated, "POST", "/workspaces/shop/sources", map[string]any{"id": id}, nil)
			c.must(http.StatusOK, "PATCH", "/workspaces/shop/sources/"+id, map[string]any{"name": "X"}, nil)
			c.must(http.StatusOK, "POST", "/workspaces/shop/sources/"+id+"/rotate", nil, nil)
			c.must(http.StatusNoContent, "DELETE", "/workspaces/shop/sources/"+id, nil, nil)
		})
	}
}
