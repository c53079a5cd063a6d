package queue

import (
	"context"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/redis/go-redis/v9"
)

// Enqueue appends entries to their shard streams (shard ShardOf(WorkspaceID,
// ShardKey)) in one pipelined round trip. Entries of one shard keep their
// order in the slice. It returns nil only when Redis acknowledged every
// entry; a connection, timeout or server-state failure wraps ErrUnavailable.
// After an error some entries may have been written: a retry can duplicate
// them.
//
// The entries must not be modified until Enqueue returns. Times are stored
// with microsecond precision.
func (q *Queue) Enqueue(ctx context.Context, entries []event.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	start := time.Now()
	// One backing array for all arguments and times of the batch: the only
	// allocation per entry left is go-redis' command.
	args := make([]any, len(entries)*xaddArgs)
	times := make([]int64, len(entries)*timesPerEntry)
	cmds := make([]*redis.StringCmd, len(entries))
	pipe := q.rdb.Pipeline()
	for i := range entries {
		e := &entries[i]
		a := args[i*xaddArgs : (i+1)*xaddArgs : (i+1)*xaddArgs]
		t := times[i*timesPerEntry : (i+1)*timesPerEntry : (i+1)*timesPerEntry]
		putXAdd(a, t, q.streamArgs[q.ShardOf(e.WorkspaceID, e.ShardKey)], e)
		cmds[i] = redis.NewStringCmd(ctx, a...)
		_ = pipe.Process(ctx, cmds[i])
	}
	_, err := pipe.Exec(ctx)
	q.metrics.enqueueSeconds.Observe(time.Since(start).Seconds())
	failed := 0
	for _, cmd := range cmds {
		if cerr := cmd.Err(); cerr != nil {
			if err == nil {
				err = cerr
			}
			failed++
		}
	}
	q.metrics.enqueued.Add(float64(len(entries) - failed))
	if err != nil {
		return wrapErr(err, "enqueue %d entries (%d failed)", len(entries), failed)
	}
	return nil
}

// EnqueueIn adds the XADD of e to pipe, which the caller executes: for a
// caller that writes an entry together with other commands. e must not
// change until then.
func (q *Queue) EnqueueIn(ctx context.Context, pipe redis.Pipeliner, e *event.Entry) {
	args := make([]any, xaddArgs)
	putXAdd(args, make([]int64, timesPerEntry), q.streamArgs[q.ShardOf(e.WorkspaceID, e.ShardKey)], e)
	_ = pipe.Process(ctx, redis.NewStringCmd(ctx, args...))
}
