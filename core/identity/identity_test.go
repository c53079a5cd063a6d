package identity

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// TestResolution replays short histories and checks which identities end up
// together, how many merges and conflicts were reported, and which profile
// the last event resolved to.
func TestResolution(t *testing.T) {
	tests := []struct {
		name      string
		events    []Event
		want      string // the profiles' identities
		merges    int
		conflicts int
		lastOn    string // an identity of the profile the last event resolved to
	}{
		{
			name:   "first anonymous event creates a profile",
			events: []Event{track("m1", "a1", "", 0)},
			want:   "[a:a1]", lastOn: "a:a1",
		},
		{
			name:   "userId alone creates a profile",
			events: []Event{track("m1", "", "u1", 0)},
			want:   "[u:u1]", lastOn: "u:u1",
		},
		{
			name:   "identify links the anonymous visitor to the user without a merge",
			events: []Event{track("m1", "a1", "", 0), identify("m2", "a1", "u1", 1, "")},
			want:   "[a:a1 u:u1]", lastOn: "u:u1",
		},
		{
			name:   "any event carrying both ids links them",
			events: []Event{track("m1", "a1", "", 0), track("m2", "a1", "u1", 1)},
			want:   "[a:a1 u:u1]", lastOn: "a:a1",
		},
		{
			name:   "known user on a second device: one profile, one merge",
			events: []Event{identify("m1", "a1", "u1", 0, ""), track("m2", "a2", "", 1), identify("m3", "a2", "u1", 2, "")},
			want:   "[a:a1 a:a2 u:u1]", merges: 1, lastOn: "a:a2",
		},
		{
			name: "two anonymous devices, each identified as the same user",
			events: []Event{track("m1", "a1", "", 0), track("m2", "a2", "", 1),
				identify("m3", "a1", "u1", 2, ""), identify("m4", "a2", "u1", 3, "")},
			want: "[a:a1 a:a2 u:u1]", merges: 1, lastOn: "u:u1",
		},
		{
			name:   "alias anonymous to user merges their profiles",
			events: []Event{track("m1", "a1", "", 0), track("m2", "", "u1", 1), alias("m3", "a1", "u1", 2)},
			want:   "[a:a1 u:u1]", merges: 1, lastOn: "u:u1",
		},
		{
			name:   "alias from an unseen previousId takes it as an anonymous id",
			events: []Event{alias("m1", "x", "u1", 0)},
			want:   "[a:x u:u1]", lastOn: "u:u1",
		},
		{
			name: "alias chain a1→u1→u2 renames the user",
			events: []Event{track("m1", "a1", "", 0), alias("m2", "a1", "u1", 1), alias("m3", "u1", "u2", 2),
				track("m4", "", "u1", 3)},
			want: "[a:a1 u:u1 u:u2]", lastOn: "u:u2",
		},
		{
			name:   "alias of a user id to itself only resolves it",
			events: []Event{alias("m1", "u1", "u1", 0)},
			want:   "[u:u1]", lastOn: "u:u1",
		},
		{
			name: "anonymous alias chain a1→a2→a3",
			events: []Event{track("m1", "a1", "", 0), track("m2", "a3", "", 0),
				anonAlias("m3", "a1", "a2", 1), anonAlias("m4", "a2", "a3", 2)},
			want: "[a:a1 a:a2 a:a3]", merges: 1, lastOn: "a:a1",
		},
		{
			name: "alias of two known users is refused",
			events: []Event{identify("m1", "a1", "u1", 0, ""), identify("m2", "a2", "u2", 1, ""),
				alias("m3", "u1", "u2", 2)},
			want: "[a:a1 u:u1] [a:a2 u:u2]", conflicts: 1, lastOn: "u:u2",
		},
		{
			name: "alias renaming to a userId already seen is refused",
			events: []Event{track("m1", "", "u2", 0), identify("m2", "a1", "u1", 1, ""),
				alias("m3", "u1", "u2", 2)},
			want: "[a:a1 u:u1] [u:u2]", conflicts: 1, lastOn: "u:u2",
		},
		{
			name:   "alias from another user's anonymous id is refused",
			events: []Event{identify("m1", "a1", "u1", 0, ""), alias("m2", "a1", "u2", 1)},
			want:   "[a:a1 u:u1] [u:u2]", conflicts: 1, lastOn: "u:u2",
		},
		{
			name: "alias from a renamed-away user id is refused",
			events: []Event{identify("m1", "a1", "u1", 0, ""), alias("m2", "u1", "u2", 1),
				alias("m3", "u1", "u3", 2)},
			want: "[a:a1 u:u1 u:u2] [u:u3]", conflicts: 1, lastOn: "u:u3",
		},
		{
			name:   "shared device: a second user gets a profile of their own",
			events: []Event{identify("m1", "a1", "u1", 0, ""), identify("m2", "a1", "u2", 1, "")},
			want:   "[a:a1 u:u1] [u:u2]", conflicts: 1, lastOn: "u:u2",
		},
		{
			name: "shared device: anonymous events stay with the first user",
			events: []Event{identify("m1", "a1", "u1", 0, ""), identify("m2", "a1", "u2", 1, ""),
				track("m3", "a1", "", 2)},
			want: "[a:a1 u:u1] [u:u2]", conflicts: 1, lastOn: "u:u1",
		},
		{
			name: "shared device: two known users are not merged",
			events: []Event{identify("m1", "a2", "u2", 0, ""), identify("m2", "a1", "u1", 1, ""),
				track("m3", "a1", "u2", 2), track("m4", "a1", "u2", 3)},
			want: "[a:a1 u:u1] [a:a2 u:u2]", conflicts: 2, lastOn: "u:u2",
		},
		{
			name: "email joins an anonymous visitor to the known customer",
			events: []Event{identify("m1", "a1", "u1", 0, `{"email":" Ann@Example.COM "}`),
				identify("m2", "a2", "", 1, `{"email":"ann@example.com"}`)},
			want: "[a:a1 a:a2 e:ann@example.com u:u1]", lastOn: "u:u1",
		},
		{
			name: "email merges an existing anonymous profile into the customer's",
			events: []Event{identify("m1", "a1", "u1", 0, `{"email":"ann@example.com"}`), track("m2", "a2", "", 1),
				identify("m3", "a2", "", 2, `{"email":"ann@example.com"}`)},
			want: "[a:a1 a:a2 e:ann@example.com u:u1]", merges: 1, lastOn: "a:a2",
		},
		{
			name: "email shared by two users does not merge them",
			events: []Event{identify("m1", "a1", "u1", 0, `{"email":"family@example.com"}`),
				identify("m2", "a2", "u2", 1, `{"email":"family@example.com"}`)},
			want: "[a:a1 e:family@example.com u:u1] [a:a2 u:u2]", conflicts: 1, lastOn: "u:u2",
		},
		{
			name: "email from context.traits of a track call links too",
			events: []Event{identify("m1", "", "u1", 0, `{"email":"ann@example.com"}`),
				{WorkspaceID: ws, MessageID: "m2", Type: "track", AnonymousID: "a9", Timestamp: at(1), Traits: []byte(`{"email":"ann@example.com"}`)}},
			want: "[a:a9 e:ann@example.com u:u1]", lastOn: "u:u1",
		},
		{
			name:   "an email trait that is not an address is no identity",
			events: []Event{identify("m1", "a1", "", 0, `{"email":5}`), identify("m2", "a2", "", 0, `{"email":"n/a"}`)},
			want:   "[a:a1] [a:a2]", lastOn: "a:a2",
		},
		{
			name:   "the same value as anonymous id and user id are two identities",
			events: []Event{track("m1", "x", "", 0), track("m2", "", "x", 1)},
			want:   "[a:x] [u:x]", lastOn: "u:x",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGraph(ws)
			var merges, conflicts int
			var last Changes
			for _, ev := range tt.events {
				last = mustApply(t, g, ev)
				merges += len(last.Merged)
				conflicts += len(last.Conflicts)
			}
			if got := groups(g); got != tt.want {
				t.Errorf("profiles = %s, want %s", got, tt.want)
			}
			if merges != tt.merges || conflicts != tt.conflicts {
				t.Errorf("merges, conflicts = %d, %d, want %d, %d", merges, conflicts, tt.merges, tt.conflicts)
			}
			if want := profileOf(t, g, tt.lastOn).ID; last.Profile != want {
				t.Errorf("last event resolved to %s, want the profile of %s (%s)", last.Profile, tt.lastOn, want)
			}
			checkGraph(t, g, nil)
		})
	}
}

