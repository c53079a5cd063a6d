package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// privacyPerson is a person seeded through the paths the worker takes:
// the identity store, the events table, the session engine (sessions, page
// views, an order) and its checkpoints, and the live view in Redis.
type privacyPerson struct {
	anons           []string
	userID, email   string
	profile, merged string // merged is "" for a one-device person
	sessions        []string
	orderID         string
	events          int
}

// values are every identifier of the person and the ids that refer to them.
func (pp *privacyPerson) values() []string {
	v := slices.Concat(pp.anons, []string{pp.userID, pp.email, pp.profile, pp.orderID}, pp.sessions)
	if pp.merged != "" {
		v = append(v, pp.merged)
	}
	return v
}

// seedPrivacyPerson seeds a person named name in ws with devices devices
// (two devices are merged into one profile by the user id).
func seedPrivacyPerson(t *testing.T, p *platform, ws store.Workspace, name string, devices int) *privacyPerson {
	t.Helper()
	ctx := context.Background()
	pp := &privacyPerson{userID: name + "-user", email: name + "@example.org", orderID: name + "-order"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	yesterday := now.Add(-24 * time.Hour)
	var profiles []string
	for d := range devices {
		anon := fmt.Sprintf("%s-device-%d", name, d)
		pp.anons = append(pp.anons, anon)
		profiles = append(profiles, applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: anon + "-page",
			Type: "page", AnonymousID: anon, Timestamp: yesterday}).Profile)
		ch := applyIdentity(t, p.store, identity.Event{WorkspaceID: ws.ID, MessageID: anon + "-identify", Type: "identify",
			AnonymousID: anon, UserID: pp.userID, Timestamp: now,
			Traits:  json.RawMessage(`{"email": "` + strings.ToUpper(pp.email) + `", "name": "` + name + ` Doe"}`),
			Consent: map[string]bool{"analytics": true}})
		pp.profile = ch.Profile
	}
	for _, id := range profiles {
		if id != pp.profile {
			pp.merged = id
		}
	}

	// Events on two days (two partitions).
	var events []store.Event
	for _, anon := range pp.anons {
		events = append(events,
			store.Event{WorkspaceID: ws.ID, MessageID: anon + "-page", Type: "page", Name: "Home", AnonymousID: anon,
				Timestamp: yesterday, ReceivedAt: yesterday, Context: []byte(`{"page": {"url": "https://shop.test/"}}`)},
			store.Event{WorkspaceID: ws.ID, MessageID: anon + "-identify", Type: "identify", AnonymousID: anon, UserID: pp.userID,
				Timestamp: now, ReceivedAt: now, Traits: []byte(`{"email": "` + pp.email + `"}`)})
	}
	events = append(events, store.Event{WorkspaceID: ws.ID, MessageID: name + "-order-event", Type: "track", Event: "Order Completed",
		AnonymousID: pp.anons[len(pp.anons)-1], UserID: pp.userID, Timestamp: now, ReceivedAt: now,
		Properties: []byte(`{"order_id": "` + pp.orderID + `", "total": 30}`)})
	n, err := p.store.InsertEvents(ctx, events)
	testenv.Must(t, err, "insert events of %s", name)
	pp.events = int(n)

	// Sessions, page views and the order; their live state; checkpoints.
	sw := newSessionWriter(t, p.store, ws.ID)
	for i, anon := range pp.anons {
		sw.setProfile(anon, pp.profile)
		sw.apply(session.Event{AnonymousID: anon, MessageID: anon + "-page", Type: session.TypePage, Timestamp: now,
			URL: "https://shop.test/", Name: "Home", UserID: pp.userID})
		if i == len(pp.anons)-1 {
			sw.apply(session.Event{AnonymousID: anon, MessageID: name + "-order-event", Type: session.TypeTrack, Timestamp: now,
				Name: session.OrderCompleted, OrderID: pp.orderID, Total: 30, Currency: "EUR", UserID: pp.userID})
		}
		pp.sessions = append(pp.sessions, sw.ids[anon])
		_, err := p.store.Pool().Exec(ctx, `INSERT INTO session_visitors (workspace_id, anonymous_id, shard, state)
			VALUES ($1, $2, 0, '\x00')`, ws.ID, anon)
		testenv.Must(t, err, "checkpoint %s", anon)
	}
	testenv.Must(t, p.mirror.Publish(ctx, sw.changes, dueInAnHour, now), "publish the live sessions of %s", name)
	sw.flush()
	for _, s := range pp.sessions {
		_, err := p.store.Identities().RecordSession(ctx, ws.ID, pp.profile, identity.Session{ID: s, Start: now})
		testenv.Must(t, err, "count session %s", s)
	}
	_, err = p.store.Identities().RecordOrder(ctx, ws.ID, pp.profile, identity.Order{ID: pp.orderID, At: now, Value: 30, Currency: "EUR"})
	testenv.Must(t, err, "count order %s", pp.orderID)
	return pp
}

