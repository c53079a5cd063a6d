// Package privacy tells Eddy's processes at once that a workspace's
// privacy state changed: its policy, its suppressions (a person deleted)
// or a person's consent decided through the API. The consent gate caches
// that state; it reads one Redis counter per batch and drops its cache
// when the counter moved, so that a change applies to every batch the
// gate starts after the call that made it returned.
package privacy

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Generation is the counter of privacy changes shared through Redis.
type Generation struct {
	rdb redis.UniversalClient
	key string
}

// NewGeneration returns the counter kept under prefix.
func NewGeneration(rdb redis.UniversalClient, prefix string) *Generation {
	return &Generation{rdb: rdb, key: prefix + ":privacy:gen"}
}

// Bump records a change. Call it after the change is committed.
func (g *Generation) Bump(ctx context.Context) error {
	if err := g.rdb.Incr(ctx, g.key).Err(); err != nil {
		return fmt.Errorf("privacy generation: %w", err)
	}
	return nil
}

// Read returns the current generation (0 before the first change).
func (g *Generation) Read(ctx context.Context) (int64, error) {
	n, err := g.rdb.Get(ctx, g.key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("privacy generation: %w", err)
	}
	return n, nil
}