func TestSharedDeviceConflictIsReported(t *testing.T) {
	g := NewGraph(ws)
	mustApply(t, g, identify("m1", "a1", "u1", 0, ""))
	ch := mustApply(t, g, identify("m2", "a1", "u2", 1, ""))
	u1, u2 := ProfileID(ws, id("u:u1")), ProfileID(ws, id("u:u2"))
	want := Conflict{Identity: id("a:a1"), Profile: u1, With: u2, UserIDs: [2]string{"u1", "u2"}, MessageID: "m2"}
	if len(ch.Conflicts) != 1 || ch.Conflicts[0] != want {
		t.Fatalf("conflicts = %+v, want %+v", ch.Conflicts, want)
	}
	if ch.Profile != u2 || !slices.Equal(ch.Created, []string{u2}) {
		t.Fatalf("event resolved to %s creating %v, want new profile %s", ch.Profile, ch.Created, u2)
	}
	// Replaying it reports the conflict again and changes nothing.
	again := mustApply(t, g, identify("m2", "a1", "u2", 1, ""))
	if !again.Empty() || len(again.Conflicts) != 1 {
		t.Fatalf("replay = %+v, want only the conflict", again)
	}
}

// TestChangesOfAMerge checks every part of the Changes a caller persists.
func TestChangesOfAMerge(t *testing.T) {
	g := NewGraph(ws)
	mustApply(t, g, identify("m1", "a1", "u1", 0, `{"plan":"pro","name":"Ann"}`))
	mustApply(t, g, identify("m2", "a2", "", 5, `{"plan":"free","city":"Lyon"}`))
	ch := mustApply(t, g, identify("m3", "a2", "u1", 10, `{"name":"Ann B"}`))

	pu, pa := ProfileID(ws, id("u:u1")), ProfileID(ws, id("a:a2"))
	if ch.Profile != pu || len(ch.Created) != 0 || len(ch.Linked) != 0 {
		t.Fatalf("profile %s created %v linked %v, want %s and nothing new", ch.Profile, ch.Created, ch.Linked, pu)
	}
	wantMerge := Merge{Survivor: pu, Absorbed: pa, At: at(10), MessageID: "m3", Via: id("a:a2")}
	if len(ch.Merged) != 1 || ch.Merged[0] != wantMerge {
		t.Fatalf("merged = %+v, want %+v", ch.Merged, wantMerge)
	}
	rows := map[string]Row{}
	for _, r := range ch.Rows {
		rows[r.ID] = r
	}
	if r := rows[pa]; r.MergedInto != pu || r.Orders != 0 {
		t.Errorf("absorbed row = %+v, want only MergedInto %s", r, pu)
	}
	if r := rows[pu]; r.UserID != "u1" || !r.FirstSeen.Equal(at(0)) || !r.LastSeen.Equal(at(10)) {
		t.Errorf("survivor row = %+v", r)
	}
	got := map[string]string{}
	for _, tc := range ch.Traits {
		if tc.Profile != pu {
			t.Errorf("trait change on %s, want only on the survivor", tc.Profile)
		}
		got[tc.Key] = string(tc.Value) + "@" + tc.MessageID
	}
	want := map[string]string{"plan": `"free"@m2`, "city": `"Lyon"@m2`, "name": `"Ann B"@m3`}
	if len(got) != len(want) {
		t.Fatalf("trait changes = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("trait %s changed to %s, want %s", k, got[k], v)
		}
	}
	if p := profileOf(t, g, "a:a2"); !slices.Equal(p.Identities, []Identity{id("u:u1"), id("a:a1"), id("a:a2")}) {
		t.Errorf("identities = %v", p.Identities)
	}
}

