package store_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// sourceRow is a sources row with its workspace's slug, comparable with ==.
type sourceRow struct {
	Workspace, Slug, ID, Name, Hash, Prefix string
	Managed                                 bool
	RevokedAt, UpdatedAt                    time.Time // UTC; RevokedAt zero when NULL
}

func readSources(t *testing.T, s *store.Store) map[string]sourceRow {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `
		SELECT w.slug, s.slug, s.id::text, s.name, s.write_key_hash, s.write_key_prefix, s.managed, s.revoked_at, s.updated_at
		FROM sources s JOIN workspaces w ON w.id = s.workspace_id`)
	testenv.Must(t, err, "read sources")
	m := make(map[string]sourceRow)
	var r sourceRow
	var revokedAt *time.Time
	_, err = pgx.ForEachRow(rows, []any{&r.Workspace, &r.Slug, &r.ID, &r.Name, &r.Hash, &r.Prefix, &r.Managed, &revokedAt, &r.UpdatedAt}, func() error {
		row := r
		row.UpdatedAt = r.UpdatedAt.UTC()
		if revokedAt != nil {
			row.RevokedAt = revokedAt.UTC()
		}
		m[r.Workspace+"/"+r.Slug] = row
		return nil
	})
	testenv.Must(t, err, "read sources")
	return m
}

func syncSpecs(t *testing.T, s *store.Store, specs []store.WorkspaceSpec) {
	t.Helper()
	testenv.Must(t, s.SyncWorkspaces(context.Background(), specs), "sync workspaces")
}

func keys(t *testing.T, s *store.Store) []store.SourceKey {
	t.Helper()
	k, err := s.SourceKeys(context.Background())
	testenv.Must(t, err, "source keys")
	return k
}

// keyNames returns "workspace/source" for each key, checking the ids match
// the stored rows.
func keyNames(t *testing.T, s *store.Store) []string {
	t.Helper()
	rows := readSources(t, s)
	var names []string
	for _, k := range keys(t, s) {
		name := k.WorkspaceSlug + "/" + k.SourceSlug
		r, ok := rows[name]
		if !ok || r.ID != k.SourceID || r.Hash != k.KeyHash || len(k.WorkspaceID) != 36 {
			t.Errorf("source key %+v does not match the stored source %+v", k, r)
		}
		names = append(names, name)
	}
	return names
}

var baseSpecs = []store.WorkspaceSpec{
	{Slug: "acme", Name: "Acme", Sources: []store.SourceSpec{
		{Slug: "web", Name: "Website", WriteKey: "wk_acme_web_0123456789abcdef0123"},
		{Slug: "ios", Name: "iOS app", WriteKey: "wk_acme_ios_0123456789abcdef0123"},
	}},
	{Slug: "globex", Name: "Globex", Sources: []store.SourceSpec{
		{Slug: "server", Name: "Backend", WriteKey: "wk_globex_server_456789abcdef0123"},
	}},
}

// withAcmeSources returns a deep copy of baseSpecs with acme's sources replaced.
func withAcmeSources(sources ...store.SourceSpec) []store.WorkspaceSpec {
	specs := slices.Clone(baseSpecs)
	for i := range specs {
		specs[i].Sources = slices.Clone(specs[i].Sources)
	}
	specs[0].Sources = sources
	return specs
}

func TestSyncWorkspacesIsIdempotent(t *testing.T) {
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	first := readSources(t, s)
	firstKeys := keys(t, s)
	syncSpecs(t, s, baseSpecs)
	second := readSources(t, s)
	if len(first) != 3 {
		t.Fatalf("after one sync: %d sources, want 3: %v", len(first), first)
	}
	for name, r := range first {
		if second[name] != r {
			t.Errorf("second sync changed %s:\n before %+v\n after  %+v", name, r, second[name])
		}
		if !r.Managed || !r.RevokedAt.IsZero() {
			t.Errorf("source %s: managed %v, revoked at %v; want managed and not revoked", name, r.Managed, r.RevokedAt)
		}
	}
	if got := keys(t, s); !slices.Equal(got, firstKeys) {
		t.Errorf("source keys changed:\n before %+v\n after  %+v", firstKeys, got)
	}
	web := first["acme/web"]
	if web.Hash != store.HashSecret("wk_acme_web_0123456789abcdef0123") || web.Prefix != "wk_acm" || web.Name != "Website" {
		t.Errorf("acme/web stored as %+v; want the key's hash, prefix wk_acm and name Website", web)
	}
	var wsName string
	var managed bool
	err := s.Pool().QueryRow(context.Background(), "SELECT name, managed FROM workspaces WHERE slug = 'globex'").Scan(&wsName, &managed)
	testenv.Must(t, err, "read workspace")
	if wsName != "Globex" || !managed {
		t.Errorf("workspace globex: name %q managed %v, want Globex, managed", wsName, managed)
	}
}

