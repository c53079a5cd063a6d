package queue_test

import (
	"context"
	"log"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// The collector enqueues accepted entries; a worker consumes them in the
// "store" group and dead-letters what it cannot store.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 32})
	q, err := queue.New(rdb, queue.Options{Prefix: "eddy", Shards: 16, Registerer: prometheus.DefaultRegisterer})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Collector: one round trip per request; ErrUnavailable means 503.
	err = q.Enqueue(ctx, []event.Entry{{
		WorkspaceID: "ws", SourceID: "src", MessageID: "m1", Type: "track",
		ShardKey: "anon-1", ReceivedAt: time.Now(), Timestamp: time.Now(),
		Payload: []byte(`{"type":"track","event":"Signed Up","anonymousId":"anon-1"}`),
	}})
	if err != nil {
		log.Print(err)
	}

	// Worker: returns when ctx is done.
	_ = q.Consume(ctx, queue.ConsumerOptions{Group: "store"}, func(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
		var dead []queue.DeadLetter
		for _, m := range b.Messages {
			if m.Err != nil {
				dead = append(dead, queue.DeadLetter{Message: m, Reason: "undecodable: " + m.Err.Error()})
				continue
			}
			// ... write m.Entry; return an error to have the batch again later.
		}
		return dead, nil
	})
}
