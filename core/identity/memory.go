package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Store resolves identities and keeps profiles for every workspace. Memory
// implements it in one process; a PostgreSQL-backed Store will share it
// between worker processes.
type Store interface {
	// Apply resolves an event to a profile and applies it (see Apply).
	Apply(ctx context.Context, ev Event) (Changes, error)
	// RecordSession counts a session on a profile (see RecordSession).
	RecordSession(ctx context.Context, workspaceID, profileID string, s Session) (Changes, error)
	// RecordOrder counts an order on a profile (see RecordOrder).
	RecordOrder(ctx context.Context, workspaceID, profileID string, o Order) (Changes, error)
	// Resolve returns the live profile a profile id is, or was merged into;
	// empty if the id was never issued.
	Resolve(ctx context.Context, workspaceID, profileID string) (string, error)
}

var _ Store = (*Memory)(nil)

// Memory is a Store that holds every workspace's Graph in memory. It is safe
// for concurrent use; calls for different workspaces do not contend.
type Memory struct {
	mu     sync.RWMutex
	graphs map[string]*Graph
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{graphs: map[string]*Graph{}} }

// Graph returns a workspace's graph, creating it if needed.
func (m *Memory) Graph(workspaceID string) *Graph {
	if g := m.existing(workspaceID); g != nil {
		return g
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.graphs[workspaceID]
	if g == nil {
		g = NewGraph(workspaceID)
		m.graphs[workspaceID] = g
	}
	return g
}

// existing returns a workspace's graph, or nil: reads do not create graphs.
func (m *Memory) existing(workspaceID string) *Graph {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.graphs[workspaceID]
}

// Apply implements Store.
func (m *Memory) Apply(_ context.Context, ev Event) (Changes, error) {
	return m.Graph(ev.WorkspaceID).Apply(ev)
}

// RecordSession implements Store.
func (m *Memory) RecordSession(_ context.Context, workspaceID, profileID string, s Session) (Changes, error) {
	g := m.existing(workspaceID)
	if g == nil {
		return Changes{}, fmt.Errorf("profile %q: %w", profileID, ErrUnknownProfile)
	}
	return g.RecordSession(profileID, s)
}

// RecordOrder implements Store.
func (m *Memory) RecordOrder(_ context.Context, workspaceID, profileID string, o Order) (Changes, error) {
	g := m.existing(workspaceID)
	if g == nil {
		return Changes{}, fmt.Errorf("profile %q: %w", profileID, ErrUnknownProfile)
	}
	return g.RecordOrder(profileID, o)
}

// Resolve implements Store.
func (m *Memory) Resolve(_ context.Context, workspaceID, profileID string) (string, error) {
	if g := m.existing(workspaceID); g != nil {
		return g.Resolve(profileID), nil
	}
	return "", nil
}

// Graph is one workspace's identity graph in memory. It is safe for
// concurrent use: one mutex serialises its calls, which take about 0.5 µs
// on a small graph and 1.5 µs on a graph of 100k profiles (cache misses).
type Graph struct {
	mu        sync.Mutex
	workspace string
	// ids maps every linked identity to its live profile; a merge re-points
	// the absorbed profile's identities.
	ids map[Identity]*Profile
	// profiles holds the live profiles by id.
	profiles map[string]*Profile
	// merged maps an absorbed profile to the one that absorbed it, which
	// may itself have been absorbed since (Resolve shortens the chains).
	merged map[string]string
	claims map[claim]struct{}
}

type claim struct {
	kind ClaimKind
	id   string
}

// NewGraph returns an empty graph for a workspace.
func NewGraph(workspaceID string) *Graph {
	return &Graph{
		workspace: workspaceID,
		ids:       map[Identity]*Profile{},
		profiles:  map[string]*Profile{},
		merged:    map[string]string{},
		claims:    map[claim]struct{}{},
	}
}

// Apply resolves an event to a profile and applies it (see Apply).
func (g *Graph) Apply(ev Event) (Changes, error) {
	if ev.WorkspaceID != g.workspace {
		return Changes{}, fmt.Errorf("apply %s: %w (%s, not %s)", ev.MessageID, ErrWrongWorkspace, ev.WorkspaceID, g.workspace)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return Apply(memTx{g}, ev)
}

// RecordSession counts a session on a profile (see RecordSession).
func (g *Graph) RecordSession(profileID string, s Session) (Changes, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return RecordSession(memTx{g}, profileID, s)
}

// RecordOrder counts an order on a profile (see RecordOrder).
func (g *Graph) RecordOrder(profileID string, o Order) (Changes, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return RecordOrder(memTx{g}, profileID, o)
}

// Resolve returns the live profile a profile id is, or was merged into;
// empty if the id was never issued.
func (g *Graph) Resolve(profileID string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.resolve(profileID)
}

// Lookup returns the live profile an identity is linked to.
func (g *Graph) Lookup(id Identity) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.ids[id]; p != nil {
		return p.ID, true
	}
	return "", false
}

// Profile returns a copy of the live profile a profile id resolves to.
func (g *Graph) Profile(profileID string) (Profile, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.profiles[g.resolve(profileID)]
	if p == nil {
		return Profile{}, false
	}
	return clone(p), true
}

// Profiles returns a copy of every live profile, sorted by id.
func (g *Graph) Profiles() []Profile {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Profile, 0, len(g.profiles))
	for _, p := range g.profiles {
		out = append(out, clone(p))
	}
	slices.SortFunc(out, func(a, b Profile) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Len returns the number of live profiles.
func (g *Graph) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.profiles)
}