// privacyColumns lists "table.column" of every column that can hold text.
func privacyColumns(t *testing.T, p *platform) [][2]string {
	t.Helper()
	rows, err := p.store.Pool().Query(context.Background(), `
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
	for _, want := range []string{"events_p", "audit_log", "deletion_jobs", "session_visitors", "identities", "profile_merges"} {
		if !slices.ContainsFunc(cols, func(c [2]string) bool { return strings.HasPrefix(c[0], want) }) {
			t.Fatalf("the column search misses table %s*: %v", want, cols)
		}
	}
	return cols
}

// databaseHolds returns where in the database value appears (any table,
// any text, JSON or uuid column, case-insensitively).
func databaseHolds(t *testing.T, p *platform, cols [][2]string, value string) []string {
	t.Helper()
	var found []string
	for _, c := range cols {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE strpos(lower(%s::text), lower($1)) > 0`,
			pgx.Identifier{c[0]}.Sanitize(), pgx.Identifier{c[1]}.Sanitize())
		testenv.Must(t, p.store.Pool().QueryRow(context.Background(), q, value).Scan(&n), "search %s.%s", c[0], c[1])
		if n > 0 {
			found = append(found, fmt.Sprintf("%s.%s", c[0], c[1]))
		}
	}
	return found
}

// redisDump returns every key of the test's prefix with its content.
func redisDump(t *testing.T, p *platform) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := p.rdb.Scan(ctx, 0, p.prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := p.rdb.Type(ctx, key).Result()
		testenv.Must(t, err, "type of %s", key)
		var v any
		switch typ {
		case "string":
			v, err = p.rdb.Get(ctx, key).Result()
		case "zset":
			v, err = p.rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
		case "list":
			v, err = p.rdb.LRange(ctx, key, 0, -1).Result()
		case "hash":
			v, err = p.rdb.HGetAll(ctx, key).Result()
		case "set":
			v, err = p.rdb.SMembers(ctx, key).Result()
		case "stream":
			v, err = p.rdb.XRange(ctx, key, "-", "+").Result()
		case "none":
			continue
		default:
			t.Fatalf("key %s has type %s, which the search cannot read", key, typ)
		}
		if err != nil && err != redis.Nil {
			t.Fatalf("read %s: %v", key, err)
		}
		out[key] = fmt.Sprint(v)
	}
	testenv.Must(t, iter.Err(), "scan redis")
	return out
}

func redisHolds(dump map[string]string, value string) []string {
	var found []string
	for k, v := range dump {
		if strings.Contains(strings.ToLower(k+" "+v), strings.ToLower(value)) {
			found = append(found, k)
		}
	}
	return found
}

// jobOut is a deletion job as the API answers it.
type jobOut struct {
	ID, Kind, Status string
	Counts           map[string]int64
	Error            *string
	WorkspaceID      string `json:"workspace_id"`
	RequestedBy      string `json:"requested_by"`
}

// waitJob polls a job's status URL until it is done or failed.
func waitJob(t *testing.T, c *client, location string) jobOut {
	t.Helper()
	path := strings.TrimPrefix(location, api.Base)
	var j jobOut
	testenv.Eventually(t, 30*time.Second, "deletion job "+path+" to finish", func() bool {
		c.in(t).must(http.StatusOK, "GET", path, nil, &j)
		return j.Status == "done" || j.Status == "failed"
	})
	if j.Status != "done" {
		t.Fatalf("deletion job failed: %+v", j)
	}
	return j
}

type privacyWorld struct {
	p              *platform
	owner          *client
	ws, other      store.Workspace
	x, y, namesake *privacyPerson
}

