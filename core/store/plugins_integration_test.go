package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

var pluginChange = store.Change{Actor: store.Actor{Type: "cli", Label: "plugin test"}}

// installationsBySlug returns every installation as
// "workspace/plugin enabled=… position=… rate=… managed=… config=…", in the order
// AllInstallations gives, with the workspace's slug instead of its id.
func installationsBySlug(t *testing.T, s *store.Store) []string {
	t.Helper()
	ctx := context.Background()
	all, err := s.AllInstallations(ctx)
	testenv.Must(t, err, "all installations")
	slugs := map[string]string{}
	var out []string
	for _, in := range all {
		if _, ok := slugs[in.WorkspaceID]; !ok {
			var slug string
			testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT slug FROM workspaces WHERE id = $1`, in.WorkspaceID).Scan(&slug), "slug")
			slugs[in.WorkspaceID] = slug
		}
		var cfg any
		testenv.Must(t, json.Unmarshal(in.Config, &cfg), "config of %s", in.PluginID)
		c, _ := json.Marshal(cfg)
		out = append(out, fmt.Sprintf("%s/%s enabled=%v position=%d rate=%g managed=%v config=%s",
			slugs[in.WorkspaceID], in.PluginID, in.Enabled, in.Position, in.RateLimit, in.Managed, c))
	}
	return out
}

func TestSyncInstallations(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	testenv.Must(t, s.SyncWorkspaces(ctx, []store.WorkspaceSpec{
		{Slug: "shop", Name: "Shop", Sources: []store.SourceSpec{{Slug: "web", WriteKey: "shop-write-key-1234"}}},
		{Slug: "blog", Name: "Blog"},
	}), "sync workspaces")
	shop, err := s.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace shop")

	// An installation made through the API (the first: position 0), which
	// the file never names: every sync leaves it alone.
	apiMade, err := s.CreateInstallation(ctx, pluginChange, shop,
		store.NewInstallation{PluginID: "sink.api_made", Enabled: true, Config: json.RawMessage(`{"url":"https://api.test"}`), RateLimit: 25}, nil)
	testenv.Must(t, err, "create installation")
	// And one the file takes over.
	_, err = s.CreateInstallation(ctx, pluginChange, shop,
		store.NewInstallation{PluginID: "processor.geoip", Enabled: false, Config: json.RawMessage(`{"db":"old"}`)}, nil)
	testenv.Must(t, err, "create installation")

	steps := []struct {
		name  string
		specs []store.InstallationSpec
		want  []string
	}{
		{
			name: "first sync creates, orders and takes over",
			specs: []store.InstallationSpec{
				{Workspace: "shop", PluginID: "processor.useragent", Enabled: true},
				{Workspace: "shop", PluginID: "processor.geoip", Enabled: true, Config: json.RawMessage(`{"db":"/geo.mmdb"}`)},
				{Workspace: "blog", PluginID: "sink.webhook", Enabled: false, Config: json.RawMessage(`{"url":"https://hooks.test","secret":"s3cret-s3cret-s3cret"}`), RateLimit: 0.5},
			},
			want: []string{
				`blog/sink.webhook enabled=false position=0 rate=0.5 managed=true config={"secret":"s3cret-s3cret-s3cret","url":"https://hooks.test"}`,
				`shop/processor.useragent enabled=true position=0 rate=0 managed=true config={}`,
				`shop/sink.api_made enabled=true position=0 rate=25 managed=false config={"url":"https://api.test"}`,
				`shop/processor.geoip enabled=true position=1 rate=0 managed=true config={"db":"/geo.mmdb"}`,
			},
		},
		{
			name: "reordering, reconfiguring and removing",
			specs: []store.InstallationSpec{
				{Workspace: "shop", PluginID: "processor.geoip", Enabled: false, Config: json.RawMessage(`{"db":"/other.mmdb"}`), RateLimit: 1000000},
				{Workspace: "shop", PluginID: "processor.useragent", Enabled: true},
			},
			want: []string{
				`shop/processor.geoip enabled=false position=0 rate=1e+06 managed=true config={"db":"/other.mmdb"}`,
				`shop/sink.api_made enabled=true position=0 rate=25 managed=false config={"url":"https://api.test"}`,
				`shop/processor.useragent enabled=true position=1 rate=0 managed=true config={}`,
			},
		},
		{
			name:  "an empty file removes every managed installation",
			specs: nil,
			want:  []string{`shop/sink.api_made enabled=true position=0 rate=25 managed=false config={"url":"https://api.test"}`},
		},
	}
	for _, step := range steps {
		testenv.Must(t, s.SyncInstallations(ctx, step.specs), "%s: sync", step.name)
		got := installationsBySlug(t, s)
		slices.SortStableFunc(got, func(a, b string) int { return strings.Compare(a[:4], b[:4]) })
		if !slices.Equal(got, step.want) {
			t.Errorf("%s:\ngot  %s\nwant %s", step.name, strings.Join(got, "\n     "), strings.Join(step.want, "\n     "))
		}
		// Again with the same specs: nothing changes, not even updated_at.
		before, err := s.AllInstallations(ctx)
		testenv.Must(t, err, "all installations")
		testenv.Must(t, s.SyncInstallations(ctx, step.specs), "%s: sync again", step.name)
		after, err := s.AllInstallations(ctx)
		testenv.Must(t, err, "all installations")
		if len(before) != len(after) {
			t.Fatalf("%s: a second sync changed the count %d → %d", step.name, len(before), len(after))
		}
		for i := range before {
			if !before[i].UpdatedAt.Equal(after[i].UpdatedAt) || before[i].ID != after[i].ID {
				t.Errorf("%s: a second sync touched %s (updated_at %v → %v)", step.name, before[i].PluginID,
					before[i].UpdatedAt, after[i].UpdatedAt)
			}
		}
	}
	still, err := s.InstallationOf(ctx, shop, "sink.api_made")
	testenv.Must(t, err, "the API-made installation")
	if still.ID != apiMade.ID {
		t.Errorf("the API-made installation was replaced: id %s → %s", apiMade.ID, still.ID)
	}
	// An update writes a new rate limit; the column refuses one out of range.
	setRate := func(r float64) (store.Installation, error) {
		return s.UpdateInstallation(ctx, pluginChange, shop, "sink.api_made", func(in store.Installation) (store.Installation, error) {
			in.RateLimit = r
			return in, nil
		}, nil)
	}
	if in, err := setRate(2.5); err != nil || in.RateLimit != 2.5 {
		t.Errorf("update the rate limit to 2.5: %v, %v", in.RateLimit, err)
	}
	if got, err := s.InstallationOf(ctx, shop, "sink.api_made"); err != nil || got.RateLimit != 2.5 {
		t.Errorf("the rate limit read back: %v, %v", got.RateLimit, err)
	}
	for _, r := range []float64{-0.5, store.MaxRateLimit + 1} {
		if _, err := setRate(r); err == nil || !strings.Contains(err.Error(), "rate_limit") {
			t.Errorf("rate limit %v: %v, want the column's check to refuse it", r, err)
		}
	}
	if _, err := setRate(25); err != nil {
		t.Fatalf("restore the rate limit: %v", err)
	}

	for _, tc := range []struct {
		name  string
		specs []store.InstallationSpec
		want  string
	}{
		{"unknown workspace", []store.InstallationSpec{{Workspace: "nowhere", PluginID: "sink.webhook"}}, "nowhere"},
		{"declared twice", []store.InstallationSpec{{Workspace: "shop", PluginID: "sink.x"}, {Workspace: "shop", PluginID: "sink.x"}}, "declared twice"},
		{"config not an object", []store.InstallationSpec{{Workspace: "shop", PluginID: "sink.x", Config: json.RawMessage(`[1]`)}}, "not a JSON object"},
		{"a negative rate limit", []store.InstallationSpec{{Workspace: "shop", PluginID: "sink.x", RateLimit: -1}}, "rate limit of sink.x"},
		{"a rate limit too high", []store.InstallationSpec{{Workspace: "shop", PluginID: "sink.x", RateLimit: 1000001}}, "from 0 to 1000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := installationsBySlug(t, s)
			err := s.SyncInstallations(ctx, tc.specs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SyncInstallations: %v, want an error mentioning %q", err, tc.want)
			}
			if after := installationsBySlug(t, s); !slices.Equal(before, after) {
				t.Errorf("a failed sync changed installations:\n%v\n%v", before, after)
			}
		})
	}
}

func TestManagedInstallationsRefuseChanges(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	testenv.Must(t, s.SyncWorkspaces(ctx, []store.WorkspaceSpec{{Slug: "shop", Name: "Shop"}}), "sync workspaces")
	testenv.Must(t, s.SyncInstallations(ctx, []store.InstallationSpec{{Workspace: "shop", PluginID: "sink.webhook", Enabled: true}}), "sync")
	shop, err := s.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	var conflict *store.ConflictError
	_, err = s.UpdateInstallation(ctx, pluginChange, shop, "sink.webhook", func(in store.Installation) (store.Installation, error) {
		in.Enabled = false
		return in, nil
	}, nil)
	if !errors.As(err, &conflict) || !strings.Contains(conflict.Msg, "plugins.yaml") {
		t.Errorf("updating a managed installation: %v, want a conflict naming plugins.yaml", err)
	}
	if _, err := s.DeleteInstallation(ctx, pluginChange, shop, "sink.webhook", nil); !errors.As(err, &conflict) {
		t.Errorf("deleting a managed installation: %v, want a conflict", err)
	}
	in, err := s.InstallationOf(ctx, shop, "sink.webhook")
	testenv.Must(t, err, "installation")
	if !in.Enabled || !in.Managed {
		t.Errorf("the managed installation changed: %+v", in)
	}
	if _, err := s.InstallationOf(ctx, shop, "sink.other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an installation that does not exist: %v, want ErrNotFound", err)
	}
}

// TestInstallationsRowLevelSecurity checks that a workspace transaction
// sees, changes and deletes its own workspace's installations only.
func TestInstallationsRowLevelSecurity(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	testenv.Must(t, s.SyncWorkspaces(ctx, []store.WorkspaceSpec{{Slug: "a", Name: "A"}, {Slug: "b", Name: "B"}}), "sync workspaces")
	testenv.Must(t, s.SyncInstallations(ctx, []store.InstallationSpec{
		{Workspace: "a", PluginID: "sink.webhook", Enabled: true},
		{Workspace: "b", PluginID: "sink.webhook", Enabled: true},
		{Workspace: "b", PluginID: "processor.geoip", Enabled: true},
	}), "sync")
	a, err := s.WorkspaceBySlug(ctx, "a")
	testenv.Must(t, err, "workspace a")
	b, err := s.WorkspaceBySlug(ctx, "b")
	testenv.Must(t, err, "workspace b")
	for _, tc := range []struct {
		name     string
		sql      string
		wantRows int64
		wantErr  string
	}{
		{"count", `SELECT 1 FROM plugin_installations WHERE $1::uuid IS NOT NULL`, 1, ""},
		{"read B's", `SELECT 1 FROM plugin_installations WHERE workspace_id = $1`, 0, ""},
		{"disable B's", `UPDATE plugin_installations SET enabled = false WHERE workspace_id = $1`, 0, ""},
		{"delete B's", `DELETE FROM plugin_installations WHERE workspace_id = $1`, 0, ""},
		{"move A's to B", `UPDATE plugin_installations SET workspace_id = $1`, 0, "row-level security"},
		{"install in B", `INSERT INTO plugin_installations (workspace_id, plugin_id) VALUES ($1, 'sink.sneaky')`, 0, "row-level security"},
		{"read the uploads", `SELECT 1 FROM plugin_uploads WHERE $1::uuid IS NOT NULL`, 0, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tag pgconn.CommandTag
			var stmtErr error
			err := s.InWorkspace(ctx, a.ID, func(tx pgx.Tx) error {
				tag, stmtErr = tx.Exec(ctx, tc.sql, b.ID)
				return rlsRollback
			})
			if !errors.Is(err, rlsRollback) {
				t.Fatalf("InWorkspace: %v", err)
			}
			if tc.wantErr != "" {
				if stmtErr == nil || !strings.Contains(stmtErr.Error(), tc.wantErr) {
					t.Fatalf("%s: %v, want %q", tc.sql, stmtErr, tc.wantErr)
				}
				return
			}
			testenv.Must(t, stmtErr, "%s", tc.sql)
			if tag.RowsAffected() != tc.wantRows {
				t.Errorf("%s affected %d rows, want %d", tc.sql, tag.RowsAffected(), tc.wantRows)
			}
		})
	}
	if got := len(installationsBySlug(t, s)); got != 3 {
		t.Errorf("%d installations after the attempts, want 3", got)
	}
}

func TestUploadedPlugins(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	testenv.Must(t, s.SyncWorkspaces(ctx, []store.WorkspaceSpec{{Slug: "shop", Name: "Shop"}}), "sync workspaces")
	org, err := s.OrganizationBySlug(ctx, store.DefaultOrganization)
	testenv.Must(t, err, "default organization")
	for _, v := range []string{"1.2.0", "1.10.0", "1.9.3"} {
		_, err := s.CreateUpload(ctx, pluginChange, org, store.UploadedPlugin{PluginID: "app.scorer", Version: v,
			Manifest: "id: app.scorer\nversion: " + v + "\n", Module: []byte("module " + v), SHA256: "sha-" + v})
		testenv.Must(t, err, "upload %s", v)
	}
	_, err = s.CreateUpload(ctx, pluginChange, org, store.UploadedPlugin{PluginID: "app.scorer", Version: "1.2.0",
		Manifest: "again", Module: []byte("again"), SHA256: "x"})
	var conflict *store.ConflictError
	if !errors.As(err, &conflict) {
		t.Errorf("uploading a version again: %v, want a conflict", err)
	}
	u, err := s.UploadedPlugin(ctx, org.ID, "app.scorer")
	testenv.Must(t, err, "uploaded plugin")
	if u.Version != "1.10.0" || string(u.Module) != "module 1.10.0" || u.Size != len("module 1.10.0") || u.SHA256 != "sha-1.10.0" {
		t.Errorf("latest upload: version %s, module %q, size %d, sha %s; want 1.10.0", u.Version, u.Module, u.Size, u.SHA256)
	}
	m, err := s.UploadedManifest(ctx, org.ID, "app.scorer")
	testenv.Must(t, err, "uploaded manifest")
	if m.Version != "1.10.0" || m.Module != nil || !strings.Contains(m.Manifest, "1.10.0") {
		t.Errorf("latest manifest: %+v", m)
	}
	list, err := s.UploadedPlugins(ctx, org.ID)
	testenv.Must(t, err, "uploaded plugins")
	if len(list) != 1 || list[0].Version != "1.10.0" {
		t.Errorf("uploaded plugins: %+v, want app.scorer 1.10.0 only", list)
	}
	if _, err := s.UploadedPlugin(ctx, org.ID, "app.other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a plugin never uploaded: %v, want ErrNotFound", err)
	}
	// Another organization's catalog is its own.
	var otherID string
	testenv.Must(t, s.Pool().QueryRow(ctx, `INSERT INTO organizations (slug, name) VALUES ('other', 'Other') RETURNING id::text`).Scan(&otherID), "organization")
	if _, err := s.UploadedPlugin(ctx, otherID, "app.scorer"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another organization's upload: %v, want ErrNotFound", err)
	}
	shop, err := s.WorkspaceBySlug(ctx, "shop")
	testenv.Must(t, err, "workspace")
	got, err := s.WorkspaceOrganization(ctx, shop.ID)
	testenv.Must(t, err, "workspace organization")
	if got != org.ID {
		t.Errorf("WorkspaceOrganization = %s, want %s", got, org.ID)
	}
}
