package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// benchBatch is the sink batch size the benchmarks write, as the sink loop
// does by default (SinkOptions.BatchSize).
const benchBatch = 500

// BenchmarkSink measures gRPC sink throughput with a sink plugin that
// drops what it receives (testdata/nullsink), so that the figures are
// Eddy's own cost. One op is one event; run it with a fixed count, e.g.
// -benchtime 200000x.
//
//   - write/parallel=N: Writes of 500 realistic ~600-byte Segment page
//     events to one plugin process, from N goroutines: the plugin call
//     alone (conversion, protobuf, gRPC over the local socket with mTLS).
//   - deliver: Eddy's sink path end to end over real Redis: b.N events
//     waiting in the events queue (16 shards) are routed (the route group)
//     to the queue of one null-sink installation and delivered by its sink
//     loop; timed from the start of the route group until the sink has
//     accepted them all.
//
// It needs Redis (EDDY_TEST_REDIS_URL, else 127.0.0.1:6379).
func BenchmarkSink(b *testing.B) {
	m := plugintest.Build(b, "testdata/nullsink")
	for _, p := range []int{1, 2} {
		b.Run(fmt.Sprintf("write/parallel=%d", p), func(b *testing.B) { benchWrite(b, m, p) })
	}
	b.Run("deliver", func(b *testing.B) { benchDeliver(b, m) })
}

