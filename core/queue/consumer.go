package queue

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
)

// Lease and registry scripts. All times are computed by Redis, so the
// consumers' clocks do not matter.
var (
	// acquireScript takes a free lease, or refreshes one the consumer
	// already holds (a restart under the same name).
	acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)
	// renewScript extends a lease only if the consumer still holds it.
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	// releaseScript deletes a lease only if the consumer still holds it.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
	// heartbeatScript registers the consumer until now+ttl, forgets
	// consumers whose registration expired and returns the number of live
	// consumers.
	heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return redis.call('ZCARD', KEYS[1])`)
)

// errLeaseLost is the cause of a shard context cancelled because the lease
// was lost: the shard's pending messages belong to the next owner, so they
// are not acknowledged.
var errLeaseLost = errors.New("shard lease lost")

// consumer is the state of one Consume call: the coordinator goroutine
// (run) owns the workers map; workers only touch their own shard.
type consumer struct {
	q     *Queue
	opts  ConsumerOptions
	h     Handler
	log   *slog.Logger
	epoch time.Time // base of the monotonic lease deadlines

	workers map[int]*worker
	live    int           // live consumers at the last heartbeat
	wake    chan struct{} // a worker exited
	wg      sync.WaitGroup
	offset  int // first shard to try to acquire, spreads contention
}

// worker is one owned shard and its goroutine.
type worker struct {
	shard      int
	cancelSoft context.CancelFunc      // stop after the current batch
	cancelHard context.CancelCauseFunc // stop now
	done       chan struct{}           // closed when the goroutine returned
	deadline   atomic.Int64            // lease valid until epoch+deadline
	stopping   bool                    // soft-cancelled, lease kept until done
	lost       bool                    // lease lost: do not release it
}

func newConsumer(q *Queue, opts ConsumerOptions, h Handler) *consumer {
	return &consumer{
		q:       q,
		opts:    opts,
		h:       h,
		log:     opts.Logger.With("group", opts.Group, "consumer", opts.Consumer),
		epoch:   time.Now(),
		workers: make(map[int]*worker),
		live:    1,
		wake:    make(chan struct{}, 1),
		offset:  int(xxhash.Sum64String(opts.Consumer) % uint64(q.shards)),
	}
}

func (c *consumer) since() time.Duration { return time.Since(c.epoch) }

func (c *consumer) run(ctx context.Context) {
	c.q.metrics.addGroup(c.opts.Group)
	if cl, ok := c.q.rdb.(*redis.Client); ok && cl.Options().PoolSize < c.q.shards+2 {
		c.log.Warn("queue: redis pool may be too small: each owned shard holds a connection",
			"pool_size", cl.Options().PoolSize, "shards", c.q.shards)
	}
	bo := backoff{min: c.opts.MinBackoff, max: c.opts.MaxBackoff}
	for {
		err := c.q.EnsureGroup(ctx, c.opts.Group)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("queue: create consumer group", "err", err)
		if !sleep(ctx, bo.next()) {
			return
		}
	}

	ticker := time.NewTicker(c.opts.LeaseTTL / 3)
	defer ticker.Stop()
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			c.shutdown()
			return
		case <-ticker.C:
		case <-c.wake:
		}
	}
}

// tick reaps exited workers, heartbeats, renews leases and rebalances.
func (c *consumer) tick(ctx context.Context) {
	if ctx.Err() != nil {
		return // shutdown reaps and releases with a fresh context
	}
	c.reap(ctx)
	ttlMs := c.opts.LeaseTTL.Milliseconds()
	live, err := heartbeatScript.Run(ctx, c.q.rdb, []string{c.q.consumersKey(c.opts.Group)}, c.opts.Consumer, ttlMs).Int()
	redisOK := err == nil
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("queue: heartbeat", "err", err)
	} else if live > 0 {
		c.live = live
	}
	c.renew(ctx)

	running := make([]int, 0, len(c.workers))
	for shard, w := range c.workers {
		if !w.stopping {
			running = append(running, shard)
		}
	}
	target := (c.q.shards + c.live - 1) / c.live
	switch {
	case len(running) > target:
		// Hand the surplus over: each worker finishes its batch, then its
		// lease is released when it is reaped.
		sort.Ints(running)
		for _, shard := range running[target:] {
			w := c.workers[shard]
			w.stopping = true
			w.cancelSoft()
			c.log.Info("queue: releasing shard to rebalance", "shard", shard, "target", target)
		}
	case len(running) < target && redisOK:
		c.acquire(ctx, target-len(running))
	}
}

// renew extends the leases of all workers still holding one; a worker whose
// lease is gone, or could not be renewed before it expired, is stopped at
// once.
func (c *consumer) renew(ctx context.Context) {
	type renewal struct {
		w   *worker
		cmd *redis.Cmd
	}
	var rs []renewal
	start := c.since()
	pipe := c.q.rdb.Pipeline()
	ttlMs := c.opts.LeaseTTL.Milliseconds()
	for shard, w := range c.workers {
		if w.lost {
			continue
		}
		key := c.q.leaseKey(c.opts.Group, shard)
		rs = append(rs, renewal{w, renewScript.Eval(ctx, pipe, []string{key}, c.opts.Consumer, ttlMs)})
	}
	if len(rs) == 0 {
		return
	}
	_, _ = pipe.Exec(ctx)
	for _, r := range rs {
		n, err := r.cmd.Int()
		switch {
		case err == nil && n == 1:
			r.w.deadline.Store(int64(start + c.opts.LeaseTTL))
		case err == nil:
			c.loseLease(r.w, "lease taken or expired")
		case c.since() > time.Duration(r.w.deadline.Load()):
			c.loseLease(r.w, "lease could not be renewed in time: "+err.Error())
		default:
			if ctx.Err() == nil {
				c.log.Warn("queue: renew lease", "shard", r.w.shard, "err", err)
			}
		}
	}
}

func (c *consumer) loseLease(w *worker, why string) {
	c.log.Warn("queue: lost shard lease", "shard", w.shard, "reason", why)
	w.lost = true
	w.stopping = true
	w.cancelHard(errLeaseLost)
}

// acquire tries to take up to n free shards.
func (c *consumer) acquire(ctx context.Context, n int) {
	var candidates []int
	for i := range c.q.shards {
		shard := (c.offset + i) % c.q.shards
		if _, ok := c.workers[shard]; !ok {
			candidates = append(candidates, shard)
		}
	}
	if len(candidates) == 0 {
		return
	}
	// One round trip to see which leases are free, one to take them.
	pipe := c.q.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(candidates))
	for i, shard := range candidates {
		gets[i] = pipe.Get(ctx, c.q.leaseKey(c.opts.Group, shard))
	}
	_, _ = pipe.Exec(ctx)
	var free []int
	for i, cmd := range gets {
		v, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil), err == nil && v == c.opts.Consumer:
			free = append(free, candidates[i])
		case err != nil:
			if ctx.Err() == nil {
				c.log.Warn("queue: read shard lease", "shard", candidates[i], "err", err)
			}
			return
		}
		if len(free) == n {
			break
		}
	}
	if len(free) == 0 {
		return
	}
	start := c.since()
	ttlMs := c.opts.LeaseTTL.Milliseconds()
	pipe = c.q.rdb.Pipeline()
	takes := make([]*redis.Cmd, len(free))
	for i, shard := range free {
		takes[i] = acquireScript.Eval(ctx, pipe, []string{c.q.leaseKey(c.opts.Group, shard)}, c.opts.Consumer, ttlMs)
	}
	_, _ = pipe.Exec(ctx)
	for i, cmd := range takes {
		got, err := cmd.Int()
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("queue: acquire shard lease", "shard", free[i], "err", err)
			}
			continue
		}
		if got == 1 {
			c.start(ctx, free[i], start+c.opts.LeaseTTL)
		}
	}
}

// start runs a worker for shard, whose lease is valid until deadline.
func (c *consumer) start(ctx context.Context, shard int, deadline time.Duration) {
	hard, cancelHard := context.WithCancelCause(ctx)
	soft, cancelSoft := context.WithCancel(hard)
	w := &worker{shard: shard, cancelSoft: cancelSoft, cancelHard: cancelHard, done: make(chan struct{})}
	w.deadline.Store(int64(deadline))
	c.workers[shard] = w
	c.q.metrics.shardsOwned.WithLabelValues(c.opts.Group).Inc()
	c.log.Info("queue: acquired shard", "shard", shard)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			close(w.done)
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}()
		c.runShard(soft, hard, w)
	}()
}

// reap forgets workers whose goroutine returned and releases their leases.
func (c *consumer) reap(ctx context.Context) {
	var release []int
	for shard, w := range c.workers {
		select {
		case <-w.done:
		default:
			continue
		}
		w.cancelHard(nil)
		delete(c.workers, shard)
		c.q.metrics.shardsOwned.WithLabelValues(c.opts.Group).Dec()
		if !w.lost {
			release = append(release, shard)
		}
	}
	c.release(ctx, release)
}

// release deletes the leases of shards if this consumer still holds them.
func (c *consumer) release(ctx context.Context, shards []int) {
	if len(shards) == 0 {
		return
	}
	pipe := c.q.rdb.Pipeline()
	for _, shard := range shards {
		releaseScript.Eval(ctx, pipe, []string{c.q.leaseKey(c.opts.Group, shard)}, c.opts.Consumer)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Warn("queue: release shard leases (they will expire)", "shards", shards, "err", err)
		return
	}
	for _, shard := range shards {
		c.log.Info("queue: released shard", "shard", shard)
	}
}

// shutdown waits for all workers (their contexts are done), releases their
// leases and deregisters the consumer.
func (c *consumer) shutdown() {
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	c.reap(ctx)
	if err := c.q.rdb.ZRem(ctx, c.q.consumersKey(c.opts.Group), c.opts.Consumer).Err(); err != nil {
		c.log.Warn("queue: deregister consumer", "err", err)
	}
}

// backoff yields exponentially growing waits with jitter: each wait is
// drawn from [d/2, d] where d doubles from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	if b.cur <= 0 {
		return 0
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or until ctx is done; it reports whether ctx is still
// alive.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
