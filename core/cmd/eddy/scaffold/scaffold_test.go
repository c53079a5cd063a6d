package scaffold

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/plugin"
)

// Every kind and runtime scaffolds a plugin whose manifest is valid and
// whose own test passes, built as a newcomer's module outside this
// repository would build it (a go.mod that points at the SDK).
func TestScaffoldedPluginsBuildAndPass(t *testing.T) {
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	gomod := "module example.com/myplugins\n\ngo 1.26\n\nrequire github.com/eddy-cdp/eddy v0.0.0\n\nreplace github.com/eddy-cdp/eddy => " + root + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for kind, rts := range runtimes {
		for _, rt := range rts {
			p := Plugin{Kind: kind, Name: "my_" + kind + "_" + rt, Runtime: rt}
			dir := filepath.Join(mod, kind+"s", p.Name)
			files, err := Write(dir, p)
			if err != nil {
				t.Fatalf("%s %s: %v", rt, kind, err)
			}
			if len(files) != 4 {
				t.Errorf("%s %s: wrote %v", rt, kind, files)
			}
			data, err := os.ReadFile(filepath.Join(dir, "plugin.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := plugin.ParseManifest("plugin.yaml", dir, data)
			if err != nil {
				t.Fatalf("%s %s: manifest: %v", rt, kind, err)
			}
			if m.ID != p.ID() || string(m.Runtime) != rt {
				t.Errorf("manifest id %s runtime %s, want %s %s", m.ID, m.Runtime, p.ID(), rt)
			}
			pkgs = append(pkgs, "./"+kind+"s/"+p.Name)
		}
	}
	cmd := exec.Command("go", append([]string{"test", "-count=1"}, pkgs...)...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test of the scaffolded plugins: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "ok  "); n != len(pkgs) {
		t.Fatalf("%d of %d scaffolded packages passed:\n%s", n, len(pkgs), out)
	}
}

func TestScaffoldRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		p    Plugin
		want string
	}{
		{Plugin{Kind: "widget", Name: "x"}, `kind "widget"`},
		{Plugin{Kind: "sink", Name: "Bad-Name"}, `name "Bad-Name"`},
		{Plugin{Kind: "sink", Name: "x", Runtime: "wasm"}, `runtime "wasm": a sink can be [grpc]`},
	} {
		if _, err := Write(filepath.Join(dir, "p"), tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Write(%+v) = %v, want %q", tc.p, err, tc.want)
		}
	}
	if _, err := Write(dir, Plugin{Kind: "sink", Name: "x"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("writing into an existing folder: %v", err)
	}
}
