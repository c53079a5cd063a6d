package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

var idT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func idAt(min int) time.Time { return idT0.Add(time.Duration(min) * time.Minute) }

func idTrack(ws, msg, anon, user string, min int) identity.Event {
	return identity.Event{WorkspaceID: ws, MessageID: msg, Type: "track", AnonymousID: anon, UserID: user, Timestamp: idAt(min)}
}

func idIdentify(ws, msg, anon, user string, min int, traits string) identity.Event {
	return identity.Event{WorkspaceID: ws, MessageID: msg, Type: "identify", AnonymousID: anon, UserID: user,
		Timestamp: idAt(min), Traits: json.RawMessage(traits)}
}

func idAlias(ws, msg, prev, user string, min int) identity.Event {
	return identity.Event{WorkspaceID: ws, MessageID: msg, Type: "alias", PreviousID: prev, UserID: user, Timestamp: idAt(min)}
}

func idAnonAlias(ws, msg, prev, anon string, min int) identity.Event {
	return identity.Event{WorkspaceID: ws, MessageID: msg, Type: "alias", PreviousID: prev, AnonymousID: anon, Timestamp: idAt(min)}
}

// idOf parses the short form of an identity: a:x, u:x, e:x.
func idOf(s string) identity.Identity {
	kind, value, _ := strings.Cut(s, ":")
	return identity.Identity{Kind: map[string]identity.Kind{"a": identity.AnonymousID, "u": identity.UserID, "e": identity.Email}[kind], Value: value}
}

func idShort(i identity.Identity) string {
	return map[identity.Kind]string{identity.AnonymousID: "a", identity.UserID: "u", identity.Email: "e"}[i.Kind] + ":" + i.Value
}

