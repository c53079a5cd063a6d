package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// TestKeysNeverOutrankTheirCreator checks that no caller can mint an API key
// that does more than the caller may: otherwise a member could delete a
// workspace through a key with the admin scope.
func TestKeysNeverOutrankTheirCreator(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@example.com")
	owner.must(http.StatusCreated, "POST", "/organizations", map[string]any{"id": "acme", "name": "Acme"}, nil)
	owner.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "shop", "name": "Shop"}, nil)

	callers := map[string]*client{"owner": owner}
	ctx := context.Background()
	org, err := p.store.OrganizationBySlug(ctx, "acme")
	testenv.Must(t, err, "organization")
	for _, role := range []string{auth.RoleAdmin, auth.RoleMember} {
		c := p.newAdmin(role + "@example.com")
		a, _, err := p.store.AdminByEmail(ctx, role+"@example.com")
		testenv.Must(t, err, "admin")
		testenv.Must(t, p.store.AddMember(ctx, store.Change{Actor: store.Actor{Type: "system"}}, org, a.ID, role), "add %s", role)
		callers[role] = c
	}
	keyWith := func(scopes ...string) *client {
		var k struct{ Key string }
		owner.must(http.StatusCreated, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "k", "scopes": scopes}, &k)
		return p.withKey(k.Key)
	}
	callers["admin key"] = keyWith("admin")
	callers["admin+read key"] = keyWith("read", "admin")

	tests := []struct {
		caller string
		scopes []string
		want   int
	}{
		{"owner", []string{"read", "write", "admin"}, http.StatusCreated},
		{"admin", []string{"admin"}, http.StatusCreated},
		{"member", []string{"read", "write"}, http.StatusCreated},
		{"member", []string{"admin"}, http.StatusForbidden},
		{"member", []string{"read", "admin"}, http.StatusForbidden},
		{"admin key", []string{"admin"}, http.StatusCreated},
		{"admin key", []string{"read"}, http.StatusForbidden},
		{"admin+read key", []string{"read"}, http.StatusCreated},
		{"admin+read key", []string{"write"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		r := callers[tt.caller].do("POST", "/workspaces/shop/api-keys", map[string]any{"name": "minted", "scopes": tt.scopes})
		if r.status != tt.want {
			t.Errorf("%s creating a key with %v: %d %s, want %d", tt.caller, tt.scopes, r.status, r.body, tt.want)
		}
	}
	// The member still cannot delete the workspace by any route.
	if r := callers["member"].do("DELETE", "/workspaces/shop", nil); r.status != http.StatusForbidden {
		t.Errorf("member deleting the workspace: %d, want 403", r.status)
	}
}
