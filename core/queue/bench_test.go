package queue

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/redis/go-redis/v9"
)

const benchBatch = 100

// benchEntries returns a batch of entries with ~450-byte payloads, as the
// collector would enqueue them.
func benchEntries() []event.Entry {
	now := time.Now()
	entries := make([]event.Entry, benchBatch)
	for i := range entries {
		anon := fmt.Sprintf("anon-%08d", i*7919)
		payload := fmt.Appendf(nil, `{"type":"track","event":"Product Viewed","anonymousId":%q,"messageId":"msg-%08d","properties":{"product_id":"507f1f77bcf86cd799439011","sku":"G-32","category":"Games","name":"Monopoly: 3rd Edition","price":18.99,"currency":"USD"},"context":{"page":{"path":"/products/monopoly","url":"https://shop.example.com/products/monopoly"}},"timestamp":"2025-03-01T12:00:00.000Z","padding":"`, anon, i)
		payload = append(payload, bytes.Repeat([]byte("x"), 450-len(payload)-2)...)
		payload = append(payload, `"}`...)
		entries[i] = event.Entry{
			WorkspaceID: "9b2d4c1e-0000-4000-8000-000000000001",
			SourceID:    "5f0e7a3b-0000-4000-8000-000000000002",
			MessageID:   fmt.Sprintf("msg-%08d", i),
			Type:        "track",
			ShardKey:    anon,
			ReceivedAt:  now,
			SentAt:      now.Add(-time.Second),
			Timestamp:   now.Add(-time.Second),
			IP:          "203.0.113.7",
			Payload:     payload,
		}
	}
	return entries
}

// clearStreams deletes the benchmark's streams so that Redis memory stays
// bounded.
func clearStreams(b *testing.B, q *Queue) {
	b.StopTimer()
	testenv.Must(b, q.rdb.Del(context.Background(), q.streams...).Err(), "delete streams")
	b.StartTimer()
}

// BenchmarkEnqueue measures one collector goroutine enqueueing 100-entry
// batches, each one round trip.
func BenchmarkEnqueue(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	q, err := New(rdb, Options{Prefix: prefix})
	testenv.Must(b, err, "new")
	entries := benchEntries()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := q.Enqueue(ctx, entries); err != nil {
			b.Fatal(err)
		}
		if i%500 == 499 {
			clearStreams(b, q)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/entry")
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkEnqueueParallel measures many collector goroutines enqueueing
// 100-entry batches concurrently, as under load.
func BenchmarkEnqueueParallel(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	q, err := New(rdb, Options{Prefix: prefix})
	testenv.Must(b, err, "new")
	ctx := context.Background()
	var batches atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		entries := benchEntries()
		for pb.Next() {
			if err := q.Enqueue(ctx, entries); err != nil {
				b.Error(err)
				return
			}
			if batches.Add(1)%500 == 0 {
				// Trim, not delete: other goroutines are writing.
				for _, s := range q.streams {
					q.rdb.XTrimMaxLen(ctx, s, 0)
				}
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/entry")
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkShardOf(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	q, err := New(rdb, Options{})
	testenv.Must(b, err, "new")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n += q.ShardOf("9b2d4c1e-0000-4000-8000-000000000001", "anon-1234567890abcdef")
	}
	_ = n
}
