package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/plugin"
)

func TestScanObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		keys []string // nil: not an object
	}{
		{`{}`, []string{}},
		{` { "a" : 1 , "b":[1,{"c":"}"}], "d":"x\"y" } `, []string{`"a"`, `"b"`, `"d"`}},
		{`{"a":{"b":{"c":[]}},"e":null,"f":-1.5e+3,"g":true}`, []string{`"a"`, `"e"`, `"f"`, `"g"`}},
		{`[]`, nil},
		{`"s"`, nil},
		{``, nil},
		{`{"a":1`, nil},
		{`{"a":1}x`, nil},
		{`{"a" 1}`, nil},
		{`{"a":}`, nil},
		{`{"a":"unterminated}`, nil},
		{`{"a":[1,2}`, nil},
		{`{a:1}`, nil},
		{`{"a":"esc\\"}`, []string{`"a"`}},
		{`{"a":"esc\\\"}`, nil},
	} {
		obj, err := scanObject([]byte(tc.in), nil)
		if tc.keys == nil {
			if err == nil {
				t.Errorf("scanObject(%q) succeeded, want an error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("scanObject(%q): %v", tc.in, err)
			continue
		}
		var keys []string
		for _, m := range obj.members {
			keys = append(keys, tc.in[m.keyStart:m.keyEnd])
			if !json.Valid([]byte(tc.in[m.valStart:m.valEnd])) {
				t.Errorf("scanObject(%q): value %q is not one JSON value", tc.in, tc.in[m.valStart:m.valEnd])
			}
		}
		if strings.Join(keys, ",") != strings.Join(tc.keys, ",") || tc.in[obj.close] != '}' {
			t.Errorf("scanObject(%q) = keys %v close %d, want %v", tc.in, keys, obj.close, tc.keys)
		}
	}
}

func TestKeyAndStringDecoding(t *testing.T) {
	if !keyIs([]byte(`"\u0069p"`), "ip") || keyIs([]byte(`"ipx"`), "ip") {
		t.Error("keyIs does not decode escaped keys")
	}
	if s, ok := stringValue([]byte(`"1.2.3.4\u0035"`)); !ok || s != "1.2.3.45" {
		t.Errorf("stringValue = %q, %v", s, ok)
	}
	if _, ok := stringValue([]byte(`12`)); ok {
		t.Error("stringValue accepted a number")
	}
	for _, s := range []string{"plain", `quo"te`, "<tag>&", "é", "\n"} {
		var back string
		if err := json.Unmarshal(appendString(nil, s), &back); err != nil || back != s {
			t.Errorf("appendString(%q) = %s", s, appendString(nil, s))
		}
	}
}

func TestIPAction(t *testing.T) {
	for _, tc := range []struct {
		action ipAction
		in     string
		want   string
		kept   bool
	}{
		{truncateIP, "203.0.113.77", "203.0.113.0", true},
		{truncateIP, "::ffff:203.0.113.77", "203.0.113.0", true},
		{truncateIP, "203.0.113.77:4431", "203.0.113.0", true},
		{truncateIP, "2001:db8:aaaa:bbbb::1", "2001:db8:aaaa::", true},
		{truncateIP, "fe80::1%eth0", "fe80::", true},
		{truncateIP, "not an address", "", false},
		{removeIP, "203.0.113.77", "", false},
		{keepIP, "203.0.113.77", "203.0.113.77", true},
	} {
		got, kept := tc.action.apply(tc.in)
		if got != tc.want || kept != tc.kept {
			t.Errorf("apply(%d, %q) = %q, %v; want %q, %v", tc.action, tc.in, got, kept, tc.want, tc.kept)
		}
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg, err string
	}{
		{`{"database":"/x.mmdb"}`, ""},
		{`{"database":"/x.mmdb","languages":["pt-BR","en"],"remove_ip":true}`, ""},
		{``, "config.database"},
		{`{}`, "config.database"},
		{`{"database":""}`, "config.database"},
		{`{"database":7}`, "database"},
		{`{"database":"/x","truncate_ip":true,"remove_ip":true}`, "config.truncate_ip, config.remove_ip"},
		{`{"database":"/x","languages":[]}`, "config.languages"},
		{`{"database":"/x","languages":["en",""]}`, "config.languages[1]"},
		{`{"database":"/x","other":1}`, `unknown field "other"`},
		{`{"database":"/x"} {}`, "config"},
	} {
		c, err := parseConfig(json.RawMessage(tc.cfg))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("parseConfig(%s): %v", tc.cfg, err)
		case tc.err == "" && len(c.Languages) == 0:
			t.Errorf("parseConfig(%s): no default language", tc.cfg)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseConfig(%s) error = %v, want one containing %q", tc.cfg, err, tc.err)
		}
	}
}

// TestManifest checks the manifest and that its schema accepts and refuses
// the configurations in testdata/config.
func TestManifest(t *testing.T) {
	data, err := os.ReadFile("plugin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := plugin.ParseManifest("plugin.yaml", ".", data)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.ID != "processor.geoip" || m.Kind() != plugin.Processor || m.Runtime != plugin.GRPC {
		t.Fatalf("manifest = %s %s, want a grpc processor.geoip", m.ID, m.Runtime)
	}
	files, _ := filepath.Glob("testdata/config/*.json")
	if len(files) == 0 {
		t.Fatal("no example configurations in testdata/config")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		errs := m.CheckConfig(cfg)
		good := strings.HasSuffix(f, ".good.json")
		if good && len(errs) > 0 {
			t.Errorf("%s: schema refused it: %v", f, errs)
		}
		if !good && len(errs) == 0 {
			t.Errorf("%s: schema accepted it", f)
		}
		if _, perr := parseConfig(raw); good != (perr == nil) {
			t.Errorf("%s: parseConfig error = %v, schema errors = %v; want both to agree", f, perr, errs)
		}
	}
}
