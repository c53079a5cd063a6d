// Command eddy-bench measures Eddy on this machine and writes
// docs/benchmarks.md. `make bench` runs it after building bin/eddy.
//
// It runs Eddy as a separate process, as in production, against the
// PostgreSQL and Redis in EDDY_DATABASE_URL and EDDY_REDIS_URL, in a
// database and Redis key prefix of its own that it removes afterwards:
//
//  1. collector throughput: `eddy serve --roles collector` alone, loaded with
//     pre-built Segment batches of 100 events as fast as it acknowledges them;
//  2. end to end: `eddy serve` (all roles) loaded with realistic shop traffic
//     from the demo generator, twice: offered more than it can store, to
//     measure the sustained rate of commits in PostgreSQL (the queue absorbs
//     the excess); then offered a rate it keeps up with, to measure the
//     collect→stored latency (loaded_at − received_at) of every event;
//  3. CPU profiles of the eddy process in phases 1 and 2, whose top
//     functions go into the report.
//  4. the plugin runtimes' overhead, with go test benchmarks: a WASM
//     processor's time per event (core/wasmhost) and a gRPC sink's
//     throughput, alone and through Eddy's sink path (core/plugins).
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o options
	flag.StringVar(&o.binary, "eddy", "bin/eddy", "eddy binary to run")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "report to write")
	flag.DurationVar(&o.collectorFor, "collector-duration", 20e9, "collector throughput run length")
	flag.DurationVar(&o.e2eFor, "e2e-duration", 60e9, "end-to-end measured window")
	flag.Float64Var(&o.e2eRate, "e2e-rate", 45000, "offered events/s in the throughput run (above capacity)")
	flag.Float64Var(&o.latencyRate, "latency-rate", 20000, "offered events/s in the latency run (below capacity)")
	flag.Float64Var(&o.liveRate, "live-rate", 10000, "offered events/s in the collect→live latency run")
	flag.Float64Var(&o.liveLowRate, "live-low-rate", 2500, "offered events/s in a second collect→live run, below the machine's capacity (0: none)")
	flag.IntVar(&o.senders, "senders", 16, "parallel HTTP senders")
	flag.Int64Var(&o.analyticsEvents, "analytics-events", 10_000_000, "events loaded for the analytics phase (0: skip it)")
	flag.BoolVar(&o.onlyAnalytics, "only-analytics", false, "run the analytics phase alone, writing no report")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "eddy-bench:", err)
		os.Exit(1)
	}
}
