package consent

import (
	"strings"
	"testing"
)

func TestDefaultPolicyIsValidAndDeniesByDefault(t *testing.T) {
	p := DefaultPolicy()
	if errs := p.Validate(); len(errs) != 0 {
		t.Fatalf("default policy is invalid: %v", errs)
	}
	if ok, reason := p.Process(nil, false); ok || reason != ReasonNoConsent {
		t.Errorf("default policy processes an event without consent: %t %q", ok, reason)
	}
	if !p.Equal(Policy{}.WithDefaults()) {
		t.Errorf("an empty policy with defaults is %+v, want the default %+v", Policy{}.WithDefaults(), p)
	}
}

func TestValidate(t *testing.T) {
	tooMany := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	plugins := map[string][]string{}
	for i := range MaxPluginEntries + 1 {
		plugins["sink.s"+strings.Repeat("x", i)] = nil
	}
	tests := []struct {
		name   string
		change func(p *Policy)
		want   []string // "field: message part"
	}{
		{"unknown required purpose", func(p *Policy) { p.Required = []string{"analytics", "spying"} },
			[]string{`privacy.required[1]: purpose "spying" is not one of the workspace's purposes`}},
		{"duplicate required", func(p *Policy) { p.Required = []string{"analytics", "analytics"} },
			[]string{"privacy.required[1]: purpose \"analytics\" is listed twice"}},
		{"bad purpose name", func(p *Policy) { p.Purposes = append(p.Purposes, "Ads") },
			[]string{`privacy.purposes[4]: "Ads" is not a purpose name`}},
		{"duplicate purpose", func(p *Policy) { p.Purposes = append(p.Purposes, "marketing") },
			[]string{`privacy.purposes[4]: purpose "marketing" is listed twice`}},
		{"no purposes", func(p *Policy) { p.Purposes = nil; p.Required = nil },
			[]string{"privacy.purposes: must list at least one purpose"}},
		{"too many purposes", func(p *Policy) {
			p.Purposes = tooMany(MaxPurposes+1, func(i int) string { return "p" + strings.Repeat("a", i) })
		},
			[]string{"privacy.purposes: must list at most 20", `privacy.required[0]: purpose "analytics" is not one`}},
		{"plugin with unknown purpose", func(p *Policy) { p.Plugins = map[string][]string{"sink.crm": {"marketing", "telepathy"}} },
			[]string{`privacy.plugins.sink.crm[1]: purpose "telepathy" is not one`}},
		{"bad plugin id", func(p *Policy) { p.Plugins = map[string][]string{"crm": {"marketing"}} },
			[]string{`privacy.plugins: "crm" is not a plugin id`}},
		{"too many plugin entries", func(p *Policy) { p.Plugins = plugins },
			[]string{"privacy.plugins: must have at most 50 entries"}},
		{"bad ip mode", func(p *Policy) { p.Minimise.IP = "scramble" },
			[]string{"privacy.minimise.ip: must be one of keep, truncate, remove"}},
		{"malformed paths", func(p *Policy) {
			p.Minimise.Hash = []string{"traits..email", "userId", "properties.", "traits.e\"mail"}
			p.Minimise.Drop = []string{"", "secrets.token", "traits"}
		}, []string{
			"privacy.minimise.hash[0]: must not have an empty key", "privacy.minimise.hash[1]: must start with",
			"privacy.minimise.hash[2]: must not have an empty key", "privacy.minimise.hash[3]: must not contain",
			"privacy.minimise.drop[0]: must not be empty", "privacy.minimise.drop[1]: must start with", "privacy.minimise.drop[2]: must start with",
		}},
		{"path hashed and dropped", func(p *Policy) {
			p.Minimise.Hash = []string{"traits.email"}
			p.Minimise.Drop = []string{"traits.email"}
		},
			[]string{`privacy.minimise.drop[0]: path "traits.email" is already listed as hash[0]`}},
		{"too many paths", func(p *Policy) {
			p.Minimise.Drop = tooMany(MaxPaths+1, func(i int) string { return "traits.t" + strings.Repeat("x", i%100) + string(rune('a'+i/100)) })
		},
			[]string{"privacy.minimise.hash: hash and drop together must list at most 100 paths"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			tt.change(&p)
			errs := p.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v\nwant %d errors: %q", errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestProcess(t *testing.T) {
	analytics := Preferences{"analytics": true}
	tests := []struct {
		name       string
		required   []string
		necessary  bool
		prefs      Preferences
		present    bool
		wantOK     bool
		wantReason string
	}{
		{"granted", []string{"analytics"}, false, analytics, true, true, ""},
		{"no consent", []string{"analytics"}, false, nil, false, false, ReasonNoConsent},
		{"empty preferences", []string{"analytics"}, false, Preferences{}, true, false, "missing_purpose:analytics"},
		{"another purpose only", []string{"analytics"}, false, Preferences{"marketing": true}, true, false, "missing_purpose:analytics"},
		{"withdrawn", []string{"analytics"}, false, Preferences{"analytics": false}, true, false, ReasonWithdrawn},
		{"second required missing", []string{"analytics", "personalization"}, false, analytics, true, false, "missing_purpose:personalization"},
		{"necessary needs nothing", []string{Necessary}, false, nil, false, true, ""},
		{"nothing required", nil, false, nil, false, true, ""},
		{"necessary-only allowed without consent", []string{"analytics"}, true, nil, false, true, ""},
		{"necessary-only allowed after withdrawal", []string{"analytics"}, true, Preferences{"analytics": false}, true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.Required, p.AllowNecessaryOnly = tt.required, tt.necessary
			ok, reason := p.Process(tt.prefs, tt.present)
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("Process = %t %q, want %t %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

func TestPlugin(t *testing.T) {
	p := DefaultPolicy()
	p.Plugins = map[string][]string{"sink.crm": {"personalization"}}
	tests := []struct {
		name       string
		necessary  bool
		prefs      Preferences
		present    bool
		plugin     string
		manifest   []string
		wantOK     bool
		wantReason string
	}{
		{"analytics sink with analytics", false, Preferences{"analytics": true}, true, "sink.warehouse", []string{"analytics"}, true, ""},
		{"marketing sink without marketing", false, Preferences{"analytics": true}, true, "sink.ads", []string{"marketing"}, false, "missing_purpose:marketing"},
		{"marketing sink after withdrawal", false, Preferences{"analytics": true, "marketing": false}, true, "sink.ads", []string{"marketing"}, false, ReasonWithdrawn},
		{"workspace adds a purpose", false, Preferences{"analytics": true, "marketing": true}, true, "sink.crm", []string{"marketing"}, false, "missing_purpose:personalization"},
		{"workspace addition granted", false, Preferences{"analytics": true, "marketing": true, "personalization": true}, true, "sink.crm", []string{"marketing"}, true, ""},
		{"required purpose applies to plugins", false, Preferences{"marketing": true}, true, "sink.ads", []string{"marketing"}, false, "missing_purpose:analytics"},
		{"necessary-only processing reaches no plugin", true, nil, false, "sink.log", []string{Necessary}, false, ReasonNoConsent},
		{"no consent", false, nil, false, "sink.warehouse", nil, false, ReasonNoConsent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := p
			p.AllowNecessaryOnly = tt.necessary
			ok, reason := p.Plugin(tt.prefs, tt.present, tt.plugin, tt.manifest)
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("Plugin = %t %q, want %t %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	base := DefaultPolicy()
	tests := []struct {
		name   string
		change func(p *Policy)
		equal  bool
	}{
		{"same", func(p *Policy) {}, true},
		{"unset fields are defaults", func(p *Policy) { *p = Policy{} }, true},
		{"required", func(p *Policy) { p.Required = []string{"marketing"} }, false},
		{"required emptied", func(p *Policy) { p.Required = []string{} }, false},
		{"necessary only", func(p *Policy) { p.AllowNecessaryOnly = true }, false},
		{"plugin added", func(p *Policy) { p.Plugins = map[string][]string{"sink.x": {"marketing"}} }, false},
		{"ip", func(p *Policy) { p.Minimise.IP = IPRemove }, false},
		{"hash", func(p *Policy) { p.Minimise.Hash = []string{"traits.email"} }, false},
		{"drop", func(p *Policy) { p.Minimise.Drop = []string{"traits.email"} }, false},
	}
	for _, tt := range tests {
		p := DefaultPolicy()
		tt.change(&p)
		if got := p.Equal(base); got != tt.equal || base.Equal(p) != tt.equal {
			t.Errorf("%s: Equal = %t, want %t", tt.name, got, tt.equal)
		}
	}
	a := Policy{Plugins: map[string][]string{"sink.x": {"marketing"}}}
	b := Policy{Plugins: map[string][]string{"sink.y": {"marketing"}}}
	if a.Equal(b) {
		t.Error("policies with different plugin ids are equal")
	}
}
