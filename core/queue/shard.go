package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
)

// runShard consumes one owned shard until soft is done (rebalance or
// shutdown: the current batch is finished first) or hard is done (lease
// lost or shutdown: the handler's context is cancelled).
//
// It first claims every entry pending in the group and works through its
// own pending list (id "0"), then reads new entries (">"). After a handler
// or acknowledgement failure it goes back to its pending list, so the
// failed batch comes again before anything newer.
func (c *consumer) runShard(soft, hard context.Context, w *worker) {
	log := c.log.With("shard", w.shard)
	stream := c.q.streams[w.shard]
	bo := backoff{min: c.opts.MinBackoff, max: c.opts.MaxBackoff}
	claimed, pending := false, true
	if !c.acquired(soft, hard, w, log, &bo) {
		return
	}
	if h := c.opts.Hooks.Released; h != nil {
		defer h(w.shard)
	}
	lastTick := time.Now()
	for soft.Err() == nil {
		if t := c.opts.Hooks.Tick; t != nil && time.Since(lastTick) >= c.opts.Hooks.TickInterval {
			lastTick = time.Now()
			if err := c.shardTick(hard, w.shard); err != nil {
				if hard.Err() == nil {
					log.Warn("queue: shard tick failed; going back to pending entries", "err", err)
				}
				pending = true
				sleep(soft, bo.next())
				continue
			}
		}
		if !c.leaseValid(w) {
			log.Warn("queue: shard lease expired before it could be renewed; stopping")
			return
		}
		if !claimed {
			n, err := c.claimAll(soft, stream)
			if err != nil {
				if soft.Err() != nil {
					return
				}
				log.Warn("queue: take over pending entries", "err", err)
				c.recoverGroup(soft, log, w.shard, err)
				sleep(soft, bo.next())
				continue
			}
			if n > 0 {
				log.Info("queue: took over pending entries", "entries", n)
			}
			claimed = true
		}
		msgs, err := c.read(soft, stream, pending)
		if err != nil {
			if soft.Err() != nil {
				return
			}
			if !pending && isTimeout(err) {
				continue // a blocked read that timed out: nothing yet (go-redis #2963)
			}
			log.Warn("queue: read shard", "err", err)
			if c.recoverGroup(soft, log, w.shard, err) {
				claimed, pending = false, true
			}
			sleep(soft, bo.next())
			continue
		}
		if len(msgs) == 0 {
			pending = false
			continue
		}
		if pending {
			c.q.metrics.redelivered.WithLabelValues(c.opts.Group).Add(float64(len(msgs)))
		}
		if !c.process(hard, w, log, msgs) {
			pending = true
			sleep(soft, bo.next())
			continue
		}
		bo.reset()
	}
}

// acquired runs the Acquired hook until it succeeds, and reports false if
// the shard stopped first.
func (c *consumer) acquired(soft, hard context.Context, w *worker, log *slog.Logger, bo *backoff) bool {
	h := c.opts.Hooks.Acquired
	if h == nil {
		return true
	}
	for soft.Err() == nil {
		if !c.leaseValid(w) {
			return false
		}
		err := c.callHook(func() error { return h(hard, w.shard) })
		if err == nil {
			bo.reset()
			return true
		}
		if hard.Err() != nil {
			return false
		}
		log.Warn("queue: shard acquisition hook failed; retrying", "err", err)
		sleep(soft, bo.next())
	}
	return false
}

func (c *consumer) shardTick(ctx context.Context, shard int) error {
	return c.callHook(func() error { return c.opts.Hooks.Tick(ctx, shard) })
}

