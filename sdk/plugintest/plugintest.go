// Package plugintest helps a plugin's own tests run the plugin as Eddy
// does: Build compiles the plugin in its folder with the standard Go
// toolchain (a gRPC plugin as an executable, a WASM plugin for wasip1,
// as its manifest's runtime says) into a temporary folder beside a copy of
// its manifest, and Start runs a gRPC plugin through Eddy's plugin host.
//
//	func TestWrite(t *testing.T) {
//		p := plugintest.Start(t, ".")
//		err := p.Init(ctx, eddyplugin.Installation{ID: "i1", Config: []byte(`{"url":"…"}`)})
//		…
//	}
package plugintest

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginhost"
)

// Build compiles the plugin whose plugin.yaml is in dir and returns its
// manifest, pointing at the build in a temporary folder the test removes.
func Build(t testing.TB, dir string) *plugin.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "plugin.yaml"))
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	out := t.TempDir()
	m, err := plugin.ParseManifest(filepath.Join(dir, "plugin.yaml"), out, data)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(m.Artifact()), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"build", "-o", m.Artifact()}
	env := os.Environ()
	if m.Runtime == plugin.WASM {
		args = append(args, "-buildmode=c-shared")
		env = append(env, "GOOS=wasip1", "GOARCH=wasm")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir, cmd.Env = abs, env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", m.ID, err, b)
	}
	if err := os.WriteFile(filepath.Join(out, "plugin.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// Start builds the gRPC plugin in dir and starts it through Eddy's plugin
// host; the test kills it at its end.
func Start(t testing.TB, dir string) *pluginhost.Process {
	t.Helper()
	m := Build(t, dir)
	w := &testWriter{t: t}
	// Registered first, so it runs after the kill: later lines are dropped,
	// since testing panics on a log after the test ends.
	t.Cleanup(func() { w.done.Store(true) })
	p, err := pluginhost.Start(m, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		t.Fatalf("start %s: %v", m.ID, err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Context returns a context for one test step, cancelled at the test's
// end or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testWriter sends the plugin host's logs (and the plugin's stderr) to
// the test's log.
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Module builds the WASM plugin in dir and returns its module.
func Module(t testing.TB, dir string) []byte {
	t.Helper()
	m := Build(t, dir)
	if m.Runtime != plugin.WASM {
		t.Fatalf("%s is a %s plugin, not wasm", m.ID, m.Runtime)
	}
	b, err := os.ReadFile(m.Artifact())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
