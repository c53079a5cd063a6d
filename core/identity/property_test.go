package identity

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// op is one step of a generated history: an event, then perhaps a session
// or an order counted on the profile it resolved to, or on a profile id
// issued earlier (which may have been merged since).
type op struct {
	ev      Event
	session *Session
	order   *Order
	// on picks an earlier profile id for the session or order: -1 for the
	// event's own profile, else an index into the ids issued so far.
	on int
}

// do applies the op and returns the profile ids it saw issued.
func (o op) do(t *testing.T, g *Graph) Changes {
	t.Helper()
	return o.doOn(t, g, nil)
}

func (o op) doOn(t *testing.T, g *Graph, issued []string) Changes {
	t.Helper()
	ch := mustApply(t, g, o.ev)
	target := ch.Profile
	if o.on >= 0 && len(issued) > 0 {
		target = issued[o.on%len(issued)]
	}
	if o.session != nil {
		if _, err := g.RecordSession(target, *o.session); err != nil {
			t.Fatalf("record session %s on %s: %v", o.session.ID, target, err)
		}
	}
	if o.order != nil {
		if _, err := g.RecordOrder(target, *o.order); err != nil {
			t.Fatalf("record order %s on %s: %v", o.order.ID, target, err)
		}
	}
	return ch
}

