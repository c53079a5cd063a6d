package pluginhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// upperDir holds the test plugin, built once by TestMain.
var upperDir string

func TestMain(m *testing.M) {
	if os.Getenv("EDDY_PLUGINHOST_HELPER") != "" {
		helperHost()
		return
	}
	dir, err := os.MkdirTemp("", "eddy-pluginhost-")
	if err != nil {
		panic(err)
	}
	upperDir = dir
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "upper"), "./testdata/upper")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the test plugin:", err)
		os.Exit(1)
	}
	manifest, err := os.ReadFile("testdata/upper/plugin.yaml")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin.yaml"), manifest, 0o600); err != nil {
		panic(err)
	}
	code := m.Run()
	CleanupClients()
	os.RemoveAll(dir)
	os.Exit(code)
}

func upperManifest(t testing.TB) *plugin.Manifest {
	t.Helper()
	name := filepath.Join(upperDir, "plugin.yaml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := plugin.ParseManifest(name, upperDir, data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logBuffer collects what the host logs.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func events(names ...string) []eddyplugin.Event {
	out := make([]eddyplugin.Event, len(names))
	for i, n := range names {
		out[i] = eddyplugin.Event{MessageID: fmt.Sprintf("m%d", i), WorkspaceID: "w", Type: "track",
			Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Payload: []byte(`{"event":"` + n + `"}`)}
	}
	return out
}

// The lifecycle over real gRPC with mutual TLS: init, validate, process,
// the plugin's own errors, close; the plugin's stderr lands in the host's
// logs.
func TestProcessLifecycle(t *testing.T) {
	ctx := context.Background()
	logs := &logBuffer{}
	p, err := Start(upperManifest(t), slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer p.Kill()
	if err := p.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	in := eddyplugin.Installation{ID: "i1", PluginID: "processor.upper", WorkspaceID: "w", Config: []byte(`{"token":"wrong"}`)}
	if err := p.Init(ctx, in); err != nil {
		t.Fatalf("Init: %v", err)
	}
	errs, err := p.Validate(ctx, "i1")
	if err != nil || len(errs) != 1 || errs[0].Field != "config.token" {
		t.Fatalf("Validate = %v, %v; want one error on config.token", errs, err)
	}
	kept, rejected, err := p.Process(ctx, "i1", events("Viewed", "Refuse Me", "Bought"))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if len(kept) != 2 || !strings.Contains(string(kept[0].Payload), `"plugin_saw":true`) || kept[1].MessageID != "m2" ||
		!kept[0].Timestamp.Equal(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("kept = %+v", kept)
	}
	if len(rejected) != 1 || rejected[0].MessageID != "m1" || rejected[0].Reason != "refused on request" {
		t.Fatalf("rejected = %+v", rejected)
	}
	// An error of the plugin's own is a PluginError, and the plugin lives.
	_, _, err = p.Process(ctx, "unknown", events("x"))
	var pe *eddyplugin.PluginError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "not initialised") {
		t.Fatalf("Process of an unknown installation: %v, want the plugin's error", err)
	}
	if err := p.Init(ctx, eddyplugin.Installation{ID: "i2", Config: []byte(`{"fail":true}`)}); !errors.As(err, &pe) || pe.Message != "told to fail" {
		t.Fatalf("Init of a failing configuration: %v", err)
	}
	// A plugin that implements no Delete says so, and lives.
	if _, err := p.Delete(ctx, "i1", eddyplugin.Deletion{JobID: "j", Identities: []eddyplugin.Identity{{Kind: "user_id", Value: "u"}}}); !errors.Is(err, eddyplugin.ErrDeleteUnsupported) {
		t.Fatalf("Delete on a processor: %v, want ErrDeleteUnsupported", err)
	}
	if err := p.Ping(); err != nil {
		t.Fatalf("Ping after Delete: %v", err)
	}
	if err := p.Close(ctx, "i1"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// go-plugin reads the plugin's stderr in the background.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"init"`) || !strings.Contains(logs.String(), `"installation":"i1"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's stderr is not in the host's logs:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for !strings.Contains(logs.String(), `"line":"a plain line on stderr"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's plain stderr is not in the host's logs:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"plugin_id":"processor.upper"`) {
		t.Fatalf("the host's logs do not name the plugin:\n%s", logs)
	}
}

// A crashed plugin fails only the call in progress: the supervisor
// restarts it after a backoff and initialises its installations again;
// after too many crashes in a row it disables it.
func TestSupervisorRestartsAndDisables(t *testing.T) {
	ctx := context.Background()
	s := NewSupervisor(upperManifest(t), SupervisorOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		MaxCrashes: 3, Logger: slog.New(slog.DiscardHandler)})
	defer s.Stop(ctx)
	if err := s.Init(ctx, eddyplugin.Installation{ID: "i1", Config: []byte(`{}`)}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	process := func(names ...string) ([]eddyplugin.Event, error) {
		var kept []eddyplugin.Event
		err := s.Do(ctx, func(c *eddyplugin.Client) (err error) {
			kept, _, err = c.Process(ctx, "i1", events(names...))
			return err
		})
		return kept, err
	}
	if _, err := process("Crash"); err == nil || !strings.Contains(err.Error(), "crashed") {
		t.Fatalf("a crashing batch: %v, want a crash", err)
	}
	if _, err := process("Viewed"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("during the backoff: %v, want ErrUnavailable", err)
	}
	time.Sleep(60 * time.Millisecond)
	kept, err := process("Viewed")
	if err != nil || len(kept) != 1 {
		t.Fatalf("after the restart: %v, %v; want the batch processed (the installation re-initialised)", kept, err)
	}
	if st := s.Status(); !st.Running || st.Crashes != 0 || st.Disabled {
		t.Fatalf("status after recovery = %+v", st)
	}
	for i := range 3 {
		if _, err := process("Crash"); err == nil {
			t.Fatalf("crash %d: no error", i)
		}
		time.Sleep(120 * time.Millisecond)
	}
	if _, err := process("Viewed"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("after 3 crashes in a row: %v, want disabled", err)
	}
	if st := s.Status(); !st.Disabled || st.LastError == "" {
		t.Fatalf("status = %+v, want disabled with the last error", st)
	}
	// An operator's retry (the installation enabled or reconfigured).
	s.Reset()
	if kept, err := process("Viewed"); err != nil || len(kept) != 1 {
		t.Fatalf("after Reset: %v, %v; want the plugin started again", kept, err)
	}
}

// The health check notices a plugin process that died between calls.
func TestSupervisorHealthCheck(t *testing.T) {
	ctx := context.Background()
	s := NewSupervisor(upperManifest(t), SupervisorOptions{MinBackoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	defer s.Stop(ctx)
	if err := s.Init(ctx, eddyplugin.Installation{ID: "i1", Config: []byte(`{}`)}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	s.Check()
	if st := s.Status(); !st.Running || st.Crashes != 0 {
		t.Fatalf("a healthy plugin: %+v", st)
	}
	s.mu.Lock()
	pid := s.proc.Pid()
	s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the plugin: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().Crashes == 0 && time.Now().Before(deadline) {
		s.Check()
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Status(); st.Crashes != 1 || !strings.Contains(st.LastError, "health check") {
		t.Fatalf("after the plugin died: %+v, want one crash from the health check", st)
	}
	time.Sleep(30 * time.Millisecond)
	if err := s.Do(ctx, func(c *eddyplugin.Client) error { _, _, err := c.Process(ctx, "i1", events("Viewed")); return err }); err != nil {
		t.Fatalf("the next call after the backoff: %v, want the plugin restarted", err)
	}
}

// A plugin whose host is killed (SIGKILL: nothing runs in the host) exits
// by itself: the SDK watches its parent.
func TestPluginExitsWhenItsHostDies(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDDY_PLUGINHOST_HELPER=1", "EDDY_PLUGINHOST_DIR="+upperDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("helper host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		t.Fatalf("helper host printed %q, want the plugin's pid", line)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the plugin (pid %d) is not running: %v", pid, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the plugin (pid %d) still runs 10 s after its host died", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// helperHost starts the test plugin, prints its pid, and waits to be
// killed.
func helperHost() {
	dir := os.Getenv("EDDY_PLUGINHOST_DIR")
	data, err := os.ReadFile(filepath.Join(dir, "plugin.yaml"))
	if err != nil {
		panic(err)
	}
	m, err := plugin.ParseManifest("plugin.yaml", dir, data)
	if err != nil {
		panic(err)
	}
	p, err := Start(m, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Pid())
	select {}
}

// A plugin folder given relative to Eddy's working directory (as
// plugins.yaml's paths are) starts: the command runs inside the folder.
func TestStartFromARelativeFolder(t *testing.T) {
	// A folder below the working directory, so that the relative path
	// cannot resolve by accident from elsewhere.
	rel, err := os.MkdirTemp(".", "relative-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rel) })
	for _, f := range []string{"upper", "plugin.yaml"} {
		b, err := os.ReadFile(filepath.Join(upperDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rel, f), b, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m := upperManifest(t)
	m.Dir = rel
	p, err := Start(m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Start from %s: %v", rel, err)
	}
	defer p.Kill()
	if err := p.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
