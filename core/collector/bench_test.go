package collector

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/config"
)

// benchBatch is a /v1/batch body of n realistic ~450-byte events.
func benchBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"sentAt":"2026-11-22T11:59:59.120Z","batch":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","event":"Product Viewed","messageId":"5f2b8c9e-1d3a-4e7b-9c21-%012d","anonymousId":"anon-%d","timestamp":"2026-11-22T11:59:58.000Z",`+
			`"properties":{"product_id":"sku-%d","name":"Trail Running Shoe","price":89.9,"currency":"EUR","category":"Shoes","brand":"Eddy"},`+
			`"context":{"library":{"name":"analytics.js","version":"5.2.0"},"page":{"url":"https://shop.example.com/p/sku-%d","path":"/p/sku-%d","referrer":"https://www.google.com/"},`+
			`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","locale":"fr-FR"}}`, i, i%25, i, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func BenchmarkParseBatch100(b *testing.B) {
	body := benchBatch(100)
	l := config.Collector{MaxEventBytes: 32 << 10, MaxBatchMessages: 2500, MaxDepth: 32, MaxKeys: 1000, MaxFutureSkew: time.Hour}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := parseRequest("batch", body, now, l)
		if len(req.problems) > 0 || len(req.entries) != 100 {
			b.Fatalf("problems %v", req.problems)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}
