package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/redis/go-redis/v9"
)

func TestConsumeDeliversEverythingInShardOrder(t *testing.T) {
	q, rdb, _ := testQueue(t, 4)
	ctx := context.Background()
	// Half the entries exist before the group does: they must be delivered.
	entries := testEntries(1000, 37)
	testenv.Must(t, q.Enqueue(ctx, entries[:500]), "enqueue first half")
	rec := newRecorder()
	startConsumer(t, q, fastOptions(t, "store", "c1"), func(_ context.Context, b Batch) ([]DeadLetter, error) {
		for _, m := range b.Messages {
			if m.Err != nil {
				return nil, fmt.Errorf("message %s: %w", m.ID, m.Err)
			}
		}
		rec.record(b)
		return nil, nil
	})
	for i := 500; i < len(entries); i += 100 {
		testenv.Must(t, q.Enqueue(ctx, entries[i:i+100]), "enqueue batch at %d", i)
	}
	testenv.Eventually(t, 10*time.Second, "all entries consumed", func() bool { return rec.count() >= len(entries) })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for shard, want := range expectedByShard(q, entries) {
		if got := rec.byShard[shard]; !slices.Equal(got, want) {
			t.Errorf("shard %d delivered %d ids %v...\nwant %d in enqueue order %v...", shard, len(got), head(got), len(want), head(want))
		}
	}
	for id, n := range rec.seen {
		if n != 1 {
			t.Errorf("message %s delivered %d times, want once", id, n)
		}
	}
	for s := range q.Shards() {
		p, err := rdb.XPending(ctx, q.streamKey(s), "store").Result()
		testenv.Must(t, err, "xpending")
		if p.Count != 0 {
			t.Errorf("shard %d has %d pending entries after consumption, want 0", s, p.Count)
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestHandlerErrorRedeliversSameBatch fails every other handler call of
// each shard: the failed batch must come back whole, in order, before
// anything newer, and nothing may be skipped.
func TestHandlerErrorRedeliversSameBatch(t *testing.T) {
	q, _, reg := testQueue(t, 2)
	ctx := context.Background()
	entries := testEntries(300, 11)
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")

	var (
		mu       sync.Mutex
		calls    = make(map[int]int)
		failed   = make(map[int][]string) // shard -> ids of the last failed batch
		problems []string
	)
	rec := newRecorder()
	opts := fastOptions(t, "store", "c1")
	opts.BatchSize = 20
	startConsumer(t, q, opts, func(_ context.Context, b Batch) ([]DeadLetter, error) {
		ids := make([]string, len(b.Messages))
		for i, m := range b.Messages {
			ids[i] = m.Entry.MessageID
		}
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := failed[b.Shard]; ok {
			if !slices.Equal(prev, ids) {
				problems = append(problems, fmt.Sprintf("shard %d: after a failure got %v, want the failed batch %v again", b.Shard, ids, prev))
			}
			delete(failed, b.Shard)
		}
		calls[b.Shard]++
		if calls[b.Shard]%2 == 1 {
			failed[b.Shard] = ids
			return nil, errors.New("database is down")
		}
		rec.record(b)
		return nil, nil
	})
	testenv.Eventually(t, 10*time.Second, "all entries consumed", func() bool { return rec.count() >= len(entries) })

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for shard, want := range expectedByShard(q, entries) {
		if got := rec.byShard[shard]; !slices.Equal(got, want) {
			t.Errorf("shard %d acknowledged %d ids %v...\nwant %d in order %v...", shard, len(got), head(got), len(want), head(want))
		}
	}
	if got := gather(t, reg)[`eddy_queue_redelivered_total{group="store",queue="events"}`]; got != float64(len(entries)) {
		t.Errorf("redelivered_total = %v, want %d (every entry failed once)", got, len(entries))
	}
}

// TestNewConsumerTakesOverDeadConsumersEntries simulates a consumer that
// read entries and died: its entries stay pending and its lease expires. A
// new consumer must wait for the lease, then process the dead one's
// entries first and everything once.
func TestNewConsumerTakesOverDeadConsumersEntries(t *testing.T) {
	q, rdb, reg := testQueue(t, 1)
	ctx := context.Background()
	entries := testEntries(20, 3)
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	testenv.Must(t, q.EnsureGroup(ctx, "store"), "ensure group")
	ghostRead, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "store", Consumer: "ghost", Streams: []string{q.streamKey(0), ">"}, Count: 5, Block: -1,
	}).Result()
	testenv.Must(t, err, "ghost read")
	if n := len(ghostRead[0].Messages); n != 5 {
		t.Fatalf("ghost read %d entries, want 5", n)
	}
	const ghostLease = 400 * time.Millisecond
	testenv.Must(t, rdb.Set(ctx, q.leaseKey("store", 0), "ghost", ghostLease).Err(), "set ghost lease")
	leaseExpiry := time.Now().Add(ghostLease)

	var (
		mu    sync.Mutex
		first time.Time
	)
	rec := newRecorder()
	startConsumer(t, q, fastOptions(t, "store", "fresh"), func(_ context.Context, b Batch) ([]DeadLetter, error) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		rec.record(b)
		return nil, nil
	})
	testenv.Eventually(t, 10*time.Second, "all entries consumed", func() bool { return rec.count() >= len(entries) })
	time.Sleep(100 * time.Millisecond) // let a stray duplicate show up

	mu.Lock()
	if early := leaseExpiry.Sub(first); early > 20*time.Millisecond {
		t.Errorf("new consumer handled a batch %s before the dead consumer's lease expired", early)
	}
	mu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := expectedByShard(q, entries)[0]
	if got := rec.byShard[0]; !slices.Equal(got, want) {
		t.Errorf("delivered %v\nwant each entry once, the dead consumer's first: %v", got, want)
	}
	p, err := rdb.XPending(ctx, q.streamKey(0), "store").Result()
	testenv.Must(t, err, "xpending")
	if p.Count != 0 {
		t.Errorf("%d entries still pending (consumers %v), want 0", p.Count, p.Consumers)
	}
	if got := gather(t, reg)[`eddy_queue_redelivered_total{group="store",queue="events"}`]; got != 5 {
		t.Errorf("redelivered_total = %v, want the dead consumer's 5", got)
	}
}