func clone(p *Profile) Profile {
	c := *p
	c.Identities = slices.Clone(p.Identities)
	c.Traits = slices.Clone(p.Traits)
	c.Consent = slices.Clone(p.Consent)
	return c
}

// resolve follows merges from a profile id and points every id on the way
// straight at the live profile.
func (g *Graph) resolve(id string) string {
	if _, ok := g.profiles[id]; ok {
		return id
	}
	root, ok := g.merged[id]
	if !ok {
		return ""
	}
	for {
		next, ok := g.merged[root]
		if !ok {
			break
		}
		root = next
	}
	for id != root {
		next := g.merged[id]
		if next != root {
			g.merged[id] = root
		}
		id = next
	}
	return root
}

// memTx is the Tx of a Graph whose mutex is held.
type memTx struct{ g *Graph }

func (t memTx) Lookup(ids []Identity, into []*Profile) error {
	for i, id := range ids {
		into[i] = t.g.ids[id]
	}
	return nil
}

func (t memTx) Get(profileID string) (*Profile, error) {
	return t.g.profiles[t.g.resolve(profileID)], nil
}

func (t memTx) Create(p *Profile) error {
	if _, ok := t.g.profiles[p.ID]; ok {
		return fmt.Errorf("profile %s exists", p.ID)
	}
	if _, ok := t.g.merged[p.ID]; ok {
		return fmt.Errorf("profile %s was merged", p.ID)
	}
	t.g.profiles[p.ID] = p
	return nil
}

func (t memTx) Link(id Identity, profileID string) error {
	p := t.g.profiles[profileID]
	if p == nil {
		return fmt.Errorf("profile %s is not live", profileID)
	}
	if q := t.g.ids[id]; q != nil {
		return fmt.Errorf("already linked to %s", q.ID)
	}
	t.g.ids[id] = p
	return nil
}

func (t memTx) Merge(survivor, absorbed *Profile) error {
	for _, id := range absorbed.Identities {
		t.g.ids[id] = survivor
	}
	delete(t.g.profiles, absorbed.ID)
	t.g.merged[absorbed.ID] = survivor.ID
	return nil
}

func (t memTx) Claim(kind ClaimKind, id, _ string) (bool, error) {
	k := claim{kind, id}
	if _, ok := t.g.claims[k]; ok {
		return false, nil
	}
	k.id = strings.Clone(id)
	t.g.claims[k] = struct{}{}
	return true, nil
}
