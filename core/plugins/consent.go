package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
)

// Policies returns a workspace's consent policy.
type Policies func(ctx context.Context, workspaceID string) (consent.Policy, error)

// Suppressions returns the hashes (store.SuppressionHash) of a workspace's
// identifiers of deleted persons.
type Suppressions func(ctx context.Context, workspaceID string) (map[[32]byte]struct{}, error)

// policyTTL is how long a workspace's policy is used before it is read
// again: a change made through the API applies within it.
const policyTTL = 5 * time.Second

// policyCache keeps each workspace's policy for policyTTL.
type policyCache struct {
	load       Policies
	suppressed Suppressions // nil: none
	mu         sync.Mutex
	m          map[string]cachedPolicy
}

type cachedPolicy struct {
	p          consent.Policy
	suppressed map[[32]byte]struct{}
	read       time.Time
}

// get returns the workspace's policy and suppressions; when they cannot
// be read, the last ones read, or an error if there are none.
func (c *policyCache) get(ctx context.Context, ws string) (cachedPolicy, error) {
	c.mu.Lock()
	cp, ok := c.m[ws]
	c.mu.Unlock()
	if ok && time.Since(cp.read) < policyTTL {
		return cp, nil
	}
	p, err := c.load(ctx, ws)
	var sup map[[32]byte]struct{}
	if err == nil && c.suppressed != nil {
		sup, err = c.suppressed(ctx, ws)
	}
	if err != nil {
		if ok {
			return cp, nil
		}
		return cachedPolicy{}, err
	}
	cp = cachedPolicy{p: p, suppressed: sup, read: time.Now()}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedPolicy{}
	}
	c.m[ws] = cp
	c.mu.Unlock()
	return cp, nil
}

// suppressedVisitor reports whether the event's anonymous or user id
// belongs to a deleted person.
func (cp cachedPolicy) suppressedVisitor(e *event.Entry) bool {
	if len(cp.suppressed) == 0 {
		return false
	}
	var ids struct {
		AnonymousID json.RawMessage `json:"anonymousId"`
		UserID      json.RawMessage `json:"userId"`
	}
	if json.Unmarshal(e.Payload, &ids) != nil {
		return false
	}
	for _, id := range []struct {
		kind string
		raw  json.RawMessage
	}{{"anonymous_id", ids.AnonymousID}, {"user_id", ids.UserID}} {
		v := identifier(id.raw)
		if v == "" {
			continue
		}
		if _, ok := cp.suppressed[sha256.Sum256([]byte(e.WorkspaceID+":"+id.kind+":"+v))]; ok {
			return true
		}
	}
	return false
}

// identifier is an id as the identity graph keeps it: a string, or a
// number's text.
func identifier(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if len(raw) > 0 && raw[0] != 'n' && raw[0] != '{' && raw[0] != '[' {
		return string(raw)
	}
	return ""
}

// admit applies the workspace's policy to an entry before anything else
// sees it: it reports whether the event may be processed at all (else the
// refusal is counted by workspace and reason) and minimises it in place.
// A policy that cannot be read fails the batch (it is retried): no event
// passes the gate unchecked.
func (r *Runtime) admit(ctx context.Context, e *event.Entry) (bool, error) {
	cp, err := r.policies.get(ctx, e.WorkspaceID)
	if err != nil {
		return false, err
	}
	p := cp.p
	prefs, present := consentOf(e.Payload, e.Context)
	if ok, reason := p.Process(prefs, present); !ok {
		consent.RefusedTotal.WithLabelValues(e.WorkspaceID, reason).Inc()
		return false, nil
	}
	// A deleted person's events are dropped unless they carry consent
	// again (what processing needs, granted in the event itself).
	if cp.suppressedVisitor(e) && !(present && grantsAll(prefs, p.Required)) {
		consent.RefusedTotal.WithLabelValues(e.WorkspaceID, "suppressed").Inc()
		return false, nil
	}
	payload, batchCtx, ip, err := p.Minimise.Apply(e.WorkspaceID, e.Payload, e.Context, e.IP)
	if err != nil {
		// Not minimisable as configured (a payload the scanner cannot
		// read): refused rather than stored unminimised.
		consent.RefusedTotal.WithLabelValues(e.WorkspaceID, "unminimisable").Inc()
		return false, nil
	}
	e.Payload, e.Context, e.IP = payload, batchCtx, ip
	return true, nil
}

// consentOf is an event's consent, none if it is malformed (the
// collector refuses malformed consent; an entry queued before it did is
// treated as carrying none).
func consentOf(payload, batchContext []byte) (consent.Preferences, bool) {
	prefs, present, err := consent.Parse(payload, batchContext)
	if err != nil {
		return nil, false
	}
	return prefs, present
}

// gate is the consent a workspace's events are checked against for
// plugins: nil when the runtime has no policies (every plugin gets
// every event its manifest asks for).
type gate struct {
	policy consent.Policy
	ws     string
}

// gateFor returns the gate of a workspace, or nil without policies.
func (r *Runtime) gateFor(ctx context.Context, ws string) (*gate, error) {
	if r.policies == nil {
		return nil, nil
	}
	cp, err := r.policies.get(ctx, ws)
	if err != nil {
		return nil, err
	}
	return &gate{policy: cp.p, ws: ws}, nil
}

// allows reports whether an installation may receive an event with the
// given consent; refusals are counted.
func (g *gate) allows(ru *running, prefs consent.Preferences, present bool) bool {
	if g == nil {
		return true
	}
	var purposes []string
	if ru.manifest != nil {
		purposes = ru.manifest.Purposes
	}
	ok, reason := g.policy.Plugin(prefs, present, ru.in.PluginID, purposes)
	if !ok {
		consent.RefusedTotal.WithLabelValues(g.ws, "plugin:"+reason).Inc()
	}
	return ok
}

// visitorConsent is an event's consent as its visitor sent it.
type visitorConsent struct {
	prefs   consent.Preferences
	present bool
}

// grantsAll reports whether prefs grant every purpose.
func grantsAll(prefs consent.Preferences, purposes []string) bool {
	for _, p := range purposes {
		if !prefs.Granted(p) {
			return false
		}
	}
	return true
}
