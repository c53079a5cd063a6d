package system

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// What browsers load besides the APIs: the tracker with its workspace's
// consent policy (gzipped), and the console's page for every app route,
// with its security headers.
func TestTrackerAndConsoleAreServed(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))

	get := func(path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		testenv.Must(t, err, "request")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		// The transport would undo the gzip itself when it asked for it;
		// asking explicitly keeps the body as sent.
		resp, err := http.DefaultTransport.RoundTrip(req)
		testenv.Must(t, err, "get %s", path)
		defer resp.Body.Close()
		var r io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			testenv.Must(t, err, "gzip")
			r = zr
		}
		b, err := io.ReadAll(r)
		testenv.Must(t, err, "read")
		return resp, string(b)
	}
	config := func(js string) map[string]any {
		t.Helper()
		head, _, ok := strings.Cut(js, ";\n")
		raw, found := strings.CutPrefix(head, "window.__eddyConfig=")
		if !ok || !found {
			t.Fatalf("the script does not start with its configuration: %.120s", js)
		}
		var cfg map[string]any
		testenv.Must(t, json.Unmarshal([]byte(raw), &cfg), "config %s", raw)
		return cfg
	}

	resp, js := get("/sdk/eddy.js?key="+e.writeKey, map[string]string{"Accept-Encoding": "gzip"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") || resp.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("tracker: %d %v", resp.StatusCode, resp.Header)
	}
	cfg := config(js)
	consent, _ := cfg["consent"].(map[string]any)
	if cfg["writeKey"] != e.writeKey || consent == nil || consent["allowNecessaryOnly"] != true ||
		!strings.Contains(js, "eddy.js") || len(js) < 2000 {
		t.Errorf("tracker config %v (%d bytes)", cfg, len(js))
	}
	if req, _ := consent["required"].([]any); len(req) != 1 || req[0] != "analytics" {
		t.Errorf("required purposes %v, want the workspace's [analytics]", consent["required"])
	}
	// An unknown key gets the script with no key: it warns and sends nothing.
	resp, js = get("/sdk/eddy.js?key=wk_unknown", nil)
	if cfg := config(js); resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || cfg["writeKey"] != nil || cfg["consent"] != nil {
		t.Errorf("unknown key: %d, config %v", resp.StatusCode, cfg)
	}

	// Every console route answers the app's page, with its CSP.
	for _, p := range []string{"/", "/login", "/ws/shop/live", "/org/default/team"} {
		resp, html := get(p, nil)
		if resp.StatusCode != 200 || !strings.Contains(html, `<div id="root">`) ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %d %v", p, resp.StatusCode, resp.Header)
		}
	}
	_, index := get("/", nil)
	_, rest, ok := strings.Cut(index, `src="/assets/`)
	asset, _, _ := strings.Cut(rest, `"`)
	if !ok || asset == "" {
		t.Fatalf("index.html names no script under /assets/: %s", index)
	}
	if resp, js := get("/assets/"+asset, nil); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || len(js) < 1000 {
		t.Errorf("the console's script: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := get("/assets/missing.js", nil); resp.StatusCode != 404 {
		t.Errorf("a missing asset: %d, want 404", resp.StatusCode)
	}
	if resp, body := get("/api/v1/no-such-route", nil); resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("an unknown API route: %d %s, want the API's 404", resp.StatusCode, body)
	}
}
