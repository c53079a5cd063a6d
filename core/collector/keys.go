package collector

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eddy-cdp/eddy/core/store"
)

// Source is what a write key unlocks: the workspace and source it writes to.
type Source struct {
	WorkspaceID   string
	WorkspaceSlug string
	SourceID      string
	SourceSlug    string
}

// KeyLoader lists the active write keys (hashed). *store.Store is one.
type KeyLoader interface {
	SourceKeys(ctx context.Context) ([]store.SourceKey, error)
}

// KeyCache answers write-key lookups from memory. It reloads every interval,
// and soon after a lookup misses (at most once per minMissReload), so a new
// or rotated key works within about a second while random keys cannot make
// it hammer the database.
type KeyCache struct {
	loader   KeyLoader
	logger   *slog.Logger
	interval time.Duration

	keys       atomic.Pointer[map[string]Source]
	reloadNow  chan struct{}
	lastReload atomic.Int64 // unix nanos of the last reload request on a miss
}

const minMissReload = time.Second

// KeysChangedChannel is the Redis channel on which whatever changes write
// keys (the API, the CLI) announces it, so that collectors reload at once
// instead of at their next interval. prefix is the queue's key prefix.
func KeysChangedChannel(prefix string) string { return prefix + ":keys-changed" }

// NewKeyCache returns a cache over loader; call Run to fill and refresh it.
func NewKeyCache(loader KeyLoader, interval time.Duration, logger *slog.Logger) *KeyCache {
	k := &KeyCache{loader: loader, logger: logger, interval: interval, reloadNow: make(chan struct{}, 1)}
	empty := map[string]Source{}
	k.keys.Store(&empty)
	return k
}

// Reload replaces the cached keys with the loader's.
func (k *KeyCache) Reload(ctx context.Context) error {
	list, err := k.loader.SourceKeys(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]Source, len(list))
	for _, sk := range list {
		m[sk.KeyHash] = Source{WorkspaceID: sk.WorkspaceID, WorkspaceSlug: sk.WorkspaceSlug, SourceID: sk.SourceID, SourceSlug: sk.SourceSlug}
	}
	k.keys.Store(&m)
	return nil
}

// Run keeps the cache fresh until ctx ends. A failed reload keeps the keys
// already known, so a database outage does not stop collection.
func (k *KeyCache) Run(ctx context.Context) {
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.reloadNow:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := k.Reload(rctx); err != nil && ctx.Err() == nil {
			k.logger.Warn("reload write keys; keeping the ones known", "err", err)
		}
		cancel()
	}
}

// Lookup finds the source a write key belongs to.
func (k *KeyCache) Lookup(writeKey string) (Source, bool) {
	src, ok := (*k.keys.Load())[store.HashSecret(writeKey)]
	if !ok {
		now := time.Now().UnixNano()
		last := k.lastReload.Load()
		if now-last >= int64(minMissReload) && k.lastReload.CompareAndSwap(last, now) {
			select {
			case k.reloadNow <- struct{}{}:
			default:
			}
		}
	}
	return src, ok
}
