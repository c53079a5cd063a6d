package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/consent"
)

type privacyWorkspaceJSON struct {
	ID       string `json:"id"`
	Settings struct {
		Timezone string         `json:"timezone"`
		Privacy  consent.Policy `json:"privacy"`
	} `json:"settings"`
}

func TestWorkspacePrivacySettings(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")

	var ws privacyWorkspaceJSON
	ada.must(http.StatusOK, "GET", "/workspaces/shop", nil, zeroed(&ws))
	if !ws.Settings.Privacy.Equal(consent.DefaultPolicy()) || ws.Settings.Privacy.Plugins == nil || ws.Settings.Privacy.Minimise.Hash == nil {
		t.Fatalf("a new workspace's privacy = %+v, want the default policy with empty (not null) lists", ws.Settings.Privacy)
	}

	// A partial patch changes only what it names; lists and maps are replaced.
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"privacy": map[string]any{
		"required": []string{"analytics", "personalization"},
		"plugins":  map[string]any{"sink.crm": []string{"marketing"}},
		"minimise": map[string]any{"ip": "truncate", "hash": []string{"traits.email"}},
	}}}, zeroed(&ws))
	want := consent.DefaultPolicy()
	want.Required = []string{"analytics", "personalization"}
	want.Plugins = map[string][]string{"sink.crm": {"marketing"}}
	want.Minimise.IP, want.Minimise.Hash = consent.IPTruncate, []string{"traits.email"}
	if !ws.Settings.Privacy.Equal(want) || ws.Settings.Timezone != "UTC" {
		t.Fatalf("after the patch: %+v, want %+v (timezone kept)", ws.Settings, want)
	}
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"privacy": map[string]any{
		"plugins": map[string]any{}, "minimise": map[string]any{"drop": []string{"properties.card.number"}},
	}}}, zeroed(&ws))
	want.Plugins, want.Minimise.Drop = map[string][]string{}, []string{"properties.card.number"}
	if !ws.Settings.Privacy.Equal(want) {
		t.Fatalf("after the second patch: %+v, want %+v", ws.Settings.Privacy, want)
	}
	ada.must(http.StatusOK, "GET", "/workspaces/shop", nil, zeroed(&ws))
	if !ws.Settings.Privacy.Equal(want) {
		t.Fatalf("read back: %+v, want %+v", ws.Settings.Privacy, want)
	}
	if got := auditLog(t, ada, "acme", "action=workspace.privacy.necessary_only"); len(got) != 0 {
		t.Fatalf("changes that leave allow_necessary_only alone wrote %d necessary_only records", len(got))
	}

	// Turning necessary-only processing on and off is visible on its own.
	for _, on := range []bool{true, false} {
		ada.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"privacy": map[string]any{"allow_necessary_only": on}}}, zeroed(&ws))
		if ws.Settings.Privacy.AllowNecessaryOnly != on {
			t.Fatalf("allow_necessary_only = %t, want %t", ws.Settings.Privacy.AllowNecessaryOnly, on)
		}
	}
	got := auditLog(t, ada, "acme", "action=workspace.privacy.necessary_only")
	if len(got) != 2 || !strings.Contains(string(got[1].After), `"allow_necessary_only":true`) ||
		!strings.Contains(string(got[0].After), `"allow_necessary_only":false`) || got[0].Actor.Label != "ada@example.com" ||
		got[0].WorkspaceID == nil || *got[0].WorkspaceID != "shop" {
		t.Fatalf("necessary_only audit records = %+v, want on then off, by ada, in shop", got)
	}
	if n := len(auditLog(t, ada, "acme", "action=workspace.update&workspace=shop")); n != 4 {
		t.Errorf("workspace.update records = %d, want 4 (every privacy change is a settings change too)", n)
	}

	// A workspace can be created with its policy.
	ada.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "blog", "name": "Blog",
		"settings": map[string]any{"privacy": map[string]any{"required": []string{}, "allow_necessary_only": true}}}, zeroed(&ws))
	if len(ws.Settings.Privacy.Required) != 0 || !ws.Settings.Privacy.AllowNecessaryOnly {
		t.Fatalf("created with privacy %+v", ws.Settings.Privacy)
	}
	if got := auditLog(t, ada, "acme", "action=workspace.privacy.necessary_only&workspace=blog"); len(got) != 1 {
		t.Errorf("creating a workspace with necessary-only processing wrote %d necessary_only records, want 1", len(got))
	}
}

func TestWorkspacePrivacyBadInput(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	privacy := func(v any) map[string]any {
		return map[string]any{"settings": map[string]any{"privacy": v}}
	}
	tests := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"unknown purposes", privacy(map[string]any{"required": []string{"analytics", "spying"}, "plugins": map[string]any{"sink.crm": []string{"telepathy"}}}),
			[]string{"settings.privacy.required[1]", "settings.privacy.plugins.sink.crm[0]"}},
		{"duplicate purposes", privacy(map[string]any{"purposes": []string{"necessary", "ads", "ads"}, "required": []string{"ads", "ads"}}),
			[]string{"settings.privacy.purposes[2]", "settings.privacy.required[1]"}},
		{"malformed purpose", privacy(map[string]any{"purposes": []string{"Ads Team"}}), []string{"settings.privacy.purposes[0]", "settings.privacy.required[0]"}},
		{"malformed paths", privacy(map[string]any{"minimise": map[string]any{"hash": []string{"traits..email", "userId"}, "drop": []string{"traits.email", "properties."}}}),
			[]string{"settings.privacy.minimise.hash[0]", "settings.privacy.minimise.hash[1]", "settings.privacy.minimise.drop[1]"}},
		{"bad ip mode", privacy(map[string]any{"minimise": map[string]any{"ip": "hide"}}), []string{"settings.privacy.minimise.ip"}},
		{"bad plugin id", privacy(map[string]any{"plugins": map[string]any{"crm": []string{"marketing"}}}), []string{"settings.privacy.plugins"}},
		{"wrong type", privacy(map[string]any{"required": "analytics"}), []string{"settings.privacy.required"}},
		{"not an object", privacy([]string{"analytics"}), []string{"settings.privacy"}},
		{"unknown field", privacy(map[string]any{"minimize": map[string]any{}}), []string{"minimize"}},
		{"case-sensitive field", privacy(map[string]any{"Required": []string{}}), []string{"settings.privacy.Required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ada.do("PATCH", "/workspaces/shop", tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.status, r.body)
			}
			if got := r.fields(t); !slices.Equal(got, tt.fields) {
				t.Errorf("fields %q, want %q; body %s", got, tt.fields, r.body)
			}
		})
	}
	var ws privacyWorkspaceJSON
	ada.must(http.StatusOK, "GET", "/workspaces/shop", nil, zeroed(&ws))
	if !ws.Settings.Privacy.Equal(consent.DefaultPolicy()) {
		t.Errorf("refused patches changed the policy to %+v", ws.Settings.Privacy)
	}
}

// zeroed resets *v before a response is decoded into it: decoding into a
// map that already has keys would keep them.
func zeroed[T any](v *T) *T {
	var zero T
	*v = zero
	return v
}
