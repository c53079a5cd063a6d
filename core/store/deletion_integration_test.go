package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// seededPerson is a person seeded by seedPerson: two devices merged into one
// profile by a user id, with events on two days, a session per device with
// a page view, an order, claims and session engine checkpoints.
type seededPerson struct {
	anons            [2]string
	userID, email    string
	profile, merged  string // the live profile and the one merged into it
	sessions         [2]string
	orderID          string
	events           int
	pageViews        int
	identifiers      []identity.Identity
	allValues        []string // every identifier and profile id, for searches
	sessionsAtSeeded time.Time
}

// seedPerson writes a person of workspace ws named name (used in every
// identifier, so that two persons share none).
func seedPerson(t *testing.T, s *store.Store, ws, name string) *seededPerson {
	t.Helper()
	ctx := context.Background()
	p := &seededPerson{anons: [2]string{name + "-phone-anon", name + "-laptop-anon"}, userID: name + "-user-id",
		email: name + "@privacy.test", orderID: name + "-order-1"}
	at := day1
	// Phone: a page, then identify with the user id and email; laptop:
	// a page, then identify with the same user id (merging the profiles).
	apply := func(ev identity.Event) identity.Changes {
		ev.WorkspaceID, ev.Timestamp = ws, at
		ch, err := s.Identities().Apply(ctx, ev)
		testenv.Must(t, err, "apply %s", ev.MessageID)
		return ch
	}
	phone := apply(identity.Event{MessageID: name + "-m1", Type: "page", AnonymousID: p.anons[0]}).Profile
	apply(identity.Event{MessageID: name + "-m2", Type: "identify", AnonymousID: p.anons[0], UserID: p.userID,
		Traits:  json.RawMessage(`{"email": "` + strings.ToUpper(p.email) + `", "plan": "pro"}`),
		Consent: map[string]bool{"analytics": true}})
	laptop := apply(identity.Event{MessageID: name + "-m3", Type: "page", AnonymousID: p.anons[1]}).Profile
	ch := apply(identity.Event{MessageID: name + "-m4", Type: "identify", AnonymousID: p.anons[1], UserID: p.userID})
	if len(ch.Merged) != 1 {
		t.Fatalf("identifying the laptop of %s merged %d profiles, want 1: %+v", name, len(ch.Merged), ch)
	}
	p.profile = ch.Profile
	p.merged = map[bool]string{true: laptop, false: phone}[ch.Profile == phone]

	var events []store.Event
	for i, spec := range []struct {
		typ, anon, user string
		day             time.Time
	}{
		{"page", p.anons[0], "", day1}, {"identify", p.anons[0], p.userID, day1},
		{"page", p.anons[1], "", day2}, {"identify", p.anons[1], p.userID, day2},
		{"track", "", p.userID, day2},
	} {
		events = append(events, store.Event{WorkspaceID: ws, MessageID: fmt.Sprintf("%s-m%d", name, i+1), Type: spec.typ,
			AnonymousID: spec.anon, UserID: spec.user, Timestamp: spec.day, ReceivedAt: spec.day,
			Context: []byte(`{"traits": {"email": "` + p.email + `"}}`), Properties: []byte(`{"note": "` + name + ` was here"}`)})
	}
	p.events = int(insert(t, s, events...))

	for i, anon := range p.anons {
		p.sessions[i] = newUUID()
		_, err := s.Pool().Exec(ctx, `INSERT INTO sessions (workspace_id, id, anonymous_id, user_id, profile_id, started_at,
			last_event_at, events, page_views, channel_group, orders_count, revenue, bounced, closed)
			VALUES ($1, $2, $3, $4, $5, $6, $6, 2, 1, 'Direct', 0, 0, false, true)`, ws, p.sessions[i], anon, p.userID, p.profile, day1)
		testenv.Must(t, err, "insert session")
		_, err = s.Pool().Exec(ctx, `INSERT INTO page_views (workspace_id, message_id, session_id, anonymous_id, ts, url)
			VALUES ($1, $2, $3, $4, $5, 'https://shop.test/')`, ws, fmt.Sprintf("%s-m%d", name, 2*i+1), p.sessions[i], anon, day1)
		testenv.Must(t, err, "insert page view")
		p.pageViews++
		_, err = s.Pool().Exec(ctx, `INSERT INTO session_visitors (workspace_id, anonymous_id, shard, state) VALUES ($1, $2, 0, '\x00')`, ws, anon)
		testenv.Must(t, err, "insert session visitor")
		_, err = s.Pool().Exec(ctx, `INSERT INTO profile_counted (workspace_id, kind, id, profile_id) VALUES ($1, 'session', $2, $3)`,
			ws, p.sessions[i], p.profile)
		testenv.Must(t, err, "insert claim")
	}
	_, err := s.Pool().Exec(ctx, `INSERT INTO orders (workspace_id, order_id, message_id, session_id, anonymous_id, user_id,
		profile_id, ts, total, currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 42.5, 'EUR')`,
		ws, p.orderID, name+"-m5", p.sessions[1], p.anons[1], p.userID, p.profile, day2)
	testenv.Must(t, err, "insert order")
	_, err = s.Pool().Exec(ctx, `INSERT INTO profile_counted (workspace_id, kind, id, profile_id) VALUES ($1, 'order', $2, $3)`,
		ws, p.orderID, p.profile)
	testenv.Must(t, err, "insert claim")

	p.identifiers = []identity.Identity{{Kind: identity.AnonymousID, Value: p.anons[0]}, {Kind: identity.AnonymousID, Value: p.anons[1]},
		{Kind: identity.UserID, Value: p.userID}, {Kind: identity.Email, Value: p.email}}
	p.allValues = []string{p.anons[0], p.anons[1], p.userID, p.email, p.profile, p.merged, p.sessions[0], p.sessions[1], p.orderID}
	return p
}