// callHook runs a hook, turning a panic into an error.
func (c *consumer) callHook(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hook panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

func (c *consumer) leaseValid(w *worker) bool {
	return c.since() < time.Duration(w.deadline.Load())
}

// recoverGroup recreates the group on the shard if err says it is missing
// (the stream was deleted), and reports whether it did.
func (c *consumer) recoverGroup(ctx context.Context, log *slog.Logger, shard int, err error) bool {
	if !redis.HasErrorPrefix(err, "NOGROUP") {
		return false
	}
	if err := c.q.ensureShardGroup(ctx, c.opts.Group, shard); err != nil {
		log.Warn("queue: recreate consumer group", "err", err)
		return false
	}
	return true
}

// claimAll moves every entry pending in the group on stream to this
// consumer, whoever it was delivered to: the shard lease proves that its
// earlier owners no longer work on it.
func (c *consumer) claimAll(ctx context.Context, stream string) (int, error) {
	start, n := "0-0", 0
	for {
		ids, next, err := c.q.rdb.XAutoClaimJustID(ctx, &redis.XAutoClaimArgs{
			Stream:   stream,
			Group:    c.opts.Group,
			Consumer: c.opts.Consumer,
			MinIdle:  0,
			Start:    start,
			Count:    claimCount,
		}).Result()
		if err != nil {
			return n, fmt.Errorf("claim pending entries of %s: %w", stream, err)
		}
		n += len(ids)
		if next == "0-0" || next == "" {
			return n, nil
		}
		start = next
	}
}

// read returns the next batch: this consumer's pending entries from the
// start (without blocking) or new entries (blocking up to Block).
func (c *consumer) read(ctx context.Context, stream string, pending bool) ([]redis.XMessage, error) {
	a := &redis.XReadGroupArgs{
		Group:    c.opts.Group,
		Consumer: c.opts.Consumer,
		Streams:  []string{stream, ">"},
		Count:    int64(c.opts.BatchSize),
		Block:    c.opts.Block,
	}
	if pending {
		a.Streams[1] = "0"
		a.Block = -1 // no BLOCK: history reads never wait
	}
	res, err := c.q.rdb.XReadGroup(ctx, a).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// process hands msgs to the handler and acknowledges them; it reports
// whether the batch is done.
func (c *consumer) process(hard context.Context, w *worker, log *slog.Logger, msgs []redis.XMessage) bool {
	batch := Batch{Shard: w.shard, Messages: make([]Message, 0, len(msgs)), fwd: &forwards{}}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		if m.Values == nil {
			// Deleted from the stream while pending (XDEL or a trim by
			// someone else): there is nothing left to deliver.
			log.Warn("queue: pending entry no longer exists; acknowledging it", "id", m.ID)
			continue
		}
		e, err := decodeEntry(m.Values)
		batch.Messages = append(batch.Messages, Message{ID: m.ID, Shard: w.shard, Entry: e, Err: err})
	}
	var dead []DeadLetter
	if len(batch.Messages) > 0 {
		if !c.leaseValid(w) {
			return false
		}
		var err error
		dead, err = c.call(hard, batch)
		if err != nil {
			if hard.Err() == nil {
				log.Warn("queue: handler failed; batch will be delivered again", "err", err, "messages", len(batch.Messages))
			}
			return false
		}
	}
	// Without the lease the messages belong to the next owner, which has
	// probably claimed them already: leave them to it.
	if errors.Is(context.Cause(hard), errLeaseLost) || !c.leaseValid(w) {
		return false
	}
	// Acknowledge completed work even if the consumer is shutting down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(hard), cleanupTimeout)
	defer cancel()
	if err := c.ack(ctx, w.shard, log, msgs, ids, dead, batch.fwd); err != nil {
		log.Warn("queue: acknowledge batch; it will be delivered again", "err", err)
		return false
	}
	return true
}

// call runs the handler, turning a panic into an error so that one bad
// batch does not take the other shards down.
func (c *consumer) call(ctx context.Context, b Batch) (dead []DeadLetter, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return c.h(ctx, b)
}

// ack acknowledges ids, moving dead letters to the dead-letter stream in the
// same MULTI/EXEC.
func (c *consumer) ack(ctx context.Context, shard int, log *slog.Logger, msgs []redis.XMessage, ids []string, dead []DeadLetter, fwd *forwards) error {
	stream, group := c.q.streams[shard], c.opts.Group
	if len(dead) == 0 && len(fwd.outs) == 0 {
		if err := c.q.rdb.XAck(ctx, stream, group, ids...).Err(); err != nil {
			return wrapErr(err, "ack %d entries of %s", len(ids), stream)
		}
		c.q.metrics.acked.WithLabelValues(group).Add(float64(len(ids)))
		return nil
	}

	raw := make(map[string]map[string]any, len(msgs))
	for _, m := range msgs {
		if m.Values != nil {
			raw[m.ID] = m.Values
		}
	}
	valid := make([]DeadLetter, 0, len(dead))
	for _, d := range dead {
		if _, ok := raw[d.Message.ID]; !ok {
			log.Error("queue: handler dead-lettered a message that is not in its batch; ignoring it", "id", d.Message.ID)
			continue
		}
		valid = append(valid, d)
	}
	valid = dedupeDead(valid)
	var attempts map[string]int64
	if len(valid) > 0 {
		attempts = c.deliveryCounts(ctx, stream, log, msgs)
	}
	if len(fwd.outs) > 0 {
		acked, added, err := c.ackForward(ctx, shard, ids, fwd, valid, raw, attempts)
		if err != nil {
			return err
		}
		c.q.metrics.acked.WithLabelValues(group).Add(float64(acked))
		c.q.metrics.forwarded.WithLabelValues(group).Add(float64(added))
		c.q.metrics.deadLettered.WithLabelValues(group).Add(float64(len(valid)))
		if skipped := int64(len(ids)) - acked; skipped > 0 {
			log.Warn("queue: entries were acknowledged by another consumer first; their forwarded entries were not appended", "entries", skipped)
		}
		return nil
	}

	now := time.Now()
	dlq := c.q.deadLetterKey(group)
	pipe := c.q.rdb.TxPipeline()
	for _, d := range valid {
		id := d.Message.ID
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: dlq,
			Values: deadLetterFields(shard, id, d.Reason, attempts[id], now, raw[id]),
		})
	}
	pipe.XAck(ctx, stream, group, ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr(err, "dead-letter %d and ack %d entries of %s", len(valid), len(ids), stream)
	}
	c.q.metrics.acked.WithLabelValues(group).Add(float64(len(ids)))
	c.q.metrics.deadLettered.WithLabelValues(group).Add(float64(len(valid)))
	for _, d := range valid {
		log.Warn("queue: dead-lettered entry", "id", d.Message.ID, "reason", d.Reason)
	}
	return nil
}

// dedupeDead drops repeated ids, keeping the first reason.
func dedupeDead(dead []DeadLetter) []DeadLetter {
	seen := make(map[string]struct{}, len(dead))
	out := dead[:0]
	for _, d := range dead {
		if _, ok := seen[d.Message.ID]; ok {
			continue
		}
		seen[d.Message.ID] = struct{}{}
		out = append(out, d)
	}
	return out
}

// deliveryCounts returns how often each pending entry of the batch has been
// delivered; on error it logs and returns what it has (attempts are
// informative only).
func (c *consumer) deliveryCounts(ctx context.Context, stream string, log *slog.Logger, msgs []redis.XMessage) map[string]int64 {
	counts := make(map[string]int64, len(msgs))
	pending, err := c.q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream:   stream,
		Group:    c.opts.Group,
		Start:    msgs[0].ID,
		End:      msgs[len(msgs)-1].ID,
		Count:    int64(len(msgs)),
		Consumer: c.opts.Consumer,
	}).Result()
	if err != nil {
		log.Warn("queue: read delivery counts", "err", err)
		return counts
	}
	for _, p := range pending {
		counts[p.ID] = p.RetryCount
	}
	return counts
}