func newPrivacyWorld(t *testing.T) *privacyWorld {
	t.Helper()
	p := newPlatform(t)
	w := &privacyWorld{p: p, owner: p.newAdmin("owner@privacy.test")}
	w.owner.org("privacy")
	w.owner.workspace("privacy", "shop")
	w.owner.workspace("privacy", "elsewhere")
	var err error
	w.ws, err = p.store.WorkspaceBySlug(context.Background(), "shop")
	testenv.Must(t, err, "workspace shop")
	w.other, err = p.store.WorkspaceBySlug(context.Background(), "elsewhere")
	testenv.Must(t, err, "workspace elsewhere")
	w.x = seedPrivacyPerson(t, p, w.ws, "xena", 2)
	w.y = seedPrivacyPerson(t, p, w.ws, "yuri", 1)
	w.namesake = seedPrivacyPerson(t, p, w.other, "zoe", 1)
	return w
}

// TestDeletePersonLeavesNoTrace deletes a person with two merged devices
// through the API and then searches every table and every Redis key for
// anything that refers to them.
func TestDeletePersonLeavesNoTrace(t *testing.T) {
	w := newPrivacyWorld(t)
	p, x, y := w.p, w.x, w.y
	ctx := context.Background()
	cols := privacyColumns(t, p)

	// The searches see every value before.
	dump := redisDump(t, p)
	for _, v := range x.values() {
		if len(databaseHolds(t, p, cols, v)) == 0 {
			t.Fatalf("%q is not in the database before the deletion: the search is blind", v)
		}
	}
	for _, v := range []string{x.anons[0], x.anons[1], x.userID, x.profile} {
		if len(redisHolds(dump, v)) == 0 {
			t.Fatalf("%q is not in Redis before the deletion: the search is blind", v)
		}
	}

	// Consent decided through the API for both persons: the deletion
	// removes the person's, the suppression taking their place.
	for _, pp := range []*privacyPerson{x, y} {
		w.owner.must(http.StatusOK, "PUT", "/workspaces/shop/profiles/"+pp.profile+"/consent",
			map[string]any{"categoryPreferences": map[string]any{"marketing": true}}, nil)
	}

	// By email, in another case: the person is found by identity.
	r := w.owner.must(http.StatusAccepted, "DELETE", "/workspaces/shop/profiles?email="+url.QueryEscape(strings.ToUpper(x.email)), nil, nil)
	var accepted jobOut
	r.decode(t, &accepted)
	if accepted.Kind != "profile" || accepted.Status != "pending" || accepted.WorkspaceID != "shop" {
		t.Errorf("accepted job %+v, want a pending profile job of shop", accepted)
	}
	loc := r.header.Get("Location")
	if loc != api.Base+"/workspaces/shop/deletions/"+accepted.ID {
		t.Fatalf("Location %q", loc)
	}
	job := waitJob(t, w.owner, loc)

	want := map[string]int64{"events": int64(x.events), "event_ids": int64(x.events), "sessions": 2, "page_views": 2,
		"orders": 1, "identities": 4, "profile_merges": 1, "profiles": 2, "session_visitors": 2, "suppressions": 4,
		"live_sessions": 2, "profile_counted": 3, "consent_decisions": 3}
	for table, n := range want {
		if job.Counts[table] != n {
			t.Errorf("job counts %s = %d, want %d (all: %v)", table, job.Counts[table], n, job.Counts)
		}
	}

	yHash := consent.IdentifierHash(w.ws.ID, "user_id", y.userID)
	if ds, err := p.store.PrivacyDecisions(ctx, w.ws.ID, [][32]byte{yHash}); err != nil || len(ds[yHash]) != 1 {
		t.Errorf("the other person's consent decisions after the deletion: %v, %v; want theirs kept", ds, err)
	}

	// Nothing in any table or Redis key refers to the person.
	dump = redisDump(t, p)
	for _, v := range x.values() {
		for _, where := range databaseHolds(t, p, cols, v) {
			t.Errorf("after the deletion, %q is still in %s", v, where)
		}
		for _, key := range redisHolds(dump, v) {
			t.Errorf("after the deletion, %q is still in Redis key %s", v, key)
		}
	}
	// The other person, and the namesake of the other workspace, are intact.
	for _, other := range []*privacyPerson{y, w.namesake} {
		for _, v := range other.values() {
			if len(databaseHolds(t, p, cols, v)) == 0 {
				t.Errorf("another person's %q was deleted", v)
			}
		}
		for _, v := range other.anons {
			if len(redisHolds(dump, v)) == 0 {
				t.Errorf("another person's live session (%s) was deleted", v)
			}
		}
	}
	var yEvents int
	testenv.Must(t, p.store.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1 AND (user_id = $2 OR anonymous_id = ANY($3))`,
		w.ws.ID, y.userID, y.anons).Scan(&yEvents), "count")
	if yEvents != y.events {
		t.Errorf("the other person has %d events, want %d", yEvents, y.events)
	}

	// Suppressions: hashes of the four identifiers, in force.
	for _, id := range []struct{ kind, value string }{
		{"anonymous_id", x.anons[0]}, {"anonymous_id", x.anons[1]}, {"user_id", x.userID}, {"email", x.email},
	} {
		got, err := p.store.Suppressed(ctx, w.ws.ID, id.kind, id.value)
		testenv.Must(t, err, "suppressed")
		if !got {
			t.Errorf("the deleted person's %s is not suppressed", id.kind)
		}
	}
	if got, _ := p.store.Suppressed(ctx, w.ws.ID, "user_id", y.userID); got {
		t.Error("the other person is suppressed")
	}

	// The request and the completion are in the audit log.
	var audits []string
	rows, err := p.store.Pool().Query(ctx, `SELECT action || ' ' || actor_type FROM audit_log WHERE target_id = $1 ORDER BY id`, job.ID)
	testenv.Must(t, err, "audit")
	audits, err = pgx.CollectRows(rows, pgx.RowTo[string])
	testenv.Must(t, err, "audit")
	if !slices.Equal(audits, []string{"deletion.request admin", "deletion.done system"}) {
		t.Errorf("audit records of the job: %v", audits)
	}

	// A second request finds nobody.
	w.owner.expect(http.StatusNotFound, "not_found", "DELETE", "/workspaces/shop/profiles/"+x.profile, nil)
	w.owner.expect(http.StatusNotFound, "not_found", "DELETE", "/workspaces/shop/profiles?user_id="+x.userID, nil)
}

// TestExportProfileHoldsEverything exports a person (by the id of the
// profile merged away) and finds everything seeded.
func TestExportProfileHoldsEverything(t *testing.T) {
	w := newPrivacyWorld(t)
	x := w.x
	r := w.owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles/"+x.merged+"/export", nil, nil)
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="profile-`+x.profile+`.json"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	var out struct {
		WorkspaceID string `json:"workspace_id"`
		Profile     struct {
			ID         string
			Identities []struct{ Kind, Value string }
			Traits     map[string]struct {
				Value     json.RawMessage
				MessageID string `json:"message_id"`
			}
			Consent map[string]struct {
				Granted   bool
				MessageID string `json:"message_id"`
			}
		}
		MergedProfiles []string `json:"merged_profiles"`
		Merges         []struct{ Survivor, Absorbed string }
		Sessions       []struct{ ID string }
		PageViews      []struct {
			MessageID string `json:"message_id"`
		} `json:"page_views"`
		Orders []struct {
			OrderID string `json:"order_id"`
		}
		Events []struct {
			MessageID string `json:"message_id"`
		}
		Truncated bool `json:"events_truncated"`
	}
	r.decode(t, &out)
	if out.Profile.ID != x.profile || !slices.Equal(out.MergedProfiles, []string{x.merged}) || len(out.Merges) != 1 ||
		out.Merges[0].Absorbed != x.merged {
		t.Errorf("profile %s, merged %v, merges %+v; want %s absorbing %s", out.Profile.ID, out.MergedProfiles, out.Merges, x.profile, x.merged)
	}
	var ids []string
	for _, id := range out.Profile.Identities {
		ids = append(ids, id.Kind+":"+id.Value)
	}
	slices.Sort(ids)
	wantIDs := []string{"anonymous_id:" + x.anons[0], "anonymous_id:" + x.anons[1], "email:" + x.email, "user_id:" + x.userID}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("identities %v, want %v", ids, wantIDs)
	}
	if c := out.Profile.Consent["analytics"]; !c.Granted || c.MessageID == "" {
		t.Errorf("consent with its stamp: %+v", out.Profile.Consent)
	}
	if tr := out.Profile.Traits["name"]; string(tr.Value) != `"xena Doe"` || tr.MessageID == "" {
		t.Errorf("trait name with its stamp: %+v", out.Profile.Traits)
	}
	var sessions []string
	for _, s := range out.Sessions {
		sessions = append(sessions, s.ID)
	}
	slices.Sort(sessions)
	if !slices.Equal(sessions, slices.Sorted(slices.Values(x.sessions))) {
		t.Errorf("sessions %v, want %v", sessions, x.sessions)
	}
	if len(out.PageViews) != 2 || len(out.Orders) != 1 || out.Orders[0].OrderID != x.orderID || len(out.Events) != x.events || out.Truncated {
		t.Errorf("%d page views, orders %+v, %d events (truncated %v); want 2, [%s], %d", len(out.PageViews), out.Orders,
			len(out.Events), out.Truncated, x.orderID, x.events)
	}
	for _, e := range out.Events {
		if !strings.HasPrefix(e.MessageID, "xena-") {
			t.Errorf("the export holds another person's event %s", e.MessageID)
		}
	}
	for _, v := range slices.Concat(w.y.values(), w.namesake.values()) {
		if strings.Contains(string(r.body), v) {
			t.Errorf("the export holds another person's %q", v)
		}
	}
}

// TestPrivacyBadInputAndRoles checks the answers to malformed requests,
// unknown and foreign ids, and callers without the right.
func TestPrivacyBadInputAndRoles(t *testing.T) {
	w := newPrivacyWorld(t)
	p, owner := w.p, w.owner
	ghost := "00000000-0000-4000-8000-00000000beef"
	viewer := p.member("privacy", "viewer@privacy.test", "viewer")
	member := p.member("privacy", "member@privacy.test", "member")
	admin := p.member("privacy", "admin@privacy.test", "admin")
	readKey := p.withKey(owner.apiKey("shop", "reader", "read", "write").Key)
	adminKey := p.withKey(owner.apiKey("shop", "admin", "admin").Key)
	otherKey := p.withKey(owner.apiKey("elsewhere", "admin elsewhere", "admin").Key)

	t.Run("malformed", func(t *testing.T) {
		o := owner.in(t)
		for _, tc := range []struct {
			name, method, path string
			body               any
			field              string
		}{
			{"profile id not a UUID", "DELETE", "/workspaces/shop/profiles/not-a-uuid", nil, "profile_id"},
			{"export id not a UUID", "GET", "/workspaces/shop/profiles/not-a-uuid/export", nil, "profile_id"},
			{"job id not a UUID", "GET", "/workspaces/shop/deletions/42", nil, "job_id"},
			{"no identity", "DELETE", "/workspaces/shop/profiles", nil, "identity"},
			{"two identities", "DELETE", "/workspaces/shop/profiles?user_id=a&email=b@c.d", nil, "email"},
			{"empty identity", "DELETE", "/workspaces/shop/profiles?user_id=", nil, "user_id"},
			{"range without body", "POST", "/workspaces/shop/deletions", nil, "body"},
			{"range missing from", "POST", "/workspaces/shop/deletions", map[string]any{"to": "2026-01-01T00:00:00Z"}, "from"},
			{"range missing to", "POST", "/workspaces/shop/deletions", map[string]any{"from": "2026-01-01T00:00:00Z"}, "to"},
			{"range from not a time", "POST", "/workspaces/shop/deletions", map[string]any{"from": "yesterday", "to": "2026-01-01T00:00:00Z"}, "from"},
			{"range from after to", "POST", "/workspaces/shop/deletions",
				map[string]any{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"},
			{"range empty", "POST", "/workspaces/shop/deletions",
				map[string]any{"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"},
			{"range unknown field", "POST", "/workspaces/shop/deletions",
				map[string]any{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "profile": "x"}, "profile"},
			{"range from a number", "POST", "/workspaces/shop/deletions", map[string]any{"from": 1, "to": "2026-01-02T00:00:00Z"}, "from"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o.in(t).do(tc.method, tc.path, tc.body).wantInvalid(t, tc.field)
			})
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path string
			c                  *client
		}{
			{"unknown profile", "DELETE", "/workspaces/shop/profiles/" + ghost, owner},
			{"unknown identity", "DELETE", "/workspaces/shop/profiles?anonymous_id=nobody", owner},
			{"another workspace's profile", "DELETE", "/workspaces/shop/profiles/" + w.namesake.profile, owner},
			{"another workspace's user", "DELETE", "/workspaces/shop/profiles?user_id=" + w.namesake.userID, owner},
			{"another workspace's export", "GET", "/workspaces/shop/profiles/" + w.namesake.profile + "/export", owner},
			{"unknown export", "GET", "/workspaces/shop/profiles/" + ghost + "/export", owner},
			{"unknown job", "GET", "/workspaces/shop/deletions/" + ghost, owner},
			{"a key of another workspace", "DELETE", "/workspaces/shop/profiles/" + w.y.profile, otherKey},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.c.in(t).expect(http.StatusNotFound, "not_found", tc.method, tc.path, nil)
			})
		}
	})

	t.Run("roles", func(t *testing.T) {
		rangeBody := map[string]any{"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"}
		for _, tc := range []struct {
			name string
			c    *client
			want int
		}{
			{"viewer", viewer, 403},
			{"member", member, 403},
			{"key with read and write", readKey, 403},
			{"admin", admin, 202},
			{"key with admin", adminKey, 202},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := tc.c.in(t)
				r := c.do("POST", "/workspaces/shop/deletions", rangeBody)
				if r.status != tc.want {
					t.Fatalf("POST deletions as %s → %d, want %d: %s", tc.name, r.status, tc.want, r.body)
				}
				for _, rd := range []struct {
					path    string
					allowed int
				}{{"/workspaces/shop/profiles/" + w.y.profile + "/export", 200}, {"/workspaces/shop/deletions/" + ghost, 404}} {
					want := map[bool]int{true: rd.allowed, false: 403}[tc.want == 202]
					if st := c.do("GET", rd.path, nil).status; st != want {
						t.Errorf("GET %s as %s → %d, want %d", rd.path, tc.name, st, want)
					}
				}
				if tc.want == 403 {
					for _, path := range []string{"/workspaces/shop/profiles/" + w.y.profile, "/workspaces/shop/profiles?user_id=" + w.y.userID} {
						if r := c.do("DELETE", path, nil); r.status != 403 || r.errorCode() != "forbidden" {
							t.Errorf("DELETE %s as %s → %d %s, want 403", path, tc.name, r.status, r.body)
						}
					}
				}
				if tc.want == 202 {
					waitJob(t, c, r.header.Get("Location"))
				}
			})
		}
		// The refused deletions deleted nothing.
		if _, err := p.store.WorkspaceProfile(context.Background(), w.ws, w.y.profile); err != nil {
			t.Errorf("after refused deletions the profile is gone: %v", err)
		}
	})
}

// TestDeletionJobsResumeAfterACrash leaves a job "running", as a process
// that died would, and checks that ResumeDeletions finishes it.
func TestDeletionJobsResumeAfterACrash(t *testing.T) {
	w := newPrivacyWorld(t)
	ctx := context.Background()
	job, err := w.p.store.CreateDeletionJob(ctx, store.Change{Actor: store.Actor{Type: "cli", Label: "test"}}, w.ws,
		store.NewDeletion{Kind: store.DeletionProfile, ProfileID: w.y.profile})
	testenv.Must(t, err, "create job")
	_, err = w.p.store.StartDeletionJob(ctx, w.ws.ID, job.ID)
	testenv.Must(t, err, "start job")
	testenv.Must(t, w.p.api.ResumeDeletions(ctx), "resume deletions")
	j := waitJob(t, w.owner, api.Base+"/workspaces/shop/deletions/"+job.ID)
	if j.Counts["profiles"] != 1 || j.Counts["events"] != int64(w.y.events) {
		t.Errorf("resumed job counts %v, want 1 profile and %d events", j.Counts, w.y.events)
	}
	if _, err := w.p.store.WorkspaceProfile(ctx, w.ws, w.y.profile); err == nil {
		t.Error("the resumed job left the profile")
	}
	// The done job keeps no profile id.
	var params string
	testenv.Must(t, w.p.store.Pool().QueryRow(ctx, `SELECT params::text FROM deletion_jobs WHERE id = $1`, job.ID).Scan(&params), "params")
	if strings.Contains(params, w.y.profile) || !strings.Contains(params, "profile_hash") {
		t.Errorf("a done job's params: %s, want a hash and no profile id", params)
	}
}
