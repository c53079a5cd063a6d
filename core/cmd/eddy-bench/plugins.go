package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Plugin benchmark runs: go test benchmarks in their packages, one op
// per event where it matters.
const (
	wasmBenchTime = "2s"      // per sub-benchmark of BenchmarkProcess
	sinkEvents    = 200000    // events per sub-benchmark of BenchmarkSink
	sinkBenchTime = "200000x" // the same, as -benchtime
)

// wasmRow is one sub-benchmark of core/wasmhost's BenchmarkProcess.
type wasmRow struct {
	mode      string // keep (payloads unchanged) or change (every payload changed)
	batch     int
	ns, cpuNs float64 // wall and CPU time per event
}

// pluginResult is phase 5's outcome: the plugin runtimes' overhead.
type pluginResult struct {
	wasm []wasmRow
	// Sink figures, events/s: Write calls to one plugin process from 1
	// and 2 goroutines, and delivery end to end (route group + sink loop).
	write1, write2   float64
	deliver, routed  float64
	msPerWrite       float64 // mean duration of the sink loop's Write calls
	wasmCmd, sinkCmd string
	wasmErr, sinkErr string
}

// wasmAt returns the row of mode at batch, if measured.
func (p pluginResult) wasmAt(mode string, batch int) (wasmRow, bool) {
	for _, r := range p.wasm {
		if r.mode == mode && r.batch == batch {
			return r, true
		}
	}
	return wasmRow{}, false
}

// subBenchLine matches a benchmark result line, sub-benchmarks included
// ("BenchmarkProcess/keep/batch=100-2  9000  126211 ns/op  …").
var subBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// pluginBenchmarks runs the WASM processor benchmark (core/wasmhost) and
// the gRPC sink benchmark (core/plugins, against the Redis at redisURL).
func pluginBenchmarks(redisURL string) pluginResult {
	var r pluginResult
	wasmArgs := []string{"test", "-run", "^$", "-bench", "^BenchmarkProcess$", "-benchtime", wasmBenchTime, "./core/wasmhost"}
	sinkArgs := []string{"test", "-run", "^$", "-bench", "^BenchmarkSink$", "-benchtime", sinkBenchTime, "./core/plugins"}
	r.wasmCmd, r.sinkCmd = "go "+strings.Join(wasmArgs, " "), "go "+strings.Join(sinkArgs, " ")

	out, err := exec.Command("go", wasmArgs...).CombinedOutput()
	if err != nil {
		r.wasmErr = fmt.Sprintf("%v: %s", err, out)
	}
	for name, rest := range benchResults(out) {
		mode, batch, ok := strings.Cut(strings.TrimPrefix(name, "BenchmarkProcess/"), "/batch=")
		n, err := strconv.Atoi(batch)
		if !ok || err != nil {
			continue
		}
		r.wasm = append(r.wasm, wasmRow{mode: mode, batch: n, ns: metric(rest, "ns/event"), cpuNs: metric(rest, "cpu-ns/event")})
	}
	if r.wasmErr == "" && len(r.wasm) == 0 {
		r.wasmErr = fmt.Sprintf("no BenchmarkProcess results in: %s", out)
	}

	cmd := exec.Command("go", sinkArgs...)
	cmd.Env = append(os.Environ(), "EDDY_TEST_REDIS_URL="+redisURL)
	out, err = cmd.CombinedOutput()
	if err != nil {
		r.sinkErr = fmt.Sprintf("%v: %s", err, out)
	}
	for name, rest := range benchResults(out) {
		switch name {
		case "BenchmarkSink/write/parallel=1":
			r.write1 = metric(rest, "events/s")
		case "BenchmarkSink/write/parallel=2":
			r.write2 = metric(rest, "events/s")
		case "BenchmarkSink/deliver":
			r.deliver = metric(rest, "events/s")
			r.routed = metric(rest, "routed-events/s")
			r.msPerWrite = metric(rest, "ms/write")
		}
	}
	if r.sinkErr == "" && r.deliver == 0 {
		r.sinkErr = fmt.Sprintf("no BenchmarkSink results in: %s", out)
	}
	return r
}