// newPrivacyWorkspace inserts a workspace and returns its id.
func newPrivacyWorkspace(t *testing.T, s *store.Store, slug string) string {
	t.Helper()
	var id string
	testenv.Must(t, s.Pool().QueryRow(context.Background(), `INSERT INTO workspaces (slug, name, organization_id)
		SELECT $1, $1, id FROM organizations WHERE slug = 'default' RETURNING id::text`, slug).Scan(&id), "insert workspace %s", slug)
	return id
}

// findAnywhere returns "table.column" of every text, json, jsonb, uuid or
// inet column of the database holding value (inside JSON too).
func findAnywhere(t *testing.T, s *store.Store, value string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := s.Pool().Query(ctx, `
		SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		  AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'uuid', 'inet', 'ARRAY')
		ORDER BY 1, 2`)
	testenv.Must(t, err, "list columns")
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var c [2]string
		return c, r.Scan(&c[0], &c[1])
	})
	testenv.Must(t, err, "list columns")
	if len(cols) < 50 {
		t.Fatalf("found only %d columns to search: the search is broken", len(cols))
	}
	var found []string
	for _, c := range cols {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE strpos(lower(%s::text), lower($1)) > 0`,
			pgx.Identifier{c[0]}.Sanitize(), pgx.Identifier{c[1]}.Sanitize())
		testenv.Must(t, s.Pool().QueryRow(ctx, q, value).Scan(&n), "search %s.%s", c[0], c[1])
		if n > 0 {
			found = append(found, fmt.Sprintf("%s.%s (%d rows)", c[0], c[1], n))
		}
	}
	return found
}

func TestDeleteProfileRemovesEveryTraceOfThePerson(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ws := newPrivacyWorkspace(t, s, "privacy-delete")
	other := newPrivacyWorkspace(t, s, "privacy-other")
	x := seedPerson(t, s, ws, "xavier")
	y := seedPerson(t, s, ws, "yolanda")
	// A person of another workspace, whose profile this one cannot reach.
	z := seedPerson(t, s, other, "zed")

	// Every identifier is found before: the search can see them.
	for _, v := range x.allValues {
		if len(findAnywhere(t, s, v)) == 0 {
			t.Fatalf("%q is nowhere before the deletion: the search cannot see it", v)
		}
	}

	// Deleting by the merged-away profile id deletes the whole person.
	d, err := s.DeleteProfile(ctx, ws, x.merged)
	testenv.Must(t, err, "delete profile")
	want := map[string]int64{"events": int64(x.events), "event_ids": int64(x.events), "sessions": 2, "page_views": 2,
		"orders": 1, "profile_counted": 3, "session_visitors": 2, "identities": 4, "profile_merges": 1, "profiles": 2,
		"suppressions": 4}
	for table, n := range want {
		if d.Counts[table] != n {
			t.Errorf("deleted %d rows of %s, want %d (counts %v)", d.Counts[table], table, n, d.Counts)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(d.SessionIDs)), slices.Sorted(slices.Values(x.sessions[:]))) {
		t.Errorf("deleted sessions %v, want %v", d.SessionIDs, x.sessions)
	}

	// No row of any table refers to the person.
	for _, v := range x.allValues {
		for _, where := range findAnywhere(t, s, v) {
			t.Errorf("after the deletion %q is still in %s", v, where)
		}
	}
	// The other person is intact.
	for _, v := range slices.Concat(y.allValues, z.allValues) {
		if len(findAnywhere(t, s, v)) == 0 {
			t.Errorf("the other persons' %q was deleted", v)
		}
	}
	var yEvents int
	testenv.Must(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND (user_id = $2 OR anonymous_id = ANY($3))`,
		ws, y.userID, y.anons[:]).Scan(&yEvents), "count")
	if yEvents != y.events {
		t.Errorf("the other person has %d events, want %d", yEvents, y.events)
	}

	// Suppressions hold hashes, never the identifier.
	rows, err := s.Pool().Query(ctx, `SELECT kind, identifier_hash FROM suppressions WHERE workspace_id = $1 ORDER BY kind`, ws)
	testenv.Must(t, err, "read suppressions")
	type sup struct {
		kind string
		hash []byte
	}
	sups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sup, error) {
		var s sup
		return s, r.Scan(&s.kind, &s.hash)
	})
	testenv.Must(t, err, "read suppressions")
	if len(sups) != len(x.identifiers) {
		t.Fatalf("%d suppressions, want %d", len(sups), len(x.identifiers))
	}
	for _, id := range x.identifiers {
		h := store.SuppressionHash(ws, string(id.Kind), id.Value)
		if !slices.ContainsFunc(sups, func(s sup) bool { return bytes.Equal(s.hash, h) && s.kind == string(id.Kind) }) {
			t.Errorf("no suppression of the %s", id.Kind)
		}
		for _, s := range sups {
			if bytes.Contains(s.hash, []byte(id.Value)) {
				t.Errorf("a suppression holds the %s in clear", id.Kind)
			}
		}
	}

	for _, tc := range []struct {
		name, ws, kind, value string
		want                  bool
	}{
		{"deleted anonymous id", ws, "anonymous_id", x.anons[1], true},
		{"deleted user id", ws, "user_id", x.userID, true},
		{"deleted email, other case and spaces", ws, "email", "  " + strings.ToUpper(x.email), true},
		{"other person", ws, "user_id", y.userID, false},
		{"same id in another workspace", other, "user_id", x.userID, false},
		{"never seen", ws, "anonymous_id", "nobody", false},
	} {
		t.Run("suppressed/"+tc.name, func(t *testing.T) {
			got, err := s.Suppressed(ctx, tc.ws, tc.kind, tc.value)
			testenv.Must(t, err, "suppressed")
			if got != tc.want {
				t.Errorf("Suppressed(%s) = %v, want %v", tc.kind, got, tc.want)
			}
		})
	}
	if _, err := s.Suppressed(ctx, ws, "phone", "1"); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("Suppressed with kind phone: %v, want an error naming the kind", err)
	}

	// Lifting: once, then nothing to lift.
	testenv.Must(t, s.LiftSuppression(ctx, ws, "user_id", x.userID), "lift")
	if got, _ := s.Suppressed(ctx, ws, "user_id", x.userID); got {
		t.Error("a lifted suppression still suppresses")
	}
	if err := s.LiftSuppression(ctx, ws, "user_id", x.userID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lifting twice: %v, want ErrNotFound", err)
	}

	// A second deletion finds nobody.
	if _, err := s.DeleteProfile(ctx, ws, x.profile); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting again: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteProfile(ctx, ws, y.profile+"x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting a malformed id: %v, want ErrNotFound", err)
	}
	// Another workspace's profile is not found through this one.
	if _, err := s.DeleteProfile(ctx, ws, z.profile); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting another workspace's profile: %v, want ErrNotFound", err)
	}
}

