package wasmhost

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// pagePayload is a realistic Segment page call from analytics.js, about
// 600 bytes.
const pagePayload = `{"anonymousId":"4a1bc7e2-5f0d-4c59-9a7e-3f1b2c9d8e01","context":{"ip":"203.0.113.7",` +
	`"library":{"name":"analytics.js","version":"next-1.72.1"},"locale":"fr-FR","page":{"path":"/shoes/running",` +
	`"referrer":"https://www.google.com/","search":"?color=blue","title":"Running shoes","url":"https://shop.example.com/shoes/running?color=blue"},` +
	`"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},` +
	`"messageId":"ajs-next-1732269600123-4a1bc7e2-5f0d-4c59","name":"Running shoes","properties":{"path":"/shoes/running",` +
	`"referrer":"https://www.google.com/","search":"?color=blue","title":"Running shoes","url":"https://shop.example.com/shoes/running?color=blue"},` +
	`"receivedAt":"2026-11-22T10:00:00.456Z","sentAt":"2026-11-22T10:00:00.321Z","timestamp":"2026-11-22T10:00:00.123Z","type":"page"}`

var (
	benchOnce sync.Once
	benchWasm []byte
	benchErr  error
)

// benchGuest builds testdata/benchguest once.
func benchGuest(b *testing.B) []byte {
	benchOnce.Do(func() { benchWasm, benchErr = buildModule("./testdata/benchguest") })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchWasm
}

func pageBatch(n int) []eddywasm.Event {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123000000, time.UTC)
	events := make([]eddywasm.Event, n)
	for i := range events {
		events[i] = eddywasm.Event{MessageID: fmt.Sprintf("ajs-next-1732269600123-%012d", i), WorkspaceID: "ws_7f3a9c",
			SourceID: "src_web", Type: "page", Timestamp: at, ReceivedAt: at.Add(333 * time.Millisecond),
			Payload: []byte(pagePayload), IP: "203.0.113.7"}
	}
	return events
}

// BenchmarkProcess measures the host's and the guest SDK's overhead per
// event (the processor itself does next to nothing) on ~600-byte page
// events: keep reads each event's type and keeps it unchanged, change
// returns every payload changed.
func BenchmarkProcess(b *testing.B) {
	wasm := benchGuest(b)
	ctx := context.Background()
	for _, mode := range []string{"keep", "change"} {
		m, err := runtime.Load(ctx, "processor.bench_"+mode, wasm, []byte(fmt.Sprintf(`{"change":%v}`, mode == "change")), Options{})
		if err != nil {
			b.Fatalf("Load: %v", err)
		}
		for _, n := range []int{1, 10, 100} {
			events := pageBatch(n)
			b.Run(fmt.Sprintf("%s/batch=%d", mode, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(n * len(pagePayload)))
				cpu0 := cpuTime(b)
				for b.Loop() {
					results, err := m.Process(ctx, events)
					if err != nil {
						b.Fatal(err)
					}
					if len(results) != n || mode == "change" && !strings.HasSuffix(string(results[n-1].Payload), `,"seen":true}`) {
						b.Fatalf("results = %+v", results[n-1])
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
				// CPU time is steadier than wall time on a shared machine.
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/event")
			})
		}
		_ = m.Close(ctx)
	}
}

// cpuTime is the CPU time the process has used (user and system), every
// goroutine included.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
