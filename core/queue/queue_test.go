package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

func TestNewValidatesOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	tests := []struct {
		name       string
		opts       Options
		wantShards int
		wantErr    string
	}{
		{"defaults", Options{}, 16, ""},
		{"one shard", Options{Shards: 1}, 1, ""},
		{"max shards", Options{Shards: 1024}, 1024, ""},
		{"too many shards", Options{Shards: 1025}, 0, "shards must be between 1 and 1024, got 1025"},
		{"negative shards", Options{Shards: -1}, 0, "shards must be between 1 and 1024, got -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := New(rdb, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			testenv.Must(t, err, "new")
			if q.Shards() != tc.wantShards {
				t.Errorf("Shards() = %d, want %d", q.Shards(), tc.wantShards)
			}
		})
	}
	q, err := New(rdb, Options{})
	testenv.Must(t, err, "new")
	if got, want := q.streamKey(3), "eddy:events:3"; got != want {
		t.Errorf("default stream key = %q, want %q", got, want)
	}
	if got, want := q.deadLetterKey("store"), "eddy:dlq:store"; got != want {
		t.Errorf("dead-letter key = %q, want %q", got, want)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(rdb, Options{Registerer: reg}); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	if _, err := New(rdb, Options{Registerer: reg}); err == nil {
		t.Errorf("second queue on one registry: no error, want a duplicate registration error")
	}
}

func TestShardOfIsStableAndSpread(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	wide, err := New(rdb, Options{Shards: 1024})
	testenv.Must(t, err, "new")
	// Pinned: a different hash would move every visitor to another shard.
	for _, p := range []struct {
		ws, key string
		shard   int
	}{
		{"ws-1", "visitor-1", 736},
		{"ws-1", "visitor-2", 805},
		{"ws-2", "visitor-1", 968},
		{"9b2d4c1e-0000-4000-8000-000000000001", "anon-43", 453},
		{"", "", 872},
	} {
		if got := wide.ShardOf(p.ws, p.key); got != p.shard {
			t.Errorf("ShardOf(%q, %q) over 1024 shards = %d, want %d", p.ws, p.key, got, p.shard)
		}
	}
	if wide.ShardOf("ab", "c") == wide.ShardOf("a", "bc") {
		t.Errorf(`ShardOf("ab", "c") == ShardOf("a", "bc"): workspace and key are not kept apart in the hash`)
	}

	q, err := New(rdb, Options{Shards: 16})
	testenv.Must(t, err, "new")
	counts := make([]int, q.Shards())
	const n = 16000
	for i := range n {
		counts[q.ShardOf("9b2d4c1e-0000-4000-8000-000000000001", fmt.Sprintf("anon-%d", i))]++
	}
	for s, c := range counts {
		if c < n/16*8/10 || c > n/16*12/10 {
			t.Errorf("shard %d got %d of %d keys, want about %d", s, c, n, n/16)
		}
	}
}

func TestEnqueueUnreachableRedisIsUnavailable(t *testing.T) {
	tests := []struct {
		name string
		opts redis.Options
	}{
		{"connection refused", redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, DialerRetries: 1, MaxRetries: -1}},
		{"connection refused with retries", redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, DialerRetries: 2, MaxRetries: 2, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 2 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redis.NewClient(&tc.opts)
			defer rdb.Close()
			q, err := New(rdb, Options{Shards: 4})
			testenv.Must(t, err, "new")
			start := time.Now()
			err = q.Enqueue(context.Background(), testEntries(10, 3))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Enqueue error = %v, want one matching ErrUnavailable", err)
			}
			t.Logf("Enqueue error: %v", err)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Enqueue took %s to fail, want it quick", d)
			}
		})
	}
	t.Run("server that never answers", func(t *testing.T) {
		addr := silentServer(t)
		rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 100 * time.Millisecond, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
		defer rdb.Close()
		q, err := New(rdb, Options{Shards: 4})
		testenv.Must(t, err, "new")
		err = q.Enqueue(context.Background(), testEntries(10, 3))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Enqueue error = %v, want one matching ErrUnavailable", err)
		}
		t.Logf("Enqueue error: %v", err)
	})
	t.Run("deadline", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		defer rdb.Close()
		q, err := New(rdb, Options{Shards: 4})
		testenv.Must(t, err, "new")
		ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
		defer cancel()
		time.Sleep(time.Millisecond)
		if err := q.Enqueue(ctx, testEntries(1, 1)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Enqueue with expired deadline: error %v, want ErrUnavailable", err)
		}
	})
}

