package plugin

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/text/message"
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
	if !m.Deletion {
		t.Errorf("Deletion = false, want true (deletion: true)")
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
		{"deletion on a grpc sink", "id: sink.x\nversion: 1.0.0\nruntime: grpc\nbinary: x\ndeletion: true\n", nil},
		{"deletion on an app", ok + "deletion: true\n", []string{"deletion: is for sinks, which delete a person's data at their destination; this plugin is of kind app"}},
		{"deletion on a processor", "id: processor.x\nversion: 1.0.0\nruntime: grpc\nbinary: x\ndeletion: true\n", []string{"deletion: is for sinks, which delete a person's data at their destination; this plugin is of kind processor"}},
		{"deletion on a source", "id: source.x\nversion: 1.0.0\nruntime: grpc\nbinary: x\ndeletion: true\n", []string{"deletion: is for sinks, which delete a person's data at their destination; this plugin is of kind source"}},
		{"deletion on a wasm sink", "id: sink.x\nversion: 1.0.0\nruntime: wasm\nmodule: x.wasm\ndeletion: true\n", []string{"deletion: is for grpc sinks; a wasm sink cannot serve Delete"}},
		{"deletion not a boolean", "id: sink.x\nversion: 1.0.0\nruntime: grpc\nbinary: x\ndeletion: maybe\n", []string{"cannot unmarshal"}},
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

// Every keyword's message states the rule, never the value sent, its
// length or its size.
func TestCheckConfigStatesRulesNotValues(t *testing.T) {
	const schema = `id: processor.rules
version: 1.0.0
runtime: wasm
module: rules.wasm
config_schema:
  type: object
  properties:
    limit: {type: integer, minimum: 1, maximum: 1000}
    ratio: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 0.5, multipleOf: 0.125}
    step: {type: integer, multipleOf: 7}
    name: {type: string, minLength: 16, maxLength: 20}
    code: {type: string, pattern: '^[a-z]+$'}
    mode: {enum: [fast, slow]}
    fixed: {const: exact}
    url: {type: string, format: uri}
    tags: {type: array, minItems: 2, maxItems: 3, uniqueItems: true, items: {type: string}}
    picks: {type: array, contains: {const: gold}, maxContains: 1}
    labels: {type: object, minProperties: 2, maxProperties: 3}
    either: {oneOf: [{type: string}, {type: string, minLength: 1}]}
    never: false
`
	m, err := ParseManifest("plugin.yaml", "", []byte(schema))
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	tests := []struct {
		name  string
		field string
		value any
		want  string
	}{
		{"maximum", "limit", 5000, "must be at most 1000"},
		{"minimum", "limit", -31337, "must be at least 1"},
		{"type", "limit", "77777", "must be of type integer"},
		{"exclusive maximum", "ratio", 0.875, "must be less than 0.5"},
		{"exclusive minimum", "ratio", -0.375, "must be greater than 0"},
		{"multiple of a fraction", "ratio", 0.3333, "must be a multiple of 0.125"},
		{"multiple of", "step", 31337, "must be a multiple of 7"},
		{"min length", "name", "secret-xyz", "must be at least 16 characters long"},
		{"max length", "name", "secret-xyz-0123456789-abc", "must be at most 20 characters long"},
		{"pattern", "code", "Secret-Code", "does not match the pattern ^[a-z]+$"},
		{"enum", "mode", "secret-mode", `must be one of "fast", "slow"`},
		{"const", "fixed", "secret-fixed", `must be "exact"`},
		{"format", "url", "secret uri", "is not a valid uri"},
		{"min items", "tags", []any{"secret-tag"}, "must have at least 2 items"},
		{"max items", "tags", []any{"s1-secret", "s2-secret", "s3-secret", "s4-secret"}, "must have at most 3 items"},
		{"unique items", "tags", []any{"secret-dup", "secret-dup"}, "must not repeat an item (items 0 and 1 are equal)"},
		{"contains", "picks", []any{"secret-silver"}, "must have an item that matches the schema of contains"},
		{"max contains", "picks", []any{"gold", "gold"}, "must have at most 1 items that match the schema of contains"},
		{"min properties", "labels", map[string]any{"a": "secret-label"}, "must have at least 2 settings"},
		{"max properties", "labels", map[string]any{"a": 1, "b": 2, "c": 3, "d": 4}, "must have at most 3 settings"},
		{"one of", "either", "secret-both", "must match exactly one of the schemas of oneOf, and matches 0 and 1"},
		{"false schema", "never", "secret-never", "is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.CheckConfig(map[string]any{tt.field: tt.value})
			want := []FieldError{{"config." + tt.field, tt.want}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("CheckConfig = %q, want %q", got, want)
			}
			for _, s := range []string{"secret", "31337", "5000", "77777", "0.875", "0.375", "0.3333", "silver"} {
				if strings.Contains(got[0].Message, s) {
					t.Errorf("message %q repeats the value %q", got[0].Message, s)
				}
			}
		})
	}
}

// futureKind stands for an error kind a later version of the library adds.
type futureKind struct{}

func (futureKind) KeywordPath() []string { return []string{"futureKeyword"} }

func (futureKind) LocalizedString(*message.Printer) string { return "got secret-value" }

// A kind without its own wording names its keyword, never the library's
// message.
func TestRuleMessageOfAnUnknownKind(t *testing.T) {
	if got, want := ruleMessage(futureKind{}), "does not satisfy the schema's futureKeyword"; got != want {
		t.Fatalf("ruleMessage = %q, want %q", got, want)
	}
}
