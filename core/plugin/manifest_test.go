package plugin

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func loadWebhook(t *testing.T) *Manifest {
	t.Helper()
	name := filepath.Join("testdata", "webhook", "plugin.yaml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(name, filepath.Dir(name), data)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	return m
}

func TestParseManifest(t *testing.T) {
	m := loadWebhook(t)
	if m.ID != "sink.webhook" || m.Kind() != Sink || m.Runtime != GRPC || m.Version != "1.2.0" {
		t.Fatalf("manifest = %+v", m)
	}
	if got, want := m.Artifact(), filepath.Join("testdata", "webhook", "sink-webhook"); got != want {
		t.Fatalf("Artifact() = %q, want %q", got, want)
	}
	want := Permissions{Events: []string{"*"}, Network: []string{"hooks.example.com", "*.example.org"}, Write: []string{}}
	if !reflect.DeepEqual(m.Permissions, want) || !reflect.DeepEqual(m.Purposes, []string{"marketing"}) {
		t.Fatalf("permissions %+v purposes %v", m.Permissions, m.Purposes)
	}
}

// Each bad field is reported, named, with what is wanted.
func TestParseManifestRefusesBadFields(t *testing.T) {
	const ok = "id: app.cart_recovery\nversion: 0.1.0\nruntime: wasm\nmodule: app.wasm\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"minimal wasm app", ok, nil},
		{"id without kind", strings.Replace(ok, "app.cart_recovery", "cart_recovery", 1), []string{"id: \"cart_recovery\" must be kind.name"}},
		{"unknown kind", strings.Replace(ok, "app.cart_recovery", "widget.x", 1), []string{"id: \"widget.x\""}},
		{"upper-case name", strings.Replace(ok, "app.cart_recovery", "app.Cart", 1), []string{"id: \"app.Cart\""}},
		{"version not semantic", strings.Replace(ok, "0.1.0", "v1", 1), []string{"version: \"v1\" must be a semantic version"}},
		{"version missing", strings.Replace(ok, "version: 0.1.0\n", "", 1), []string{"version: \"\""}},
		{"runtime", strings.Replace(ok, "runtime: wasm", "runtime: docker", 1), []string{"runtime: \"docker\" must be grpc or wasm"}},
		{"module missing", strings.Replace(ok, "module: app.wasm\n", "", 1), []string{"module: is required"}},
		{"module leaves the folder", strings.Replace(ok, "app.wasm", "../other/app.wasm", 1), []string{"module: \"../other/app.wasm\" must stay inside"}},
		{"module absolute", strings.Replace(ok, "app.wasm", "/usr/lib/app.wasm", 1), []string{"module: \"/usr/lib/app.wasm\" must be a relative path"}},
		{"binary on a wasm plugin", ok + "binary: x\n", []string{"binary: is for grpc plugins"}},
		{"grpc without binary", "id: sink.x\nversion: 1.0.0\nruntime: grpc\n", []string{"binary: is required"}},
		{"unknown field", ok + "permission: {}\n", []string{"field permission not found"}},
		{"event type", ok + "permissions: {events: [track, click]}\n", []string{"permissions.events[1]: \"click\": want one of"}},
		{"network host", ok + "permissions: {network: [\"https://x.example\"]}\n", []string{"permissions.network[0]: \"https://x.example\": want a host name"}},
		{"write scope", ok + "permissions: {write: [database]}\n", []string{"permissions.write[0]: \"database\""}},
		{"purpose", ok + "purposes: [Marketing]\n", []string{"purposes[0]: \"Marketing\""}},
		{"schema not an object schema", ok + "config_schema: {type: string}\n", []string{"config_schema: must be a schema of \"type: object\""}},
		{"schema invalid", ok + "config_schema: {type: object, properties: {n: {type: integer, minimum: x}}}\n", []string{"config_schema: "}},
		{"schema reads a file", ok + "config_schema: {type: object, properties: {n: {$ref: \"file:///etc/passwd\"}}}\n", []string{"config_schema: "}},
		{"several at once", "id: x\nversion: 1\nruntime: r\n", []string{"id: ", "version: ", "runtime: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest("plugin.yaml", "dir", []byte(tt.yaml))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseManifest: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseManifest accepted it; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "plugin.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// A workspace's configuration is checked against the schema, every
// problem named by its field.
func TestCheckConfig(t *testing.T) {
	m := loadWebhook(t)
	tests := []struct {
		name   string
		config map[string]any
		want   []FieldError
	}{
		{"valid", map[string]any{"url": "https://hooks.example.com/e", "secret": "0123456789abcdef"}, nil},
		{"valid with nested", map[string]any{"url": "https://h.example/", "secret": "0123456789abcdef",
			"headers": []any{map[string]any{"name": "X-Team", "value": "data"}}}, nil},
		{"nothing", nil, []FieldError{{"config.secret", "is required"}, {"config.url", "is required"}}},
		{"unknown setting", map[string]any{"url": "https://h.example/", "secret": "0123456789abcdef", "retries": 3},
			[]FieldError{{"config.retries", "is not a setting of sink.webhook"}}},
		{"wrong type and range", map[string]any{"url": "https://h.example/", "secret": "short", "batch_size": 5000},
			[]FieldError{{"config.batch_size", ""}, {"config.secret", ""}}},
		{"bad format", map[string]any{"url": "not a uri", "secret": "0123456789abcdef"}, []FieldError{{"config.url", "is not a valid uri"}}},
		{"nested item", map[string]any{"url": "https://h.example/", "secret": "0123456789abcdef",
			"headers": []any{map[string]any{"name": "ok"}, map[string]any{"name": "bad name", "value": "v"}}},
			[]FieldError{{"config.headers[0].value", "is required"}, {"config.headers[1].name", "does not match the pattern ^[A-Za-z0-9-]+$"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.CheckConfig(tt.config)
			if len(got) != len(tt.want) {
				t.Fatalf("CheckConfig = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Field != tt.want[i].Field || tt.want[i].Message != "" && got[i].Message != tt.want[i].Message || got[i].Message == "" {
					t.Errorf("error %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// A plugin without a schema takes no configuration.
func TestNoSchemaTakesNoConfig(t *testing.T) {
	m, err := ParseManifest("p.yaml", "", []byte("id: processor.noop\nversion: 1.0.0\nruntime: wasm\nmodule: noop.wasm\n"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := m.CheckConfig(nil); errs != nil {
		t.Fatalf("empty config: %v", errs)
	}
	if errs := m.CheckConfig(map[string]any{"x": 1}); len(errs) != 1 || errs[0].Field != "config.x" {
		t.Fatalf("config with a setting: %v", errs)
	}
}

// Errors never repeat the value, which may be a secret.
func TestCheckConfigKeepsValuesOut(t *testing.T) {
	m := loadWebhook(t)
	secret := "s3cr3t value that is long"
	for _, cfg := range []map[string]any{
		{"url": secret, "secret": "0123456789abcdef"},
		{"url": "https://h.example/", "secret": "0123456789abcdef", "headers": []any{map[string]any{"name": secret, "value": "v"}}},
	} {
		for _, e := range m.CheckConfig(cfg) {
			if strings.Contains(e.Message, "s3cr3t") {
				t.Errorf("%s: message repeats the value: %q", e.Field, e.Message)
			}
		}
	}
}
