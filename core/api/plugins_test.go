package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginstatus"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// testManifests parses the plugins of testdata/plugins: sink.webhook under
// builtin/, processor.tagger and processor.scorer under extra/.
func testManifests(t *testing.T) (map[string]*plugin.Manifest, string) {
	t.Helper()
	root, err := filepath.Abs("testdata/plugins")
	testenv.Must(t, err, "testdata")
	ms := map[string]*plugin.Manifest{}
	for _, dir := range []string{"builtin/webhook", "extra/tagger", "extra/scorer"} {
		d := filepath.Join(root, dir)
		data, err := os.ReadFile(filepath.Join(d, "plugin.yaml"))
		testenv.Must(t, err, "read %s", dir)
		m, err := plugin.ParseManifest(filepath.Join(d, "plugin.yaml"), d, data)
		testenv.Must(t, err, "parse %s", dir)
		ms[m.ID] = m
	}
	return ms, filepath.Join(root, "builtin")
}

// withPlugins gives the API the test plugins.
func withPlugins(t *testing.T) options {
	ms, builtin := testManifests(t)
	return func(o *api.Options) { o.Manifests, o.BuiltinPluginsDir = ms, builtin }
}

// leb128 encodes n as unsigned LEB128.
func leb128(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// tinyWASM returns a minimal valid WebAssembly module exporting functions
// of the given names, each returning the i32 1.
func tinyWASM(exports ...string) []byte {
	section := func(id byte, content []byte) []byte {
		return append(append([]byte{id}, leb128(len(content))...), content...)
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, section(1, []byte{1, 0x60, 0, 1, 0x7f})...) // one type: () -> i32
	funcs := leb128(len(exports))
	var exps, code []byte
	exps = append(exps, leb128(len(exports))...)
	code = append(code, leb128(len(exports))...)
	for i, name := range exports {
		funcs = append(funcs, 0)
		exps = append(append(append(exps, leb128(len(name))...), name...), 0, byte(i))
		code = append(code, 4, 0, 0x41, 1, 0x0b) // no locals; i32.const 1; end
	}
	out = append(out, section(3, funcs)...)
	out = append(out, section(7, exps)...)
	return append(out, section(10, code)...)
}

// abiWASM is a processor module: every export of Eddy's WASM ABI, with
// eddy_process and its batch buffer.
var abiWASM = tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init", "eddy_process", "eddy_buffer")

// appWASM is an app module: the ABI's exports and a session handler, no
// eddy_process.
var appWASM = tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init", "eddy_on_sessions")

// wasmManifest is the plugin.yaml of an uploaded WASM plugin.
func wasmManifest(id, version string) string {
	return fmt.Sprintf(`id: %s
version: %s
runtime: wasm
module: dist/plugin.wasm
description: An uploaded app.
config_schema:
  type: object
  additionalProperties: false
  properties:
    threshold: {type: integer, minimum: 0}
    password: {type: string}
permissions:
  events: [track]
`, id, version)
}

// multipartBody encodes parts (name → content) as multipart/form-data, in
// the order given.
func multipartBody(parts ...[2]string) (body []byte, contentType string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		fw, _ := w.CreateFormFile(p[0], p[0]+".bin")
		_, _ = fw.Write([]byte(p[1]))
	}
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// upload posts a plugin upload to an organization.
func (c *client) upload(org string, parts ...[2]string) response {
	c.p.t.Helper()
	body, ct := multipartBody(parts...)
	return c.send("POST", "/organizations/"+org+"/plugins", body, map[string]string{"Content-Type": ct})
}

type pluginJSON struct {
	ID, Version, Kind, Runtime, Description, Source string
	ConfigSchema                                    map[string]any `json:"config_schema"`
	SHA256                                          string
	Size                                            int
}

type installationJSON struct {
	ID, PluginID, WorkspaceID string
	Enabled, Managed          bool
	Config                    map[string]any
	Position                  int
	RateLimit                 float64 `json:"rate_limit"`
	Source                    string
	Status                    struct {
		State        string
		LastError    *string `json:"last_error"`
		Calls        int64
		EventsIn     int64   `json:"events_in"`
		AvgLatencyMS float64 `json:"avg_latency_ms"`
		DeadLetters  int64   `json:"dead_letters"`
	}
}

func (r response) installation(t *testing.T) installationJSON {
	t.Helper()
	var raw map[string]json.RawMessage
	r.decode(t, &raw)
	var in installationJSON
	r.decode(t, &in)
	// Field names with underscores.
	_ = json.Unmarshal(raw["plugin_id"], &in.PluginID)
	_ = json.Unmarshal(raw["workspace_id"], &in.WorkspaceID)
	return in
}

// storedConfig reads an installation's stored configuration.
func (p *platform) storedConfig(ws, pluginID string) map[string]any {
	p.t.Helper()
	var cfg map[string]any
	err := p.store.Pool().QueryRow(context.Background(), `
		SELECT i.config FROM plugin_installations i JOIN workspaces w ON w.id = i.workspace_id
		WHERE w.slug = $1 AND i.plugin_id = $2`, ws, pluginID).Scan(&cfg)
	testenv.Must(p.t, err, "stored config of %s in %s", pluginID, ws)
	return cfg
}

func TestPluginCatalogAndUploads(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	viewer := p.member("acme", "vic@example.com", "viewer")

	var list struct{ Data []pluginJSON }
	viewer.must(http.StatusOK, "GET", "/organizations/acme/plugins", nil, &list)
	var got []string
	for _, pl := range list.Data {
		got = append(got, pl.ID+" "+pl.Source+" "+pl.Kind+" "+pl.Runtime+" "+pl.Version)
	}
	want := []string{"processor.scorer file processor grpc 2.0.0", "processor.tagger file processor grpc 0.1.0",
		"sink.webhook builtin sink grpc 1.2.0"}
	if !slices.Equal(got, want) {
		t.Fatalf("catalog %v, want %v", got, want)
	}
	if req, _ := list.Data[2].ConfigSchema["required"].([]any); len(req) != 2 {
		t.Errorf("sink.webhook's config_schema: %v", list.Data[2].ConfigSchema)
	}
	if list.Data[0].ConfigSchema["type"] != "object" {
		t.Errorf("a plugin without config_schema shows %v, want the empty object schema", list.Data[0].ConfigSchema)
	}

	r := ada.upload("acme", [2]string{"manifest", wasmManifest("app.scorer", "1.0.0")}, [2]string{"module", string(abiWASM)})
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var up pluginJSON
	r.decode(t, &up)
	if up.ID != "app.scorer" || up.Source != "upload" || up.Runtime != "wasm" || up.Size != len(abiWASM) || len(up.SHA256) != 64 {
		t.Errorf("uploaded %+v", up)
	}
	ada.upload("acme", [2]string{"manifest", wasmManifest("app.scorer", "1.10.0")}, [2]string{"module", string(abiWASM)})
	viewer.must(http.StatusOK, "GET", "/organizations/acme/plugins", nil, &list)
	if n := len(list.Data); n != 4 || list.Data[0].ID != "app.scorer" || list.Data[0].Version != "1.10.0" {
		t.Errorf("catalog after uploads: %+v", list.Data)
	}
	// Another organization's catalog does not have it.
	bob := p.newAdmin("bob@example.com")
	bob.org("globex")
	bob.must(http.StatusOK, "GET", "/organizations/globex/plugins", nil, &list)
	if len(list.Data) != 3 {
		t.Errorf("globex's catalog: %+v", list.Data)
	}
	var audited int
	testenv.Must(t, p.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE action = 'plugin.upload' AND target_id = 'app.scorer'`).Scan(&audited), "audit")
	if audited != 2 {
		t.Errorf("%d plugin.upload audit entries, want 2", audited)
	}
}

func TestUploadRefusesBadPlugins(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	member := p.member("acme", "mel@example.com", "member")
	ok := wasmManifest("app.good", "1.0.0")
	r := ada.upload("acme", [2]string{"manifest", ok}, [2]string{"module", string(abiWASM)})
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	// An app exports a handler of its own instead of eddy_process.
	r = ada.upload("acme", [2]string{"manifest", wasmManifest("app.sessions", "1.0.0")}, [2]string{"module", string(appWASM)})
	if r.status != http.StatusCreated {
		t.Fatalf("upload of an app module: %d %s", r.status, r.body)
	}
	before := p.count("plugin_uploads")

	huge := make([]byte, api.MaxModuleBytes+1)
	copy(huge, abiWASM)
	for _, tc := range []struct {
		name   string
		parts  [][2]string
		status int
		field  string // the field a 400 names
		want   string // in the message
	}{
		{"the same version again", [][2]string{{"manifest", ok}, {"module", string(abiWASM)}}, 409, "", "uploaded already"},
		{"the id of a plugins.yaml plugin", [][2]string{{"manifest", wasmManifest("sink.webhook", "9.0.0")}, {"module", string(abiWASM)}}, 409, "", "plugins.yaml"},
		{"no module", [][2]string{{"manifest", ok}}, 400, "module", "is required"},
		{"no manifest", [][2]string{{"module", string(abiWASM)}}, 400, "manifest", "is required"},
		{"a grpc manifest", [][2]string{{"manifest", "id: app.x\nversion: 1.0.0\nruntime: grpc\nbinary: dist/plugin\n"}, {"module", string(abiWASM)}}, 400, "manifest.runtime", "only wasm"},
		{"a manifest that does not parse", [][2]string{{"manifest", "id: [\n"}, {"module", string(abiWASM)}}, 400, "manifest", ""},
		{"a manifest with a bad id", [][2]string{{"manifest", wasmManifest("App", "1.0.0")}, {"module", string(abiWASM)}}, 400, "manifest", "id"},
		{"a module that is not wasm", [][2]string{{"manifest", ok}, {"module", "#!/bin/sh\necho hello\n"}}, 400, "module", `\0asm`},
		{"a wasm module that does not compile", [][2]string{{"manifest", ok}, {"module", "\x00asm\x01\x00\x00\x00\x07\xff"}}, 400, "module", "does not compile"},
		{"a wasm module without the ABI's exports", [][2]string{{"manifest", ok}, {"module", string(tinyWASM("main"))}}, 400, "module", "eddy_abi_version"},
		{"a wasm module without some exports", [][2]string{{"manifest", ok}, {"module", string(tinyWASM("eddy_abi_version", "eddy_init"))}}, 400, "module", "eddy_process"},
		{"a wasm module with no handler", [][2]string{{"manifest", ok}, {"module", string(tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init"))}},
			400, "module", "it exports none of eddy_process, eddy_on_events or eddy_on_sessions"},
		{"a processor module without its buffer", [][2]string{{"manifest", ok}, {"module", string(tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init", "eddy_process"))}},
			400, "module", "eddy_process without eddy_buffer"},
		{"an unknown part", [][2]string{{"manifest", ok}, {"module", string(abiWASM)}, {"readme", "hi"}}, 400, "readme", "not a known part"},
		{"a module over 16 MiB", [][2]string{{"manifest", ok}, {"module", string(huge)}}, 413, "", "module"},
		{"a manifest over 256 KiB", [][2]string{{"manifest", ok + "#" + strings.Repeat("x", plugin.MaxManifestBytes)}, {"module", string(abiWASM)}}, 413, "", "manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ada.in(t).upload("acme", tc.parts...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.field != "" {
				r.wantInvalid(t, tc.field)
			}
			if !strings.Contains(string(r.body), tc.want) {
				t.Errorf("the error does not say %q: %s", tc.want, r.body)
			}
		})
	}
	t.Run("not multipart", func(t *testing.T) {
		ada.in(t).do("POST", "/organizations/acme/plugins", map[string]any{"manifest": ok}).wantInvalid(t, "body")
	})
	t.Run("a member", func(t *testing.T) {
		r := member.in(t).upload("acme", [2]string{"manifest", wasmManifest("app.other", "1.0.0")}, [2]string{"module", string(abiWASM)})
		if r.status != http.StatusForbidden {
			t.Fatalf("a member's upload: %d %s", r.status, r.body)
		}
	})
	if after := p.count("plugin_uploads"); after != before {
		t.Errorf("refused uploads stored %d rows", after-before)
	}
}

func TestInstallations(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	viewer := p.member("acme", "vic@example.com", "viewer")
	const secret = "hmac-secret-0123456789"
	const signing = "signing-key-abcdef"
	const token = "api-token-xyz-987"

	r := ada.must(http.StatusCreated, "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.webhook",
		"config": map[string]any{"url": "https://hooks.example.com/in", "secret": secret, "signing_key": signing,
			"batch_size": 50, "auth": map[string]any{"user": "eddy", "api_token": token}}, "rate_limit": 0.5}, nil)
	hook := r.installation(t)
	wantConfig := map[string]any{"url": "https://hooks.example.com/in", "secret": api.Mask, "signing_key": api.Mask,
		"batch_size": float64(50), "auth": map[string]any{"user": "eddy", "api_token": api.Mask}}
	if hook.PluginID != "sink.webhook" || hook.WorkspaceID != "shop" || !hook.Enabled || hook.Managed ||
		hook.Position != 0 || hook.RateLimit != 0.5 || hook.Source != "builtin" || hook.Status.State != "unknown" ||
		fmt.Sprint(hook.Config) != fmt.Sprint(wantConfig) {
		t.Fatalf("installed %+v", hook)
	}
	for _, s := range []string{secret, signing, token} {
		if strings.Contains(string(r.body), s) {
			t.Errorf("the response holds the secret %q: %s", s, r.body)
		}
	}
	if got := p.storedConfig("shop", "sink.webhook"); got["secret"] != secret || got["signing_key"] != signing {
		t.Fatalf("stored config %v", got)
	}
	// A second plugin goes after the first.
	tagger := ada.must(http.StatusCreated, "POST", "/workspaces/shop/plugins",
		map[string]any{"plugin_id": "processor.tagger", "enabled": false}, nil).installation(t)
	if tagger.Position != 1 || tagger.Enabled || tagger.Source != "file" || len(tagger.Config) != 0 || tagger.RateLimit != 0 {
		t.Fatalf("second installation %+v", tagger)
	}
	ada.expect(http.StatusConflict, "conflict", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.tagger"})

	// Viewers read; the list is in processing order.
	var page struct {
		Data []map[string]any
	}
	viewer.must(http.StatusOK, "GET", "/workspaces/shop/plugins", nil, &page)
	if len(page.Data) != 2 || page.Data[0]["plugin_id"] != "sink.webhook" || page.Data[1]["plugin_id"] != "processor.tagger" {
		t.Fatalf("list %v", page.Data)
	}
	viewer.expect(http.StatusForbidden, "forbidden", "PATCH", "/workspaces/shop/plugins/sink.webhook", map[string]any{"enabled": false})
	// Reorder: the tagger first.
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop/plugins/processor.tagger", map[string]any{"position": 0, "enabled": true}, nil)
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop/plugins/sink.webhook", map[string]any{"position": 5}, nil)
	var pages []string
	cursor := ""
	for range 5 {
		var pg struct {
			Data       []map[string]any
			NextCursor string `json:"next_cursor"`
		}
		path := "/workspaces/shop/plugins?limit=1"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		viewer.must(http.StatusOK, "GET", path, nil, &pg)
		for _, d := range pg.Data {
			pages = append(pages, fmt.Sprint(d["plugin_id"], d["position"], d["enabled"]))
		}
		if cursor = pg.NextCursor; cursor == "" {
			break
		}
	}
	if want := []string{"processor.tagger0 true", "sink.webhook5 true"}; !slices.Equal(pages, want) {
		t.Errorf("pages %v, want %v", pages, want)
	}
	// The rate limit: kept by a PATCH that does not name it, changed by
	// one that does, 0 for unlimited.
	if got := viewer.must(http.StatusOK, "GET", "/workspaces/shop/plugins/sink.webhook", nil, nil).installation(t); got.RateLimit != 0.5 {
		t.Errorf("rate_limit after a PATCH of the position: %v, want 0.5", got.RateLimit)
	}
	for _, rl := range []float64{250, 0, 1000000, 0.5} {
		got := ada.must(http.StatusOK, "PATCH", "/workspaces/shop/plugins/sink.webhook", map[string]any{"rate_limit": rl}, nil).installation(t)
		if got.RateLimit != rl {
			t.Errorf("PATCH rate_limit %v answered %v", rl, got.RateLimit)
		}
		if got := viewer.must(http.StatusOK, "GET", "/workspaces/shop/plugins/sink.webhook", nil, nil).installation(t); got.RateLimit != rl {
			t.Errorf("PATCH rate_limit %v: GET shows %v", rl, got.RateLimit)
		}
	}

	// Reconfigure: the masks sent back keep the stored secrets.
	r = ada.must(http.StatusOK, "PATCH", "/workspaces/shop/plugins/sink.webhook", map[string]any{"config": map[string]any{
		"url": "https://hooks.example.com/v2", "secret": api.Mask, "signing_key": api.Mask,
		"auth": map[string]any{"user": "eddy2", "api_token": api.Mask}}}, nil)
	if got := p.storedConfig("shop", "sink.webhook"); got["secret"] != secret || got["signing_key"] != signing ||
		got["url"] != "https://hooks.example.com/v2" || got["batch_size"] != nil || fmt.Sprint(got["auth"]) != fmt.Sprint(map[string]any{"user": "eddy2", "api_token": token}) {
		t.Fatalf("stored config after the masked PATCH: %v", got)
	}
	// A new secret replaces the stored one.
	ada.must(http.StatusOK, "PATCH", "/workspaces/shop/plugins/sink.webhook", map[string]any{"config": map[string]any{
		"url": "https://hooks.example.com/v2", "secret": "a-brand-new-secret-value"}}, nil)
	if got := p.storedConfig("shop", "sink.webhook"); got["secret"] != "a-brand-new-secret-value" || got["signing_key"] != nil {
		t.Fatalf("stored config after the new secret: %v", got)
	}
	// A mask where nothing is stored is refused.
	ada.do("PATCH", "/workspaces/shop/plugins/sink.webhook", map[string]any{"config": map[string]any{
		"url": "https://hooks.example.com/v2", "secret": api.Mask, "signing_key": api.Mask}}).wantInvalid(t, "config.signing_key")

	// The audit log never holds a secret.
	var auditText string
	testenv.Must(t, p.store.Pool().QueryRow(context.Background(),
		`SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' ') FROM audit_log WHERE action LIKE 'plugin.%'`).Scan(&auditText), "audit")
	for _, s := range []string{secret, signing, token, "a-brand-new-secret-value"} {
		if strings.Contains(auditText, s) {
			t.Errorf("the audit log holds the secret %q", s)
		}
	}
	if !strings.Contains(auditText, "hooks.example.com/v2") {
		t.Errorf("the audit log does not show the configuration change: %s", auditText)
	}

	// Uninstall.
	ada.must(http.StatusNoContent, "DELETE", "/workspaces/shop/plugins/processor.tagger", nil, nil)
	ada.expect(http.StatusNotFound, "not_found", "GET", "/workspaces/shop/plugins/processor.tagger", nil)
	ada.expect(http.StatusNotFound, "not_found", "DELETE", "/workspaces/shop/plugins/processor.tagger", nil)
	var actions []string
	rows, err := p.store.Pool().Query(context.Background(), `SELECT action FROM audit_log WHERE action LIKE 'plugin.%' ORDER BY id`)
	testenv.Must(t, err, "audit")
	for rows.Next() {
		var a string
		testenv.Must(t, rows.Scan(&a), "scan")
		actions = append(actions, a)
	}
	want := []string{"plugin.install", "plugin.install", "plugin.update", "plugin.update", "plugin.update", "plugin.update", "plugin.update",
		"plugin.update", "plugin.update", "plugin.update", "plugin.uninstall"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit actions %v, want %v", actions, want)
	}
}

func TestInstallationRefusesBadInput(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.tagger"}, nil)
	before := p.count("plugin_installations")

	const sneaky = "Sneaky-Secret-Value"
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		fields []string
	}{
		{"missing required settings", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.webhook", "config": map[string]any{}},
			400, []string{"config.secret", "config.url"}},
		{"wrong settings", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.webhook",
			"config": map[string]any{"url": "not a url", "secret": "short", "batch_size": "many", "colour": "red"}},
			400, []string{"config.batch_size", "config.colour", "config.secret", "config.url"}},
		{"a secret-looking value is never echoed", "PATCH", "/workspaces/shop/plugins/processor.tagger",
			map[string]any{"config": map[string]any{"tag": sneaky}}, 400, []string{"config.tag"}},
		{"a plugin not in the catalog", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.nowhere"}, 400, []string{"plugin_id"}},
		{"not a plugin id", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "Webhook"}, 400, []string{"plugin_id"}},
		{"no plugin id", "POST", "/workspaces/shop/plugins", map[string]any{}, 400, []string{"plugin_id"}},
		{"config not an object", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.scorer", "config": []int{1}}, 400, []string{"config"}},
		{"a mask on install", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.webhook",
			"config": map[string]any{"url": "https://x.example.com", "secret": api.Mask}}, 400, []string{"config.secret"}},
		{"a negative position", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.scorer", "position": -1}, 400, []string{"position"}},
		{"a value above a maximum is not echoed", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "sink.webhook",
			"config": map[string]any{"url": "https://x.example.com", "secret": "0123456789abcdef", "batch_size": 31337}}, 400, []string{"config.batch_size"}},
		{"a negative rate limit", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.scorer", "rate_limit": -0.5}, 400, []string{"rate_limit"}},
		{"a rate limit too high", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.scorer", "rate_limit": 1000000.5}, 400, []string{"rate_limit"}},
		{"a rate limit that is not a number", "POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "processor.scorer", "rate_limit": "fast"}, 400, []string{"rate_limit"}},
		{"a PATCH of a rate limit too high", "PATCH", "/workspaces/shop/plugins/processor.tagger", map[string]any{"rate_limit": 2e6}, 400, []string{"rate_limit"}},
		{"a PATCH of a rate limit that is not a number", "PATCH", "/workspaces/shop/plugins/processor.tagger", map[string]any{"rate_limit": true}, 400, []string{"rate_limit"}},
		{"an unknown field", "PATCH", "/workspaces/shop/plugins/processor.tagger", map[string]any{"plugin_id": "sink.webhook"}, 400, []string{"plugin_id"}},
		{"a bad path id", "GET", "/workspaces/shop/plugins/not-an-id", nil, 400, []string{"plugin_id"}},
		{"an installation that does not exist", "GET", "/workspaces/shop/plugins/sink.webhook", nil, 404, nil},
		{"an unknown plugin's installation", "PATCH", "/workspaces/shop/plugins/sink.nowhere", map[string]any{"enabled": false}, 404, nil},
		{"uninstalling what is not installed", "DELETE", "/workspaces/shop/plugins/processor.scorer", nil, 404, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ada.in(t).do(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 400 {
				got := r.fields(t)
				slices.Sort(got)
				if !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v: %s", got, tc.fields, r.body)
				}
			}
			for _, s := range []string{sneaky, "not a url", "short", "many", "31337"} {
				if strings.Contains(string(r.body), s) {
					t.Errorf("the error echoes the value %q: %s", s, r.body)
				}
			}
		})
	}
	if after := p.count("plugin_installations"); after != before {
		t.Errorf("refused requests stored %d installations", after-before)
	}
}

func TestManagedInstallationIsReadOnly(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ctx := context.Background()
	testenv.Must(t, p.store.SyncWorkspaces(ctx, []store.WorkspaceSpec{{Slug: "gitops", Name: "GitOps"}}), "sync workspaces")
	testenv.Must(t, p.store.SyncInstallations(ctx, []store.InstallationSpec{{Workspace: "gitops", PluginID: "sink.webhook", Enabled: true,
		Config: json.RawMessage(`{"url":"https://hooks.example.com","secret":"file-secret-0123456789"}`)}}), "sync installations")
	owner := p.newAdmin("ops@example.com")
	org, err := p.store.OrganizationBySlug(ctx, store.DefaultOrganization)
	testenv.Must(t, err, "default organization")
	testenv.Must(t, p.store.AddMember(ctx, store.Change{Actor: store.Actor{Type: "cli"}}, org, owner.adminID(), "owner"), "add owner")

	r := owner.must(http.StatusOK, "GET", "/workspaces/gitops/plugins/sink.webhook", nil, nil)
	in := r.installation(t)
	if !in.Managed || in.Config["secret"] != api.Mask || strings.Contains(string(r.body), "file-secret") {
		t.Fatalf("managed installation %s", r.body)
	}
	for _, call := range []struct {
		method string
		body   any
	}{{"PATCH", map[string]any{"enabled": false}}, {"DELETE", nil}} {
		r := owner.expect(http.StatusConflict, "conflict", call.method, "/workspaces/gitops/plugins/sink.webhook", call.body)
		if !strings.Contains(string(r.body), "plugins.yaml") {
			t.Errorf("%s: the conflict does not name plugins.yaml: %s", call.method, r.body)
		}
	}
	if got := owner.must(http.StatusOK, "GET", "/workspaces/gitops/plugins/sink.webhook", nil, nil).installation(t); !got.Enabled {
		t.Error("the managed installation was disabled")
	}
}

func TestInstallationStatusAndUploadedPlugins(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, withPlugins(t))
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	r := ada.upload("acme", [2]string{"manifest", wasmManifest("app.scorer", "1.0.0")}, [2]string{"module", string(abiWASM)})
	if r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	// An uploaded plugin installs like another, its schema checked.
	ada.do("POST", "/workspaces/shop/plugins", map[string]any{"plugin_id": "app.scorer", "config": map[string]any{"threshold": -1}}).
		wantInvalid(t, "config.threshold")
	in := ada.must(http.StatusCreated, "POST", "/workspaces/shop/plugins",
		map[string]any{"plugin_id": "app.scorer", "config": map[string]any{"threshold": 3, "password": "pw-0123"}}, nil).installation(t)
	if in.Source != "upload" || in.Config["password"] != api.Mask || in.Config["threshold"] != float64(3) {
		t.Fatalf("installed upload %+v", in)
	}
	// Another organization cannot install it.
	bob := p.newAdmin("bob@example.com")
	bob.org("globex")
	bob.workspace("globex", "store")
	bob.do("POST", "/workspaces/store/plugins", map[string]any{"plugin_id": "app.scorer"}).wantInvalid(t, "plugin_id")

	// What the workers report shows in the installation.
	status := pluginstatus.New(p.rdb, p.prefix, time.Minute)
	now := time.Now()
	ctx := context.Background()
	testenv.Must(t, status.Put(ctx, in.ID, "worker-1", pluginstatus.Report{State: pluginstatus.Running, Calls: 10, CallSeconds: 0.5,
		EventsIn: 100, DeadLetters: 2, UpdatedAt: now}), "put status")
	testenv.Must(t, status.Put(ctx, in.ID, "worker-2", pluginstatus.Report{State: pluginstatus.Failing, LastError: "boom",
		LastErrorAt: now, Calls: 10, CallSeconds: 1.5, EventsIn: 50, UpdatedAt: now}), "put status")
	got := ada.must(http.StatusOK, "GET", "/workspaces/shop/plugins/app.scorer", nil, nil).installation(t)
	st := got.Status
	if st.State != "failing" || st.Calls != 20 || st.EventsIn != 150 || st.DeadLetters != 2 || st.AvgLatencyMS != 100 ||
		st.LastError == nil || *st.LastError != "boom" {
		t.Errorf("status %+v", st)
	}
	// Uninstalling forgets the status.
	ada.must(http.StatusNoContent, "DELETE", "/workspaces/shop/plugins/app.scorer", nil, nil)
	if _, ok, err := status.Get(ctx, in.ID); err != nil || ok {
		t.Errorf("after uninstall the status is still there (ok %v, err %v)", ok, err)
	}
}

func TestCheckWASMModule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		module []byte
		want   string
	}{
		{"a processor", abiWASM, ""},
		{"an app", appWASM, ""},
		{"an app with both handlers", tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init", "eddy_on_events", "eddy_on_sessions"), ""},
		{"no handler", tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init"), "exports none of eddy_process, eddy_on_events or eddy_on_sessions"},
		{"a processor without its buffer", tinyWASM("eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init", "eddy_process"), "eddy_process without eddy_buffer"},
		{"empty", nil, "not a WebAssembly module"},
		{"text", []byte("hello, world"), "not a WebAssembly module"},
		{"truncated", abiWASM[:len(abiWASM)-3], "does not compile"},
		{"no exports", tinyWASM(), "does not export eddy_abi_version, eddy_alloc, eddy_free, eddy_init, nor any of eddy_process, eddy_on_events or eddy_on_sessions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := api.CheckWASMModule(ctx, tc.module)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckWASMModule: %v, want %q", err, tc.want)
			}
		})
	}
}
