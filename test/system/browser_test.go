package system

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// The console and the one-line tracker in a real browser (Debian's
// Chromium, driven by playwright-core in test/browser/console.mjs) against
// a whole Eddy: an owner logs in, requires consent on the privacy page,
// creates a source, uploads and installs a WASM app, installs and
// configures a webhook sink through the form generated from its JSON
// Schema; a visitor browses a shop that loads the snippet (consenting
// first), adds to cart and signs up, and the app's answer reaches the page;
// the owner sees it all in the live debugger, the live sessions page and
// the profile; a viewer finds no edit controls and the API refuses them.
// Screenshots of each page land in test/artifacts/browser. This test then
// checks in the database and at the webhook what the browser did.
func TestConsoleAndTrackerInABrowser(t *testing.T) {
	const driverDir = "../browser"
	if _, err := os.Stat(filepath.Join(driverDir, "node_modules/playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed (make test runs npm ci in test/browser): %v", err)
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("Chromium is not installed (make test runs scripts/services.sh browser): %v", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed: %v", err)
	}
	hook := plugintest.Build(t, "../../plugins/sinks/webhook")
	greeter := plugintest.Build(t, "../../core/plugins/testdata/greeter")

	var mu sync.Mutex
	var delivered []map[string]any
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Batch []map[string]any `json:"batch"`
		}
		if json.Unmarshal(body, &b) == nil {
			mu.Lock()
			delivered = append(delivered, b.Batch...)
			mu.Unlock()
		}
	}))
	defer hookSrv.Close()

	e := newEnv(t, fmt.Sprintf(`plugins:
  - path: %s
`, hook.Dir))
	base := e.serve(e.config(e.dbURL, e.redisURL))
	e.ownerConsole(base) // creates owner@example.com
	ctx := context.Background()
	st, err := store.Open(ctx, e.dbURL)
	testenv.Must(t, err, "open store")
	defer st.Close()
	hash, err := auth.HashPassword("a viewer's long password")
	testenv.Must(t, err, "hash")
	viewer, err := st.CreateAdmin(ctx, "viewer@example.com", "Viewer", hash)
	testenv.Must(t, err, "create viewer")
	org, err := st.OrganizationBySlug(ctx, store.DefaultOrganization)
	testenv.Must(t, err, "default organization")
	testenv.Must(t, st.AddMember(ctx, store.Change{Actor: store.Actor{Type: "system"}}, org, viewer.ID, auth.RoleViewer), "add viewer")

	artifacts, err := filepath.Abs("../artifacts/browser")
	testenv.Must(t, err, "artifacts")
	testenv.Must(t, os.RemoveAll(artifacts), "clear artifacts")
	runCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", "console.mjs")
	cmd.Dir = driverDir
	cmd.Env = append(os.Environ(),
		"EDDY_URL="+base, "WORKSPACE=shop",
		"OWNER_EMAIL=owner@example.com", "OWNER_PASSWORD=a long enough password",
		"VIEWER_EMAIL=viewer@example.com", "VIEWER_PASSWORD=a viewer's long password",
		"GREETER_MANIFEST="+filepath.Join(greeter.Dir, "plugin.yaml"),
		"GREETER_MODULE="+filepath.Join(greeter.Dir, "dist/plugin.wasm"),
		"HOOK_URL="+hookSrv.URL, "ARTIFACTS="+artifacts)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	t.Logf("browser test output:\n%s", out.String())
	if runErr != nil {
		t.Fatalf("the browser test failed (%v); screenshots in %s", runErr, artifacts)
	}
	var res struct {
		AnonymousID   string `json:"anonymousId"`
		SessionID     string `json:"sessionId"`
		ProfileID     string `json:"profileId"`
		ViewerRefused int    `json:"viewerRefused"`
		Screenshots   int    `json:"screenshots"`
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			testenv.Must(t, json.Unmarshal([]byte(line), &res), "decode the result")
		}
	}
	if res.AnonymousID == "" || res.ProfileID == "" || res.Screenshots < 15 {
		t.Fatalf("the browser test's result is incomplete: %+v", res)
	}

	conn, err := pgx.Connect(ctx, e.dbURL)
	testenv.Must(t, err, "connect")
	defer conn.Close(ctx)

	// Everything the visitor did was stored, through the source the
	// console created, once each; the app's action too.
	var wantEvents = []string{"Segment Consent Preference Updated", "Product Added", "Signed Up", "welcome"}
	deadline := time.Now().Add(30 * time.Second)
	var names []string
	var pages int
	for {
		names, pages = nil, 0
		rows, err := conn.Query(ctx, `SELECT e.type, coalesce(e.event, ''), coalesce(s.slug, '') FROM events e
			LEFT JOIN sources s ON s.id = e.source_id WHERE e.anonymous_id = $1 ORDER BY e.timestamp`, res.AnonymousID)
		testenv.Must(t, err, "events")
		for rows.Next() {
			var typ, name, src string
			testenv.Must(t, rows.Scan(&typ, &name, &src), "scan")
			if typ == "page" {
				pages++
				if src != "site" {
					t.Errorf("a page view came through source %q, not the console's site", src)
				}
			} else {
				names = append(names, name)
			}
		}
		testenv.Must(t, rows.Err(), "events")
		if pages >= 3 && containsAll(names, wantEvents) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Home, the product (a single-page-app navigation) and the cart.
	if pages != 3 {
		t.Errorf("stored %d page views of the visitor, want 3 (home, SPA product page, cart)", pages)
	}
	if !containsAll(names, wantEvents) {
		t.Errorf("stored events %v, want all of %v", names, wantEvents)
	}
	for _, n := range wantEvents {
		if c := countOf(names, n); c > 1 {
			t.Errorf("%q stored %d times", n, c)
		}
	}

	// The sink installed through the form delivers to the URL typed into it.
	var config []byte
	testenv.Must(t, conn.QueryRow(ctx, `SELECT config FROM plugin_installations i JOIN workspaces w ON w.id = i.workspace_id
		WHERE w.slug = 'shop' AND i.plugin_id = 'sink.webhook'`).Scan(&config), "webhook installation")
	var cfg struct{ URL, Secret string }
	testenv.Must(t, json.Unmarshal(config, &cfg), "config")
	if cfg.URL != hookSrv.URL || cfg.Secret != "a-webhook-secret-of-32-characters" {
		t.Errorf("webhook config = %s, want the url and secret typed into the form", config)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := 0
		for _, m := range delivered {
			if m["anonymousId"] == res.AnonymousID && m["event"] == "Product Added" {
				got++
			}
		}
		mu.Unlock()
		if got == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook got the visitor's Product Added %d times, want once", got)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The privacy page's change is the workspace's policy, and the viewer's
	// attempt left nothing.
	var allow bool
	testenv.Must(t, conn.QueryRow(ctx, `SELECT coalesce((privacy->>'allow_necessary_only')::boolean, false)
		FROM workspaces WHERE slug = 'shop'`).Scan(&allow), "privacy")
	if allow {
		t.Error("allow_necessary_only is still on after the privacy page turned it off")
	}
	var viewerSources int
	testenv.Must(t, conn.QueryRow(ctx, `SELECT count(*) FROM sources WHERE slug = 'viewer-made'`).Scan(&viewerSources), "sources")
	if res.ViewerRefused != http.StatusForbidden || viewerSources != 0 {
		t.Errorf("the viewer's source: API answered %d, %d made", res.ViewerRefused, viewerSources)
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
