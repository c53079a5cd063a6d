package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

type settingsJSON struct {
	Timezone              string `json:"timezone"`
	Currency              string `json:"currency"`
	SessionTimeoutMinutes int    `json:"session_timeout_minutes"`
}

type workspaceJSON struct {
	ID             string       `json:"id"`
	OrganizationID string       `json:"organization_id"`
	Name           string       `json:"name"`
	Managed        bool         `json:"managed"`
	Settings       settingsJSON `json:"settings"`
}

func TestWorkspaceSettings(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")

	var ws workspaceJSON
	ada.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "plain", "name": "Plain"}, &ws)
	if ws != (workspaceJSON{ID: "plain", OrganizationID: "acme", Name: "Plain", Settings: settingsJSON{"UTC", "USD", 30}}) {
		t.Fatalf("defaults: %+v", ws)
	}
	all := map[string]any{"timezone": "America/New_York", "currency": "EUR", "session_timeout_minutes": 1440}
	ada.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "full", "name": "Full", "settings": all}, &ws)
	if ws.Settings != (settingsJSON{"America/New_York", "EUR", 1440}) {
		t.Fatalf("settings: %+v", ws.Settings)
	}
	ada.must(http.StatusOK, "GET", "/workspaces/full", nil, &ws)
	if ws.Settings != (settingsJSON{"America/New_York", "EUR", 1440}) {
		t.Fatalf("settings read back: %+v", ws.Settings)
	}

	for _, tc := range []struct {
		settings map[string]any
		field    string
	}{
		{map[string]any{"timezone": "Mars/Olympus_Mons"}, "settings.timezone"},
		{map[string]any{"timezone": ""}, "settings.timezone"},
		{map[string]any{"timezone": "Local"}, "settings.timezone"},
		{map[string]any{"timezone": "../../etc/passwd"}, "settings.timezone"},
		{map[string]any{"currency": "usd"}, "settings.currency"},
		{map[string]any{"currency": "EURO"}, "settings.currency"},
		{map[string]any{"currency": "ZZZ"}, "settings.currency"},
		{map[string]any{"currency": ""}, "settings.currency"},
		{map[string]any{"session_timeout_minutes": 0}, "settings.session_timeout_minutes"},
		{map[string]any{"session_timeout_minutes": -5}, "settings.session_timeout_minutes"},
		{map[string]any{"session_timeout_minutes": 1441}, "settings.session_timeout_minutes"},
		{map[string]any{"session_timeout_minutes": 1.5}, "settings.session_timeout_minutes"},
		{map[string]any{"session_timeout_minutes": "30"}, "settings.session_timeout_minutes"},
		{map[string]any{"timeout": 30}, "timeout"},
	} {
		r := ada.do("POST", "/organizations/acme/workspaces", map[string]any{"id": "bad", "name": "Bad", "settings": tc.settings})
		r.wantInvalid(t, tc.field)
		ada.do("PATCH", "/workspaces/full", map[string]any{"settings": tc.settings}).wantInvalid(t, tc.field)
	}
	// All three wrong: all three named.
	r := ada.do("PATCH", "/workspaces/full", map[string]any{"settings": map[string]any{"timezone": "X", "currency": "x", "session_timeout_minutes": 0}})
	if f := r.fields(t); len(f) != 3 {
		t.Fatalf("fields %v, want the three settings", f)
	}
	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/bad", nil)

	// PATCH is partial: what it leaves out keeps its value.
	ada.must(http.StatusOK, "PATCH", "/workspaces/full", map[string]any{"settings": map[string]any{"currency": "JPY"}}, &ws)
	if ws.Name != "Full" || ws.Settings != (settingsJSON{"America/New_York", "JPY", 1440}) {
		t.Fatalf("after currency patch: %+v", ws)
	}
	ada.must(http.StatusOK, "PATCH", "/workspaces/full", map[string]any{"name": "Renamed"}, &ws)
	if ws.Name != "Renamed" || ws.Settings != (settingsJSON{"America/New_York", "JPY", 1440}) {
		t.Fatalf("after name patch: %+v", ws)
	}
	ada.must(http.StatusOK, "PATCH", "/workspaces/full", map[string]any{"settings": map[string]any{"session_timeout_minutes": 1, "timezone": "Asia/Kolkata"}}, &ws)
	if ws.Settings != (settingsJSON{"Asia/Kolkata", "JPY", 1}) {
		t.Fatalf("after two-field patch: %+v", ws.Settings)
	}
	ada.must(http.StatusOK, "PATCH", "/workspaces/full", map[string]any{}, &ws)
	if ws.Name != "Renamed" || ws.Settings != (settingsJSON{"Asia/Kolkata", "JPY", 1}) {
		t.Fatalf("after empty patch: %+v", ws)
	}
	ada.do("PATCH", "/workspaces/full", map[string]any{"name": ""}).wantInvalid(t, "name")
	ada.must(http.StatusOK, "GET", "/workspaces/full", nil, &ws)
	if ws.Name != "Renamed" || ws.Settings != (settingsJSON{"Asia/Kolkata", "JPY", 1}) {
		t.Fatalf("a refused patch changed the workspace: %+v", ws)
	}
}