// ownership checks that no two consumers run the handler for one shard at
// the same time and records which consumer handled which shard.
type ownership struct {
	mu         sync.Mutex
	active     map[int]string
	violations []string
	handled    map[string]map[int]bool // since the last reset
	rec        *recorder
}

func newOwnership() *ownership {
	return &ownership{active: make(map[int]string), handled: make(map[string]map[int]bool), rec: newRecorder()}
}

func (o *ownership) handler(consumer string) Handler {
	return func(_ context.Context, b Batch) ([]DeadLetter, error) {
		o.mu.Lock()
		if other, ok := o.active[b.Shard]; ok {
			o.violations = append(o.violations, fmt.Sprintf("shard %d handled by %s while %s was handling it", b.Shard, consumer, other))
		}
		o.active[b.Shard] = consumer
		if o.handled[consumer] == nil {
			o.handled[consumer] = make(map[int]bool)
		}
		o.handled[consumer][b.Shard] = true
		o.mu.Unlock()

		time.Sleep(2 * time.Millisecond) // widen the window for overlaps
		o.rec.record(b)

		o.mu.Lock()
		delete(o.active, b.Shard)
		o.mu.Unlock()
		return nil, nil
	}
}

func (o *ownership) reset() map[string]map[int]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.handled
	o.handled = make(map[string]map[int]bool)
	return h
}