// randomHistory generates n steps over a small id space, so that links,
// merges and conflicts are frequent. With renames, aliases may go from a
// user id to another.
func randomHistory(seed uint64, n int, renames bool) []op {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	anon := func() string { return fmt.Sprintf("a%d", rng.IntN(12)) }
	user := func() string { return fmt.Sprintf("u%d", rng.IntN(6)) }
	var ops []op
	for i := range n {
		msg := fmt.Sprintf("m%04d", i)
		min := rng.IntN(60) // times collide, and arrive out of order
		o := op{on: -1}
		switch r := rng.IntN(100); {
		case r < 30:
			a, u := anon(), ""
			if rng.IntN(3) == 0 {
				u = user()
			}
			if rng.IntN(6) == 0 {
				a = ""
				if u == "" {
					u = user()
				}
			}
			o.ev = track(msg, a, u, min)
		case r < 55:
			u := ""
			if rng.IntN(2) == 0 {
				u = user()
			}
			traits := fmt.Sprintf(`{"plan":"p%d","city":"c%d"`, rng.IntN(3), rng.IntN(3))
			if rng.IntN(2) == 0 {
				traits += fmt.Sprintf(`,"email":"E%d@Example.com"`, rng.IntN(4))
			}
			o.ev = identify(msg, anon(), u, min, traits+"}")
		case r < 65:
			switch {
			case renames && rng.IntN(3) == 0:
				o.ev = alias(msg, user(), user(), min)
			case rng.IntN(3) == 0:
				o.ev = anonAlias(msg, anon(), anon(), min)
			default:
				o.ev = alias(msg, anon(), user(), min)
			}
		case r < 75:
			o.ev = track(msg, anon(), "", min)
			o.ev.Consent = map[string]bool{fmt.Sprintf("purpose%d", rng.IntN(3)): rng.IntN(2) == 0}
		case r < 88:
			o.ev = track(msg, anon(), "", min)
			o.session = &Session{ID: fmt.Sprintf("s%d", rng.IntN(80)), Start: at(min)}
			if rng.IntN(3) == 0 {
				o.on = rng.IntN(1 << 20)
			}
		default:
			o.ev = track(msg, anon(), "", min)
			if rng.IntN(2) == 0 {
				o.ev.UserID = user()
			}
			o.order = &Order{ID: fmt.Sprintf("o%d", rng.IntN(40)), At: at(min), Value: float64(rng.IntN(100000)) / 100, Currency: "EUR"}
			if rng.IntN(3) == 0 {
				o.on = rng.IntN(1 << 20)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// people is a union-find over user ids that an alias declared to be the
// same person (renames); without renames every user id is its own person.
type people map[string]string

func (pp people) root(u string) string {
	for pp[u] != "" && pp[u] != u {
		u = pp[u]
	}
	return u
}

func (pp people) same(a, b string) bool { return pp.root(a) == pp.root(b) }

// checkGraph checks the graph's invariants: every identity maps to exactly
// one live profile, which lists it; no live profile holds user ids of two
// people (same nil: skip that check); every merged id resolves to a live
// profile, and Resolve is idempotent.
func checkGraph(t *testing.T, g *Graph, same func(a, b string) bool) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	listed := 0
	for pid, p := range g.profiles {
		if p.ID != pid || p.MergedInto != "" {
			t.Fatalf("live profile %s has id %s, merged into %q", pid, p.ID, p.MergedInto)
		}
		if _, ok := g.merged[pid]; ok {
			t.Fatalf("live profile %s is also merged", pid)
		}
		userListed := false
		for _, i := range p.Identities {
			listed++
			if q := g.ids[i]; q != p {
				t.Fatalf("identity %s listed on %s maps to %v", i, pid, q)
			}
			if i.Kind != UserID {
				continue
			}
			userListed = userListed || i.Value == p.UserID
			if same != nil && !same(i.Value, p.UserID) {
				t.Fatalf("profile %s holds user ids %s and %s of two people", pid, i.Value, p.UserID)
			}
		}
		if userListed != (p.UserID != "") {
			t.Fatalf("profile %s has user id %q but identities %v", pid, p.UserID, p.Identities)
		}
		if p.FirstSeen.After(p.LastSeen) {
			t.Fatalf("profile %s first seen %s after last seen %s", pid, p.FirstSeen, p.LastSeen)
		}
	}
	if listed != len(g.ids) {
		t.Fatalf("%d identities listed on profiles, %d linked", listed, len(g.ids))
	}
	for a := range g.merged {
		r := g.resolve(a)
		if g.profiles[r] == nil || g.resolve(r) != r {
			t.Fatalf("merged profile %s resolves to %q, which is not live or not a fixed point", a, r)
		}
	}
}

// TestRandomHistories applies random histories and checks the invariants
// after every step, and that counters add up to what was recorded.
func TestRandomHistories(t *testing.T) {
	for _, renames := range []bool{false, true} {
		for seed := range uint64(40) {
			t.Run(fmt.Sprintf("renames=%t/seed=%d", renames, seed), func(t *testing.T) {
				g := NewGraph(ws)
				pp := people{}
				linkedUsers := map[string]bool{}
				var issued []string
				orders, sessions := map[string]int64{}, map[string]bool{}
				var conflicts int
				for _, o := range randomHistory(seed, 400, renames) {
					// The oracle's view of a rename: from a linked user id
					// to one never seen.
					if o.ev.Type == "alias" && linkedUsers[o.ev.PreviousID] && o.ev.UserID != "" && !linkedUsers[o.ev.UserID] {
						pp[pp.root(o.ev.UserID)] = pp.root(o.ev.PreviousID)
					}
					ch := o.doOn(t, g, issued)
					conflicts += len(ch.Conflicts)
					if o.ev.UserID != "" {
						linkedUsers[o.ev.UserID] = true
					}
					issued = append(issued, ch.Profile)
					issued = append(issued, ch.Created...)
					if o.order != nil {
						if _, ok := orders[o.order.ID]; !ok {
							orders[o.order.ID], _ = micros(o.order.Value)
						}
					}
					if o.session != nil {
						sessions[o.session.ID] = true
					}
					checkGraph(t, g, pp.same)
				}
				var nOrders, nSessions, revenue, wantRevenue int64
				for _, p := range g.Profiles() {
					nOrders += p.Orders
					nSessions += p.Sessions
					revenue += p.RevenueMicros
				}
				for _, v := range orders {
					wantRevenue += v
				}
				if nOrders != int64(len(orders)) || revenue != wantRevenue || nSessions != int64(len(sessions)) {
					t.Errorf("live profiles hold %d orders worth %d and %d sessions; recorded %d worth %d and %d",
						nOrders, revenue, nSessions, len(orders), wantRevenue, len(sessions))
				}
				for _, pid := range issued {
					r := g.Resolve(pid)
					if r == "" || g.Resolve(r) != r {
						t.Errorf("Resolve(%s) = %q, Resolve of that = %q", pid, r, g.Resolve(r))
					}
				}
				if !renames && seed == 0 && conflicts == 0 {
					t.Error("the generator made no conflicts: it no longer tests them")
				}
			})
		}
	}
}

// conflictFreeHistory generates events that never join two people: each
// event carries ids of one person only, so the final profiles are the
// connected components whatever the arrival order. Session and order ids
// are per person too (an id claimed by two people goes to the first).
func conflictFreeHistory(seed uint64, n int) []op {
	rng := rand.New(rand.NewPCG(seed, 42))
	// An order or session id always comes with the same content.
	var orders [6][5]Order
	var sessions [6][8]Session
	for p := range 6 {
		for k := range orders[p] {
			orders[p][k] = Order{ID: fmt.Sprintf("o%d.%d", p, k), At: at(rng.IntN(40)), Value: float64(rng.IntN(10000)) / 100}
		}
		for k := range sessions[p] {
			sessions[p][k] = Session{ID: fmt.Sprintf("s%d.%d", p, k), Start: at(rng.IntN(40))}
		}
	}
	var ops []op
	for i := range n {
		person := rng.IntN(6)
		anon := func() string { return fmt.Sprintf("a%d.%d", person, rng.IntN(3)) }
		user := fmt.Sprintf("u%d", person)
		msg := fmt.Sprintf("m%04d", i)
		min := rng.IntN(40)
		o := op{on: -1}
		switch r := rng.IntN(10); {
		case r < 3:
			o.ev = track(msg, anon(), "", min)
		case r < 5:
			o.ev = identify(msg, anon(), user, min, fmt.Sprintf(`{"plan":"p%d","n":%d}`, rng.IntN(3), rng.IntN(3)))
		case r < 6:
			o.ev = identify(msg, anon(), "", min, fmt.Sprintf(`{"email":"e%d@x.org","n":%d}`, person, rng.IntN(3)))
		case r < 7:
			o.ev = anonAlias(msg, anon(), anon(), min)
			o.ev.Consent = map[string]bool{"ads": rng.IntN(2) == 0}
		case r < 8:
			o.ev = alias(msg, anon(), user, min)
		case r < 9:
			o.ev = track(msg, anon(), "", min)
			o.session = &sessions[person][rng.IntN(8)]
		default:
			o.ev = track(msg, anon(), "", min)
			o.order = &orders[person][rng.IntN(5)]
		}
		ops = append(ops, o)
	}
	return ops
}

// TestArrivalOrderDoesNotMatter applies conflict-free histories in several
// orders, each step twice in some of them (redelivery), and compares
// profiles, traits, consent, seen times and counters.
func TestArrivalOrderDoesNotMatter(t *testing.T) {
	for seed := range uint64(20) {
		history := conflictFreeHistory(seed, 250)
		ref := NewGraph(ws)
		for _, o := range history {
			o.do(t, ref)
		}
		want := canonical(ref)
		rng := rand.New(rand.NewPCG(seed, 7))
		for round := range 4 {
			shuffled := append([]op(nil), history...)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			g := NewGraph(ws)
			for _, o := range shuffled {
				if ch := o.do(t, g); len(ch.Conflicts) > 0 {
					t.Fatalf("seed %d: conflict in a conflict-free history: %+v", seed, ch.Conflicts)
				}
				if round%2 == 1 {
					o.do(t, g)
				}
			}
			checkGraph(t, g, people{}.same)
			if got := canonical(g); got != want {
				t.Fatalf("seed %d round %d: state depends on arrival order:\n%s\nwant:\n%s", seed, round, got, want)
			}
		}
	}
}

// TestConcurrentUse runs shard-like goroutines against one Memory under
// the race detector, then checks the invariants and the totals.
func TestConcurrentUse(t *testing.T) {
	m := NewMemory()
	workspaces := []string{ws, "8b1f6d3e-0000-4000-8000-000000000002"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i, o := range randomHistory(uint64(100+w), 300, false) {
				ev := o.ev
				ev.WorkspaceID = workspaces[i%2]
				ev.MessageID = fmt.Sprintf("w%d.%s", w, ev.MessageID)
				ch, err := m.Apply(t.Context(), ev)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := m.RecordOrder(t.Context(), ev.WorkspaceID, ch.Profile, Order{ID: ev.MessageID, Value: 1}); err != nil {
					t.Error(err)
					return
				}
				if _, err := m.Resolve(t.Context(), ev.WorkspaceID, ch.Profile); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var orders int64
	for _, w := range workspaces {
		g := m.Graph(w)
		checkGraph(t, g, people{}.same)
		for _, p := range g.Profiles() {
			orders += p.Orders
		}
	}
	if orders != 8*300 {
		t.Errorf("%d orders on live profiles, want %d", orders, 8*300)
	}
}