// benchResults maps each benchmark of go test's output to the rest of its
// line (its metrics after ns/op), in the order of the output.
func benchResults(out []byte) func(yield func(name, rest string) bool) {
	return func(yield func(string, string) bool) {
		for _, line := range strings.Split(string(out), "\n") {
			m := subBenchLine.FindStringSubmatch(strings.TrimSpace(line))
			if m != nil && !yield(m[1], m[3]) {
				return
			}
		}
	}
}

// renderPluginResults adds the plugin figures to the results table.
func renderPluginResults(w func(string, ...any), pr pluginResult, pass func(bool) string) {
	for _, c := range []struct{ mode, what string }{{"keep", "events kept unchanged"}, {"change", "every payload changed"}} {
		if r, ok := pr.wasmAt(c.mode, 100); ok {
			w("| WASM processor: time per event in batches of 100, %s | **%.2f µs** | ≤ 2 µs: %s |\n", c.what, r.ns/1000, pass(r.ns > 0 && r.ns <= 2000))
		}
	}
	if pr.write1 > 0 || pr.write2 > 0 {
		best := max(pr.write1, pr.write2)
		w("| gRPC sink: events/s written to one plugin process (batches of 500) | **%.0f** | ≥ 50,000: %s |\n", best, pass(best >= 50000))
	}
	if pr.deliver > 0 {
		w("| gRPC sink end to end: events/s routed from the events queue and delivered to one installation | **%.0f** | ≥ 50,000: %s |\n", pr.deliver, pass(pr.deliver >= 50000))
	}
}

// renderPlugins writes the report's plugin section.
func renderPlugins(w func(string, ...any), pr pluginResult) {
	w("## 5. Plugins\n\n")
	w("Run after the phases above, with no eddy process running (the machine's other load remains). Both plugins do next to nothing, so the figures are the cost of Eddy's plugin runtimes.\n\n")
	w("**WASM processor** (`%s`): the host (`core/wasmhost`, wazero) and the guest SDK (`sdk/eddywasm`) processing batches of realistic ~600-byte Segment page events; the test module reads each event's type and either keeps every event unchanged or returns every payload changed. Wall time and CPU time (the process's user + system time, steadier on a shared machine) per event:\n\n", pr.wasmCmd)
	if len(pr.wasm) > 0 {
		w("| events | batch of 1 | batch of 10 | batch of 100 |\n|---|---|---|---|\n")
		for _, c := range []struct{ mode, what string }{{"keep", "kept unchanged"}, {"change", "every payload changed"}} {
			w("| %s |", c.what)
			for _, n := range []int{1, 10, 100} {
				if r, ok := pr.wasmAt(c.mode, n); ok {
					w(" %.2f µs (CPU %.2f µs) |", r.ns/1000, r.cpuNs/1000)
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		w("\n")
	}
	if pr.wasmErr != "" {
		w("The WASM benchmark failed: ```%s```\n\n", pr.wasmErr)
	}
	w("**gRPC sink** (`%s`), with a sink plugin that drops what it receives and counts it (`core/plugins/testdata/nullsink`), %d realistic ~600-byte Segment page events per run:\n\n", pr.sinkCmd, sinkEvents)
	w("- **Plugin calls**: `Write` calls of 500 events to one plugin process through Eddy's plugin host (protobuf over gRPC on a local socket, mutual TLS): %.0f events/s from one caller, %.0f from two in parallel.\n", pr.write1, pr.write2)
	w("- **End to end**: the events wait in the events queue (16 shards) before the clock starts; then the route group copies them to the installation's queue and its sink loop delivers them in batches of 500 (read, `Write`, acknowledge), as the worker does, all through Redis. Timed until the sink has accepted all of them: **%.0f events/s**. Where the time goes: the route group, running alongside the sink loop, had copied and acknowledged them all at %.0f events/s; a `Write` of the sink loop took %.1f ms on average.\n\n", pr.deliver, pr.routed, pr.msPerWrite)
	if pr.sinkErr != "" {
		w("The sink benchmark failed: ```%s```\n\n", pr.sinkErr)
	}
}
