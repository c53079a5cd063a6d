package queue

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is a lock in Redis that one owner holds until it expires: what the
// queue's consumers hold per shard, for other single-owner work (a source
// plugin that one worker of the cluster runs). The holder renews it well
// within its TTL; times are Redis's, so the owners' clocks do not matter.
type Lease struct {
	rdb        redis.UniversalClient
	key, owner string
	ttl        time.Duration
}

// NewLease returns the lease under key for owner.
func NewLease(rdb redis.UniversalClient, key, owner string, ttl time.Duration) *Lease {
	return &Lease{rdb: rdb, key: key, owner: owner, ttl: ttl}
}

// Acquire takes the lease if it is free (or already the owner's) and
// reports whether the owner holds it.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	n, err := acquireScript.Run(ctx, l.rdb, []string{l.key}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, wrapErr(err, "acquire lease %s", l.key)
	}
	return n == 1, nil
}

// Renew extends the lease and reports whether the owner still held it.
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.owner, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, wrapErr(err, "renew lease %s", l.key)
	}
	return n == 1, nil
}

// Release gives the lease up if the owner holds it.
func (l *Lease) Release(ctx context.Context) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.owner).Err(); err != nil {
		return wrapErr(err, "release lease %s", l.key)
	}
	return nil
}
