package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/cube"
	"github.com/eddy-cdp/eddy/cubes"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// cubeCall sends a request to the Cube REST API with token as-is in
// Authorization.
func cubeCall(t *testing.T, p *platform, method, path, token, body string, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.srv.URL+api.CubeBase+path, r)
	testenv.Must(t, err, "request")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := plain().Do(req)
	testenv.Must(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 && json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s: not a JSON object: %s", method, path, b)
	}
	return resp.StatusCode, resp.Header, out
}

func cubeQuery(q string) string { return "/load?queryType=multi&query=" + url.QueryEscape(q) }

// The Cube API takes a workspace key with the read scope, as-is or after
// "Bearer"; anything else is Cube's 403 {"error": ...}.
func TestCubeAPIAuthentication(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@cube.test")
	owner.org("cube-org")
	owner.workspace("cube-org", "cube-ws")
	read := owner.apiKey("cube-ws", "reader", "read").Key
	write := owner.apiKey("cube-ws", "writer", "write").Key
	q := cubeQuery(`{"measures":["sessions.count"]}`)
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"key as-is", read, 200},
		{"Bearer key", "Bearer " + read, 200},
		{"no token", "", 403},
		{"unknown key", "eddy_key_nope", 403},
		{"write-only key", write, 403},
		{"a very long token", strings.Repeat("x", 10000), 403},
		{"Basic scheme", "Basic " + read, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := cubeCall(t, p, "GET", q, tc.token, "", nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %v", status, tc.want, body)
			}
			if tc.want != 200 {
				if msg, _ := body["error"].(string); msg == "" {
					t.Errorf("error body %v, want {\"error\": \"...\"}", body)
				}
			}
		})
	}
	// A console session is no Cube credential.
	status, _, _ := cubeCall(t, p, "GET", "/meta", "", "", map[string]string{"Cookie": "eddy_session=" + owner.sessionCookie()})
	if status != http.StatusForbidden {
		t.Errorf("/meta with a session cookie: %d, want 403", status)
	}
}

