package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// guestWasm is the test module, built once by TestMain with the standard
// Go toolchain.
var guestWasm []byte

func TestMain(m *testing.M) {
	var err error
	if guestWasm, err = buildModule("./testdata/guest"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if runtime, err = NewRuntime(context.Background(), 512, ""); err != nil {
		panic(err)
	}
	code := m.Run()
	_ = runtime.Close(context.Background())
	os.Exit(code)
}

// buildModule builds the Go package pkg for wasip1, as a guest is built,
// and returns the module.
func buildModule(pkg string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "eddy-wasmhost-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "module.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return os.ReadFile(out)
}

// runtime is shared by the tests, so the module compiles once (compiling
// dominates under the race detector). Its instances get 32 MiB.
var runtime *Runtime

func newRuntime(testing.TB, uint32) *Runtime { return runtime }

var (
	when     = time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	received = when.Add(1500 * time.Millisecond)
)

func batchOf(names ...string) []eddywasm.Event {
	out := make([]eddywasm.Event, len(names))
	for i, n := range names {
		out[i] = eddywasm.Event{MessageID: fmt.Sprintf("m%d", i), WorkspaceID: "w", SourceID: "s", Type: "track",
			Timestamp: when, ReceivedAt: received, IP: "203.0.113.7",
			BatchContext: []byte(`{"library":{"name":"analytics-node"}}`),
			Payload:      []byte(`{"event":"` + n + `"}`)}
	}
	return out
}

// kept counts the events a result keeps.
func kept(results []eddywasm.Result) int {
	n := 0
	for _, r := range results {
		if r.Verdict == eddywasm.Unchanged || r.Verdict == eddywasm.Changed {
			n++
		}
	}
	return n
}

func TestProcessBatch(t *testing.T) {
	ctx := context.Background()
	m, err := newRuntime(t, 0).Load(ctx, "processor.tagger", guestWasm, []byte(`{"tag":"vip"}`), Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	events := batchOf("Viewed", "Refuse Me", "Drop Me", "Keep Me", "Anonymize")
	events[1].MessageID = "m1-with-a-longer-id"
	events[4].IP = ""
	results, err := m.Process(ctx, events)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if len(results) != len(events) {
		t.Fatalf("%d results for %d events", len(results), len(events))
	}
	want := []eddywasm.Verdict{eddywasm.Changed, eddywasm.Rejected, eddywasm.Dropped, eddywasm.Unchanged, eddywasm.Changed}
	for i, r := range results {
		if r.Verdict != want[i] {
			t.Errorf("result %d: %s, want %s", i, r.Verdict, want[i])
		}
	}

	// The guest saw every field as the host sent it, and its new payload
	// and IP came back.
	var got struct {
		Event string `json:"event"`
		Tag   string `json:"tag"`
		Seen  struct {
			MessageID    string          `json:"message_id"`
			WorkspaceID  string          `json:"workspace_id"`
			SourceID     string          `json:"source_id"`
			Type         string          `json:"type"`
			IP           string          `json:"ip"`
			Timestamp    time.Time       `json:"timestamp"`
			ReceivedAt   time.Time       `json:"received_at"`
			BatchContext json.RawMessage `json:"batch_context"`
		} `json:"seen"`
	}
	if err := json.Unmarshal(results[0].Payload, &got); err != nil {
		t.Fatalf("changed payload %q: %v", results[0].Payload, err)
	}
	seen := got.Seen
	if got.Event != "Viewed" || got.Tag != "vip" || seen.MessageID != "m0" || seen.WorkspaceID != "w" || seen.SourceID != "s" ||
		seen.Type != "track" || seen.IP != "203.0.113.7" || !seen.Timestamp.Equal(when) || !seen.ReceivedAt.Equal(received) ||
		string(seen.BatchContext) != `{"library":{"name":"analytics-node"}}` {
		t.Errorf("changed payload = %s", results[0].Payload)
	}
	if results[0].IP != "203.0.113.7-seen" {
		t.Errorf("changed IP = %q, want 203.0.113.7-seen", results[0].IP)
	}
	if results[1].Reason != "refused on request: m1-with-a-longer-id" {
		t.Errorf("rejection reason = %q", results[1].Reason)
	}
	if results[3].Payload != nil || results[3].IP != "" {
		t.Errorf("unchanged result carries %q, %q", results[3].Payload, results[3].IP)
	}
	// A change of the IP alone keeps the payload.
	if string(results[4].Payload) != `{"event":"Anonymize"}` || results[4].IP != "" {
		t.Errorf("IP-only change = %q, %q", results[4].Payload, results[4].IP)
	}

	// Calls in parallel each get their own instance.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if res, err := m.Process(ctx, batchOf("A", "B", "C")); err != nil || kept(res) != 3 {
					errs <- fmt.Errorf("kept %d, %v", kept(res), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if res, err := m.Process(ctx, nil); err != nil || res != nil {
		t.Fatalf("empty batch: %v, %v", res, err)
	}
}

// The guest's batch buffer grows for a larger batch and serves smaller
// ones after it; nothing of an earlier batch leaks into a later one.
func TestBatchBufferGrowsAndIsReused(t *testing.T) {
	ctx := context.Background()
	m, err := newRuntime(t, 0).Load(ctx, "processor.tagger", guestWasm, nil, Options{PoolSize: 1, CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	// Large enough to outgrow the buffer, small enough for the guest's
	// encoding/json under the race detector.
	big := `{"event":"Big","blob":"` + strings.Repeat("x", 64<<10) + `"}`
	for i, names := range [][]string{{"Small"}, {"Keep Me", "Big", "Keep Me"}, {"Tiny"}, {"Keep Me"}} {
		events := batchOf(names...)
		for j := range events {
			if names[j] == "Big" {
				events[j].Payload = []byte(big)
			}
		}
		results, err := m.Process(ctx, events)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		for j, r := range results {
			var p struct{ Event, Tag string }
			switch {
			case names[j] == "Keep Me":
				if r.Verdict != eddywasm.Unchanged {
					t.Fatalf("batch %d event %d: %s, want unchanged", i, j, r.Verdict)
				}
			case r.Verdict != eddywasm.Changed || json.Unmarshal(r.Payload, &p) != nil || p.Event != names[j] || p.Tag != "seen":
				t.Fatalf("batch %d event %d: %s %.80q, want %s tagged", i, j, r.Verdict, r.Payload, names[j])
			}
		}
	}
}

// Two installations of one plugin, under one name, run side by side with
// their own configurations.
func TestTwoInstallationsOfOneModule(t *testing.T) {
	ctx := context.Background()
	var mods []*Module
	for _, tag := range []string{"first", "second"} {
		m, err := newRuntime(t, 0).Load(ctx, "processor.tagger", guestWasm, []byte(`{"tag":"`+tag+`"}`), Options{PoolSize: 1})
		if err != nil {
			t.Fatalf("Load %s: %v", tag, err)
		}
		defer m.Close(ctx)
		mods = append(mods, m)
	}
	for i, tag := range []string{"first", "second"} {
		res, err := mods[i].Process(ctx, batchOf("Viewed"))
		if err != nil || len(res) != 1 || !strings.Contains(string(res[0].Payload), `"tag":"`+tag+`"`) {
			t.Fatalf("installation %s: %+v, %v", tag, res, err)
		}
	}
}

// A module built for another ABI version is refused at load, saying so.
func TestLoadRefusesOtherABIVersions(t *testing.T) {
	ctx := context.Background()
	for _, v := range []byte{1, 3} {
		_, err := newRuntime(t, 0).Load(ctx, "processor.old", fakeModule(v), nil, Options{})
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), fmt.Sprintf("ABI version [%d]", v)) ||
			!strings.Contains(err.Error(), "version 2 only") {
			t.Fatalf("ABI version %d: %v, want ErrInvalidModule naming both versions", v, err)
		}
	}
}

// fakeModule returns a WASM module exporting a processor's functions,
// each of type () -> i32 returning version.
func fakeModule(version byte) []byte {
	mod := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, body []byte) {
		mod = append(append(mod, id, byte(len(body))), body...)
	}
	names := []string{"eddy_buffer", "eddy_process"}
	for _, name := range required {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	n := byte(len(names))
	section(1, []byte{1, 0x60, 0, 1, 0x7f}) // one type: () -> i32
	funcs := []byte{n}
	exports := []byte{n}
	code := []byte{n}
	for i, name := range names {
		funcs = append(funcs, 0)
		exports = append(append(append(exports, byte(len(name))), name...), 0x00, byte(i))
		code = append(code, 4, 0, 0x41, version, 0x0b) // no locals; i32.const version; end
	}
	section(3, funcs)
	section(7, exports)
	section(10, code)
	return mod
}

// A module that panics, loops or exhausts its memory fails only that
// batch; the next batch runs on a fresh instance. After repeated failures
// in a row, the module is disabled.
func TestFailuresAreContained(t *testing.T) {
	ctx := context.Background()
	m, err := newRuntime(t, 0).Load(ctx, "processor.tagger", guestWasm, nil, Options{CallTimeout: 300 * time.Millisecond, MaxFailures: 4})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	for _, bad := range []string{"Panic", "Loop", "Hog"} {
		start := time.Now()
		_, err := m.Process(ctx, batchOf("Viewed", bad))
		if err == nil {
			t.Fatalf("%s: the batch succeeded", bad)
		}
		if bad == "Loop" && (!strings.Contains(err.Error(), "time limit") || time.Since(start) > 5*time.Second) {
			t.Fatalf("Loop: %v after %s, want the time limit", err, time.Since(start))
		}
		res, err := m.Process(ctx, batchOf("Viewed"))
		if err != nil || len(res) != 1 || res[0].Verdict != eddywasm.Changed {
			t.Fatalf("after %s: %v, %v; want the next batch processed", bad, res, err)
		}
	}
	if st := m.Status(); st.Disabled || st.Failures != 0 {
		t.Fatalf("status = %+v, want enabled, no failures in a row", st)
	}
	for i := range 4 {
		if _, err := m.Process(ctx, batchOf("Panic")); err == nil {
			t.Fatalf("panic %d: no error", i)
		}
	}
	if _, err := m.Process(ctx, batchOf("Viewed")); !errors.Is(err, ErrDisabled) {
		t.Fatalf("after 4 failures in a row: %v, want ErrDisabled", err)
	}
	if st := m.Status(); !st.Disabled || !strings.Contains(st.LastError, "processor.tagger") {
		t.Fatalf("status = %+v", st)
	}
}

func TestLoadRefusesBadModulesAndConfigurations(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, 0)
	if _, err := r.Load(ctx, "x", []byte("not wasm at all"), nil, Options{}); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("garbage: %v, want ErrInvalidModule", err)
	}
	// A valid module without Eddy's exports.
	empty := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	if _, err := r.Load(ctx, "x", empty, nil, Options{}); !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "eddy_abi_version") {
		t.Fatalf("empty module: %v, want ErrInvalidModule naming an export", err)
	}
	var ce *ConfigError
	if _, err := r.Load(ctx, "x", guestWasm, []byte(`{"fail":true}`), Options{}); !errors.As(err, &ce) || ce.Message != "told to fail" {
		t.Fatalf("refused configuration: %v", err)
	}
}
