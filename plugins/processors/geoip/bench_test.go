package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// benchEvents are n typical analytics.js track events (about 600 bytes),
// from a mix of known, unknown and IPv6 addresses.
func benchEvents(n int) []eddyplugin.Event {
	ips := []string{"81.2.69.142", "216.160.83.56", "2a02:8010:1234::9", "89.160.20.112", "8.8.8.8"}
	events := make([]eddyplugin.Event, n)
	for i := range events {
		events[i] = eddyplugin.Event{
			MessageID: fmt.Sprint("m", i), Type: "track",
			Payload: fmt.Appendf(nil, `{"type":"track","event":"Product Added","messageId":"m%d","anonymousId":"a6b0c1d2-3e4f-5a6b-7c8d-9e0f1a2b3c4d","userId":"user-%d",`+
				`"properties":{"product_id":"507f1f77bcf86cd799439011","sku":"G-32","category":"Games","name":"Monopoly: 3rd Edition","price":18.99,"quantity":1,"url":"https://www.example.com/product/path"},`+
				`"context":{"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":"/product","referrer":"","title":"Monopoly","url":"https://www.example.com/product"},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","locale":"en-US"},`+
				`"timestamp":"2024-01-01T12:00:00.000Z","sentAt":"2024-01-01T12:00:01.000Z"}`, i, i%100),
			IP: ips[i%len(ips)],
		}
	}
	return events
}

// BenchmarkProcess measures Process in-process on 1000-event batches and
// reports the cost per event.
func BenchmarkProcess(b *testing.B) {
	db := buildCityDB(b, "world.json")
	for _, bc := range []struct{ name, cfg string }{
		{"enrich", `{"database":%q}`},
		{"enrich+truncate", `{"database":%q,"truncate_ip":true}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			proc := newProcessor(discardLogger())
			ctx := context.Background()
			if err := proc.Init(ctx, eddyplugin.Installation{ID: "i", Config: fmt.Appendf(nil, bc.cfg, db)}); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = proc.Close(ctx, "i") })
			events := benchEvents(1000)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				kept, _, err := proc.Process(ctx, "i", events)
				if err != nil || len(kept) != len(events) {
					b.Fatalf("process: %d kept, %v", len(kept), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