func TestWorkspaceLifecycle(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	eve := p.newAdmin("eve@example.com")
	eve.org("evil")

	// Workspace ids are unique across the installation.
	ada.expect(http.StatusConflict, "conflict", "POST", "/organizations/acme/workspaces", map[string]any{"id": "shop", "name": "Again"})
	eve.expect(http.StatusConflict, "conflict", "POST", "/organizations/evil/workspaces", map[string]any{"id": "shop", "name": "Mine"})
	ada.do("POST", "/organizations/acme/workspaces", map[string]any{"id": "Shop", "name": "Caps"}).wantInvalid(t, "id")

	src := ada.source("shop", "web")
	key := ada.apiKey("shop", "everything", "read", "write", "admin")
	prog := p.withKey(key.Key)
	prog.must(http.StatusOK, "GET", "/workspaces/shop", nil, nil)

	// Who may delete: not members or keys without admin.
	member := p.member("acme", "member@example.com", "member")
	member.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"name": "Member's"}, nil)
	member.expect(http.StatusForbidden, "forbidden", "DELETE", "/workspaces/shop", nil)
	viewer := p.member("acme", "viewer@example.com", "viewer")
	viewer.expect(http.StatusForbidden, "forbidden", "PATCH", "/workspaces/shop", map[string]any{"name": "Viewer's"})
	viewer.expect(http.StatusForbidden, "forbidden", "DELETE", "/workspaces/shop", nil)
	rw := ada.apiKey("shop", "rw", "read", "write")
	p.withKey(rw.Key).expect(http.StatusForbidden, "forbidden", "DELETE", "/workspaces/shop", nil)
	eve.expect(http.StatusNotFound, "not_found", "DELETE", "/workspaces/shop", nil)

	p.drainKeysChanged()
	ada.must(http.StatusNoContent, "DELETE", "/workspaces/shop", nil, nil)
	if n := p.drainKeysChanged(); n != 1 {
		t.Fatalf("KeysChanged called %d times on delete, want 1", n)
	}
	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop", nil)
	ada.expect(http.StatusNotFound, "not_found", "DELETE", "/workspaces/shop", nil)
	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/sources", nil)
	var list struct{ Data []workspaceJSON }
	ada.must(http.StatusOK, "GET", "/organizations/acme/workspaces", nil, &list)
	if len(list.Data) != 0 {
		t.Fatalf("workspaces after delete: %+v", list.Data)
	}
	// Its keys stop working at once.
	prog.expect(http.StatusUnauthorized, "unauthenticated", "GET", "/workspaces/shop", nil)
	keys, err := p.store.SourceKeys(context.Background())
	testenv.Must(t, err, "source keys")
	for _, k := range keys {
		if k.KeyHash == store.HashSecret(src.WriteKey) {
			t.Fatal("a deleted workspace's write key is still accepted")
		}
	}
	// Its id stays taken (its data may remain).
	ada.expect(http.StatusConflict, "conflict", "POST", "/organizations/acme/workspaces", map[string]any{"id": "shop", "name": "Again"})

	// A key with admin may delete its own workspace.
	ada.workspace("acme", "tmp")
	k := ada.apiKey("tmp", "admin", "admin")
	p.withKey(k.Key).must(http.StatusNoContent, "DELETE", "/workspaces/tmp", nil, nil)
	p.withKey(k.Key).expect(http.StatusUnauthorized, "unauthenticated", "GET", "/workspaces/tmp/api-keys", nil)
}

