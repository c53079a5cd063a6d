package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// necessaryOnlyAudit returns the workspace.privacy.necessary_only records of
// a workspace, newest first.
func necessaryOnlyAudit(t *testing.T, s *store.Store, orgID, ws string) []store.AuditEntry {
	t.Helper()
	entries, err := s.AuditLog(context.Background(), orgID, store.AuditFilter{Workspace: ws, Action: "workspace.privacy.necessary_only", Limit: 100})
	testenv.Must(t, err, "read audit log")
	return entries
}

func TestWorkspacePrivacyDefaultsAndUpdates(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	// A workspace stored before privacy settings existed has none.
	_, err := s.Pool().Exec(ctx, "UPDATE workspaces SET privacy = NULL WHERE slug = 'acme'")
	testenv.Must(t, err, "clear privacy")
	ws, err := s.WorkspaceBySlug(ctx, "acme")
	testenv.Must(t, err, "read workspace")
	if !ws.Settings.Privacy.Equal(consent.DefaultPolicy()) {
		t.Fatalf("privacy of an old workspace = %+v, want the default", ws.Settings.Privacy)
	}
	if !ws.Settings.Equal(ws.Settings) {
		t.Fatal("settings are not equal to themselves")
	}

	who := store.Change{Actor: store.Actor{Type: "cli", Label: "test"}}
	st := ws.Settings
	st.Privacy.Minimise = consent.Minimise{IP: consent.IPTruncate, Hash: []string{"traits.email"}, Drop: []string{}}
	st.Privacy.Plugins = map[string][]string{"sink.crm": {"marketing"}}
	if st.Equal(ws.Settings) {
		t.Fatal("Settings.Equal ignores the privacy policy")
	}
	updated, err := s.UpdateWorkspace(ctx, who, ws, ws.Name, st)
	testenv.Must(t, err, "update privacy")
	again, err := s.WorkspaceBySlug(ctx, "acme")
	testenv.Must(t, err, "read workspace")
	if !again.Settings.Privacy.Equal(st.Privacy) || !updated.Settings.Privacy.Equal(st.Privacy) {
		t.Fatalf("stored privacy = %+v, want %+v", again.Settings.Privacy, st.Privacy)
	}
	if got := necessaryOnlyAudit(t, s, ws.OrgID, "acme"); len(got) != 0 {
		t.Fatalf("a change that leaves allow_necessary_only alone wrote %d necessary_only records", len(got))
	}

	for i, on := range []bool{true, false} {
		st := again.Settings
		st.Privacy.AllowNecessaryOnly = on
		again, err = s.UpdateWorkspace(ctx, who, again, again.Name, st)
		testenv.Must(t, err, "turn necessary-only %t", on)
		if again.Settings.Privacy.AllowNecessaryOnly != on {
			t.Fatalf("allow_necessary_only = %t after setting %t", again.Settings.Privacy.AllowNecessaryOnly, on)
		}
		got := necessaryOnlyAudit(t, s, ws.OrgID, "acme")
		if len(got) != i+1 {
			t.Fatalf("after turning necessary-only %t: %d audit records, want %d", on, len(got), i+1)
		}
		want := `{"allow_necessary_only": ` + map[bool]string{true: "true", false: "false"}[on] + `}`
		if string(got[0].After) != want || got[0].ActorType != "cli" {
			t.Errorf("audit record = %+v (after %s), want after %s by the cli", got[0], got[0].After, want)
		}
	}
	updates, err := s.AuditLog(ctx, ws.OrgID, store.AuditFilter{Workspace: "acme", Action: "workspace.update", Limit: 100})
	testenv.Must(t, err, "read audit log")
	if len(updates) != 3 || !strings.Contains(string(updates[0].After), `"allow_necessary_only": false`) {
		t.Errorf("workspace.update records = %d, want 3 that include the privacy settings", len(updates))
	}
}

func TestCreateWorkspaceStoresPrivacy(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	org, err := s.OrganizationBySlug(ctx, store.DefaultOrganization)
	testenv.Must(t, err, "read organization")
	st := store.DefaultSettings()
	st.Privacy.AllowNecessaryOnly = true
	who := store.Change{Actor: store.Actor{Type: "cli", Label: "test"}}
	ws, err := s.CreateWorkspace(ctx, who, org, "initech", "Initech", st)
	testenv.Must(t, err, "create workspace")
	if !ws.Settings.Privacy.AllowNecessaryOnly {
		t.Errorf("created workspace privacy = %+v, want allow_necessary_only", ws.Settings.Privacy)
	}
	if got := necessaryOnlyAudit(t, s, org.ID, "initech"); len(got) != 1 {
		t.Errorf("creating a workspace with necessary-only processing wrote %d necessary_only records, want 1", len(got))
	}
}

func TestSyncWorkspacesPrivacy(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	org, err := s.OrganizationBySlug(ctx, store.DefaultOrganization)
	testenv.Must(t, err, "read organization")

	declared := consent.Policy{Required: []string{"analytics", "personalization"}, AllowNecessaryOnly: true,
		Minimise: consent.Minimise{IP: consent.IPRemove}}
	specs := withAcmeSources(baseSpecs[0].Sources...)
	specs[0].Privacy = &declared
	syncSpecs(t, s, specs)
	ws, err := s.WorkspaceBySlug(ctx, "acme")
	testenv.Must(t, err, "read workspace")
	if want := declared.WithDefaults(); !ws.Settings.Privacy.Equal(want) {
		t.Fatalf("synced privacy = %+v, want %+v", ws.Settings.Privacy, want)
	}
	if got := necessaryOnlyAudit(t, s, org.ID, "acme"); len(got) != 1 || got[0].ActorName != "plugins.yaml" {
		t.Fatalf("necessary_only records after sync = %+v, want one by plugins.yaml", got)
	}

	// The same file again changes nothing; a file without privacy leaves it.
	syncSpecs(t, s, specs)
	syncSpecs(t, s, baseSpecs)
	same, err := s.WorkspaceBySlug(ctx, "acme")
	testenv.Must(t, err, "read workspace")
	if !same.UpdatedAt.Equal(ws.UpdatedAt) || !same.Settings.Privacy.Equal(ws.Settings.Privacy) {
		t.Errorf("resync changed the workspace: updated %v -> %v, privacy %+v", ws.UpdatedAt, same.UpdatedAt, same.Settings.Privacy)
	}
	if got := necessaryOnlyAudit(t, s, org.ID, "acme"); len(got) != 1 {
		t.Errorf("resync wrote necessary_only records: %d, want 1", len(got))
	}
	globex, err := s.WorkspaceBySlug(ctx, "globex")
	testenv.Must(t, err, "read workspace")
	if !globex.Settings.Privacy.Equal(consent.DefaultPolicy()) {
		t.Errorf("globex privacy = %+v, want the default", globex.Settings.Privacy)
	}

	bad := withAcmeSources(baseSpecs[0].Sources...)
	bad[0].Privacy = &consent.Policy{Required: []string{"spying"}}
	err = s.SyncWorkspaces(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), `workspace acme: privacy.required[0]: purpose "spying" is not one of the workspace's purposes`) {
		t.Errorf("sync with an invalid policy: err = %v, want the field errors", err)
	}
}