func TestSyncWorkspacesRotatesWriteKeys(t *testing.T) {
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	before := readSources(t, s)
	rotated := withAcmeSources(
		store.SourceSpec{Slug: "web", Name: "Website", WriteKey: "wk_rotated_web_9876543210fedcba"},
		baseSpecs[0].Sources[1],
	)
	syncSpecs(t, s, rotated)
	after := readSources(t, s)
	web := after["acme/web"]
	if web.ID != before["acme/web"].ID {
		t.Errorf("rotation changed the source id from %s to %s", before["acme/web"].ID, web.ID)
	}
	if web.Hash != store.HashSecret("wk_rotated_web_9876543210fedcba") || web.Prefix != "wk_rot" {
		t.Errorf("after rotation acme/web has hash %s prefix %s; want the new key's", web.Hash, web.Prefix)
	}
	if !web.UpdatedAt.After(before["acme/web"].UpdatedAt) {
		t.Errorf("rotation left updated_at at %v", web.UpdatedAt)
	}
	for _, k := range keys(t, s) {
		if k.KeyHash == store.HashSecret(baseSpecs[0].Sources[0].WriteKey) {
			t.Errorf("the old write key is still accepted: %+v", k)
		}
	}
	if after["acme/ios"] != before["acme/ios"] {
		t.Errorf("rotating acme/web changed acme/ios: %+v -> %+v", before["acme/ios"], after["acme/ios"])
	}
}

func TestSyncWorkspacesRevokesAndRestoresSources(t *testing.T) {
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	before := readSources(t, s)

	// An unmanaged source (created through the API, say) is not plugins.yaml's.
	_, err := s.Pool().Exec(context.Background(), `
		INSERT INTO sources (workspace_id, slug, name, write_key_hash, write_key_prefix)
		SELECT id, 'manual', 'Manual', $1, 'man' FROM workspaces WHERE slug = 'acme'`, store.HashSecret("manual-key"))
	testenv.Must(t, err, "insert unmanaged source")

	syncSpecs(t, s, withAcmeSources(baseSpecs[0].Sources[1])) // acme/web removed
	removed := readSources(t, s)
	if removed["acme/web"].RevokedAt.IsZero() {
		t.Errorf("acme/web removed from the specs is not revoked: %+v", removed["acme/web"])
	}
	if !removed["acme/ios"].RevokedAt.IsZero() || !removed["acme/manual"].RevokedAt.IsZero() {
		t.Errorf("sources still declared or unmanaged were revoked: %+v, %+v", removed["acme/ios"], removed["acme/manual"])
	}
	want := []string{"acme/ios", "acme/manual", "globex/server"}
	if got := keyNames(t, s); !slices.Equal(got, want) {
		t.Errorf("source keys after revocation = %q, want %q", got, want)
	}
	// Revoking again changes nothing.
	syncSpecs(t, s, withAcmeSources(baseSpecs[0].Sources[1]))
	if again := readSources(t, s); again["acme/web"] != removed["acme/web"] {
		t.Errorf("a second sync changed the revoked source: %+v -> %+v", removed["acme/web"], again["acme/web"])
	}

	syncSpecs(t, s, baseSpecs) // acme/web back
	restored := readSources(t, s)
	if r := restored["acme/web"]; !r.RevokedAt.IsZero() || r.ID != before["acme/web"].ID || r.Hash != before["acme/web"].Hash {
		t.Errorf("re-added acme/web = %+v, want restored with id %s", r, before["acme/web"].ID)
	}
	want = []string{"acme/ios", "acme/manual", "acme/web", "globex/server"}
	if got := keyNames(t, s); !slices.Equal(got, want) {
		t.Errorf("source keys after restoration = %q, want %q", got, want)
	}

	// A workspace dropped from the specs keeps its rows; its sources are revoked.
	syncSpecs(t, s, baseSpecs[:1])
	dropped := readSources(t, s)
	if len(dropped) != 4 || dropped["globex/server"].RevokedAt.IsZero() {
		t.Errorf("after dropping workspace globex: sources %+v; want all 4 kept, globex/server revoked", dropped)
	}
}