// /load answers in the shape @cubejs-client/core reads; /sql and /meta in
// Cube's; bad queries are 400s with Cube's error body.
func TestCubeAPIShapes(t *testing.T) {
	// A model of this platform's own: its rollups are made sure of in this
	// test's database only.
	model, err := cube.Load(cubes.FS(), ".")
	testenv.Must(t, err, "load the shipped models")
	p := newPlatform(t, func(o *api.Options) { o.Cubes = model })
	owner := p.newAdmin("owner@shapes.test")
	owner.org("shapes-org")
	owner.workspace("shapes-org", "shapes-ws")
	key := owner.apiKey("shapes-ws", "reader", "read").Key
	q := `{"measures":["sessions.count"],"dimensions":["sessions.channel_group"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"day","dateRange":["2026-01-01","2026-01-07"]}],"total":true}`

	status, _, multi := cubeCall(t, p, "GET", cubeQuery(q), key, "", nil)
	if status != 200 || multi["queryType"] != "regularQuery" || multi["slowQuery"] != false {
		t.Fatalf("GET /load multi: %d %v", status, multi)
	}
	results, _ := multi["results"].([]any)
	pivot, _ := multi["pivotQuery"].(map[string]any)
	if len(results) != 1 || pivot["queryType"] != "regularQuery" {
		t.Fatalf("results %v, pivotQuery %v", multi["results"], multi["pivotQuery"])
	}
	res := results[0].(map[string]any)
	for _, k := range []string{"query", "data", "annotation", "lastRefreshTime", "total"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result lacks %q: %v", k, res)
		}
	}
	if total, _ := res["total"].(float64); total != 0 || res["total"] == nil {
		t.Errorf("total %v, want 0 (asked, no rows)", res["total"])
	}
	tds, _ := res["query"].(map[string]any)["timeDimensions"].([]any)
	if len(tds) != 1 {
		t.Fatalf("query.timeDimensions %v", res["query"])
	}

	// POST {"query": ...} without queryType: the single result.
	status, _, single := cubeCall(t, p, "POST", "/load", key, `{"query":`+q+`}`, nil)
	if status != 200 || single["data"] == nil || single["annotation"] == nil || single["queryType"] != nil {
		t.Fatalf("POST /load: %d %v", status, single)
	}

	status, _, sql := cubeCall(t, p, "GET", "/sql?query="+url.QueryEscape(
		`{"measures":["sessions.count"],"filters":[{"member":"sessions.country","operator":"equals","values":["x'; DROP TABLE sessions; --"]}]}`), key, "", nil)
	inner, _ := sql["sql"].(map[string]any)
	pair, _ := inner["sql"].([]any)
	if status != 200 || len(pair) != 2 {
		t.Fatalf("GET /sql: %d %v", status, sql)
	}
	if text, _ := pair[0].(string); strings.Contains(text, "DROP") || !strings.Contains(text, "$") {
		t.Errorf("the value is not a parameter: %v", pair)
	}

	// With the shipped rollups in place, a query they answer exactly is
	// answered from one, and /sql names it; the answer is the tables'.
	rollupQ := `{"measures":["sessions.count"],"timeDimensions":[{"dimension":"sessions.started_at","granularity":"day","dateRange":"last 7 days"}]}`
	ws, err := p.store.WorkspaceBySlug(t.Context(), "shapes-ws")
	testenv.Must(t, err, "workspace")
	_, err = p.store.Pool().Exec(t.Context(), `INSERT INTO sessions (workspace_id, id, anonymous_id, started_at, last_event_at, events, page_views,
			channel_group, orders_count, revenue, bounced, closed)
		SELECT $1, gen_random_uuid(), 'a' || i, now() - make_interval(days => 1 + i % 3), now() - make_interval(days => 1 + i % 3), 1, 1, 'Direct', 0, 0, false, true
		FROM generate_series(1, 5) AS i`, ws.ID)
	testenv.Must(t, err, "sessions")
	_, _, before := cubeCall(t, p, "GET", "/load?query="+url.QueryEscape(rollupQ), key, "", nil)
	testenv.Must(t, model.EnsureRollups(context.Background(), p.store.Pool()), "ensure rollups")
	status, _, sql = cubeCall(t, p, "GET", "/sql?query="+url.QueryEscape(rollupQ), key, "", nil)
	inner, _ = sql["sql"].(map[string]any)
	if pre, _ := inner["preAggregations"].([]any); status != 200 || len(pre) != 1 || pre[0].(map[string]any)["preAggregationId"] != "sessions.hourly" {
		t.Errorf("GET /sql of a rollup's query: %d %v, want it answered from sessions.hourly", status, inner["preAggregations"])
	}
	_, _, after := cubeCall(t, p, "GET", "/load?query="+url.QueryEscape(rollupQ), key, "", nil)
	if rows, _ := before["data"].([]any); fmt.Sprint(before["data"]) != fmt.Sprint(after["data"]) || len(rows) == 0 {
		t.Errorf("from the rollup %v, from the tables %v", after["data"], before["data"])
	}

	status, _, meta := cubeCall(t, p, "GET", "/meta", key, "", nil)
	if cubes, _ := meta["cubes"].([]any); status != 200 || len(cubes) < 5 {
		t.Fatalf("GET /meta: %d %v", status, meta)
	}

	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"no query", "GET", "/load", "", 400},
		{"not JSON", "GET", "/load?query=%7B", "", 400},
		{"unknown member", "GET", cubeQuery(`{"measures":["sessions.nope"]}`), "", 400},
		{"another cube's table", "GET", cubeQuery(`{"measures":["api_keys.count"]}`), "", 400},
		{"bad queryType", "GET", "/load?queryType=blend&query=" + url.QueryEscape(`{"measures":["sessions.count"]}`), "", 400},
		{"blending", "GET", cubeQuery(`[{"measures":["sessions.count"]},{"measures":["orders.count"]}]`), "", 400},
		{"query too long", "GET", cubeQuery(`{"measures":["sessions.count"],"dimensions":["` + strings.Repeat("a", 70<<10) + `"]}`), "", 413},
		{"body too large", "POST", "/load", `{"query":{"measures":["` + strings.Repeat("a", 70<<10) + `"]}}`, 413},
		{"body not an object", "POST", "/load", `[1]`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := cubeCall(t, p, tc.method, tc.path, key, tc.body, nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %v", status, tc.want, body)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("body %v, want {\"error\": \"...\"}", body)
			}
		})
	}

	// CORS: a browser page may call it with a key.
	status, hdr, _ := cubeCall(t, p, "OPTIONS", "/load", "", "", map[string]string{
		"Origin": "https://dashboards.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
	if status != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") == "" ||
		!strings.Contains(strings.ToLower(hdr.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight: %d %v", status, hdr)
	}
}

// A workspace's own cube files: validated with file:line reasons, served by
// /meta and /load at once, gone when removed, and never another
// workspace's.
func TestWorkspaceCubeFiles(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@files.test")
	owner.org("files-org")
	owner.workspace("files-org", "files-a")
	owner.workspace("files-org", "files-b")
	keyA := owner.apiKey("files-a", "reader", "read").Key
	keyB := owner.apiKey("files-b", "reader", "read").Key
	viewer := p.member("files-org", "viewer@files.test", "viewer")

	good := "cubes:\n  - name: converted\n    sql: \"SELECT * FROM sessions WHERE orders_count > 0\"\n" +
		"    measures:\n      - name: count\n        type: count\n" +
		"    dimensions:\n      - name: id\n        type: string\n        sql: \"{CUBE}.id\"\n        primary_key: true\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		field string
	}{
		{"bad YAML", map[string]string{"bad.yml": "cubes:\n  - name: x\n   sql_table: [\n"}, "files.bad.yml"},
		{"unknown measure type", map[string]string{"t.yml": strings.Replace(good, "type: count", "type: median", 1)}, "files.t.yml"},
		{"a shipped cube's name", map[string]string{"s.yml": strings.Replace(good, "name: converted", "name: sessions", 1)}, "files.s.yml"},
		{"not a file name", map[string]string{"../x.yml": good}, "files"},
		{"not YAML by name", map[string]string{"x.json": good}, "files"},
		{"too big", map[string]string{"big.yml": strings.Repeat("#", 70<<10)}, "files.big.yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := owner.do("PUT", "/workspaces/files-a/cubes", map[string]any{"files": tc.files})
			r.wantInvalid(t, tc.field)
			if tc.field != "files" && !strings.Contains(string(r.body), ":") {
				t.Errorf("no file:line in %s", r.body)
			}
		})
	}
	if r := owner.do("PUT", "/workspaces/files-a/cubes", map[string]any{}); r.status != http.StatusBadRequest {
		t.Errorf("PUT without files: %d %s", r.status, r.body)
	}
	if r := viewer.do("PUT", "/workspaces/files-a/cubes", map[string]any{"files": map[string]string{"c.yml": good}}); r.status != http.StatusForbidden {
		t.Errorf("a viewer's PUT: %d, want 403", r.status)
	}

	hasCube := func(key string) bool {
		_, _, meta := cubeCall(t, p, "GET", "/meta", key, "", nil)
		for _, c := range meta["cubes"].([]any) {
			if c.(map[string]any)["name"] == "converted" {
				return true
			}
		}
		return false
	}
	load := func(key string) int {
		status, _, _ := cubeCall(t, p, "GET", cubeQuery(`{"measures":["converted.count"]}`), key, "", nil)
		return status
	}
	if hasCube(keyA) || load(keyA) != 400 {
		t.Fatal("the cube exists before it was added")
	}
	var out struct {
		Files   map[string]string
		Version int64
	}
	owner.must(http.StatusOK, "PUT", "/workspaces/files-a/cubes", map[string]any{"files": map[string]string{"c.yml": good}}, &out)
	if out.Version != 1 || out.Files["c.yml"] != good {
		t.Errorf("PUT answered %+v", out)
	}
	if !hasCube(keyA) || load(keyA) != 200 {
		t.Error("A's new cube is not served at once")
	}
	if hasCube(keyB) || load(keyB) != 400 {
		t.Error("B sees A's cube")
	}
	viewer.must(http.StatusOK, "GET", "/workspaces/files-a/cubes", nil, &out)
	if len(out.Files) != 1 {
		t.Errorf("GET: %+v", out)
	}
	owner.must(http.StatusOK, "PUT", "/workspaces/files-a/cubes", map[string]any{"files": map[string]string{}}, &out)
	if out.Version != 2 || hasCube(keyA) || load(keyA) != 400 {
		t.Errorf("after removing the files: version %d, cube served %v", out.Version, hasCube(keyA))
	}
	var audits int
	testenv.Must(t, p.store.Pool().QueryRow(t.Context(),
		`SELECT count(*) FROM audit_log WHERE action = 'workspace.cubes.update' AND workspace = 'files-a'`).Scan(&audits), "audit")
	if audits != 2 {
		t.Errorf("%d audit entries, want 2", audits)
	}
}