// silentServer accepts connections and never answers; it stops when the
// test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testenv.Must(t, err, "listen")
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestEnqueueEmptyBatchIsNoop(t *testing.T) {
	q, rdb, _ := testQueue(t, 2)
	testenv.Must(t, q.Enqueue(context.Background(), nil), "enqueue nil")
	n, err := rdb.Exists(context.Background(), q.streamKey(0), q.streamKey(1)).Result()
	testenv.Must(t, err, "exists")
	if n != 0 {
		t.Errorf("empty Enqueue created %d streams", n)
	}
}

func TestEnsureGroupStartsAtZeroAndIsIdempotent(t *testing.T) {
	q, rdb, _ := testQueue(t, 2)
	ctx := context.Background()
	entries := testEntries(10, 10)
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	testenv.Must(t, q.EnsureGroup(ctx, "store"), "ensure group")
	testenv.Must(t, q.EnsureGroup(ctx, "store"), "ensure group again")
	total := int64(0)
	for s := range q.Shards() {
		groups, err := rdb.XInfoGroups(ctx, q.streamKey(s)).Result()
		testenv.Must(t, err, "xinfo groups")
		if len(groups) != 1 || groups[0].Name != "store" {
			t.Fatalf("shard %d groups = %+v, want just store", s, groups)
		}
		total += groups[0].Lag
	}
	if total != int64(len(entries)) {
		t.Errorf("undelivered entries across shards = %d, want all %d enqueued before the group existed", total, len(entries))
	}
}

func TestStatsAndMetrics(t *testing.T) {
	q, rdb, reg := testQueue(t, 2)
	ctx := context.Background()
	entries := testEntries(40, 40)
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	testenv.Must(t, q.EnsureGroup(ctx, "store"), "ensure group")
	// Deliver 5 entries of shard 0 without acknowledging them.
	_, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "store", Consumer: "c", Streams: []string{q.streamKey(0), ">"}, Count: 5, Block: -1,
	}).Result()
	testenv.Must(t, err, "xreadgroup")

	stats, err := q.Stats(ctx)
	testenv.Must(t, err, "stats")
	want := expectedByShard(q, entries)
	for _, s := range stats {
		n := int64(len(want[s.Shard]))
		if s.Length != n {
			t.Errorf("shard %d length = %d, want %d", s.Shard, s.Length, n)
		}
		if len(s.Groups) != 1 {
			t.Fatalf("shard %d groups = %+v, want one", s.Shard, s.Groups)
		}
		g := s.Groups[0]
		wantPending := int64(0)
		if s.Shard == 0 {
			wantPending = 5
		}
		if g.Name != "store" || g.Pending != wantPending || g.Lag != n-wantPending {
			t.Errorf("shard %d group = %+v, want store with pending %d and lag %d", s.Shard, g, wantPending, n-wantPending)
		}
	}

	testenv.Must(t, q.Enqueue(ctx, entries[:3]), "enqueue more")
	all := append(append([]event.Entry(nil), entries...), entries[:3]...)
	got := gather(t, reg)
	for _, w := range []struct {
		metric string
		value  float64
	}{
		{`eddy_queue_length{queue="events",shard="0"}`, float64(len(expectedByShard(q, all)[0]))},
		{`eddy_queue_pending{group="store",queue="events",shard="0"}`, 5},
		{`eddy_queue_pending{group="store",queue="events",shard="1"}`, 0},
		{`eddy_queue_dead_letters{group="store",queue="events"}`, 0},
		{`eddy_queue_enqueued_total{queue="events"}`, 43},
		{`eddy_queue_enqueue_seconds_count`, 2},
		{`eddy_queue_up{queue="events"}`, 1},
	} {
		v, ok := got[w.metric]
		if !ok || v != w.value {
			t.Errorf("%s = %v (present %v), want %v", w.metric, v, ok, w.value)
		}
	}
	if _, ok := got[`eddy_queue_lag{group="store",queue="events",shard="1"}`]; !ok {
		t.Errorf("eddy_queue_lag for shard 1 missing; have %v", got)
	}
}

// gather returns the registry's samples keyed by name{labels}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	testenv.Must(t, err, "gather")
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
