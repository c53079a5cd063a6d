package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")

	k := ada.apiKey("shop", "reporting", "admin", "read", "read", "write")
	if !slices.Equal(k.Scopes, []string{"read", "write", "admin"}) {
		t.Fatalf("scopes %v, want read, write, admin (deduplicated, in order)", k.Scopes)
	}
	if !strings.HasPrefix(k.Key, "eddy_sk_") || len(k.Key) < 40 || !strings.HasPrefix(k.Key, k.Prefix) ||
		len(k.Prefix) != len("eddy_sk_")+4 || k.CreatedBy != "ada@example.com" || k.LastUsedAt != nil || k.RevokedAt != nil {
		t.Fatalf("created %+v", k)
	}
	r2 := ada.apiKey("shop", "second", "read")
	if r2.Key == k.Key || r2.Prefix == "" {
		t.Fatalf("second key %+v", r2)
	}

	list := func() map[string]apiKeyCreated {
		r := ada.must(http.StatusOK, "GET", "/workspaces/shop/api-keys", nil, nil)
		if strings.Contains(string(r.body), k.Key) || strings.Contains(string(r.body), r2.Key) || strings.Contains(string(r.body), `"key"`) {
			t.Fatalf("the key list shows a key: %s", r.body)
		}
		var l struct{ Data []apiKeyCreated }
		r.decode(t, &l)
		m := make(map[string]apiKeyCreated)
		for _, k := range l.Data {
			m[k.ID] = k
		}
		return m
	}
	keys := list()
	if len(keys) != 2 || keys[k.ID].Prefix != k.Prefix || keys[k.ID].LastUsedAt != nil || keys[k.ID].Name != "reporting" {
		t.Fatalf("listed %+v", keys)
	}

	prog := p.withKey(k.Key)
	prog.must(http.StatusOK, "GET", "/workspaces/shop", nil, nil)
	keys = list()
	if keys[k.ID].LastUsedAt == nil {
		t.Fatal("last_used_at not set after use")
	}
	if keys[r2.ID].LastUsedAt != nil {
		t.Fatal("an unused key has last_used_at")
	}
	// A key with admin scope manages keys too, and is named in created_by.
	var made apiKeyCreated
	prog.must(http.StatusCreated, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "made by a key", "scopes": []string{"read"}}, &made)
	if !strings.HasPrefix(made.CreatedBy, "reporting") || !strings.Contains(made.CreatedBy, k.Prefix) {
		t.Fatalf("created_by %q, want the key's name and prefix", made.CreatedBy)
	}

	// Revoke.
	ada.must(http.StatusNoContent, "DELETE", "/workspaces/shop/api-keys/"+k.ID, nil, nil)
	prog.expect(http.StatusUnauthorized, "unauthenticated", "GET", "/workspaces/shop", nil)
	if keys := list(); keys[k.ID].RevokedAt == nil {
		t.Fatal("a revoked key has no revoked_at")
	}
	ada.expect(http.StatusConflict, "conflict", "DELETE", "/workspaces/shop/api-keys/"+k.ID, nil)
	ada.expect(http.StatusNotFound, "not_found", "DELETE", "/workspaces/shop/api-keys/"+uuid.NewString(), nil)
	ada.do("DELETE", "/workspaces/shop/api-keys/not-a-uuid", nil).wantInvalid(t, "key_id")
	// The other key still works.
	p.withKey(r2.Key).must(http.StatusOK, "GET", "/workspaces/shop", nil, nil)
}

func TestAPIKeyScopes(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")

	for _, tc := range []struct {
		name string
		body any
		want string
	}{
		{"no scopes", map[string]any{"name": "k", "scopes": []string{}}, "scopes"},
		{"missing scopes", map[string]any{"name": "k"}, "scopes"},
		{"unknown scope", map[string]any{"name": "k", "scopes": []string{"read", "superuser"}}, "scopes"},
		{"upper case", map[string]any{"name": "k", "scopes": []string{"READ"}}, "scopes"},
		{"scopes not a list", map[string]any{"name": "k", "scopes": "read"}, "scopes"},
		{"scope not a string", map[string]any{"name": "k", "scopes": []any{1}}, "scopes"},
		{"no name", map[string]any{"scopes": []string{"read"}}, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ada.in(t).do("POST", "/workspaces/shop/api-keys", tc.body).wantInvalid(t, tc.want)
		})
	}

	// A key cannot make a key with more than it has.
	adminOnly := p.withKey(ada.apiKey("shop", "admin only", "admin").Key)
	for _, scopes := range [][]string{{"write"}, {"read"}, {"admin", "write"}} {
		adminOnly.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/api-keys", map[string]any{"name": "more", "scopes": scopes})
	}
	adminOnly.must(http.StatusCreated, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "same", "scopes": []string{"admin"}}, nil)
	adminOnly.must(http.StatusOK, "GET", "/workspaces/shop/api-keys", nil, nil)
	// admin implies nothing else.
	adminOnly.expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop", nil)
	adminOnly.expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/events", nil)
	adminOnly.expect(http.StatusForbidden, "forbidden", "PATCH", "/workspaces/shop", map[string]any{"name": "X"})

	// Keys without admin do not manage keys.
	rw := p.withKey(ada.apiKey("shop", "rw", "read", "write").Key)
	rw.expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/api-keys", nil)
	rw.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/api-keys", map[string]any{"name": "x", "scopes": []string{"read"}})
	// Viewers neither; members do, but not with admin, which deletes the
	// workspace, as members may not (docs/api.md).
	viewer := p.member("acme", "viewer@example.com", "viewer")
	viewer.expect(http.StatusForbidden, "forbidden", "GET", "/workspaces/shop/api-keys", nil)
	viewer.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/api-keys", map[string]any{"name": "x", "scopes": []string{"read"}})
	member := p.member("acme", "member@example.com", "member")
	member.must(http.StatusCreated, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "x", "scopes": []string{"read", "write"}}, nil)
	member.expect(http.StatusForbidden, "forbidden", "POST", "/workspaces/shop/api-keys", map[string]any{"name": "x", "scopes": []string{"read", "write", "admin"}})
	member.must(http.StatusOK, "GET", "/workspaces/shop/api-keys", nil, nil)
}
