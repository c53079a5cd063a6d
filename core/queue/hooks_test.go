package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// hookLog records the hook calls and batches of each shard, in order.
type hookLog struct {
	mu     sync.Mutex
	calls  map[int][]string
	fails  map[int]int // Acquired failures still to return per shard
	ticked map[int]int
}

func (l *hookLog) add(shard int, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[shard] = append(l.calls[shard], what)
}

func (l *hookLog) get(shard int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls[shard]...)
}

// The hooks see a shard's life in order: Acquired (retried until it
// succeeds, before any batch), batches and ticks, Released last; ticks
// run while the shard is idle.
func TestShardHooksRunInOrderOnTheShardsGoroutine(t *testing.T) {
	q, _, _ := testQueue(t, 2)
	ctx := context.Background()
	log := &hookLog{calls: map[int][]string{}, fails: map[int]int{0: 2, 1: 2}, ticked: map[int]int{}}
	var busy sync.Map // shard -> a call in progress: hooks and batches never overlap
	enter := func(shard int) func() {
		if _, loaded := busy.LoadOrStore(shard, true); loaded {
			t.Errorf("shard %d: two calls at once", shard)
		}
		return func() { busy.Delete(shard) }
	}
	opts := fastOptions(t, "hooks", "c1")
	opts.Hooks = ShardHooks{
		Acquired: func(_ context.Context, shard int) error {
			defer enter(shard)()
			log.mu.Lock()
			fail := log.fails[shard] > 0
			log.fails[shard]--
			log.mu.Unlock()
			if fail {
				log.add(shard, "acquire-failed")
				return errors.New("not yet")
			}
			log.add(shard, "acquired")
			return nil
		},
		Tick: func(_ context.Context, shard int) error {
			defer enter(shard)()
			log.mu.Lock()
			log.ticked[shard]++
			log.mu.Unlock()
			return nil
		},
		TickInterval: 20 * time.Millisecond,
		Released: func(shard int) {
			defer enter(shard)()
			log.add(shard, "released")
		},
	}
	testenv.Must(t, q.Enqueue(ctx, testEntries(40, 8)), "enqueue")
	var delivered sync.WaitGroup
	delivered.Add(40)
	stop := startConsumer(t, q, opts, func(_ context.Context, b Batch) ([]DeadLetter, error) {
		defer enter(b.Shard)()
		log.add(b.Shard, fmt.Sprintf("batch:%d", len(b.Messages)))
		for range b.Messages {
			delivered.Done()
		}
		return nil, nil
	})
	delivered.Wait()
	testenv.Eventually(t, 5*time.Second, "ticks while idle", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.ticked[0] >= 3 && log.ticked[1] >= 3
	})
	stop()
	for shard := range 2 {
		calls := log.get(shard)
		if len(calls) < 4 || calls[0] != "acquire-failed" || calls[1] != "acquire-failed" || calls[2] != "acquired" || calls[len(calls)-1] != "released" {
			t.Fatalf("shard %d calls = %v, want two failed acquisitions, acquired, batches, released", shard, calls)
		}
		for _, c := range calls[3 : len(calls)-1] {
			if c[:6] != "batch:" {
				t.Fatalf("shard %d: %s between acquired and released: %v", shard, c, calls)
			}
		}
	}
}