func TestExportProfileHoldsEverythingSeeded(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ws := newPrivacyWorkspace(t, s, "privacy-export")
	x := seedPerson(t, s, ws, "xavier")
	seedPerson(t, s, ws, "yolanda")
	w := store.Workspace{ID: ws, Slug: "privacy-export"}

	for _, id := range []string{x.profile, x.merged} {
		exp, err := s.ExportProfile(ctx, w, id)
		testenv.Must(t, err, "export")
		if exp.Profile.ID != x.profile || !slices.Equal(exp.MergedProfiles, []string{x.merged}) {
			t.Errorf("export of %s: profile %s merged %v, want %s and [%s]", id, exp.Profile.ID, exp.MergedProfiles, x.profile, x.merged)
		}
		if len(exp.Profile.Identities) != 4 || len(exp.Merges) != 1 || len(exp.Sessions) != 2 || len(exp.PageViews) != x.pageViews ||
			len(exp.Orders) != 1 || len(exp.Events) != x.events || exp.Truncated {
			t.Errorf("export: %d identities, %d merges, %d sessions, %d page views, %d orders, %d events (truncated %v), "+
				"want 4, 1, 2, %d, 1, %d", len(exp.Profile.Identities), len(exp.Merges), len(exp.Sessions), len(exp.PageViews),
				len(exp.Orders), len(exp.Events), exp.Truncated, x.pageViews, x.events)
		}
		if v := exp.Profile.Trait("plan"); string(v) != `"pro"` {
			t.Errorf("trait plan = %s", v)
		}
		if len(exp.Profile.Consent) != 1 || !exp.Profile.Consent[0].Granted || exp.Profile.Consent[0].Stamp.MessageID != "xavier-m2" {
			t.Errorf("consent with stamps: %+v", exp.Profile.Consent)
		}
		for _, e := range exp.Events {
			if !strings.HasPrefix(e.MessageID, "xavier-") {
				t.Errorf("export holds another person's event %s", e.MessageID)
			}
		}
	}
	if _, err := s.ExportProfile(ctx, w, newUUID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("export of an unknown profile: %v, want ErrNotFound", err)
	}
	if _, err := s.ExportProfile(ctx, store.Workspace{ID: newUUID(), Slug: "elsewhere"}, x.profile); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("export through another workspace: %v, want ErrNotFound", err)
	}
}

