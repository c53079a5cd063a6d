package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testQueue returns a queue with its own key prefix on the test Redis, and
// checks when the test ends that no goroutine started during the test
// (consumers included) is left.
func testQueue(t *testing.T, shards int) (*Queue, *redis.Client, *prometheus.Registry) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	// Registered after testenv's cleanup, so it runs before the client is
	// closed, and before it the consumers' cleanups (registered later) run.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	reg := prometheus.NewRegistry()
	q, err := New(rdb, Options{Prefix: prefix, Shards: shards, Registerer: reg})
	testenv.Must(t, err, "new queue")
	return q, rdb, reg
}

// fastOptions are consumer options with short timings for tests.
func fastOptions(t *testing.T, group, consumer string) ConsumerOptions {
	return ConsumerOptions{
		Group:      group,
		Consumer:   consumer,
		BatchSize:  50,
		Block:      50 * time.Millisecond,
		LeaseTTL:   600 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name()),
	}
}

// startConsumer runs Consume in a goroutine and returns a function that
// stops it and waits for it to return; the test's cleanup also stops it.
func startConsumer(t *testing.T, q *Queue, opts ConsumerOptions, h Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, opts, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume(%s) returned %v, want nil after cancel", opts.Consumer, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Consume(%s) did not return within 10s of cancel", opts.Consumer)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// testEntries returns n entries spread over the given number of visitors of
// one workspace; entry i has message id "m-<i>".
func testEntries(n, visitors int) []event.Entry {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]event.Entry, n)
	for i := range out {
		v := fmt.Sprintf("visitor-%d", i%visitors)
		out[i] = event.Entry{
			WorkspaceID: "9b2d4c1e-0000-4000-8000-000000000001",
			SourceID:    "5f0e7a3b-0000-4000-8000-000000000002",
			MessageID:   fmt.Sprintf("m-%d", i),
			Type:        "track",
			ShardKey:    v,
			ReceivedAt:  base.Add(time.Duration(i) * time.Millisecond),
			Timestamp:   base.Add(time.Duration(i)*time.Millisecond - time.Second),
			IP:          "203.0.113.7",
			Payload:     fmt.Appendf(nil, `{"type":"track","event":"Clicked","anonymousId":%q,"messageId":"m-%d"}`, v, i),
		}
	}
	return out
}

// leaseOwners returns the holder of each shard's lease ("" for none).
func leaseOwners(t *testing.T, q *Queue, group string) []string {
	t.Helper()
	out := make([]string, q.Shards())
	for i := range out {
		v, err := q.rdb.Get(context.Background(), q.leaseKey(group, i)).Result()
		if err != nil && err != redis.Nil {
			t.Fatalf("read lease %d: %v", i, err)
		}
		out[i] = v
	}
	return out
}

func countOwned(owners []string, consumer string) int {
	n := 0
	for _, o := range owners {
		if o == consumer {
			n++
		}
	}
	return n
}

// recorder is a handler that records what it was given.
type recorder struct {
	mu      sync.Mutex
	byShard map[int][]string // message ids acknowledged, per shard, in order
	seen    map[string]int   // deliveries per message id
	total   int
}

func newRecorder() *recorder {
	return &recorder{byShard: make(map[int][]string), seen: make(map[string]int)}
}

func (r *recorder) record(b Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range b.Messages {
		r.byShard[b.Shard] = append(r.byShard[b.Shard], m.Entry.MessageID)
		r.seen[m.Entry.MessageID]++
		r.total++
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// expectedByShard returns the message ids of entries per shard in slice
// order.
func expectedByShard(q *Queue, entries []event.Entry) map[int][]string {
	out := make(map[int][]string)
	for _, e := range entries {
		s := q.ShardOf(e.WorkspaceID, e.ShardKey)
		out[s] = append(out[s], e.MessageID)
	}
	return out
}