// TestConsumersSplitShardsAndTakeOverOnExit runs a second consumer beside
// a first one, then stops the first, while entries keep arriving: the
// shards must be split between them, never handled by both at once, all
// taken over by the survivor, and every entry delivered once.
func TestConsumersSplitShardsAndTakeOverOnExit(t *testing.T) {
	const shards = 8
	q, _, _ := testQueue(t, shards)
	ctx := context.Background()
	own := newOwnership()

	var (
		pmu      sync.Mutex
		produced []string
	)
	enqueue := func(prefix string, n int) {
		t.Helper()
		entries := testEntries(n, n)
		for i := range entries {
			entries[i].MessageID = fmt.Sprintf("%s-%d", prefix, i)
		}
		if err := q.Enqueue(ctx, entries); err != nil {
			t.Errorf("enqueue %s: %v", prefix, err)
			return
		}
		pmu.Lock()
		for _, e := range entries {
			produced = append(produced, e.MessageID)
		}
		pmu.Unlock()
	}
	consumed := func() bool {
		pmu.Lock()
		defer pmu.Unlock()
		return own.rec.count() >= len(produced)
	}
	// A round covers every shard and waits until everything so far is
	// consumed.
	round := func(name string) {
		t.Helper()
		covered := make(map[int]bool)
		for _, e := range testEntries(200, 200) {
			covered[q.ShardOf(e.WorkspaceID, e.ShardKey)] = true
		}
		if len(covered) != shards {
			t.Fatalf("round entries cover %d shards, want all %d", len(covered), shards)
		}
		enqueue(name, 200)
		testenv.Eventually(t, 10*time.Second, name+" consumed", consumed)
	}

	// Background traffic, so that consumers are busy while shards move.
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for i := 0; ; i++ {
			select {
			case <-stopTraffic:
				return
			case <-time.After(5 * time.Millisecond):
			}
			enqueue(fmt.Sprintf("bg%d", i), 16)
		}
	}()
	defer func() {
		select {
		case <-stopTraffic:
		default:
			close(stopTraffic)
		}
		<-trafficDone
	}()

	stopA := startConsumer(t, q, fastOptions(t, "store", "A"), own.handler("A"))
	testenv.Eventually(t, 5*time.Second, "A owning every shard", func() bool { return countOwned(leaseOwners(t, q, "store"), "A") == shards })
	round("r0")

	startConsumer(t, q, fastOptions(t, "store", "B"), own.handler("B"))
	testenv.Eventually(t, 5*time.Second, "A and B owning half the shards each", func() bool {
		o := leaseOwners(t, q, "store")
		return countOwned(o, "A") == shards/2 && countOwned(o, "B") == shards/2
	})
	time.Sleep(300 * time.Millisecond) // let the released shards' last batches finish
	own.reset()
	round("r1")
	handled := own.reset()
	for s := range shards {
		if handled["A"][s] == handled["B"][s] {
			t.Errorf("shard %d handled by A: %v, by B: %v; want exactly one owner", s, handled["A"][s], handled["B"][s])
		}
	}
	if len(handled["A"]) != shards/2 || len(handled["B"]) != shards/2 {
		t.Errorf("A handled %d shards and B %d, want %d each", len(handled["A"]), len(handled["B"]), shards/2)
	}

	stopA()
	testenv.Eventually(t, 5*time.Second, "B owning every shard after A stopped", func() bool {
		return countOwned(leaseOwners(t, q, "store"), "B") == shards
	})
	own.reset()
	round("r2")
	handled = own.reset()
	if len(handled["B"]) != shards || len(handled["A"]) != 0 {
		t.Errorf("after A stopped, B handled %d shards and A %d; want B all %d", len(handled["B"]), len(handled["A"]), shards)
	}

	close(stopTraffic)
	<-trafficDone
	testenv.Eventually(t, 10*time.Second, "all traffic consumed", consumed)
	time.Sleep(100 * time.Millisecond) // let a stray duplicate show up

	own.mu.Lock()
	for _, v := range own.violations {
		t.Error(v)
	}
	own.mu.Unlock()
	own.rec.mu.Lock()
	defer own.rec.mu.Unlock()
	pmu.Lock()
	defer pmu.Unlock()
	for _, id := range produced {
		if n := own.rec.seen[id]; n != 1 {
			t.Errorf("message %s delivered %d times, want once", id, n)
		}
	}
	t.Logf("%d entries delivered once each", len(produced))
}