// A workspace cube's own SQL reads under the workspace's isolation: not
// Eddy's tables, not another workspace's rows.
func TestWorkspaceCubeSQLIsIsolated(t *testing.T) {
	p := newPlatform(t)
	owner := p.newAdmin("owner@sqlcube.test")
	owner.org("sqlcube-org")
	owner.workspace("sqlcube-org", "sqlcube-a")
	owner.workspace("sqlcube-org", "sqlcube-b")
	keyA := owner.apiKey("sqlcube-a", "reader", "read").Key
	owner.apiKey("sqlcube-b", "reader", "read")
	// B has a session, which A's cube must not count.
	_, err := p.store.Pool().Exec(t.Context(), `
		INSERT INTO sessions (workspace_id, id, anonymous_id, started_at, last_event_at, events, page_views, channel_group,
		                      orders_count, revenue, bounced, closed)
		SELECT id, gen_random_uuid(), 'anon', now(), now(), 1, 1, 'Direct', 0, 0, false, true FROM workspaces WHERE slug = 'sqlcube-b'`)
	testenv.Must(t, err, "B's session")

	cubeOver := func(sql string) string {
		return "cubes:\n  - name: peek\n    sql: " + yamlQuote(sql) + "\n    measures:\n      - name: count\n        type: count\n" +
			"    dimensions:\n      - name: id\n        type: string\n        sql: \"{CUBE}.id\"\n        primary_key: true\n"
	}
	for _, tc := range []struct {
		name, sql string
		want      int
		count     string
	}{
		{"Eddy's API keys", "SELECT workspace_id, id FROM api_keys", 400, ""},
		{"Eddy's admins", "SELECT id FROM admins", 400, ""},
		{"every workspace's API keys, by workspace id", "SELECT id FROM api_keys WHERE workspace_id IS NOT NULL", 400, ""},
		{"another workspace's sessions", "SELECT id FROM sessions WHERE workspace_id <> eddy_current_workspace()", 200, "0"},
		{"set_config to another workspace", "SELECT id FROM sessions, (SELECT set_config('eddy.workspace_id', '00000000-0000-0000-0000-000000000000', true)) s", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner.must(http.StatusOK, "PUT", "/workspaces/sqlcube-a/cubes", map[string]any{"files": map[string]string{"peek.yml": cubeOver(tc.sql)}}, nil)
			status, _, body := cubeCall(t, p, "GET", cubeQuery(`{"measures":["peek.count"]}`), keyA, "", nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %v", status, tc.want, body)
			}
			if tc.count != "" {
				data := body["results"].([]any)[0].(map[string]any)["data"].([]any)
				if got := data[0].(map[string]any)["peek.count"]; got != tc.count && got != 0.0 {
					t.Errorf("peek.count %v, want %s", got, tc.count)
				}
			}
		})
	}
	// B's api_keys row is still there, and a failed read changed nothing.
	if n := p.count("api_keys"); n != 2 {
		t.Errorf("%d API keys, want 2", n)
	}
}

// yamlQuote quotes s as a YAML double-quoted string.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
