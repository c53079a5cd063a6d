package main

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// goTestOutput is go test's output for the plugin benchmarks, as measured
// (one line as GOMAXPROCS=1 prints it, without the -N suffix).
const goTestOutput = `goos: linux
pkg: github.com/eddy-cdp/eddy/core/wasmhost
BenchmarkProcess/keep/batch=1-2         	    2000	     13021 ns/op	  65.28 MB/s	     12064 cpu-ns/event	     13021 ns/event	     707 B/op	      10 allocs/op
BenchmarkProcess/change/batch=100-2     	    2000	    209834 ns/op	 405.08 MB/s	      2032 cpu-ns/event	      2098 ns/event	  100353 B/op	     111 allocs/op
PASS
BenchmarkSink/write/parallel=1         	  200000	     10330 ns/op	  76.76 MB/s	     96802 events/s
BenchmarkSink/deliver-2         	  200000	     61393 ns/op	     16288 events/s	       500.0 events/write	         7.373 ms/write	     24322 routed-events/s
ok  	github.com/eddy-cdp/eddy/core/plugins	23.037s
`

// The benchmarks' names, sub-benchmarks included, and their custom
// metrics are read back; a metric's unit is not mistaken for another
// ending the same way (cpu-ns/event, routed-events/s).
func TestBenchResults(t *testing.T) {
	units := []string{"ns/event", "cpu-ns/event", "events/s", "routed-events/s", "ms/write"}
	got := map[string]map[string]float64{}
	for name, rest := range benchResults([]byte(goTestOutput)) {
		got[name] = map[string]float64{}
		for _, unit := range units {
			if v := metric(rest, unit); v != 0 {
				got[name][unit] = v
			}
		}
	}
	want := map[string]map[string]float64{
		"BenchmarkProcess/keep/batch=1":     {"ns/event": 13021, "cpu-ns/event": 12064},
		"BenchmarkProcess/change/batch=100": {"ns/event": 2098, "cpu-ns/event": 2032},
		"BenchmarkSink/write/parallel=1":    {"events/s": 96802},
		"BenchmarkSink/deliver":             {"events/s": 16288, "routed-events/s": 24322, "ms/write": 7.373},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d benchmarks, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		if !maps.Equal(got[name], w) {
			t.Errorf("%s: got %v, want %v", name, got[name], w)
		}
	}
}

// The results rows judge each figure against its target.
func TestRenderPluginResults(t *testing.T) {
	pr := pluginResult{
		wasm:   []wasmRow{{mode: "keep", batch: 100, ns: 1262, cpuNs: 1139}, {mode: "change", batch: 100, ns: 2098, cpuNs: 2032}},
		write1: 96802, write2: 199739, deliver: 16288, routed: 24322, msPerWrite: 7.4,
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	pass := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	renderPluginResults(w, pr, pass)
	renderPlugins(w, pr)
	for _, want := range []string{
		"events kept unchanged | **1.26 µs** | ≤ 2 µs: met |",
		"every payload changed | **2.10 µs** | ≤ 2 µs: not met |",
		"one plugin process (batches of 500) | **199739** | ≥ 50,000: met |",
		"delivered to one installation | **16288** | ≥ 50,000: not met |",
		"| kept unchanged | – | – | 1.26 µs (CPU 1.14 µs) |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
