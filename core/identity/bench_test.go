package identity

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// benchEvents makes a stream over known visitors: 95% of the events come
// from one of the visitors (a third of those carrying the userId), 4% are
// identifies with three traits, 1% come from new visitors.
func benchEvents(visitors, n int) (seed, stream []Event) {
	rng := rand.New(rand.NewPCG(1, 2))
	for v := range visitors {
		seed = append(seed, identify(fmt.Sprintf("seed%d", v), fmt.Sprintf("anon-%d", v), fmt.Sprintf("user-%d", v), 0,
			fmt.Sprintf(`{"email":"visitor%d@example.com","plan":"free","name":"Visitor %d"}`, v, v)))
	}
	for i := range n {
		v := rng.IntN(visitors)
		msg := fmt.Sprintf("m%d", i)
		min := 1 + i/1000
		switch r := rng.IntN(100); {
		case r < 1:
			stream = append(stream, track(msg, fmt.Sprintf("new-%d", i), "", min))
		case r < 5:
			stream = append(stream, identify(msg, fmt.Sprintf("anon-%d", v), fmt.Sprintf("user-%d", v), min,
				fmt.Sprintf(`{"email":"visitor%d@example.com","plan":"p%d","logins":%d}`, v, rng.IntN(3), i)))
		case r < 37:
			stream = append(stream, track(msg, fmt.Sprintf("anon-%d", v), fmt.Sprintf("user-%d", v), min))
		default:
			stream = append(stream, track(msg, fmt.Sprintf("anon-%d", v), "", min))
		}
	}
	return seed, stream
}

func seeded(b *testing.B, visitors int) (*Graph, []Event) {
	seed, stream := benchEvents(visitors, 1<<16)
	g := NewGraph(ws)
	for _, ev := range seed {
		if _, err := g.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
	return g, stream
}

// BenchmarkApply is one goroutine applying a stream of mostly-known
// visitors to a graph of 100k profiles.
func BenchmarkApply(b *testing.B) {
	g, stream := seeded(b, 100_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := g.Apply(stream[i%len(stream)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkApplyParallel is GOMAXPROCS shard goroutines sharing one
// workspace's graph (one mutex).
func BenchmarkApplyParallel(b *testing.B) {
	g, stream := seeded(b, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(stream))
		for pb.Next() {
			if _, err := g.Apply(stream[i%len(stream)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkProfileMemory measures the heap a graph of 100k profiles takes.
// identified: an anonymous id, a user id, an email, three traits, one
// session, and an order for one in ten. anonymous: one anonymous id, one
// page view.
func BenchmarkProfileMemory(b *testing.B) {
	const n = 100_000
	build := map[string]func(g *Graph, i int){
		"identified": func(g *Graph, i int) {
			ch, err := g.Apply(identify(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), fmt.Sprintf("%08x-aaaa-4000-8000-000000000000", i), fmt.Sprintf("user-%d", i), i%1000,
				fmt.Sprintf(`{"email":"visitor%d@example.com","plan":"free","name":"Visitor %d"}`, i, i)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := g.RecordSession(ch.Profile, Session{ID: fmt.Sprintf("%08x-5555-4000-8000-000000000000", i), Start: at(i % 1000)}); err != nil {
				b.Fatal(err)
			}
			if i%10 == 0 {
				if _, err := g.RecordOrder(ch.Profile, Order{ID: fmt.Sprintf("order-%d", i), At: at(i % 1000), Value: 42.5, Currency: "EUR"}); err != nil {
					b.Fatal(err)
				}
			}
		},
		"anonymous": func(g *Graph, i int) {
			if _, err := g.Apply(track(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), fmt.Sprintf("%08x-aaaa-4000-8000-000000000000", i), "", i%1000)); err != nil {
				b.Fatal(err)
			}
		},
	}
	for _, name := range []string{"identified", "anonymous"} {
		b.Run(name, func(b *testing.B) {
			var perProfile float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				g := NewGraph(ws)
				for i := range n {
					build[name](g, i)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if g.Len() != n {
					b.Fatalf("%d profiles, want %d", g.Len(), n)
				}
				perProfile = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(g)
			}
			b.ReportMetric(perProfile, "bytes/profile")
		})
	}
}