// TestConsumeKeepsTryingWhileRedisIsDown runs a consumer against a Redis
// that does not answer: it must neither return nor spin until cancelled.
func TestConsumeKeepsTryingWhileRedisIsDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	q, err := New(rdb, Options{Shards: 2})
	testenv.Must(t, err, "new")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	calls := 0
	start := time.Now()
	err = q.Consume(ctx, fastOptions(t, "store", "c1"), func(context.Context, Batch) ([]DeadLetter, error) {
		calls++
		return nil, nil
	})
	if err != nil {
		t.Errorf("Consume returned %v, want nil", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("Consume returned after %s, before its context was done", d)
	}
	if calls != 0 {
		t.Errorf("handler called %d times without Redis", calls)
	}
}

func TestConsumeRejectsInvalidOptions(t *testing.T) {
	q, _, _ := testQueue(t, 1)
	h := func(context.Context, Batch) ([]DeadLetter, error) { return nil, nil }
	tests := []struct {
		name string
		opts ConsumerOptions
		h    Handler
		want string
	}{
		{"no group", ConsumerOptions{}, h, "group is required"},
		{"sub-millisecond block", ConsumerOptions{Group: "g", Block: 500 * time.Microsecond}, h, "block must be at least 1ms"},
		{"negative block", ConsumerOptions{Group: "g", Block: -1}, h, "block must be at least 1ms"},
		{"tiny lease", ConsumerOptions{Group: "g", LeaseTTL: time.Millisecond}, h, "lease TTL must be at least"},
		{"inverted backoff", ConsumerOptions{Group: "g", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, h, "backoff"},
		{"nil handler", ConsumerOptions{Group: "g"}, nil, "nil handler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := q.Consume(context.Background(), tc.opts, tc.h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Consume error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestConsumeResumesAfterRedisOutage cuts the consumer's connection to Redis
// for longer than the lease TTL while entries keep being enqueued, then
// restores it: the consumer must come back on its own and deliver
// everything, in order per shard.
func TestConsumeResumesAfterRedisOutage(t *testing.T) {
	q, _, _ := testQueue(t, 4)
	ctx := context.Background()
	proxy := testenv.NewProxy(t, q.rdb.(*redis.Client).Options().Addr)
	viaProxy := redis.NewClient(&redis.Options{
		Addr:        proxy.Addr(),
		DialTimeout: 100 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { viaProxy.Close() })
	cq, err := New(viaProxy, Options{Prefix: q.prefix, Shards: q.Shards()})
	testenv.Must(t, err, "new queue via proxy")

	entries := testEntries(600, 29)
	testenv.Must(t, q.Enqueue(ctx, entries[:200]), "enqueue before outage")
	rec := newRecorder()
	startConsumer(t, cq, fastOptions(t, "store", "c1"), func(_ context.Context, b Batch) ([]DeadLetter, error) {
		rec.record(b)
		return nil, nil
	})
	testenv.Eventually(t, 10*time.Second, "entries before the outage consumed", func() bool { return rec.count() >= 200 })

	proxy.Cut()
	testenv.Must(t, q.Enqueue(ctx, entries[200:400]), "enqueue during outage")
	time.Sleep(time.Second) // longer than the 600ms lease TTL
	testenv.Must(t, q.Enqueue(ctx, entries[400:]), "enqueue during outage")
	if n := rec.count(); n != 200 {
		t.Fatalf("%d entries consumed while Redis was unreachable, want 200", n)
	}
	proxy.Restore()
	testenv.Eventually(t, 10*time.Second, "entries after the outage consumed", func() bool { return rec.count() >= len(entries) })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for shard, want := range expectedByShard(q, entries) {
		if got := rec.byShard[shard]; !slices.Equal(got, want) {
			t.Errorf("shard %d delivered %d ids %v..., want %d in order %v...", shard, len(got), head(got), len(want), head(want))
		}
	}
}