func TestSurvivorIsFirstSeenThenSmallerID(t *testing.T) {
	g := NewGraph(ws)
	// a2 is seen first in event time although it arrives second.
	mustApply(t, g, track("m1", "a1", "", 10))
	mustApply(t, g, track("m2", "a2", "", 5))
	ch := mustApply(t, g, anonAlias("m3", "a1", "a2", 20))
	if want := ProfileID(ws, id("a:a2")); ch.Profile != want || ch.Merged[0].Survivor != want {
		t.Fatalf("survivor %s, want the earlier profile %s", ch.Profile, want)
	}

	g = NewGraph(ws)
	mustApply(t, g, track("m1", "b1", "", 5))
	mustApply(t, g, track("m2", "b2", "", 5))
	ch = mustApply(t, g, anonAlias("m3", "b1", "b2", 20))
	want := min(ProfileID(ws, id("a:b1")), ProfileID(ws, id("a:b2")))
	if ch.Merged[0].Survivor != want {
		t.Fatalf("survivor %s, want the smaller id %s", ch.Merged[0].Survivor, want)
	}
}

// TestMergeCombinesState merges two devices after sessions and orders.
func TestMergeCombinesState(t *testing.T) {
	g := NewGraph(ws)
	p1 := mustApply(t, g, identify("m1", "a1", "u1", 10, `{"plan":"pro","age":30}`)).Profile
	p2 := mustApply(t, g, identify("m2", "a2", "", 3, `{"plan":"free","city":"Lyon"}`)).Profile
	for _, s := range []struct {
		profile string
		id      string
		start   int
	}{{p1, "s1", 10}, {p1, "s2", 40}, {p2, "s3", 3}} {
		if _, err := g.RecordSession(s.profile, Session{ID: s.id, Start: at(s.start)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []struct {
		profile string
		order   Order
	}{
		{p1, Order{ID: "o1", At: at(12), Value: 100, Currency: "EUR"}},
		{p2, Order{ID: "o2", At: at(20), Value: 50.10, Currency: "EUR"}},
		{p2, Order{ID: "o3", At: at(4), Value: 25, Currency: "EUR"}},
	} {
		if _, err := g.RecordOrder(o.profile, o.order); err != nil {
			t.Fatal(err)
		}
	}
	ch := mustApply(t, g, identify("m3", "a2", "u1", 50, ""))
	if len(ch.Merged) != 1 {
		t.Fatalf("merged = %+v, want one merge", ch.Merged)
	}
	p := profileOf(t, g, "u:u1")
	if p.ID != p2 {
		t.Errorf("survivor %s, want %s (first seen at minute 3)", p.ID, p2)
	}
	if p.Sessions != 3 || p.Orders != 3 || p.RevenueMicros != 175_100_000 {
		t.Errorf("sessions %d orders %d revenue %d, want 3, 3, 175100000", p.Sessions, p.Orders, p.RevenueMicros)
	}
	if aov := p.AverageOrderValue(); math.Abs(aov-175.1/3) > 1e-9 {
		t.Errorf("average order value %v, want %v", aov, 175.1/3)
	}
	if p.LastOrder.ID != "o2" || p.LastOrder.Value != 50.10 || p.LastOrder.Currency != "EUR" {
		t.Errorf("last order %+v, want o2", p.LastOrder)
	}
	if !p.FirstSeen.Equal(at(3)) || !p.LastSeen.Equal(at(50)) {
		t.Errorf("seen %s..%s, want minutes 3..50", p.FirstSeen, p.LastSeen)
	}
	for k, want := range map[string]string{"plan": `"pro"`, "age": "30", "city": `"Lyon"`} {
		if got := string(p.Trait(k)); got != want {
			t.Errorf("trait %s = %s, want %s (newest by event time)", k, got, want)
		}
	}
	// Counting again through the absorbed id changes nothing.
	if ch, err := g.RecordOrder(p1, Order{ID: "o1", At: at(12), Value: 100}); err != nil || !ch.Empty() || ch.Profile != p2 {
		t.Errorf("re-recording o1 through %s: %+v %v, want nothing on %s", p1, ch, err, p2)
	}
	if ch, _ := g.RecordSession(p1, Session{ID: "s1"}); !ch.Empty() {
		t.Errorf("re-recording s1: %+v, want nothing", ch)
	}
}

func TestTraitsLastWriteWins(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   map[string]string
	}{
		{"newer event wins whatever the arrival order",
			[]Event{identify("m1", "a1", "", 20, `{"plan":"pro"}`), identify("m2", "a1", "", 10, `{"plan":"free","age":3}`)},
			map[string]string{"plan": `"pro"`, "age": "3"}},
		{"same time: the greater message id wins",
			[]Event{identify("m2", "a1", "", 10, `{"plan":"b"}`), identify("m1", "a1", "", 10, `{"plan":"a"}`)},
			map[string]string{"plan": `"b"`}},
		{"same time, other arrival order",
			[]Event{identify("m1", "a1", "", 10, `{"plan":"a"}`), identify("m2", "a1", "", 10, `{"plan":"b"}`)},
			map[string]string{"plan": `"b"`}},
		{"a nested object is replaced whole",
			[]Event{identify("m1", "a1", "", 1, `{"address":{"city":"Lyon","zip":"69001"}}`), identify("m2", "a1", "", 2, `{"address":{"city":"Paris"}}`)},
			map[string]string{"address": `{"city":"Paris"}`}},
		{"null is a value",
			[]Event{identify("m1", "a1", "", 1, `{"phone":"+33"}`), identify("m2", "a1", "", 2, `{"phone":null}`)},
			map[string]string{"phone": "null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGraph(ws)
			for _, ev := range tt.events {
				mustApply(t, g, ev)
			}
			p := profileOf(t, g, "a:a1")
			if len(p.Traits) != len(tt.want) {
				t.Errorf("traits %+v, want %v", p.Traits, tt.want)
			}
			for k, want := range tt.want {
				if got := string(p.Trait(k)); got != want {
					t.Errorf("trait %s = %s, want %s", k, got, want)
				}
			}
		})
	}
}

func TestConsentLatestPerPurpose(t *testing.T) {
	g := NewGraph(ws)
	e1 := track("m1", "a1", "", 10)
	e1.Consent = map[string]bool{"analytics": true, "ads": true}
	e2 := track("m2", "a1", "", 5) // older, arrives later
	e2.Consent = map[string]bool{"ads": false, "email": false}
	e3 := track("m3", "a1", "", 20)
	e3.Consent = map[string]bool{"ads": false}
	mustApply(t, g, e1)
	mustApply(t, g, e2)
	ch := mustApply(t, g, e3)
	if len(ch.Consent) != 1 || ch.Consent[0].Purpose != "ads" || ch.Consent[0].Granted || !ch.Consent[0].At.Equal(at(20)) {
		t.Errorf("consent changes %+v, want ads=false at minute 20", ch.Consent)
	}
	p := profileOf(t, g, "a:a1")
	want := []Consent{
		{"ads", false, Stamp{at(20), "m3"}},
		{"analytics", true, Stamp{at(10), "m1"}},
		{"email", false, Stamp{at(5), "m2"}},
	}
	if !slices.Equal(p.Consent, want) {
		t.Errorf("consent %+v, want %+v", p.Consent, want)
	}
}

func TestResolveFollowsChainsOfMerges(t *testing.T) {
	g := NewGraph(ws)
	// Each profile is seen before the previous one, so each merge is
	// absorbed by the next: a1 → a2 → a3 → a4.
	var ids []string
	for i, a := range []string{"a1", "a2", "a3", "a4"} {
		ids = append(ids, mustApply(t, g, track("t"+a, a, "", 10-i)).Profile)
	}
	mustApply(t, g, identify("m1", "a1", "u1", 20, ""))
	for i, a := range []string{"a2", "a3", "a4"} {
		ch := mustApply(t, g, identify("m"+a, a, "u1", 21+i, ""))
		if len(ch.Merged) != 1 || ch.Merged[0].Absorbed != ids[i] || ch.Merged[0].Survivor != ids[i+1] {
			t.Fatalf("merge %d = %+v, want %s into %s", i, ch.Merged, ids[i], ids[i+1])
		}
	}
	for _, pid := range ids {
		if got := g.Resolve(pid); got != ids[3] {
			t.Errorf("Resolve(%s) = %s, want %s", pid, got, ids[3])
		}
	}
	g.mu.Lock()
	for _, pid := range ids[:3] {
		if g.merged[pid] != ids[3] {
			t.Errorf("after Resolve, %s points at %s, want %s (path compression)", pid, g.merged[pid], ids[3])
		}
	}
	g.mu.Unlock()
	if got := g.Resolve("never-issued"); got != "" {
		t.Errorf("Resolve(unknown) = %q, want empty", got)
	}
}

func TestReplayIsANoOp(t *testing.T) {
	g := NewGraph(ws)
	history := []Event{
		identify("m1", "a1", "u1", 0, `{"email":"ann@example.com","plan":"pro"}`),
		track("m2", "a2", "", 1),
		identify("m3", "a2", "", 2, `{"email":"ann@example.com"}`),
		identify("m4", "a3", "u2", 3, `{"plan":"free"}`),
		identify("m5", "a3", "u1", 4, ""),
		alias("m6", "a4", "u1", 5),
	}
	var profiles []string
	apply := func() (changed int) {
		for _, ev := range history {
			ch := mustApply(t, g, ev)
			profiles = append(profiles, ch.Profile)
			if !ch.Empty() {
				changed++
			}
		}
		for i, p := range profiles[:len(history)] {
			if ch, _ := g.RecordSession(p, Session{ID: history[i].MessageID, Start: history[i].Timestamp}); !ch.Empty() {
				changed++
			}
			if ch, _ := g.RecordOrder(p, Order{ID: history[i].MessageID, At: history[i].Timestamp, Value: 10}); !ch.Empty() {
				changed++
			}
		}
		return changed
	}
	apply()
	before := exact(g)
	if changed := apply(); changed != 0 {
		t.Errorf("replay changed state in %d calls, want none", changed)
	}
	if after := exact(g); after != before {
		t.Errorf("state after replay:\n%s\nwant:\n%s", after, before)
	}
}

func TestSameOrderFromScratchBuildsSameIDs(t *testing.T) {
	history := randomHistory(7, 300, false)
	a, b := NewGraph(ws), NewGraph(ws)
	for _, g := range []*Graph{a, b} {
		for _, op := range history {
			op.do(t, g)
		}
	}
	if exact(a) != exact(b) {
		t.Fatal("two graphs built from the same calls differ")
	}
}

func TestRecordErrors(t *testing.T) {
	g := NewGraph(ws)
	p := mustApply(t, g, track("m1", "a1", "", 0)).Profile
	tests := []struct {
		name string
		err  error
		is   error
	}{
		{"session of unknown profile", second(g.RecordSession("nope", Session{ID: "s"})), ErrUnknownProfile},
		{"order of unknown profile", second(g.RecordOrder("nope", Order{ID: "o"})), ErrUnknownProfile},
		{"session without id", second(g.RecordSession(p, Session{})), nil},
		{"order without id", second(g.RecordOrder(p, Order{Value: 1})), nil},
		{"order worth NaN", second(g.RecordOrder(p, Order{ID: "o", Value: math.NaN()})), nil},
		{"order worth +Inf", second(g.RecordOrder(p, Order{ID: "o", Value: math.Inf(1)})), nil},
	}
	for _, tt := range tests {
		if tt.err == nil || tt.is != nil && !errors.Is(tt.err, tt.is) {
			t.Errorf("%s: error %v, want %v", tt.name, tt.err, tt.is)
		}
	}
}

func TestApplyRefusesWhatItCannotResolve(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		is   error
	}{
		{"no ids", Event{WorkspaceID: ws, MessageID: "m", Timestamp: t0}, ErrNoIdentity},
		{"alias without userId or anonymousId", Event{WorkspaceID: ws, MessageID: "m", Type: "alias", PreviousID: "p", Timestamp: t0}, ErrNoIdentity},
		{"no time", Event{WorkspaceID: ws, MessageID: "m", AnonymousID: "a"}, ErrNoTimestamp},
		{"another workspace", Event{WorkspaceID: "other", MessageID: "m", AnonymousID: "a", Timestamp: t0}, ErrWrongWorkspace},
		{"traits not an object", identify("m", "a", "", 0, `[1]`), nil},
	}
	for _, tt := range tests {
		g := NewGraph(ws)
		_, err := g.Apply(tt.ev)
		if err == nil || tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.is)
		}
		if g.Len() != 0 {
			t.Errorf("%s: a refused event created a profile", tt.name)
		}
	}
}

