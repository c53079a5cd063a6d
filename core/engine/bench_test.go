package engine

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/session"
)

// benchWorkspace is the workspace of the benchmarks' events.
const benchWorkspace = "0193a0c4-1111-7000-8000-000000000001"

// visitEvents returns a realistic visit's entries for device i: a landing
// page from a paid search ad, a product page, and a product added to the
// cart, each a payload as a browser SDK sends it.
func visitEvents(i int, at time.Time) []event.Entry {
	anon := uuid.NewSHA1(uuid.NameSpaceOID, []byte(strconv.Itoa(i))).String()
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	mk := func(n int, typ, payload string) event.Entry {
		return event.Entry{WorkspaceID: benchWorkspace, MessageID: fmt.Sprintf("%s-%d", anon, n), Type: typ, ShardKey: anon,
			ReceivedAt: at.Add(time.Duration(n) * time.Minute), Timestamp: at.Add(time.Duration(n) * time.Minute), IP: "203.0.113.7",
			Payload: []byte(payload)}
	}
	p := i % 500
	return []event.Entry{
		mk(0, "page", fmt.Sprintf(`{"anonymousId":%q,"name":"Running shoes","properties":{"url":"https://shop.example.com/c/running?utm_source=google&utm_medium=cpc&utm_campaign=winter-sale&gclid=Cj0KCQiA%d","referrer":"https://www.google.com/","title":"Running shoes | Shop"},"context":{"userAgent":%q,"locale":"fr-FR","location":{"country":"France","city":"Lyon"}}}`, anon, i, ua)),
		mk(1, "page", fmt.Sprintf(`{"anonymousId":%q,"name":"Trail shoe","properties":{"url":"https://shop.example.com/p/trail-shoe-%d","referrer":"https://shop.example.com/c/running","title":"Trail shoe | Shop"},"context":{"userAgent":%q}}`, anon, p, ua)),
		mk(2, "track", fmt.Sprintf(`{"anonymousId":%q,"event":"Product Added","properties":{"product_id":"sku-%d","sku":"TS-%d","name":"Trail shoe","price":89.9,"quantity":1},"context":{"userAgent":%q}}`, anon, p, p, ua)),
	}
}

// applyEntry applies an entry to its visitor as the engine's batch does,
// without the database.
func applyEntry(b *testing.B, sh *shard, ws *session.Workspace, en *event.Entry, now time.Time, changes []session.Change) []session.Change {
	ev, err := session.FromEntry(en)
	if err != nil {
		b.Fatal(err)
	}
	vis := sh.visitor(ws, ev.AnonymousID, now)
	before := vis.v.Len()
	if changes, err = vis.v.Apply(&ev, changes); err != nil {
		b.Fatal(err)
	}
	sh.touch(vis, before, now)
	return changes
}

// BenchmarkLiveSessionMemory holds live sessions as the engine does (one
// visitor per device in a shard, with its place in the close queue), each
// session built from a realistic visit of three events, and reports the
// heap they take per live session. EDDY_BENCH_SESSIONS sets how many
// (default 1,000,000); make bench runs it once.
func BenchmarkLiveSessionMemory(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("EDDY_BENCH_SESSIONS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("EDDY_BENCH_SESSIONS=%q: want a positive count", s)
		}
	}
	ws, err := session.NewWorkspace(benchWorkspace, session.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		sh := newShard(0, 1, entryID{})
		var changes []session.Change
		for i := range n {
			for _, en := range visitEvents(i, at) {
				changes = applyEntry(b, sh, ws, &en, at, changes[:0])
			}
			clear(sh.dirty) // a commit clears it after each batch
		}
		changes = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := sh.open.Load(); got != int64(n) {
			b.Fatalf("%d live sessions, want %d", got, n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/session")
		b.ReportMetric(float64(n), "sessions")
		runtime.KeepAlive(sh)
		sh.forget()
	}
}

// BenchmarkStateUpdates applies events to live sessions as the engine's
// shard goroutine does (decode the entry's JSON, find the visitor, apply,
// requeue it), over 10,000 devices: one op is one event. Run with -cpu 1,
// 1e9/ns per op is the state updates per second on one core.
func BenchmarkStateUpdates(b *testing.B) {
	ws, err := session.NewWorkspace(benchWorkspace, session.DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	const devices = 10_000
	var entries []event.Entry
	for i := range devices {
		entries = append(entries, visitEvents(i, at)...)
	}
	sh := newShard(0, 1, entryID{})
	var changes []session.Change
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		en := &entries[i%len(entries)]
		if i > 0 && i%len(entries) == 0 {
			// Another round of the same visits: move them on in time so
			// that they are new events.
			b.StopTimer()
			shift := time.Duration(i/len(entries)) * 5 * time.Minute
			for j := range entries {
				entries[j].Timestamp = at.Add(shift + time.Duration(j%3)*time.Minute)
				entries[j].MessageID = fmt.Sprintf("%d-%d", i, j)
			}
			b.StartTimer()
		}
		changes = applyEntry(b, sh, ws, en, at, changes[:0])
		if len(sh.dirty) >= 1000 {
			clear(sh.dirty)
		}
	}
	b.StopTimer()
	sh.forget()
}
