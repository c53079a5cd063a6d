package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/privacy"
	"github.com/eddy-cdp/eddy/core/queue"
)

// Policies returns a workspace's consent policy.
type Policies func(ctx context.Context, workspaceID string) (consent.Policy, error)

// Decisions are the consent decisions on persons' identifiers and their
// suppressions (core/store): what the gate applies on top of the consent
// events carry.
type Decisions interface {
	// HasPrivacyDecisions tells whether a workspace has any.
	HasPrivacyDecisions(ctx context.Context, workspaceID string) (bool, error)
	// PrivacyDecisions returns those on the identifier hashes given.
	PrivacyDecisions(ctx context.Context, workspaceID string, hashes [][32]byte) (map[[32]byte][]consent.Decision, error)
	// RecordConsentUpdates records visitors' consent updates that
	// supersede decisions.
	RecordConsentUpdates(ctx context.Context, workspaceID string, updates []consent.Update) error
}

// policyTTL is how long a workspace's policy is used before it is read
// again, when no privacy generation says sooner.
const policyTTL = 5 * time.Second

// maxCachedDecisions bounds the identifiers whose decisions are kept per
// workspace between privacy changes.
const maxCachedDecisions = 100_000

// policyCache keeps each workspace's policy, and the decisions looked up
// on its identifiers, until the privacy generation moves (or policyTTL).
type policyCache struct {
	load      Policies
	decisions Decisions           // nil: none
	gen       *privacy.Generation // nil: policyTTL only
	mu        sync.Mutex
	m         map[string]*cachedPolicy
	seen      int64 // the generation the cache was filled under
	synced    time.Time
}

type cachedPolicy struct {
	p    consent.Policy
	read time.Time
	// any is whether the workspace has decisions or suppressions at all.
	any bool
	// known holds the decisions of each identifier hash looked up (nil:
	// none), guarded by the cache's mutex.
	known map[[32]byte][]consent.Decision
}

// sync drops what the cache holds when the privacy generation moved since
// it was filled, read at most once per maxAge (0: now). The gate syncs
// before each batch, so a change applies to every batch it starts after
// the change's call returned.
func (c *policyCache) sync(ctx context.Context, maxAge time.Duration) error {
	if c.gen == nil {
		return nil
	}
	c.mu.Lock()
	fresh := maxAge > 0 && time.Since(c.synced) < maxAge
	c.mu.Unlock()
	if fresh {
		return nil
	}
	n, err := c.gen.Read(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if n != c.seen {
		c.m, c.seen = nil, n
	}
	c.synced = time.Now()
	c.mu.Unlock()
	return nil
}

// get returns the workspace's policy; when it cannot be read, the last
// one read, or an error if there is none.
func (c *policyCache) get(ctx context.Context, ws string) (*cachedPolicy, error) {
	c.mu.Lock()
	cp, ok := c.m[ws]
	c.mu.Unlock()
	if ok && time.Since(cp.read) < policyTTL {
		return cp, nil
	}
	p, err := c.load(ctx, ws)
	var any bool
	if err == nil && c.decisions != nil {
		any, err = c.decisions.HasPrivacyDecisions(ctx, ws)
	}
	if err != nil {
		if ok {
			return cp, nil
		}
		return nil, err
	}
	cp = &cachedPolicy{p: p, any: any, read: time.Now()}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*cachedPolicy{}
	}
	c.m[ws] = cp
	c.mu.Unlock()
	return cp, nil
}

