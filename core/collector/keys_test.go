package collector

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

func TestKeyCacheFollowsTheDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, dbURL), "migrate")
	st, err := store.Open(ctx, dbURL)
	testenv.Must(t, err, "open")
	defer st.Close()
	sync := func(keys ...string) {
		t.Helper()
		spec := store.WorkspaceSpec{Slug: "shop", Name: "Shop"}
		for i, k := range keys {
			spec.Sources = append(spec.Sources, store.SourceSpec{Slug: []string{"web", "app"}[i], Name: "s", WriteKey: k})
		}
		testenv.Must(t, st.SyncWorkspaces(ctx, []store.WorkspaceSpec{spec}), "sync")
	}
	sync("key-web")

	kc := NewKeyCache(st, time.Hour, slog.New(slog.DiscardHandler)) // only misses trigger reloads here
	testenv.Must(t, kc.Reload(ctx), "reload")
	src, ok := kc.Lookup("key-web")
	if !ok || src.WorkspaceSlug != "shop" || src.SourceSlug != "web" || src.WorkspaceID == "" || src.SourceID == "" {
		t.Fatalf("Lookup(key-web) = %+v, %v", src, ok)
	}
	if _, ok := kc.Lookup("nope"); ok {
		t.Fatal("an unknown key was found")
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { kc.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	// Rotate web's key and add app: after a miss, the cache reloads soon.
	sync("key-web-2", "key-app")
	testenv.Eventually(t, 10*time.Second, "the new keys work", func() bool {
		_, web2 := kc.Lookup("key-web-2")
		_, app := kc.Lookup("key-app")
		return web2 && app
	})
	if _, ok := kc.Lookup("key-web"); ok {
		t.Fatal("the rotated-out key still works")
	}

	// A source removed from the file is revoked: a hit triggers no reload,
	// so revocation takes effect at the next periodic reload.
	periodic := NewKeyCache(st, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	testenv.Must(t, periodic.Reload(ctx), "reload")
	periodicDone := make(chan struct{})
	go func() { periodic.Run(runCtx); close(periodicDone) }()
	defer func() { stop(); <-periodicDone }()
	if _, ok := periodic.Lookup("key-app"); !ok {
		t.Fatal("key-app is not known before its revocation")
	}
	sync("key-web-2")
	testenv.Eventually(t, 10*time.Second, "the removed source's key stops working", func() bool {
		_, ok := periodic.Lookup("key-app")
		return !ok
	})

	// A database outage keeps the known keys.
	st.Close()
	time.Sleep(minMissReload)
	kc.Lookup("unknown") // triggers a reload that fails
	time.Sleep(200 * time.Millisecond)
	if _, ok := kc.Lookup("key-web-2"); !ok {
		t.Fatal("a failed reload dropped the known keys")
	}
}
