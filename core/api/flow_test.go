package api_test

import (
	"net/http"
	"testing"
)

// TestAdminSetsUpAWorkspace walks the path of a new admin: log in, create an
// organization, a workspace, a source and an API key, then use the key.
func TestAdminSetsUpAWorkspace(t *testing.T) {
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")

	var me struct {
		Admin         struct{ Email string }
		Organizations []any
	}
	ada.must(http.StatusOK, "GET", "/auth/me", nil, &me)
	if me.Admin.Email != "ada@example.com" || len(me.Organizations) != 0 {
		t.Fatalf("me = %+v, want ada with no organization", me)
	}

	var org struct{ ID, Role string }
	ada.must(http.StatusCreated, "POST", "/organizations", map[string]any{"id": "acme", "name": "Acme"}, &org)
	if org.ID != "acme" || org.Role != "owner" {
		t.Fatalf("organization = %+v, want acme with ada as owner", org)
	}
	var ws struct {
		ID       string
		Settings struct {
			Timezone string
			Currency string
		}
	}
	ada.must(http.StatusCreated, "POST", "/organizations/acme/workspaces",
		map[string]any{"id": "shop", "name": "Shop", "settings": map[string]any{"timezone": "Europe/Paris"}}, &ws)
	if ws.ID != "shop" || ws.Settings.Timezone != "Europe/Paris" || ws.Settings.Currency != "USD" {
		t.Fatalf("workspace = %+v", ws)
	}
	var src struct {
		ID       string
		WriteKey string `json:"write_key"`
	}
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/sources", map[string]any{"id": "web"}, &src)
	if src.WriteKey == "" {
		t.Fatal("creating a source returned no write key")
	}
	var key struct{ ID, Key string }
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "reporting", "scopes": []string{"read"}}, &key)

	prog := p.withKey(key.Key)
	prog.must(http.StatusOK, "GET", "/workspaces/shop/sources", nil, nil)
	prog.must(http.StatusOK, "GET", "/workspaces/shop/events", nil, nil)
	if r := prog.do("POST", "/workspaces/shop/sources", map[string]any{"id": "ios"}); r.status != http.StatusForbidden {
		t.Fatalf("a read key created a source: %d %s", r.status, r.body)
	}

	var audit struct {
		Data []struct{ Action string }
	}
	ada.must(http.StatusOK, "GET", "/organizations/acme/audit-log", nil, &audit)
	var actions []string
	for _, e := range audit.Data {
		actions = append(actions, e.Action)
	}
	t.Logf("audit: %v", actions)
	if len(actions) != 4 {
		t.Fatalf("audit log = %v, want 4 entries", actions)
	}
}