func TestDeleteRange(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ws := newPrivacyWorkspace(t, s, "privacy-range")
	other := newPrivacyWorkspace(t, s, "privacy-range-other")
	x := seedPerson(t, s, ws, "xavier")
	seedPerson(t, s, other, "xavier")
	count := func(q string, args ...any) int {
		var n int
		testenv.Must(t, s.Pool().QueryRow(ctx, q, args...).Scan(&n), "count")
		return n
	}
	eventsBefore := count(`SELECT count(*) FROM events WHERE workspace_id = $1`, ws)
	day1Events := count(`SELECT count(*) FROM events WHERE workspace_id = $1 AND "timestamp" < $2`, ws, day2)
	otherBefore := count(`SELECT count(*) FROM events WHERE workspace_id = $1`, other)

	if _, err := s.DeleteRange(ctx, ws, day2, day1); err == nil {
		t.Error("a range from after to was accepted")
	}
	from := time.Date(day1.Year(), day1.Month(), day1.Day(), 0, 0, 0, 0, time.UTC)
	d, err := s.DeleteRange(ctx, ws, from, from.AddDate(0, 0, 1))
	testenv.Must(t, err, "delete range")
	if d.Counts["events"] != int64(day1Events) || d.Counts["event_ids"] != int64(day1Events) || d.Counts["sessions"] != 2 ||
		d.Counts["page_views"] != 2 || d.Counts["orders"] != 1 {
		t.Errorf("counts %v, want %d events and keys, 2 sessions, 2 page views, 1 order", d.Counts, day1Events)
	}
	if got := count(`SELECT count(*) FROM events WHERE workspace_id = $1`, ws); got != eventsBefore-day1Events {
		t.Errorf("%d events left, want %d", got, eventsBefore-day1Events)
	}
	if got := count(`SELECT count(*) FROM events WHERE workspace_id = $1`, other); got != otherBefore {
		t.Errorf("the other workspace has %d events, want %d", got, otherBefore)
	}
	if got := count(`SELECT count(*) FROM profiles WHERE workspace_id = $1`, ws); got != 2 {
		t.Errorf("%d profiles left, want 2: a range deletion keeps profiles", got)
	}
	_ = x
}

