package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is wrapped by errors caused by Redis being unreachable, too
// slow or unable to take writes (loading, read-only replica, out of memory).
// Callers can retry such an error later.
var ErrUnavailable = errors.New("queue unavailable")

const (
	defaultPrefix = "eddy"
	defaultShards = 16
	maxShards     = 1024
)

// Options configures a Queue.
type Options struct {
	// Prefix starts every key the queue uses; "eddy" if empty.
	Prefix string
	// Shards is the number of shard streams, 1 to 1024; 16 if zero.
	Shards int
	// Registerer receives the queue's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Name labels the queue's metrics (queue="…"), so that a process can
	// register several queues; "events" if empty.
	Name string
}

// Queue is a sharded Redis Streams queue of event entries. It is safe for
// concurrent use.
type Queue struct {
	rdb     redis.UniversalClient
	prefix  string
	shards  int
	streams []string // stream key per shard
	// streamArgs holds the stream keys already boxed, so that Enqueue does
	// not allocate an interface per XADD.
	streamArgs []any
	metrics    *metrics
}

// New returns a queue over rdb. It validates opts and registers the metrics
// with opts.Registerer, if any; it does not contact Redis.
func New(rdb redis.UniversalClient, opts Options) (*Queue, error) {
	if rdb == nil {
		return nil, errors.New("new queue: nil redis client")
	}
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.Shards == 0 {
		opts.Shards = defaultShards
	}
	if opts.Shards < 1 || opts.Shards > maxShards {
		return nil, fmt.Errorf("new queue: shards must be between 1 and %d, got %d", maxShards, opts.Shards)
	}
	q := &Queue{
		rdb:        rdb,
		prefix:     opts.Prefix,
		shards:     opts.Shards,
		streams:    make([]string, opts.Shards),
		streamArgs: make([]any, opts.Shards),
	}
	for i := range q.streams {
		q.streams[i] = opts.Prefix + ":events:" + strconv.Itoa(i)
		q.streamArgs[i] = q.streams[i]
	}
	if opts.Name == "" {
		opts.Name = "events"
	}
	q.metrics = newMetrics(q, opts.Name)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(q.metrics); err != nil {
			return nil, fmt.Errorf("new queue: register metrics: %w", err)
		}
	}
	return q, nil
}

// Shards returns the number of shard streams.
func (q *Queue) Shards() int { return q.shards }

// ShardOf returns the shard of a visitor: a stable hash (xxHash64) of
// workspaceID, a zero byte and key, modulo Shards.
func (q *Queue) ShardOf(workspaceID, key string) int {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(workspaceID)
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(key)
	return int(d.Sum64() % uint64(q.shards))
}

func (q *Queue) streamKey(shard int) string { return q.streams[shard] }

func (q *Queue) deadLetterKey(group string) string { return q.prefix + ":dlq:" + group }

func (q *Queue) leaseKey(group string, shard int) string {
	return q.prefix + ":lease:" + group + ":" + strconv.Itoa(shard)
}

func (q *Queue) consumersKey(group string) string { return q.prefix + ":consumers:" + group }

// EnsureGroup creates the consumer group on every shard stream, starting at
// id 0 so that entries enqueued before the group existed are delivered, and
// creates missing streams. An existing group is left as it is.
func (q *Queue) EnsureGroup(ctx context.Context, group string) error {
	if group == "" {
		return errors.New("ensure group: empty group name")
	}
	pipe := q.rdb.Pipeline()
	cmds := make([]*redis.StatusCmd, q.shards)
	for i := range cmds {
		cmds[i] = pipe.XGroupCreateMkStream(ctx, q.streams[i], group, "0")
	}
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			return wrapErr(err, "ensure group %s on %s", group, q.streams[i])
		}
	}
	return nil
}

func (q *Queue) ensureShardGroup(ctx context.Context, group string, shard int) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.streams[shard], group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return wrapErr(err, "ensure group %s on %s", group, q.streams[shard])
	}
	return nil
}

// wrapErr adds context to a Redis error and marks it with ErrUnavailable
// when it means that Redis cannot be reached or cannot serve the request.
func wrapErr(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if isUnavailable(err) {
		return fmt.Errorf("%s: %w: %w", msg, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// isUnavailable reports whether err is a connection, timeout or
// server-state problem rather than a bad request.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up; Redis may be fine
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted),
		redis.IsLoadingError(err),
		redis.IsReadOnlyError(err),
		redis.IsMasterDownError(err),
		redis.IsClusterDownError(err),
		redis.IsTryAgainError(err),
		redis.IsMaxClientsError(err),
		redis.IsOOMError(err):
		return true
	}
	return false
}

// isTimeout reports whether err is a network timeout (a blocked read that
// outlived its deadline, go-redis #2963).
func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// Streams returns the shard streams' keys.
func (q *Queue) Streams() []string { return append([]string(nil), q.streams...) }
