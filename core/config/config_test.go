package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
)

func envOf(m map[string]string) LookupEnv {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func parseFile(t *testing.T, name string, env map[string]string) (*Config, error) {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(path, data, envOf(env))
}

func TestGoodConfigDecodesExpandsAndDefaults(t *testing.T) {
	cfg, err := parseFile(t, "full.good.yml", map[string]string{"SHOP_WEB_KEY": "k_web"})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"shards from default", cfg.Queue.Shards, 8},
		{"event limit", cfg.Collector.MaxEventBytes, 16384},
		{"request limit default", cfg.Collector.MaxRequestBytes, 500 << 10},
		{"future skew", cfg.Collector.MaxFutureSkew, 30 * time.Minute},
		{"batch size", cfg.Worker.BatchSize, 500},
		{"max attempts default", cfg.Worker.MaxAttempts, 3},
		{"proxy", strings.Join(cfg.Collector.TrustedProxies, ","), "10.0.0.0/8"},
		{"workspaces", len(cfg.Workspaces), 2},
		{"web key from env", cfg.Workspaces[0].Sources[0].WriteKey, "k_web"},
		{"source name defaults to id", cfg.Workspaces[0].Sources[0].Name, "web"},
		{"literal dollar", cfg.Workspaces[0].Sources[1].WriteKey, "literal$dollar-key-0123456789"},
		{"workspace name defaults to id", cfg.Workspaces[1].Name, "blog"},
		{"http addr default", cfg.Env.HTTPAddr, ":8080"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestBadConfigsNameFileLineAndField(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings of the error, in any order
	}{
		{"unknown-field.bad.yml", []string{"unknown-field.bad.yml:6:", "workspaces[0].sources[0].writekey", "unknown field", "write_key"}},
		{"missing-var.bad.yml", []string{"missing-var.bad.yml:5:", "workspaces[0].sources[0].write_key", "NOT_SET_ANYWHERE is not set"}},
		{"empty-key.bad.yml", []string{"empty-key.bad.yml:5:", "write_key: must not be empty"}},
		{"duplicate-key.bad.yml", []string{"duplicate-key.bad.yml:7:", "sources[1].write_key", "same as shop/web"}},
		{"bad-id.bad.yml", []string{"bad-id.bad.yml:2:", "workspaces[0].id", "lower-case"}},
		{"bad-organization.bad.yml", []string{"bad-organization.bad.yml:3:", "workspaces[0].organization", "lower-case"}},
		{"duplicate-workspace.bad.yml", []string{"duplicate-workspace.bad.yml:3:", `workspace "shop" is declared twice`}},
		{"shards-type.bad.yml", []string{"shards-type.bad.yml:2:", "queue.shards", "many", "int"}},
		{"shards-range.bad.yml", []string{"shards-range.bad.yml:2:", "queue.shards", "between 1 and 1024, got 5000"}},
		{"syntax.bad.yml", []string{"syntax.bad.yml:"}},
		{"lone-dollar.bad.yml", []string{"lone-dollar.bad.yml:5:", "write $$ for a literal dollar"}},
		{"event-over-request.bad.yml", []string{"event-over-request.bad.yml:2:", "collector.max_event_bytes", "must not exceed"}},
		{"plugin-config.bad.yml", []string{"plugin-config.bad.yml:9:", "workspaces[0].plugins[0].config.url: is not a valid uri",
			"workspaces[0].plugins[0].config.secret: is required", "config.retries: is not a setting of sink.webhook"}},
		{"plugin-unknown.bad.yml", []string{"plugin-unknown.bad.yml:7:", "workspaces[0].plugins[0].id", `plugin "sink.slack" is not installed (installed: sink.webhook)`}},
		{"plugin-path.bad.yml", []string{"plugin-path.bad.yml:3:", "plugins[0].path", "read the plugin's manifest", "no such file"}},
		{"privacy.bad.yml", []string{
			`privacy.bad.yml:7: workspaces[0].privacy.required[1]: purpose "spying" is not one of the workspace's purposes`,
			`privacy.bad.yml:9: workspaces[0].privacy.plugins.sink.webhook[0]: purpose "telepathy" is not one`,
			`privacy.bad.yml:12: workspaces[0].privacy.minimise.ip: must be one of keep, truncate, remove`,
			`privacy.bad.yml:13: workspaces[0].privacy.minimise.hash[0]: must not have an empty key`,
			`privacy.bad.yml:13: workspaces[0].privacy.minimise.hash[1]: must start with properties., traits. or context.`,
			`privacy.bad.yml:10: workspaces[0].privacy.plugins.sink.slack: plugin "sink.slack" is not installed`,
		}},
		{"privacy-field.bad.yml", []string{"privacy-field.bad.yml:6:", "workspaces[0].privacy.minimize", "unknown field", "minimise"}},
		{"plugin-twice.bad.yml", []string{"plugin-twice.bad.yml:4:", "plugins[1].path: installs sink.webhook again", `plugin "sink.webhook" is configured twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := parseFile(t, tt.file, nil)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestProductionRefusesDefaultAndWeakWriteKeys(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "plugins.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"development accepts the demo default", map[string]string{}, ""},
		{"production refuses the default", map[string]string{"EDDY_ENV": "production"}, "uses the default from the file"},
		{"production refuses an empty key", map[string]string{"EDDY_ENV": "production", "EDDY_DEMO_WRITE_KEY": ""}, "uses the default"},
		{"production refuses a short key", map[string]string{"EDDY_ENV": "production", "EDDY_DEMO_WRITE_KEY": "short"}, "at least 16"},
		{"production accepts a real key", map[string]string{"EDDY_ENV": "production", "EDDY_DEMO_WRITE_KEY": "wk_3f9a8c1e5b7d2a4c6e8f"}, ""},
		{"unknown EDDY_ENV", map[string]string{"EDDY_ENV": "prod"}, "EDDY_ENV"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The real path: the file's plugins are relative to it.
			_, err := Parse(filepath.Join("..", "..", "plugins.yaml"), data, envOf(tt.env))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestExpandedValuesCannotChangeStructure(t *testing.T) {
	data := []byte("workspaces:\n  - id: shop\n    sources:\n      - id: web\n        write_key: ${KEY}\n")
	cfg, err := Parse("p.yaml", data, envOf(map[string]string{"KEY": "x\n  - id: evil"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Workspaces[0].Sources[0].WriteKey; got != "x\n  - id: evil" || len(cfg.Workspaces) != 1 {
		t.Fatalf("expansion leaked into the structure: %+v", cfg.Workspaces)
	}
}

func TestLoadNamesTheMissingFile(t *testing.T) {
	_, err := Load(envOf(map[string]string{"EDDY_CONFIG": "/nonexistent/plugins.yaml"}))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/plugins.yaml") {
		t.Fatalf("Load error = %v, want one naming the file", err)
	}
}

// Plugins are installed from their folders and configured per workspace,
// with values from the environment.
func TestPluginsInstalledAndConfigured(t *testing.T) {
	cfg, err := parseFile(t, "plugins.good.yml", map[string]string{"WEBHOOK_SECRET": "from-the-environment-0123"})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	m := cfg.Manifests["sink.webhook"]
	if m == nil || m.Dir != filepath.Join("testdata", "plugins", "webhook") {
		t.Fatalf("manifests = %v", cfg.Manifests)
	}
	in := cfg.Workspaces[0].Plugins[0]
	if !in.IsEnabled() || in.Config["secret"] != "from-the-environment-0123" || in.Config["batch_size"] != 50 {
		t.Fatalf("shop's webhook = %+v", in)
	}
	headers, _ := in.Config["headers"].([]any)
	if len(headers) != 1 || headers[0].(map[string]any)["value"] != "data" {
		t.Fatalf("headers = %#v", in.Config["headers"])
	}
	if cfg.Workspaces[1].Plugins[0].IsEnabled() {
		t.Fatal("blog's webhook is enabled; the file says enabled: false")
	}
	// The secret comes from the environment or the file does not load.
	_, err = parseFile(t, "plugins.good.yml", nil)
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET is not set") {
		t.Fatalf("without WEBHOOK_SECRET: %v", err)
	}
}

func TestParsePrivacy(t *testing.T) {
	cfg, err := parseFile(t, "privacy.good.yml", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	shop := cfg.Workspaces[0].Privacy
	if shop == nil {
		t.Fatal("shop's privacy was not read")
	}
	want := consent.Policy{
		Purposes: []string{"necessary", "analytics", "marketing", "support"}, Required: []string{"analytics"},
		AllowNecessaryOnly: true, Plugins: map[string][]string{"sink.webhook": {"marketing"}},
		Minimise: consent.Minimise{IP: consent.IPTruncate, Hash: []string{"traits.email"}, Drop: []string{"properties.card.number"}},
	}
	if !shop.Equal(want) {
		t.Errorf("shop privacy = %+v, want %+v", *shop, want)
	}
	blog := cfg.Workspaces[1].Privacy
	wantBlog := consent.DefaultPolicy()
	wantBlog.Required = []string{}
	if blog == nil || !blog.Equal(wantBlog) {
		t.Errorf("blog privacy = %+v, want the default with nothing required", blog)
	}
	if cfg.Workspaces[2].Privacy != nil {
		t.Errorf("news privacy = %+v, want none (the workspace keeps its own)", cfg.Workspaces[2].Privacy)
	}
}