// SuppressPerson, a deletion job's first step, suppresses every identifier
// of the person and returns them, deleting nothing; it is idempotent, and
// finds nobody once the person is deleted or for a range job.
func TestSuppressPersonSuppressesBeforeDeleting(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ws := newPrivacyWorkspace(t, s, "privacy-suppress")
	x := seedPerson(t, s, ws, "xia")
	y := seedPerson(t, s, ws, "yann")
	w, err := s.WorkspaceBySlug(ctx, "privacy-suppress")
	testenv.Must(t, err, "workspace")
	job, err := s.CreateDeletionJob(ctx, store.Change{Actor: store.Actor{Type: "cli", Label: "test"}},
		w, store.NewDeletion{Kind: store.DeletionProfile, ProfileID: x.merged})
	testenv.Must(t, err, "create job")
	sorted := func(ids []identity.Identity) []identity.Identity {
		out := slices.Clone(ids)
		slices.SortFunc(out, func(a, b identity.Identity) int {
			return strings.Compare(string(a.Kind)+"\x00"+a.Value, string(b.Kind)+"\x00"+b.Value)
		})
		return out
	}
	for round := range 2 {
		ids, err := s.SuppressPerson(ctx, job)
		testenv.Must(t, err, "suppress, round %d", round)
		if !slices.Equal(sorted(ids), sorted(x.identifiers)) {
			t.Fatalf("round %d: SuppressPerson returned %v, want the person's identifiers %v", round, ids, x.identifiers)
		}
	}
	for _, id := range x.identifiers {
		if ok, err := s.Suppressed(ctx, ws, string(id.Kind), id.Value); err != nil || !ok {
			t.Errorf("%s of the person suppressed = %v, %v; want true", id.Kind, ok, err)
		}
	}
	if ok, _ := s.Suppressed(ctx, ws, "user_id", y.userID); ok {
		t.Errorf("another person's user id is suppressed")
	}
	if _, err := s.WorkspaceProfile(ctx, w, x.profile); err != nil {
		t.Errorf("SuppressPerson deleted the profile: %v", err)
	}

	d, err := s.RunDeletion(ctx, job)
	testenv.Must(t, err, "run deletion")
	if d.Counts["profiles"] != 2 {
		t.Errorf("deletion after SuppressPerson deleted %d profiles, want 2", d.Counts["profiles"])
	}
	ids, err := s.SuppressPerson(ctx, job)
	if err != nil || ids != nil {
		t.Errorf("SuppressPerson after the deletion = %v, %v; want nothing", ids, err)
	}
	ids, err = s.SuppressPerson(ctx, store.DeletionJob{ID: job.ID, WorkspaceID: ws, Kind: store.DeletionRange})
	if err != nil || ids != nil {
		t.Errorf("SuppressPerson of a range job = %v, %v; want nothing", ids, err)
	}
}
