package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	dir, err := os.MkdirTemp("", "eddy-wasmhost-")
	if err != nil {
		panic(err)
	}
	out := filepath.Join(dir, "guest.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/guest")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the test module:", err)
		os.Exit(1)
	}
	if guestWasm, err = os.ReadFile(out); err != nil {
		panic(err)
	}
	if runtime, err = NewRuntime(context.Background(), 512, ""); err != nil {
		panic(err)
	}
	code := m.Run()
	_ = runtime.Close(context.Background())
	os.RemoveAll(dir)
	os.Exit(code)
}

// runtime is shared by the tests, so the module compiles once (compiling
// dominates under the race detector). Its instances get 32 MiB.
var runtime *Runtime

func newRuntime(testing.TB, uint32) *Runtime { return runtime }

func batchOf(names ...string) []eddywasm.Event {
	out := make([]eddywasm.Event, len(names))
	for i, n := range names {
		out[i] = eddywasm.Event{MessageID: fmt.Sprintf("m%d", i), WorkspaceID: "w", Type: "track",
			Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Payload: []byte(`{"event":"` + n + `"}`)}
	}
	return out
}

func TestProcessBatch(t *testing.T) {
	ctx := context.Background()
	m, err := newRuntime(t, 0).Load(ctx, "processor.tagger", guestWasm, []byte(`{"tag":"vip"}`), Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	kept, rejected, err := m.Process(ctx, batchOf("Viewed", "Refuse Me", "Bought"))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if len(kept) != 2 || kept[1].MessageID != "m2" || !strings.Contains(string(kept[0].Payload), `"tag":"vip"`) ||
		!kept[0].Timestamp.Equal(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("kept = %+v", kept)
	}
	if len(rejected) != 1 || rejected[0].MessageID != "m1" {
		t.Fatalf("rejected = %+v", rejected)
	}
	// Calls in parallel each get their own instance.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if kept, _, err := m.Process(ctx, batchOf("A", "B", "C")); err != nil || len(kept) != 3 {
					errs <- fmt.Errorf("kept %d, %v", len(kept), err)
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
		_, _, err := m.Process(ctx, batchOf("Viewed", bad))
		if err == nil {
			t.Fatalf("%s: the batch succeeded", bad)
		}
		if bad == "Loop" && (!strings.Contains(err.Error(), "time limit") || time.Since(start) > 5*time.Second) {
			t.Fatalf("Loop: %v after %s, want the time limit", err, time.Since(start))
		}
		kept, _, err := m.Process(ctx, batchOf("Viewed"))
		if err != nil || len(kept) != 1 {
			t.Fatalf("after %s: %v, %v; want the next batch processed", bad, kept, err)
		}
	}
	if st := m.Status(); st.Disabled || st.Failures != 0 {
		t.Fatalf("status = %+v, want enabled, no failures in a row", st)
	}
	for i := range 4 {
		if _, _, err := m.Process(ctx, batchOf("Panic")); err == nil {
			t.Fatalf("panic %d: no error", i)
		}
	}
	if _, _, err := m.Process(ctx, batchOf("Viewed")); !errors.Is(err, ErrDisabled) {
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
