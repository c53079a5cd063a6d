package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/internal/apitest"
)

// TestRoutesMatchTheDocument checks that every route api.Register mounts is
// an operation of openapi.yaml, and every operation a route.
func TestRoutesMatchTheDocument(t *testing.T) {
	t.Parallel()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	api.New(api.Options{}).Register(r)

	registered := map[string]bool{}
	for _, rt := range r.Routes() {
		if strings.HasPrefix(rt.Path, api.CubeBase+"/") {
			continue // the Cube REST API follows Cube's contract (cube_test.go)
		}
		path, ok := strings.CutPrefix(rt.Path, apitest.BasePath)
		if !ok {
			t.Errorf("route %s %s is outside %s", rt.Method, rt.Path, apitest.BasePath)
			continue
		}
		registered[rt.Method+" "+apitest.GinPath(path)] = true
	}
	documented := map[string]bool{}
	ids := map[string]bool{}
	for _, op := range apitest.Load(t).Operations() {
		documented[op.Method+" "+op.Path] = true
		if op.ID == "" || ids[op.ID] {
			t.Errorf("operation %s %s: operationId %q is missing or repeated", op.Method, op.Path, op.ID)
		}
		ids[op.ID] = true
	}
	for route := range registered {
		if !documented[route] {
			t.Errorf("route %s is not in openapi.yaml", route)
		}
	}
	for op := range documented {
		if !registered[op] {
			t.Errorf("openapi.yaml documents %s, which the API does not serve", op)
		}
	}
	if len(registered) < 27 {
		t.Errorf("only %d routes registered", len(registered))
	}
}

func TestOpenAPIJSON(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	r := p.anonymous().must(http.StatusOK, "GET", "/openapi.json", nil, nil)
	want, err := api.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.body, want) {
		t.Fatal("GET /openapi.json differs from api.OpenAPIJSON")
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Servers []struct{ URL string }    `json:"servers"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	r.decode(t, &doc)
	if doc.OpenAPI != "3.0.3" || len(doc.Servers) != 1 || doc.Servers[0].URL != api.Base || doc.Paths["/workspaces/{ws}/events"]["get"] == nil {
		t.Fatalf("document: openapi %q, servers %v, %d paths", doc.OpenAPI, doc.Servers, len(doc.Paths))
	}
	var paths []string
	for _, op := range apitest.Load(t).Operations() {
		if !slices.Contains(paths, op.Path) {
			paths = append(paths, op.Path)
		}
	}
	if len(doc.Paths) != len(paths) {
		t.Fatalf("served %d paths, the document has %d", len(doc.Paths), len(paths))
	}
	// Served with a session or a key as well.
	ada := p.newAdmin("ada@example.com")
	ada.must(http.StatusOK, "GET", "/openapi.json", nil, nil)
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	anon := p.anonymous()
	for _, tc := range []struct {
		sent string
		kept bool
	}{
		{"abc-123", true},
		{"trace.id:42_x", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"<script>", false},
		{"ünïcode", false},
	} {
		for _, path := range []string{"/openapi.json", "/organizations"} {
			r := anon.send("GET", path, nil, map[string]string{"X-Request-Id": tc.sent})
			got := r.header.Get("X-Request-Id")
			if tc.kept && got != tc.sent || !tc.kept && !uuidPattern.MatchString(got) {
				t.Errorf("GET %s with X-Request-Id %q: got %q", path, tc.sent, got)
			}
		}
	}
	// Routes that do not exist answer a JSON 404 with a request id (the
	// harness client refuses undocumented routes: use a plain one).
	for _, tc := range []struct{ method, path string }{
		{"GET", "/nothing"},
		{"GET", "/organizations/acme/nothing"},
		{"DELETE", "/organizations"},
		{"PUT", "/workspaces/shop"},
		{"GET", "/auth/login"},
	} {
		req, _ := http.NewRequest(tc.method, p.srv.URL+api.Base+tc.path, nil)
		req.Header.Set("X-Request-Id", "missing-route")
		resp, err := plain().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e apiError
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Error.Code != "not_found" {
			t.Errorf("%s %s: %d %s, want a JSON 404", tc.method, tc.path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Request-Id"); got != "missing-route" {
			t.Errorf("%s %s: X-Request-Id %q", tc.method, tc.path, got)
		}
	}
}