// idGroups describes a workspace's graph as stored: each live profile's
// identities, sorted: "[a:a1 u:u1] [a:a2]". It fails if an identity points
// at an absorbed profile or a live profile has no identity.
func idGroups(t *testing.T, s *store.Store, ws string) string {
	t.Helper()
	ctx := context.Background()
	rows, err := s.Pool().Query(ctx, `
		SELECT p.id::text, coalesce(p.merged_into::text, ''), i.kind, i.value
		FROM profiles p LEFT JOIN identities i ON i.workspace_id = p.workspace_id AND i.profile_id = p.id
		WHERE p.workspace_id = $1`, ws)
	testenv.Must(t, err, "read graph")
	groups := map[string][]string{}
	var pid, merged string
	var kind, value *string
	_, err = pgx.ForEachRow(rows, []any{&pid, &merged, &kind, &value}, func() error {
		switch {
		case merged != "" && kind != nil:
			t.Errorf("identity %s:%s points at absorbed profile %s", *kind, *value, pid)
		case merged == "" && kind == nil:
			t.Errorf("live profile %s has no identity", pid)
		case merged == "":
			groups[pid] = append(groups[pid], idShort(identity.Identity{Kind: identity.Kind(*kind), Value: *value}))
		}
		return nil
	})
	testenv.Must(t, err, "read graph")
	var out []string
	for _, ids := range groups {
		slices.Sort(ids)
		out = append(out, "["+strings.Join(ids, " ")+"]")
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// idLookup returns the live profile an identity is linked to, as stored.
func idLookup(t *testing.T, s *store.Store, ws, short string) string {
	t.Helper()
	i := idOf(short)
	var pid string
	err := s.Pool().QueryRow(context.Background(), `SELECT profile_id::text FROM identities WHERE workspace_id = $1 AND kind = $2 AND value = $3`,
		ws, string(i.Kind), i.Value).Scan(&pid)
	testenv.Must(t, err, "look up %s", short)
	return pid
}

func idApply(t *testing.T, ids *store.Identities, ev identity.Event) identity.Changes {
	t.Helper()
	ch, err := ids.Apply(context.Background(), ev)
	testenv.Must(t, err, "apply %s", ev.MessageID)
	return ch
}

// TestIdentityStoreResolution replays core/identity's resolution scenarios
// against PostgreSQL.
func TestIdentityStoreResolution(t *testing.T) {
	s, _ := newStore(t)
	ids := s.Identities()
	tests := []struct {
		name      string
		events    func(ws string) []identity.Event
		want      string
		merges    int
		conflicts int
		lastOn    string
	}{
		{"anonymous then known", func(ws string) []identity.Event {
			return []identity.Event{idTrack(ws, "m1", "a1", "", 0), idIdentify(ws, "m2", "a1", "u1", 1, "")}
		}, "[a:a1 u:u1]", 0, 0, "u:u1"},
		{"known user on a second device", func(ws string) []identity.Event {
			return []identity.Event{idIdentify(ws, "m1", "a1", "u1", 0, ""), idTrack(ws, "m2", "a2", "", 1), idIdentify(ws, "m3", "a2", "u1", 2, "")}
		}, "[a:a1 a:a2 u:u1]", 1, 0, "a:a2"},
		{"two anonymous devices identified as the same user", func(ws string) []identity.Event {
			return []identity.Event{idTrack(ws, "m1", "a1", "", 0), idTrack(ws, "m2", "a2", "", 1),
				idIdentify(ws, "m3", "a1", "u1", 2, ""), idIdentify(ws, "m4", "a2", "u1", 3, "")}
		}, "[a:a1 a:a2 u:u1]", 1, 0, "u:u1"},
		{"alias anonymous to user merges", func(ws string) []identity.Event {
			return []identity.Event{idTrack(ws, "m1", "a1", "", 0), idTrack(ws, "m2", "", "u1", 1), idAlias(ws, "m3", "a1", "u1", 2)}
		}, "[a:a1 u:u1]", 1, 0, "u:u1"},
		{"alias chain a1→u1→u2 renames the user", func(ws string) []identity.Event {
			return []identity.Event{idTrack(ws, "m1", "a1", "", 0), idAlias(ws, "m2", "a1", "u1", 1), idAlias(ws, "m3", "u1", "u2", 2),
				idTrack(ws, "m4", "", "u1", 3)}
		}, "[a:a1 u:u1 u:u2]", 0, 0, "u:u2"},
		{"anonymous alias chain", func(ws string) []identity.Event {
			return []identity.Event{idTrack(ws, "m1", "a1", "", 0), idTrack(ws, "m2", "a3", "", 0),
				idAnonAlias(ws, "m3", "a1", "a2", 1), idAnonAlias(ws, "m4", "a2", "a3", 2)}
		}, "[a:a1 a:a2 a:a3]", 1, 0, "a:a1"},
		{"alias of two known users is refused", func(ws string) []identity.Event {
			return []identity.Event{idIdentify(ws, "m1", "a1", "u1", 0, ""), idIdentify(ws, "m2", "a2", "u2", 1, ""), idAlias(ws, "m3", "u1", "u2", 2)}
		}, "[a:a1 u:u1] [a:a2 u:u2]", 0, 1, "u:u2"},
		{"shared device: anonymous events stay with the first user", func(ws string) []identity.Event {
			return []identity.Event{idIdentify(ws, "m1", "a1", "u1", 0, ""), idIdentify(ws, "m2", "a1", "u2", 1, ""), idTrack(ws, "m3", "a1", "", 2)}
		}, "[a:a1 u:u1] [u:u2]", 0, 1, "u:u1"},
		{"shared device: two known users are not merged", func(ws string) []identity.Event {
			return []identity.Event{idIdentify(ws, "m1", "a2", "u2", 0, ""), idIdentify(ws, "m2", "a1", "u1", 1, ""),
				idTrack(ws, "m3", "a1", "u2", 2), idTrack(ws, "m4", "a1", "u2", 3)}
		}, "[a:a1 u:u1] [a:a2 u:u2]", 0, 2, "u:u2"},
		{"email merges an anonymous profile into the customer's", func(ws string) []identity.Event {
			return []identity.Event{idIdentify(ws, "m1", "a1", "u1", 0, `{"email":"Ann@Example.com"}`), idTrack(ws, "m2", "a2", "", 1),
				idIdentify(ws, "m3", "a2", "", 2, `{"email":" ann@example.com"}`)}
		}, "[a:a1 a:a2 e:ann@example.com u:u1]", 1, 0, "a:a2"},
		{"email shared by two users does not merge them", func(ws string) []identity.Event {
			return []identity.Event{idIdentify(ws, "m1", "a1", "u1", 0, `{"email":"family@example.com"}`),
				idIdentify(ws, "m2", "a2", "u2", 1, `{"email":"family@example.com"}`)}
		}, "[a:a1 e:family@example.com u:u1] [a:a2 u:u2]", 0, 1, "u:u2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newUUID()
			var merges, conflicts int
			var last identity.Changes
			for _, ev := range tt.events(ws) {
				last = idApply(t, ids, ev)
				merges += len(last.Merged)
				conflicts += len(last.Conflicts)
			}
			if got := idGroups(t, s, ws); got != tt.want {
				t.Errorf("profiles = %s, want %s", got, tt.want)
			}
			if merges != tt.merges || conflicts != tt.conflicts {
				t.Errorf("merges, conflicts = %d, %d, want %d, %d", merges, conflicts, tt.merges, tt.conflicts)
			}
			if want := idLookup(t, s, ws, tt.lastOn); last.Profile != want {
				t.Errorf("last event resolved to %s, want the profile of %s (%s)", last.Profile, tt.lastOn, want)
			}
			// Replaying the whole history changes nothing.
			for _, ev := range tt.events(ws) {
				if ch := idApply(t, ids, ev); !ch.Empty() {
					t.Errorf("replaying %s changed %+v", ev.MessageID, ch)
				}
			}
			if got := idGroups(t, s, ws); got != tt.want {
				t.Errorf("after a replay, profiles = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestIdentityStoreCountersAcrossMerges counts sessions and orders on two
// profiles, merges them, and counts again through the absorbed id.
func TestIdentityStoreCountersAcrossMerges(t *testing.T) {
	s, _ := newStore(t)
	ids := s.Identities()
	ctx := context.Background()
	ws := newUUID()
	p1 := idApply(t, ids, idIdentify(ws, "m1", "a1", "u1", 10, `{"plan":"pro","age":30,"address":{"zip":"69001","city":"Lyon"}}`)).Profile
	p2 := idApply(t, ids, idIdentify(ws, "m2", "a2", "", 3, `{"plan":"free","city":"Lyon"}`)).Profile
	for _, x := range []struct {
		profile, id string
		start       int
	}{{p1, "s1", 10}, {p1, "s2", 40}, {p2, "s3", 3}} {
		_, err := ids.RecordSession(ctx, ws, x.profile, identity.Session{ID: x.id, Start: idAt(x.start)})
		testenv.Must(t, err, "record session %s", x.id)
	}
	for _, x := range []struct {
		profile string
		order   identity.Order
	}{
		{p1, identity.Order{ID: "o1", At: idAt(12), Value: 100, Currency: "EUR"}},
		{p2, identity.Order{ID: "o2", At: idAt(20), Value: 50.10, Currency: "EUR"}},
		{p2, identity.Order{ID: "o3", At: idAt(4), Value: 25, Currency: "EUR"}},
	} {
		_, err := ids.RecordOrder(ctx, ws, x.profile, x.order)
		testenv.Must(t, err, "record order %s", x.order.ID)
	}
	consent := idTrack(ws, "m3", "a1", "", 11)
	consent.Consent = map[string]bool{"analytics": true}
	idApply(t, ids, consent)
	ch := idApply(t, ids, idIdentify(ws, "m4", "a2", "u1", 50, ""))
	if len(ch.Merged) != 1 || ch.Merged[0].Survivor != p2 || ch.Merged[0].Absorbed != p1 {
		t.Fatalf("merged = %+v, want %s absorbed into %s", ch.Merged, p1, p2)
	}
	for _, from := range []string{p1, p2} {
		got, err := ids.Resolve(ctx, ws, from)
		testenv.Must(t, err, "resolve")
		if got != p2 {
			t.Errorf("Resolve(%s) = %s, want %s", from, got, p2)
		}
	}
	p, err := ids.Profile(ctx, ws, p1)
	testenv.Must(t, err, "read profile")
	if p.ID != p2 || p.UserID != "u1" || p.Sessions != 3 || p.Orders != 3 || p.RevenueMicros != 175_100_000 {
		t.Errorf("profile %s user %s sessions %d orders %d revenue %d, want %s u1 3 3 175100000", p.ID, p.UserID, p.Sessions, p.Orders, p.RevenueMicros, p2)
	}
	if p.LastOrder.ID != "o2" || p.LastOrder.Value != 50.10 || p.LastOrder.Currency != "EUR" || !p.LastOrder.At.Equal(idAt(20)) {
		t.Errorf("last order %+v, want o2", p.LastOrder)
	}
	if !p.FirstSeen.Equal(idAt(3)) || !p.LastSeen.Equal(idAt(50)) {
		t.Errorf("seen %s..%s, want minutes 3..50", p.FirstSeen, p.LastSeen)
	}
	for k, want := range map[string]string{"plan": `"pro"`, "age": "30", "city": `"Lyon"`, "address": `{"zip":"69001","city":"Lyon"}`} {
		if !jsonEqual(p.Trait(k), json.RawMessage(want)) {
			t.Errorf("trait %s = %s, want %s", k, p.Trait(k), want)
		}
	}
	if len(p.Consent) != 1 || !p.Consent[0].Granted || p.Consent[0].MessageID != "m3" || !p.Consent[0].At.Equal(idAt(11)) {
		t.Errorf("consent = %+v, want analytics granted by m3", p.Consent)
	}
	if got := idGroups(t, s, ws); got != "[a:a1 a:a2 u:u1]" {
		t.Errorf("profiles = %s", got)
	}
	var merges int
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM profile_merges WHERE workspace_id = $1 AND survivor = $2 AND absorbed = $3 AND message_id = 'm4' AND via_kind = 'anonymous_id' AND via_value = 'a2'`,
		ws, p2, p1).Scan(&merges), "count merges")
	if merges != 1 {
		t.Errorf("profile_merges has %d rows for the merge, want 1", merges)
	}
	// Counting again, through either id, changes nothing.
	if ch, err := ids.RecordOrder(ctx, ws, p1, identity.Order{ID: "o1", At: idAt(12), Value: 100}); err != nil || !ch.Empty() || ch.Profile != p2 {
		t.Errorf("re-recording o1 through %s: %+v %v, want nothing on %s", p1, ch, err, p2)
	}
	if ch, err := ids.RecordSession(ctx, ws, p2, identity.Session{ID: "s1"}); err != nil || !ch.Empty() {
		t.Errorf("re-recording s1: %+v %v, want nothing", ch, err)
	}
	if _, err := ids.RecordSession(ctx, ws, newUUID(), identity.Session{ID: "s9"}); !errors.Is(err, identity.ErrUnknownProfile) {
		t.Errorf("recording on an unknown profile: %v, want ErrUnknownProfile", err)
	}
	if _, err := ids.Profile(ctx, ws, newUUID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reading an unknown profile: %v, want ErrNotFound", err)
	}
	if _, err := ids.RecordSession(ctx, ws, "not-a-uuid", identity.Session{ID: "s9"}); !errors.Is(err, identity.ErrUnknownProfile) {
		t.Errorf("recording on a malformed profile id: %v, want ErrUnknownProfile", err)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestIdentityStoreConcurrentNewUser races two transactions that link the
// same new userId from two anonymousIds: one profile must hold all three.
func TestIdentityStoreConcurrentNewUser(t *testing.T) {
	s, _ := newStore(t)
	ids := s.Identities()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 50 {
		ws := newUUID()
		if i%2 == 1 {
			// The devices were seen before: the race then also merges.
			idApply(t, ids, idTrack(ws, "t1", "a1", "", 0))
			idApply(t, ids, idTrack(ws, "t2", "a2", "", 1))
		}
		const n = 2
		start := make(chan struct{})
		errs := make([]error, n)
		var wg sync.WaitGroup
		for g := range n {
			wg.Go(func() {
				<-start
				_, errs[g] = ids.Apply(ctx, idIdentify(ws, fmt.Sprintf("m%d", g), fmt.Sprintf("a%d", g+1), "u1", 5+g, ""))
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			testenv.Must(t, err, "iteration %d: apply", i)
		}
		if got := idGroups(t, s, ws); got != "[a:a1 a:a2 u:u1]" {
			t.Fatalf("iteration %d: profiles = %s, want one profile with a1, a2 and u1", i, got)
		}
	}
}

// TestIdentityStoreConcurrentBatches runs batches that lock profiles in
// opposite orders, after IdentityTx.Lock, and must not deadlock.
func TestIdentityStoreConcurrentBatches(t *testing.T) {
	s, _ := newStore(t)
	ids := s.Identities()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 20 {
		ws := newUUID()
		for j, a := range []string{"a1", "a2", "a3", "a4"} {
			idApply(t, ids, idTrack(ws, "t"+a, a, "", j))
		}
		batches := [][]identity.Event{
			{idIdentify(ws, "m1", "a1", "u1", 10, `{"plan":"a"}`), idIdentify(ws, "m2", "a3", "u2", 11, "")},
			{idIdentify(ws, "m3", "a4", "u2", 12, `{"plan":"b"}`), idIdentify(ws, "m4", "a2", "u1", 13, "")},
		}
		start := make(chan struct{})
		errs := make([]error, len(batches))
		var wg sync.WaitGroup
		for b, events := range batches {
			wg.Go(func() {
				<-start
				errs[b] = pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
					itx := store.NewIdentityTx(tx)
					if err := itx.Lock(ctx, events); err != nil {
						return err
					}
					for _, ev := range events {
						ch, err := itx.Apply(ctx, ev)
						if err != nil {
							return err
						}
						if _, err := itx.RecordSession(ctx, ws, ch.Profile, identity.Session{ID: "s-" + ev.MessageID, Start: ev.Timestamp}); err != nil {
							return err
						}
					}
					return itx.Flush(ctx)
				})
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			testenv.Must(t, err, "iteration %d: batch", i)
		}
		if got := idGroups(t, s, ws); got != "[a:a1 a:a2 u:u1] [a:a3 a:a4 u:u2]" {
			t.Fatalf("iteration %d: profiles = %s", i, got)
		}
		for _, u := range []string{"u:u1", "u:u2"} {
			p, err := ids.Profile(ctx, ws, idLookup(t, s, ws, u))
			testenv.Must(t, err, "read profile")
			if p.Sessions != 2 {
				t.Errorf("iteration %d: %s has %d sessions, want 2", i, u, p.Sessions)
			}
		}
	}
}

// idHistory generates a random history over a small id space, so that
// links, merges, conflicts and renames are frequent.
type idOp struct {
	ev      identity.Event
	session *identity.Session
	order   *identity.Order
	on      int // -1: the event's profile, else an index into the ids issued
}

func idHistory(ws string, seed uint64, n int) []idOp {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	anon := func() string { return fmt.Sprintf("a%d", rng.IntN(12)) }
	user := func() string { return fmt.Sprintf("u%d", rng.IntN(6)) }
	var ops []idOp
	for i := range n {
		msg := fmt.Sprintf("m%04d", i)
		min := rng.IntN(60)
		o := idOp{on: -1}
		switch r := rng.IntN(100); {
		case r < 30:
			a, u := anon(), ""
			if rng.IntN(3) == 0 {
				u = user()
			}
			if rng.IntN(6) == 0 {
				a, u = "", user()
			}
			o.ev = idTrack(ws, msg, a, u, min)
		case r < 55:
			u := ""
			if rng.IntN(2) == 0 {
				u = user()
			}
			traits := fmt.Sprintf(`{"plan":"p%d","city":"c%d","n":{"x":%d}`, rng.IntN(3), rng.IntN(3), rng.IntN(5))
			if rng.IntN(2) == 0 {
				traits += fmt.Sprintf(`,"email":"E%d@Example.com"`, rng.IntN(4))
			}
			o.ev = idIdentify(ws, msg, anon(), u, min, traits+"}")
		case r < 65:
			switch rng.IntN(3) {
			case 0:
				o.ev = idAlias(ws, msg, user(), user(), min)
			case 1:
				o.ev = idAnonAlias(ws, msg, anon(), anon(), min)
			default:
				o.ev = idAlias(ws, msg, anon(), user(), min)
			}
		case r < 75:
			o.ev = idTrack(ws, msg, anon(), "", min)
			o.ev.Consent = map[string]bool{fmt.Sprintf("purpose%d", rng.IntN(3)): rng.IntN(2) == 0}
		case r < 88:
			o.ev = idTrack(ws, msg, anon(), "", min)
			o.session = &identity.Session{ID: fmt.Sprintf("s%d", rng.IntN(80)), Start: idAt(min)}
			if rng.IntN(3) == 0 {
				o.on = rng.IntN(1 << 20)
			}
		default:
			o.ev = idTrack(ws, msg, anon(), "", min)
			if rng.IntN(2) == 0 {
				o.ev.UserID = user()
			}
			o.order = &identity.Order{ID: fmt.Sprintf("o%d", rng.IntN(40)), At: idAt(min), Value: float64(rng.IntN(100000)) / 100, Currency: "EUR"}
			if rng.IntN(3) == 0 {
				o.on = rng.IntN(1 << 20)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// idRun applies a history to an identity.Store, Memory or PostgreSQL;
// issued lists the profile ids issued before (for a replay).
func idRun(t *testing.T, st identity.Store, ops []idOp, issued []string) ([]identity.Changes, []string) {
	var changes []identity.Changes
	t.Helper()
	ctx := context.Background()
	for _, o := range ops {
		ch, err := st.Apply(ctx, o.ev)
		testenv.Must(t, err, "apply %s", o.ev.MessageID)
		changes = append(changes, ch)
		issued = append(issued, ch.Created...)
		target := ch.Profile
		if o.on >= 0 {
			target = issued[o.on%len(issued)]
		}
		if o.session != nil {
			ch, err := st.RecordSession(ctx, o.ev.WorkspaceID, target, *o.session)
			testenv.Must(t, err, "record session")
			changes = append(changes, ch)
		}
		if o.order != nil {
			ch, err := st.RecordOrder(ctx, o.ev.WorkspaceID, target, *o.order)
			testenv.Must(t, err, "record order")
			changes = append(changes, ch)
		}
	}
	return changes, issued
}

// idSummary describes a call's Changes without trait values (which
// PostgreSQL normalises as jsonb): what both stores must report alike.
func idSummary(ch identity.Changes) string {
	ch.Traits, ch.Consent = nil, nil
	b, _ := json.Marshal(ch)
	return string(b)
}

// TestIdentityStoreMatchesMemory applies seeded random histories to
// identity.Memory and to PostgreSQL and compares every call's changes and
// the final graphs.
func TestIdentityStoreMatchesMemory(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			ws := newUUID()
			ops := idHistory(ws, seed, 300)
			mem := identity.NewMemory()
			memCh, issued := idRun(t, mem, ops, nil)
			pg := s.Identities()
			pgCh, pgIssued := idRun(t, pg, ops, nil)
			var merges, conflicts int
			for _, ch := range memCh {
				merges += len(ch.Merged)
				conflicts += len(ch.Conflicts)
			}
			if merges == 0 || conflicts == 0 {
				t.Errorf("the history made %d merges and %d conflicts; want some of each", merges, conflicts)
			}
			if !slices.Equal(issued, pgIssued) {
				t.Fatalf("profiles created: memory %v, PostgreSQL %v", issued, pgIssued)
			}
			for i := range memCh {
				if m, p := idSummary(memCh[i]), idSummary(pgCh[i]); m != p {
					t.Fatalf("call %d changes differ:\nmemory     %s\nPostgreSQL %s", i, m, p)
				}
			}
			g := mem.Graph(ws)
			for _, id := range issued {
				got, err := pg.Resolve(ctx, ws, id)
				testenv.Must(t, err, "resolve")
				if want := g.Resolve(id); got != want {
					t.Errorf("Resolve(%s) = %s, want %s", id, got, want)
				}
			}
			live := g.Profiles()
			var n int
			testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM profiles WHERE workspace_id = $1 AND merged_into IS NULL`, ws).Scan(&n), "count")
			if n != len(live) {
				t.Errorf("%d live profiles in PostgreSQL, %d in memory", n, len(live))
			}
			for _, want := range live {
				got, err := pg.Profile(ctx, ws, want.ID)
				testenv.Must(t, err, "read profile %s", want.ID)
				if got.Row != want.Row {
					t.Errorf("profile %s:\nPostgreSQL %+v\nmemory     %+v", want.ID, got.Row, want.Row)
				}
				gotIDs, wantIDs := slices.Clone(got.Identities), slices.Clone(want.Identities)
				for _, l := range [][]identity.Identity{gotIDs, wantIDs} {
					slices.SortFunc(l, func(a, b identity.Identity) int { return strings.Compare(a.String(), b.String()) })
				}
				if !slices.Equal(gotIDs, wantIDs) {
					t.Errorf("profile %s identities: PostgreSQL %v, memory %v", want.ID, gotIDs, wantIDs)
				}
				if len(got.Traits) != len(want.Traits) {
					t.Errorf("profile %s traits: PostgreSQL %+v, memory %+v", want.ID, got.Traits, want.Traits)
				} else {
					for i, w := range want.Traits {
						g := got.Traits[i]
						if g.Key != w.Key || g.Stamp != w.Stamp || !jsonEqual(g.Value, w.Value) {
							t.Errorf("profile %s trait: PostgreSQL %+v, memory %+v", want.ID, g, w)
						}
					}
				}
				if !slices.Equal(got.Consent, want.Consent) {
					t.Errorf("profile %s consent: PostgreSQL %+v, memory %+v", want.ID, got.Consent, want.Consent)
				}
				for _, i := range want.Identities {
					if pid := idLookup(t, s, ws, idShort(i)); pid != want.ID {
						t.Errorf("%s is on %s, want %s", i, pid, want.ID)
					}
				}
			}
			// Replaying the history into PostgreSQL changes nothing.
			again, _ := idRun(t, pg, ops, issued)
			for i, ch := range again {
				if !ch.Empty() {
					t.Fatalf("replayed call %d changed %+v", i, ch)
				}
			}
		})
	}
}

// TestIdentityStoreRowLevelSecurity reads the identity tables in workspace
// transactions: each sees its own rows only.
func TestIdentityStoreRowLevelSecurity(t *testing.T) {
	s, _ := newStore(t)
	ids := s.Identities()
	ctx := context.Background()
	a, b := newUUID(), newUUID()
	for _, ws := range []string{a, b} {
		p := idApply(t, ids, idIdentify(ws, "m1", "a1", "u1", 0, `{"plan":"pro"}`)).Profile
		idApply(t, ids, idTrack(ws, "m2", "a2", "", 1))
		idApply(t, ids, idAlias(ws, "m3", "a2", "u1", 2))
		_, err := ids.RecordSession(ctx, ws, p, identity.Session{ID: "s1"})
		testenv.Must(t, err, "record session")
	}
	tables := []string{"profiles", "identities", "profile_merges", "profile_counted"}
	owner := map[string]int{}
	for _, tb := range tables {
		var n int
		testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+tb+` WHERE workspace_id = $1`, a).Scan(&n), "count %s", tb)
		if n == 0 {
			t.Fatalf("%s has no rows of workspace A", tb)
		}
		owner[tb] = n
	}
	for _, scope := range []struct {
		name, ws string
		own      bool
	}{{"workspace A", a, true}, {"another workspace", newUUID(), false}, {"no workspace", "", false}} {
		for _, tb := range tables {
			var all int
			err := s.InWorkspace(ctx, scope.ws, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT count(*) FROM `+tb).Scan(&all)
			})
			testenv.Must(t, err, "count %s", tb)
			want := 0
			if scope.own {
				want = owner[tb]
			}
			if all != want {
				t.Errorf("%s: SELECT count(*) FROM %s sees %d rows, want %d", scope.name, tb, all, want)
			}
		}
	}
}

// TestIdentityStoreRefusesUnstorableInput checks that input PostgreSQL would
// refuse fails before it reaches the database, so that the batch
// transaction goes on.
func TestIdentityStoreRefusesUnstorableInput(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ws := newUUID()
	nul := idTrack(ws, "m1", "a\x00", "", 0)
	badTraits := idIdentify(ws, "m2", "a1", "", 0, `{"name":"x\u0000y"}`)
	late := idTrack(ws, "m3", "a1", "", 0)
	late.Timestamp = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	notUUID := idTrack("acme", "m4", "a1", "", 0)
	err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		itx := store.NewIdentityTx(tx)
		for _, ev := range []identity.Event{nul, badTraits, late, notUUID} {
			if _, err := itx.Apply(ctx, ev); !store.IsDataError(err) {
				t.Errorf("apply %s: %v, want a data error", ev.MessageID, err)
			}
		}
		ch, err := itx.Apply(ctx, idTrack(ws, "m5", "a1", "", 1))
		if err != nil {
			return err
		}
		if _, err := itx.RecordOrder(ctx, ws, ch.Profile, identity.Order{ID: "o\x00"}); !store.IsDataError(err) {
			t.Errorf("record order: %v, want a data error", err)
		}
		if _, err = itx.RecordSession(ctx, ws, ch.Profile, identity.Session{ID: "s1"}); err != nil {
			return err
		}
		return itx.Flush(ctx)
	})
	testenv.Must(t, err, "batch")
	if got := idGroups(t, s, ws); got != "[a:a1]" {
		t.Errorf("profiles = %s, want [a:a1]", got)
	}
}