func TestManagedWorkspaces(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	// As the server does for plugins.yaml.
	err := p.store.SyncWorkspaces(context.Background(), []store.WorkspaceSpec{{
		Slug: "demo", Name: "Demo", Organization: "acme",
		Sources: []store.SourceSpec{{Slug: "web", Name: "Web", WriteKey: "demo-write-key-web-0123456789"}},
	}})
	testenv.Must(t, err, "sync workspaces")

	var ws workspaceJSON
	ada.must(http.StatusOK, "GET", "/workspaces/demo", nil, &ws)
	if !ws.Managed || ws.OrganizationID != "acme" || ws.Name != "Demo" {
		t.Fatalf("managed workspace %+v", ws)
	}
	var src sourceCreated
	ada.must(http.StatusOK, "GET", "/workspaces/demo/sources/web", nil, &src)
	if !src.Managed || src.WriteKeyPrefix != "demo-w" {
		t.Fatalf("managed source %+v", src)
	}

	ada.expect(http.StatusConflict, "conflict", "PATCH", "/workspaces/demo", map[string]any{"name": "Renamed"})
	ada.expect(http.StatusConflict, "conflict", "DELETE", "/workspaces/demo", nil)
	p.drainKeysChanged()
	ada.expect(http.StatusConflict, "conflict", "POST", "/workspaces/demo/sources/web/rotate", nil)
	ada.expect(http.StatusConflict, "conflict", "DELETE", "/workspaces/demo/sources/web", nil)
	ada.expect(http.StatusConflict, "conflict", "PATCH", "/workspaces/demo/sources/web", map[string]any{"name": "Renamed"})
	if n := p.drainKeysChanged(); n != 0 {
		t.Fatalf("refused changes called KeysChanged %d times", n)
	}
	// Through a key as well.
	key := ada.apiKey("demo", "all", "read", "write", "admin")
	p.withKey(key.Key).expect(http.StatusConflict, "conflict", "DELETE", "/workspaces/demo", nil)
	p.withKey(key.Key).expect(http.StatusConflict, "conflict", "POST", "/workspaces/demo/sources/web/rotate", nil)

	// Nothing changed: the declared key still works.
	keys, err := p.store.SourceKeys(context.Background())
	testenv.Must(t, err, "source keys")
	if len(keys) != 1 || keys[0].KeyHash != store.HashSecret("demo-write-key-web-0123456789") {
		t.Fatalf("source keys %+v", keys)
	}
	ada.must(http.StatusOK, "GET", "/workspaces/demo", nil, &ws)
	if ws.Name != "Demo" {
		t.Fatalf("name %q", ws.Name)
	}

	// What plugins.yaml does not declare may change: settings, the same
	// name, and new sources of the workspace.
	ada.must(http.StatusOK, "PATCH", "/workspaces/demo", map[string]any{"name": "Demo", "settings": map[string]any{"currency": "EUR"}}, &ws)
	if ws.Settings.Currency != "EUR" || !ws.Managed {
		t.Fatalf("after settings patch %+v", ws)
	}
	extra := ada.source("demo", "extra")
	if extra.Managed {
		t.Fatal("a source created through the API is managed")
	}
	ada.must(http.StatusOK, "POST", "/workspaces/demo/sources/extra/rotate", nil, nil)
}

// TestWorkspacePatchThatChangesNothingIsNotAudited keeps the audit log to
// real changes.
func TestWorkspacePatchThatChangesNothingIsNotAudited(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@example.com")
	owner.must(http.StatusCreated, "POST", "/organizations", map[string]any{"id": "acme", "name": "Acme"}, nil)
	owner.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "shop", "name": "Shop"}, nil)
	for _, body := range []any{map[string]any{}, map[string]any{"name": "Shop", "settings": map[string]any{"currency": "USD"}}} {
		owner.must(http.StatusOK, "PATCH", "/workspaces/shop", body, nil)
	}
	owner.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"name": "Shop 2"}, nil)
	var audit struct {
		Data []struct{ Action string }
	}
	owner.must(http.StatusOK, "GET", "/organizations/acme/audit-log?action=workspace.update", nil, &audit)
	if len(audit.Data) != 1 {
		t.Fatalf("%d workspace.update entries, want 1 (for the one real change)", len(audit.Data))
	}
}

// The referrer settings of the session engine: defaults, replacement,
// lower case, and refusals naming the field.
func TestWorkspaceReferrerSettings(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	type referrers struct {
		Settings struct {
			OwnDomains       []string `json:"own_domains"`
			IgnoredReferrers []string `json:"ignored_referrers"`
		} `json:"settings"`
	}
	var ws referrers
	ada.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "shop", "name": "Shop"}, &ws)
	if len(ws.Settings.OwnDomains) != 0 || !slices.Contains(ws.Settings.IgnoredReferrers, "paypal.com") {
		t.Fatalf("defaults: %+v", ws.Settings)
	}
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{
		"own_domains": []string{"Shop.Example", "shop-cdn.example"}, "ignored_referrers": []string{}}}, &ws)
	if !slices.Equal(ws.Settings.OwnDomains, []string{"shop.example", "shop-cdn.example"}) || len(ws.Settings.IgnoredReferrers) != 0 {
		t.Fatalf("after patch: %+v", ws.Settings)
	}
	ada.must(http.StatusOK, "GET", "/workspaces/shop", nil, &ws)
	if !slices.Equal(ws.Settings.OwnDomains, []string{"shop.example", "shop-cdn.example"}) || len(ws.Settings.IgnoredReferrers) != 0 {
		t.Fatalf("read back: %+v", ws.Settings)
	}
	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprintf("d%d.example", i)
	}
	for _, tc := range []struct {
		settings map[string]any
		field    string
	}{
		{map[string]any{"own_domains": []string{"https://shop.example/"}}, "settings.own_domains"},
		{map[string]any{"own_domains": []string{".shop.example"}}, "settings.own_domains"},
		{map[string]any{"own_domains": []string{""}}, "settings.own_domains"},
		{map[string]any{"own_domains": many}, "settings.own_domains"},
		{map[string]any{"own_domains": "shop.example"}, "settings.own_domains"},
		{map[string]any{"ignored_referrers": []string{"pay pal.com"}}, "settings.ignored_referrers"},
	} {
		ada.do("PATCH", "/workspaces/shop", map[string]any{"settings": tc.settings}).wantInvalid(t, tc.field)
	}
}