// lookup makes sure the decisions of the identifier hashes are known,
// reading those not yet known in one query.
func (c *policyCache) lookup(ctx context.Context, ws string, cp *cachedPolicy, hashes [][32]byte) error {
	if !cp.any || len(hashes) == 0 {
		return nil
	}
	c.mu.Lock()
	var missing [][32]byte
	for _, h := range hashes {
		if _, ok := cp.known[h]; !ok {
			missing = append(missing, h)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	found, err := c.decisions.PrivacyDecisions(ctx, ws, missing)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if cp.known == nil || len(cp.known)+len(missing) > maxCachedDecisions {
		cp.known = make(map[[32]byte][]consent.Decision, len(missing))
	}
	for _, h := range missing {
		cp.known[h] = found[h] // nil: none, known
	}
	c.mu.Unlock()
	return nil
}

// forget drops what the cache knows of the updates' identifiers, so that
// this process reads their new decisions at once.
func (c *policyCache) forget(ws string, us []consent.Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.m[ws]
	if !ok {
		return
	}
	for _, u := range us {
		for _, h := range u.Hashes {
			delete(cp.known, h)
		}
	}
}

// decisionsOf returns the decisions known on the hashes (lookup first).
func (c *policyCache) decisionsOf(cp *cachedPolicy, hashes [][32]byte) []consent.Decision {
	if !cp.any {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []consent.Decision
	for _, h := range hashes {
		out = append(out, cp.known[h]...)
	}
	return out
}

// visitorHashes returns the hashes of an event's anonymous and user ids.
func visitorHashes(ws string, payload []byte) [][32]byte {
	var ids struct {
		AnonymousID json.RawMessage `json:"anonymousId"`
		UserID      json.RawMessage `json:"userId"`
	}
	if json.Unmarshal(payload, &ids) != nil {
		return nil
	}
	return idHashes(ws, identifier(ids.AnonymousID), identifier(ids.UserID))
}

// idHashes returns the hashes of an anonymous id and a user id (those
// not empty).
func idHashes(ws, anonymousID, userID string) [][32]byte {
	var out [][32]byte
	if anonymousID != "" {
		out = append(out, consent.IdentifierHash(ws, "anonymous_id", anonymousID))
	}
	if userID != "" {
		out = append(out, consent.IdentifierHash(ws, "user_id", userID))
	}
	return out
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

// admission is the gate's work on one batch: the policies and decisions
// of its workspaces, and the consent updates to record.
type admission struct {
	r       *Runtime
	updates map[string][]consent.Update
}

// prepare syncs the cache and looks up the decisions on every
// identifier of the batch's events, one query per workspace that has any.
func (r *Runtime) prepare(ctx context.Context, msgs []queue.Message) (*admission, error) {
	if err := r.policies.sync(ctx, 0); err != nil {
		return nil, err
	}
	byWS := map[string][][32]byte{}
	for i := range msgs {
		m := &msgs[i]
		if m.Err != nil {
			continue
		}
		cp, err := r.policies.get(ctx, m.Entry.WorkspaceID)
		if err != nil {
			return nil, fmt.Errorf("consent policy of workspace %s: %w", m.Entry.WorkspaceID, err)
		}
		if cp.any {
			byWS[m.Entry.WorkspaceID] = append(byWS[m.Entry.WorkspaceID], visitorHashes(m.Entry.WorkspaceID, m.Entry.Payload)...)
		}
	}
	for ws, hashes := range byWS {
		cp, err := r.policies.get(ctx, ws)
		if err == nil {
			err = r.policies.lookup(ctx, ws, cp, hashes)
		}
		if err != nil {
			return nil, fmt.Errorf("consent decisions of workspace %s: %w", ws, err)
		}
	}
	return &admission{r: r}, nil
}

// admit applies the workspace's policy to an entry before anything else
// sees it: it reports whether the event may be processed at all (else the
// refusal is counted by workspace and reason) and minimises it in place.
// Decisions on the event's identifiers are applied first (consent.Apply);
// when they change its consent, the effective consent is written into the
// message, so that every reader after the gate sees it. A policy that
// cannot be read fails the batch (it is retried): no event passes the
// gate unchecked.
func (a *admission) admit(ctx context.Context, e *event.Entry) (ok bool, reason string, err error) {
	cp, err := a.r.policies.get(ctx, e.WorkspaceID)
	if err != nil {
		return false, "", err
	}
	p := cp.p
	prefs, present := consentOf(e.Payload, e.Context)
	if cp.any {
		hashes := visitorHashes(e.WorkspaceID, e.Payload)
		if err := a.r.policies.lookup(ctx, e.WorkspaceID, cp, hashes); err != nil {
			return false, "", err
		}
		if ds := a.r.policies.decisionsOf(cp, hashes); len(ds) > 0 {
			update := isConsentUpdate(e)
			ap := consent.Apply(prefs, present, ds, update, e.ReceivedAt, p.Required)
			if ap.Suppressed {
				// A deleted person's events are dropped, even where
				// necessary-only processing is allowed, until they
				// consent again in a consent update.
				consent.RefusedTotal.WithLabelValues(e.WorkspaceID, "suppressed").Inc()
				return false, "suppressed", nil
			}
			if len(ap.Record) > 0 {
				if a.updates == nil {
					a.updates = map[string][]consent.Update{}
				}
				a.updates[e.WorkspaceID] = append(a.updates[e.WorkspaceID], consent.Update{Hashes: hashes, Prefs: ap.Record, At: e.ReceivedAt})
			}
			if ap.Changed {
				payload, err := consent.SetPreferences(e.Payload, ap.Prefs)
				if err != nil {
					consent.RefusedTotal.WithLabelValues(e.WorkspaceID, "unminimisable").Inc()
					return false, "unminimisable", nil
				}
				e.Payload = payload
			}
			prefs, present = ap.Prefs, ap.Present
		}
	}
	if ok, reason := p.Process(prefs, present); !ok {
		consent.RefusedTotal.WithLabelValues(e.WorkspaceID, reason).Inc()
		return false, reason, nil
	}
	payload, batchCtx, ip, err := p.Minimise.Apply(e.WorkspaceID, e.Payload, e.Context, e.IP)
	if err != nil {
		// Not minimisable as configured (a payload the scanner cannot
		// read): refused rather than stored unminimised.
		consent.RefusedTotal.WithLabelValues(e.WorkspaceID, "unminimisable").Inc()
		return false, "unminimisable", nil
	}
	e.Payload, e.Context, e.IP = payload, batchCtx, ip
	return true, "", nil
}

// record writes the consent updates the batch's events made, before the
// batch is acknowledged (a failure fails the batch, which is retried), and
// tells every process when it did.
func (a *admission) record(ctx context.Context) error {
	if len(a.updates) == 0 {
		return nil
	}
	for ws, us := range a.updates {
		if err := a.r.policies.decisions.RecordConsentUpdates(ctx, ws, us); err != nil {
			return err
		}
		a.r.policies.forget(ws, us)
	}
	if a.r.policies.gen != nil {
		return a.r.policies.gen.Bump(ctx)
	}
	return nil
}

// isConsentUpdate reports whether an entry is the visitor's consent update
// (a track event named consent.UpdateEvent).
func isConsentUpdate(e *event.Entry) bool {
	if e.Type != "track" || !bytes.Contains(e.Payload, []byte(consent.UpdateEvent)) {
		return false
	}
	var m struct {
		Event string `json:"event"`
	}
	return json.Unmarshal(e.Payload, &m) == nil && m.Event == consent.UpdateEvent
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