func TestTimesKeepMicroseconds(t *testing.T) {
	g := NewGraph(ws)
	ev := track("m1", "a1", "", 0)
	ev.Timestamp = ev.Timestamp.Add(1234567 * time.Nanosecond).In(time.FixedZone("CET", 3600))
	mustApply(t, g, ev)
	p := profileOf(t, g, "a:a1")
	if want := t0.Add(1234 * time.Microsecond); !p.FirstSeen.Equal(want) || p.FirstSeen.Location() != time.UTC {
		t.Errorf("first seen %s, want %s in UTC", p.FirstSeen, want)
	}
	// The same time with other nanoseconds is the same time to PostgreSQL.
	ev.Timestamp = ev.Timestamp.Add(-567 * time.Nanosecond)
	if ch := mustApply(t, g, ev); !ch.Empty() {
		t.Errorf("changes %+v, want none", ch)
	}
}

func TestMemoryKeepsWorkspacesApart(t *testing.T) {
	m := NewMemory()
	ctx := t.Context()
	e1 := track("m1", "a1", "u1", 0)
	e2 := e1
	e2.WorkspaceID = "other"
	c1, err1 := m.Apply(ctx, e1)
	c2, err2 := m.Apply(ctx, e2)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if c1.Profile == c2.Profile {
		t.Errorf("same profile id %s in two workspaces", c1.Profile)
	}
	if got, _ := m.Resolve(ctx, ws, c2.Profile); got != "" {
		t.Errorf("workspace %s resolves the other's profile to %q", ws, got)
	}
	if _, err := m.RecordOrder(ctx, "other", c2.Profile, Order{ID: "o1", Value: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RecordSession(ctx, ws, c2.Profile, Session{ID: "s1"}); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("session on another workspace's profile: %v, want ErrUnknownProfile", err)
	}
	if _, err := m.RecordOrder(ctx, "nowhere", c2.Profile, Order{ID: "o1"}); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("order in an unknown workspace: %v, want ErrUnknownProfile", err)
	}
	if got, err := m.Resolve(ctx, "nowhere", c2.Profile); got != "" || err != nil {
		t.Errorf("Resolve in an unknown workspace = %q, %v", got, err)
	}
	if _, ok := m.graphs["nowhere"]; ok {
		t.Error("reads created a graph for an unknown workspace")
	}
}

func second[T any](_ T, err error) error { return err }
