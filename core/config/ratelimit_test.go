package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// An installation's rate_limit is a number of events per second from 0
// (unlimited) to MaxRateLimit; a bad one is named with its file and line.
func TestInstallationRateLimit(t *testing.T) {
	file := func(rateLimit string) []byte {
		s := `version: 1
plugins:
  - path: plugins/webhook
workspaces:
  - id: shop
    plugins:
      - id: sink.webhook
        config: {url: "https://hooks.example.com/shop", secret: "0123456789abcdef"}
`
		if rateLimit != "" {
			s += "        rate_limit: " + rateLimit + "\n"
		}
		return []byte(s)
	}
	path := filepath.Join("testdata", "rate-limit.yml") // plugins/webhook is relative to it
	tests := []struct {
		name, value string
		env         map[string]string
		want        float64
		wantErr     []string
	}{
		{"absent is unlimited", "", nil, 0, nil},
		{"zero is unlimited", "0", nil, 0, nil},
		{"whole", "250", nil, 250, nil},
		{"a fraction", "0.5", nil, 0.5, nil},
		{"the maximum", "1000000", nil, 1000000, nil},
		{"from the environment", "${SHOP_RATE:-7}", map[string]string{"SHOP_RATE": "12.5"}, 12.5, nil},
		{"its default", "${SHOP_RATE:-7}", nil, 7, nil},
		{"negative", "-1", nil, 0, []string{"rate-limit.yml:9: workspaces[0].plugins[0].rate_limit: must be a number of events per second from 0 (unlimited) to 1000000"}},
		{"above the maximum", "1000000.5", nil, 0, []string{"rate-limit.yml:9: workspaces[0].plugins[0].rate_limit: must be a number"}},
		{"not a number", ".nan", nil, 0, []string{"rate-limit.yml:9: workspaces[0].plugins[0].rate_limit: must be a number"}},
		{"text", "fast", nil, 0, []string{"rate-limit.yml:9: workspaces[0].plugins[0].rate_limit: ", "float64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(path, file(tt.value), envOf(tt.env))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got := cfg.Workspaces[0].Plugins[0].RateLimit; got != tt.want {
					t.Fatalf("rate_limit %v, want %v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted rate_limit %s", tt.value)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
