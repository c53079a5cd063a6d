package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
)

// rulesCache holds each workspace's sessionization rules, read from its
// settings and refreshed every ttl. A workspace whose rules did not change
// keeps its *session.Workspace, which its visitors share.
type rulesCache struct {
	st  *store.Store
	ttl time.Duration

	mu sync.Mutex
	m  map[string]cachedRules
}

type cachedRules struct {
	ws *session.Workspace
	at time.Time
}

func newRulesCache(st *store.Store, ttl time.Duration) *rulesCache {
	return &rulesCache{st: st, ttl: ttl, m: make(map[string]cachedRules)}
}

// workspace returns the rules of workspace id; store.ErrNotFound when it
// is no workspace. When the settings cannot be read, a cached value, even
// stale, is used.
func (r *rulesCache) workspace(ctx context.Context, id string) (*session.Workspace, error) {
	r.mu.Lock()
	c, ok := r.m[id]
	r.mu.Unlock()
	if ok && time.Since(c.at) < r.ttl {
		return c.ws, nil
	}
	st, err := r.st.SessionSettings(ctx, id)
	if err != nil {
		if ok {
			return c.ws, nil
		}
		return nil, err
	}
	rules := session.DefaultRules()
	rules.Timeout = time.Duration(st.TimeoutMinutes) * time.Minute
	rules.MaxLength = max(rules.MaxLength, rules.Timeout)
	rules.OwnDomains, rules.IgnoredReferrers = st.OwnDomains, st.IgnoredReferrers
	if !ok || !sameRules(c.ws.Rules(), rules) {
		ws, err := session.NewWorkspace(id, rules)
		if err != nil {
			return nil, fmt.Errorf("session rules of workspace %s: %w", id, err)
		}
		c.ws = ws
	}
	c.at = time.Now()
	r.mu.Lock()
	r.m[id] = c
	r.mu.Unlock()
	return c.ws, nil
}

// cached returns the rules of id if they were ever read.
func (r *rulesCache) cached(id string) (*session.Workspace, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[id]
	return c.ws, ok
}

func sameRules(a, b session.Rules) bool {
	return a.Timeout == b.Timeout && a.MaxLength == b.MaxLength && a.Grace == b.Grace &&
		slices.Equal(a.OwnDomains, b.OwnDomains) && slices.Equal(a.IgnoredReferrers, b.IgnoredReferrers)
}
