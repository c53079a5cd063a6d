package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
)

// Message is one entry delivered to a consumer.
type Message struct {
	// ID is the entry's id in its shard stream.
	ID string
	// Shard is the shard the entry was read from.
	Shard int
	// Entry is the decoded entry, if Err is nil.
	Entry event.Entry
	// Err says why the stream entry could not be decoded; the handler should
	// dead-letter such a message.
	Err error
}

// Batch is a run of consecutive messages of one shard, in id order.
type Batch struct {
	// Shard is the shard all messages come from.
	Shard int
	// Messages are the messages, oldest first.
	Messages []Message

	fwd *forwards // what the handler forwarded (Forward)
}

// DeadLetter is a message a handler rejects, with the reason.
type DeadLetter struct {
	// Message is the rejected message, as delivered.
	Message Message
	// Reason says why it was rejected, for the operator.
	Reason string
}

// Handler processes a batch. With a nil error every message of the batch is
// acknowledged, and those listed in dead are moved to the group's
// dead-letter stream in the same transaction. With an error nothing is
// acknowledged and the same messages are delivered again after a backoff,
// before any later message of the shard. A consumer calls its handler
// concurrently for different shards, never for one shard.
type Handler func(ctx context.Context, b Batch) (dead []DeadLetter, err error)

// ConsumerOptions configures Consume.
type ConsumerOptions struct {
	// Group is the consumer group, for example "store". Required.
	Group string
	// Consumer names this consumer uniquely within the group; by default
	// hostname-pid-random.
	Consumer string
	// BatchSize is the most messages per handler call; 500 if zero.
	BatchSize int
	// Block is how long a read waits for new entries; 1s if zero, at least
	// 1ms otherwise.
	Block time.Duration
	// LeaseTTL is how long a shard lease and a consumer's registration live
	// without renewal: the time within which a dead consumer's shards are
	// taken over. Leases are renewed every LeaseTTL/3. 15s if zero.
	LeaseTTL time.Duration
	// MinBackoff and MaxBackoff bound the exponential, jittered wait after a
	// handler or Redis error; 100ms and 10s if zero.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the consumer's logs; slog.Default() if nil.
	Logger *slog.Logger
	// Hooks are told of shard ownership and called between reads, for
	// handlers that keep per-shard state.
	Hooks ShardHooks
}

// ShardHooks let a handler keep state per shard: each is called on the
// shard's goroutine, so never concurrently with the shard's batches. All
// are optional.
type ShardHooks struct {
	// Acquired runs when the consumer starts owning shard, before the
	// shard's pending entries are claimed and before its first batch. With
	// an error the consumer waits (backoff) and calls it again; the shard
	// delivers nothing meanwhile.
	Acquired func(ctx context.Context, shard int) error
	// Tick runs between reads, about every TickInterval (at least once per
	// Block while the shard is idle), with the context batches get. An
	// error is the handler's to report; it makes the shard go back to its
	// pending entries, as after a handler error.
	Tick func(ctx context.Context, shard int) error
	// TickInterval is how often Tick runs; 1s if zero.
	TickInterval time.Duration
	// Released runs when the consumer stops owning shard (rebalance, lease
	// lost, shutdown), after its last batch: Acquired runs again before any
	// later batch.
	Released func(shard int)
}

const (
	defaultBatchSize  = 500
	defaultBlock      = time.Second
	defaultLeaseTTL   = 15 * time.Second
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 10 * time.Second
	minLeaseTTL       = 30 * time.Millisecond
	// claimCount is the COUNT of each XAUTOCLAIM call of a takeover.
	claimCount = 1000
	// cleanupTimeout bounds acknowledgements and lease releases that run
	// after the consumer's context is done.
	cleanupTimeout = 5 * time.Second
)

func (o ConsumerOptions) withDefaults() (ConsumerOptions, error) {
	if o.Group == "" {
		return o, errors.New("consumer options: group is required")
	}
	if o.Consumer == "" {
		o.Consumer = DefaultConsumerName()
	}
	if o.BatchSize == 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.Block == 0 {
		o.Block = defaultBlock
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = defaultLeaseTTL
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hooks.TickInterval == 0 {
		o.Hooks.TickInterval = time.Second
	}
	switch {
	case o.BatchSize < 0:
		return o, fmt.Errorf("consumer options: batch size must be positive, got %d", o.BatchSize)
	case o.Block < time.Millisecond:
		// go-redis sends whole milliseconds: less would be BLOCK 0, forever.
		return o, fmt.Errorf("consumer options: block must be at least 1ms, got %s", o.Block)
	case o.LeaseTTL < minLeaseTTL:
		return o, fmt.Errorf("consumer options: lease TTL must be at least %s, got %s", minLeaseTTL, o.LeaseTTL)
	case o.Hooks.TickInterval < 0:
		return o, fmt.Errorf("consumer options: tick interval must be positive, got %s", o.Hooks.TickInterval)
	case o.MinBackoff < 0 || o.MaxBackoff < o.MinBackoff:
		return o, fmt.Errorf("consumer options: backoff must satisfy 0 <= min <= max, got %s..%s", o.MinBackoff, o.MaxBackoff)
	}
	return o, nil
}

func DefaultConsumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// Consume runs a consumer of group until ctx is done, then releases its
// shards and returns nil. It returns an error only for invalid options.
//
// The consumer registers in the group, takes a fair share of the shard
// leases and runs h on batches of each owned shard, one goroutine per shard;
// see the package documentation. Redis errors are logged and retried with
// backoff; they never end Consume. When ctx is done, handler calls in
// progress see their context cancelled, and batches the handler completed
// are still acknowledged.
//
// Every owned shard holds one Redis connection in a blocking read, so the
// client's pool must be larger than the number of shards a consumer can own.
func (q *Queue) Consume(ctx context.Context, opts ConsumerOptions, h Handler) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if h == nil {
		return errors.New("consume: nil handler")
	}
	c := newConsumer(q, opts, h)
	c.run(ctx)
	return nil
}
