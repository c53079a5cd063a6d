// Package pluginstatus shares the runtime state of plugin installations
// between Eddy's processes: each worker reports what it sees of an
// installation (its state, last error, counters) under its own name in a
// Redis hash per installation, and the API merges the reports.
//
// Reports expire: a worker that stops reporting (dead, or no longer
// running the installation) drops out after the TTL.
package pluginstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// States an installation is in, from best to worst.
const (
	Running  = "running"  // working
	Stopped  = "stopped"  // disabled by its workspace, or not started yet
	Failing  = "failing"  // its last call failed; it is retried
	Disabled = "disabled" // turned off by Eddy after repeated failures
)

// Report is one worker's view of one installation. Counters are totals
// since the worker started running the installation.
type Report struct {
	State       string    `json:"state"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Calls to the plugin, and their total duration.
	Calls        int64   `json:"calls"`
	CallSeconds  float64 `json:"call_seconds"`
	EventsIn     int64   `json:"events_in"`
	EventsOut    int64   `json:"events_out"`
	EventsFailed int64   `json:"events_failed"`
	// Lag is how many entries a sink or app has yet to deliver;
	// DeadLetters how many wait in its dead-letter stream.
	Lag         int64     `json:"lag"`
	DeadLetters int64     `json:"dead_letters"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Store reads and writes reports in Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a store of reports under prefix ("eddy"), each kept for ttl
// after its last write (30s if zero).
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

func (s *Store) key(installationID string) string {
	return s.prefix + ":plugin:status:" + installationID
}

// Put records worker's report of an installation.
func (s *Store) Put(ctx context.Context, installationID, worker string, r Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode plugin status: %w", err)
	}
	// A field expires on its own (HEXPIRE, Redis 7.4) only in newer
	// Redis; the stamp inside lets Get ignore a stale one instead.
	key := s.key(installationID)
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, key, worker, b)
	pipe.Expire(ctx, key, s.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write plugin status of %s: %w", installationID, err)
	}
	return nil
}

// Get merges the fresh reports of an installation: counters are summed,
// the state is the worst reported, the last error the latest. ok is false
// when no worker reported within the TTL.
func (s *Store) Get(ctx context.Context, installationID string) (r Report, ok bool, err error) {
	all, err := s.rdb.HGetAll(ctx, s.key(installationID)).Result()
	if err != nil {
		return Report{}, false, fmt.Errorf("read plugin status of %s: %w", installationID, err)
	}
	stale := time.Now().Add(-s.ttl)
	for _, v := range all {
		var w Report
		if json.Unmarshal([]byte(v), &w) != nil || w.UpdatedAt.Before(stale) {
			continue
		}
		if !ok || rank(w.State) > rank(r.State) {
			r.State = w.State
		}
		if w.LastErrorAt.After(r.LastErrorAt) {
			r.LastError, r.LastErrorAt = w.LastError, w.LastErrorAt
		}
		r.Calls += w.Calls
		r.CallSeconds += w.CallSeconds
		r.EventsIn += w.EventsIn
		r.EventsOut += w.EventsOut
		r.EventsFailed += w.EventsFailed
		r.Lag = max(r.Lag, w.Lag)
		r.DeadLetters = max(r.DeadLetters, w.DeadLetters)
		r.UpdatedAt = maxTime(r.UpdatedAt, w.UpdatedAt)
		ok = true
	}
	return r, ok, nil
}

// Delete forgets an installation's reports (it was uninstalled).
func (s *Store) Delete(ctx context.Context, installationID string) error {
	return s.rdb.Del(ctx, s.key(installationID)).Err()
}

func rank(state string) int {
	switch state {
	case Running:
		return 1
	case Stopped:
		return 2
	case Failing:
		return 3
	case Disabled:
		return 4
	}
	return 0
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