func TestSyncWorkspacesMovesWriteKeys(t *testing.T) {
	s, _ := newStore(t)
	syncSpecs(t, s, baseSpecs)
	web, ios := baseSpecs[0].Sources[0], baseSpecs[0].Sources[1]
	web.WriteKey, ios.WriteKey = ios.WriteKey, web.WriteKey
	syncSpecs(t, s, withAcmeSources(web, ios))
	rows := readSources(t, s)
	if rows["acme/web"].Hash != store.HashSecret(web.WriteKey) || rows["acme/ios"].Hash != store.HashSecret(ios.WriteKey) {
		t.Errorf("after swapping keys: web %s, ios %s; want them swapped", rows["acme/web"].Hash, rows["acme/ios"].Hash)
	}

	// A revoked source keeps its key: no other source can take it.
	syncSpecs(t, s, withAcmeSources(ios)) // web revoked
	taker := store.SourceSpec{Slug: "android", WriteKey: web.WriteKey}
	err := s.SyncWorkspaces(context.Background(), withAcmeSources(ios, taker))
	if err == nil || !strings.Contains(err.Error(), "acme/android") || !strings.Contains(err.Error(), "acme/web") {
		t.Fatalf("giving acme/android the key of revoked acme/web: err = %v; want an error naming both", err)
	}
	if _, ok := readSources(t, s)["acme/android"]; ok {
		t.Error("a failed sync stored acme/android")
	}
}

func TestSyncWorkspacesRejectsInvalidSpecs(t *testing.T) {
	s, _ := newStore(t)
	tests := []struct {
		name  string
		specs []store.WorkspaceSpec
		want  string
	}{
		{"workspace without slug", []store.WorkspaceSpec{{Name: "x"}}, "a workspace has no slug"},
		{"workspace twice", []store.WorkspaceSpec{{Slug: "a"}, {Slug: "a"}}, "workspace a is declared twice"},
		{"source without slug", []store.WorkspaceSpec{{Slug: "a", Sources: []store.SourceSpec{{WriteKey: "k"}}}}, "a source of workspace a has no slug"},
		{"source twice", []store.WorkspaceSpec{{Slug: "a", Sources: []store.SourceSpec{{Slug: "s", WriteKey: "k1"}, {Slug: "s", WriteKey: "k2"}}}}, "source a/s is declared twice"},
		{"source without key", []store.WorkspaceSpec{{Slug: "a", Sources: []store.SourceSpec{{Slug: "s"}}}}, "source a/s has no write key"},
		{"shared key", []store.WorkspaceSpec{
			{Slug: "a", Sources: []store.SourceSpec{{Slug: "s", WriteKey: "k"}}},
			{Slug: "b", Sources: []store.SourceSpec{{Slug: "t", WriteKey: "k"}}},
		}, "sources a/s and b/t have the same write key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SyncWorkspaces(context.Background(), tt.specs)
			if err == nil || err.Error() != "sync workspaces: "+tt.want {
				t.Fatalf("err = %v, want %q", err, "sync workspaces: "+tt.want)
			}
		})
	}
	if n := countRows(t, s, "workspaces"); n != 0 {
		t.Errorf("invalid specs stored %d workspaces", n)
	}
}

func TestSyncWorkspacesConcurrently(t *testing.T) {
	s, _ := newStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.SyncWorkspaces(context.Background(), baseSpecs) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sync %d: %v", i, err)
		}
	}
	if got, want := keyNames(t, s), []string{"acme/ios", "acme/web", "globex/server"}; !slices.Equal(got, want) {
		t.Errorf("source keys = %q, want %q", got, want)
	}
}

func TestHashSecret(t *testing.T) {
	tests := []struct{ key, want string }{
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, tt := range tests {
		if got := store.HashSecret(tt.key); got != tt.want {
			t.Errorf("HashSecret(%q) = %s, want %s", tt.key, got, tt.want)
		}
	}
}
