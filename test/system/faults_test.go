package system

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/demo"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// acked collects the ids of messages the collector acknowledged.
type acked struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (a *acked) add(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.ids[id] = true
	}
}

func (a *acked) snapshot() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]bool, len(a.ids))
	for id := range a.ids {
		out[id] = true
	}
	return out
}

// traffic sends demo traffic at rate for d and records what the collector
// acknowledged. It ends as a client does, letting requests in flight get
// their answers, so every request counts as acknowledged or refused.
func traffic(t *testing.T, base, key string, rate float64, d time.Duration, a *acked) <-chan demo.Stats {
	out := make(chan demo.Stats, 1)
	go func() {
		st, err := demo.Run(context.Background(), demo.Options{
			URL: base, WriteKey: key, Rate: rate, Duration: d, BatchSize: 50, Concurrency: 4, Seed: 7,
			OnAccepted: a.add,
		})
		if err != nil {
			t.Errorf("demo traffic: %v", err)
		}
		out <- st
	}()
	return out
}

// Fault 1: a worker killed with SIGKILL mid-stream loses and doubles nothing.
func TestWorkerKilledMidStreamLosesAndDoublesNothing(t *testing.T) {
	e := newEnv(t, "")
	collectorURL := e.serve(e.config(e.dbURL, e.redisURL), server.RoleCollector)
	worker := e.start("worker")

	a := &acked{ids: map[string]bool{}}
	stats := traffic(t, collectorURL, e.writeKey, 1500, 6*time.Second, a)

	time.Sleep(2 * time.Second)
	before := len(e.storedIDs())
	if before == 0 {
		t.Fatal("the worker stored nothing in 2 s; cannot test a kill mid-stream")
	}
	worker.kill(t)
	t.Logf("killed the worker with %d events stored", before)
	time.Sleep(time.Second)
	e.start("worker")

	st := <-stats
	if st.Failed > 0 || st.Rejected > 0 {
		t.Fatalf("collector refused traffic while a worker was down: %+v", st)
	}
	want := a.snapshot()
	if int64(len(want)) != st.Accepted || len(want) < 3000 {
		t.Fatalf("acknowledged %d ids, stats say %d accepted; want several thousand", len(want), st.Accepted)
	}
	e.waitStored(want, 60*time.Second)
}

// Fault 2: PostgreSQL unavailable — the collector keeps answering 200,
// events wait in Redis, and all are stored exactly once after recovery.
func TestDatabaseOutageKeepsCollectingAndCatchesUp(t *testing.T) {
	e := newEnv(t, "")
	pg := testenv.NewProxy(t, hostOf(e.dbURL))
	base := e.serve(e.config(dbURLFor(e.dbURL, pg.Addr()), e.redisURL))

	a := &acked{ids: map[string]bool{}}
	send := func(n int, prefix string) {
		for i := 0; i < n; i++ {
			batch := make([]string, 20)
			ids := make([]string, 20)
			for j := range batch {
				ids[j] = fmt.Sprintf("%s-%d-%d", prefix, i, j)
				batch[j] = fmt.Sprintf(`{"type":"track","event":"Outage Test","anonymousId":"v%d","messageId":%q}`, j, ids[j])
			}
			code, _, body := e.post(base, "/v1/batch", `{"batch":[`+strings.Join(batch, ",")+`]}`)
			if code != http.StatusOK {
				t.Fatalf("batch %s-%d: status %d %s", prefix, i, code, body)
			}
			a.add(ids)
		}
	}
	send(10, "before")
	e.waitStored(a.snapshot(), 30*time.Second)

	pg.Cut()
	send(50, "during") // 1000 events while the database is gone
	time.Sleep(2 * time.Second)
	if got := len(e.storedIDs()); got != 200 {
		t.Fatalf("stored %d events during the outage, want the 200 from before", got)
	}
	if q := e.queued(); q < 1000 {
		t.Fatalf("only %d entries wait in Redis, want at least the 1000 sent during the outage", q)
	}
	code, _, body := do(t, mustGet(t, base+"/readyz"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "postgres") {
		t.Fatalf("/readyz during the outage = %d %s, want 503 naming postgres", code, body)
	}

	pg.Restore()
	send(10, "after")
	e.waitStored(a.snapshot(), 60*time.Second)
}

// Fault 3: Redis unavailable — 503 with Retry-After, never 200, and
// recovery by itself when Redis is back.
func TestRedisOutageAnswers503AndRecovers(t *testing.T) {
	e := newEnv(t, "")
	rp := testenv.NewProxy(t, hostOf(e.redisURL))
	base := e.serve(e.config(e.dbURL, redisURLFor(rp.Addr())), server.RoleCollector, server.RoleWorker)
	body := func(id string) string {
		return fmt.Sprintf(`{"userId":"u1","event":"Redis Test","messageId":%q}`, id)
	}
	if code, _, b := e.post(base, "/v1/track", body("ok-1")); code != http.StatusOK {
		t.Fatalf("before the outage: %d %s", code, b)
	}

	rp.Cut()
	for i := 0; i < 5; i++ {
		code, h, b := e.post(base, "/v1/track", body(fmt.Sprintf("down-%d", i)))
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(b, "queue_unavailable") {
			t.Fatalf("during the outage: status %d, Retry-After %q, body %s; want 503 with Retry-After", code, h.Get("Retry-After"), b)
		}
	}

	rp.Restore()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, b := e.post(base, "/v1/track", body("ok-2"))
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector did not recover after Redis came back: %d %s", code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Whatever the 503 requests may have left half-queued stays legitimate
	// at-least-once delivery; the two acknowledged ones must be stored once.
	deadline = time.Now().Add(30 * time.Second)
	for {
		got := e.storedIDs()
		if got["ok-1"] == 1 && got["ok-2"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged events not stored once: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Fault 4: a client retry of the same batch is stored once.
func TestClientRetryOfABatchIsStoredOnce(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))
	batch := `{"batch":[
		{"type":"track","event":"Order Completed","userId":"u1","messageId":"retry-1","properties":{"revenue":10}},
		{"type":"identify","userId":"u1","messageId":"retry-2","traits":{"email":"a@example.com"}},
		{"type":"page","anonymousId":"a1","messageId":"retry-3","name":"Home"}]}`
	for i := 0; i < 3; i++ {
		if code, _, b := e.post(base, "/v1/batch", batch); code != http.StatusOK {
			t.Fatalf("send %d: %d %s", i, code, b)
		}
	}
	e.waitStored(map[string]bool{"retry-1": true, "retry-2": true, "retry-3": true}, 30*time.Second)
}

func hostOf(raw string) string {
	u := mustParseURL(raw)
	return u.Host
}