// benchWrite writes b.N events in batches of benchBatch from parallel
// goroutines to one plugin process.
func benchWrite(b *testing.B, m *plugin.Manifest, parallel int) {
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	proc, err := pluginhost.Start(m, log)
	testenv.Must(b, err, "start the null sink")
	defer proc.Kill()
	ctx := context.Background()
	countFile := filepath.Join(b.TempDir(), "count")
	testenv.Must(b, proc.Init(ctx, nullSinkInstallation("bench-write", countFile)), "init")

	batches := (b.N + benchBatch - 1) / benchBatch
	events := make([][]eddyplugin.Event, parallel)
	for g := range events {
		entries := pageEntries(fmt.Sprintf("g%d-", g), benchBatch)
		for i := range entries {
			events[g] = append(events[g], toPluginEvent(&entries[i]))
		}
	}
	var next atomic.Int64 // batches handed out
	var sent atomic.Int64
	var failed atomic.Value
	b.SetBytes(int64(len(events[0][0].Payload)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range parallel {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= batches {
					return
				}
				batch := events[g][:min(benchBatch, b.N-i*benchBatch)]
				res, err := proc.Write(ctx, "bench-write", batch)
				if err == nil && (len(res.Retry) > 0 || len(res.Rejected) > 0) {
					err = fmt.Errorf("the null sink returned %+v", res)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				sent.Add(int64(len(batch)))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("write: %v", err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	testenv.Must(b, proc.Close(ctx, "bench-write"), "close")
	if got := readCount(b, countFile); got != int64(b.N) || sent.Load() != int64(b.N) {
		b.Fatalf("the sink counted %d events, the benchmark sent %d, want %d", got, sent.Load(), b.N)
	}
}

// benchDeliver routes and delivers b.N queued events to one null-sink
// installation through the runtime, as the worker runs it.
func benchDeliver(b *testing.B, m *plugin.Manifest) {
	b.StopTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb, prefix := testenv.Redis(b)
	events, err := queue.New(rdb, queue.Options{Prefix: prefix, Shards: 16})
	testenv.Must(b, err, "events queue")
	countFile := filepath.Join(b.TempDir(), "count")
	in := nullSinkInstallation("bench-deliver", countFile)
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	list := func(context.Context) ([]Installation, error) {
		return []Installation{{ID: in.ID, WorkspaceID: in.WorkspaceID, PluginID: in.PluginID, Enabled: true, Config: in.Config, UpdatedAt: time.Unix(1, 0)}}, nil
	}
	catalog := func(_ context.Context, _, id string) (Plugin, error) {
		if id != m.ID {
			return Plugin{}, fmt.Errorf("unknown plugin %s", id)
		}
		return Plugin{Manifest: m}, nil
	}
	rt, err := New(ctx, list, catalog, rdb, events, Options{Prefix: prefix, Worker: "bench", Logger: log})
	testenv.Must(b, err, "new runtime")
	closed := false
	closeRT := func() {
		if !closed {
			closed = true
			rt.Close(context.Background())
		}
	}
	defer closeRT()
	testenv.Must(b, rt.Reload(ctx), "reload")
	rt.mu.Lock()
	ru := rt.active[in.ID]
	rt.mu.Unlock()
	if ru == nil || ru.initErr != nil || ru.sink == nil {
		b.Fatalf("the null sink installation did not start: %+v", ru)
	}

	// The backlog, enqueued before the route group starts.
	testenv.Must(b, events.EnsureGroup(ctx, RouteGroup), "route group")
	entries := pageEntries("d-", b.N)
	for i := 0; i < len(entries); i += 1000 {
		testenv.Must(b, events.Enqueue(ctx, entries[i:min(i+1000, len(entries))]), "enqueue")
	}

	b.StartTimer()
	routeDone := make(chan struct{})
	go func() {
		defer close(routeDone)
		_ = events.Consume(ctx, queue.ConsumerOptions{Group: RouteGroup, Consumer: "bench", Logger: log}, rt.Route)
	}()
	start := time.Now()
	deadline := start.Add(time.Duration(b.N)*100*time.Microsecond + time.Minute) // ≥ 10,000 events/s
	var routed time.Duration                                                     // until the route group had acknowledged all
	for polls := 0; ru.stats.out.Load() < int64(b.N); polls++ {
		if time.Now().After(deadline) {
			b.Fatalf("the sink accepted %d of %d events by the deadline", ru.stats.out.Load(), b.N)
		}
		if routed == 0 && polls%10 == 0 && drainedGroup(ctx, b, events, RouteGroup) {
			routed = time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	if routed == 0 {
		routed = time.Since(start)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// Where the time went: the route group alone, and the sink's calls to
	// the plugin (the sink loop reads, writes and acknowledges in turn).
	b.ReportMetric(float64(b.N)/routed.Seconds(), "routed-events/s")
	if calls := ru.stats.calls.Load(); calls > 0 {
		b.ReportMetric(float64(ru.stats.nanos.Load())/float64(calls)/1e6, "ms/write")
		b.ReportMetric(float64(b.N)/float64(calls), "events/write")
	}

	// Everything acknowledged, nothing dead-lettered, each event received
	// once.
	sinkQ, err := SinkQueue(rt, in.ID)
	testenv.Must(b, err, "sink queue")
	testenv.Eventually(b, 30*time.Second, "the sink queue acknowledged", func() bool {
		return drainedGroup(ctx, b, sinkQ, DeliverGroup) && drainedGroup(ctx, b, events, RouteGroup)
	})
	for _, q := range []struct {
		q     *queue.Queue
		group string
	}{{events, RouteGroup}, {sinkQ, DeliverGroup}} {
		if n, err := q.q.DeadLetterCount(ctx, q.group); err != nil || n != 0 {
			b.Fatalf("%s dead letters: %d (%v)", q.group, n, err)
		}
	}
	cancel()
	<-routeDone
	closeRT() // closes the installation: the plugin writes its count
	if got := readCount(b, countFile); got != int64(b.N) {
		b.Fatalf("the sink received %d events, want %d", got, b.N)
	}
}

// drainedGroup reports whether group has read and acknowledged every
// entry of q.
func drainedGroup(ctx context.Context, b *testing.B, q *queue.Queue, group string) bool {
	st, err := q.Stats(ctx)
	testenv.Must(b, err, "queue stats")
	for _, s := range st {
		for _, g := range s.Groups {
			if g.Name == group && (g.Lag != 0 || g.Pending != 0) {
				return false
			}
		}
	}
	return true
}

func nullSinkInstallation(id, countFile string) eddyplugin.Installation {
	cfg, _ := json.Marshal(map[string]string{"count_file": countFile})
	return eddyplugin.Installation{ID: id, PluginID: "sink.null", WorkspaceID: wsA, Config: cfg}
}

// readCount reads the count the null sink wrote when its installation
// closed.
func readCount(b *testing.B, path string) int64 {
	data, err := os.ReadFile(path)
	testenv.Must(b, err, "read the null sink's count")
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	testenv.Must(b, err, "parse the null sink's count %q", data)
	return n
}

// pagePayload is a Segment page call from analytics.js, about 600 bytes;
// %[1]s is the visitor, %[2]s the message id.
const pagePayload = `{"anonymousId":"%[1]s","context":{"ip":"203.0.113.7",` +
	`"library":{"name":"analytics.js","version":"next-1.72.1"},"locale":"fr-FR","page":{"path":"/shoes/running",` +
	`"referrer":"https://www.google.com/","search":"?color=blue","title":"Running shoes","url":"https://shop.example.com/shoes/running?color=blue"},` +
	`"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},` +
	`"messageId":"%[2]s","name":"Running shoes","properties":{"path":"/shoes/running",` +
	`"referrer":"https://www.google.com/","search":"?color=blue","title":"Running shoes","url":"https://shop.example.com/shoes/running?color=blue"},` +
	`"sentAt":"2026-11-22T10:00:00.321Z","timestamp":"2026-11-22T10:00:00.123Z","type":"page"}`

// pageEntries returns n page views of workspace A from 1,000 visitors,
// with message ids idPrefix followed by a number.
func pageEntries(idPrefix string, n int) []event.Entry {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123000000, time.UTC)
	out := make([]event.Entry, n)
	for i := range out {
		anon := fmt.Sprintf("4a1bc7e2-5f0d-4c59-9a7e-%012d", i%1000)
		id := fmt.Sprintf("ajs-next-%s%012d", idPrefix, i)
		out[i] = event.Entry{WorkspaceID: wsA, SourceID: "00000000-0000-4000-8000-0000000000f0", MessageID: id, Type: "page",
			ShardKey: anon, ReceivedAt: at.Add(333 * time.Millisecond), SentAt: at.Add(198 * time.Millisecond), Timestamp: at,
			IP: "203.0.113.7", Payload: fmt.Appendf(nil, pagePayload, anon, id)}
	}
	return out
}
