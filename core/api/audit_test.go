package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

type auditJSON struct {
	ID    string `json:"id"`
	Actor struct {
		Type  string  `json:"type"`
		ID    *string `json:"id"`
		Label string  `json:"label"`
	} `json:"actor"`
	Action string `json:"action"`
	Target struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"target"`
	WorkspaceID *string         `json:"workspace_id"`
	Before      json.RawMessage `json:"before"`
	After       json.RawMessage `json:"after"`
	RequestID   *string         `json:"request_id"`
	IP          *string         `json:"ip"`
}

// auditLog reads every page of an organization's audit log with query q.
func auditLog(t *testing.T, c *client, org, q string) []auditJSON {
	t.Helper()
	var out []auditJSON
	cursor := ""
	for range 100 {
		path := "/organizations/" + org + "/audit-log?" + q
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Data       []auditJSON `json:"data"`
			NextCursor string      `json:"next_cursor"`
		}
		c.must(http.StatusOK, "GET", path, nil, &page)
		out = append(out, page.Data...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	t.Fatal("the audit log does not end")
	return nil
}

// wantAudit is what one change must have left in the audit log.
type wantAudit struct {
	action, targetType, targetID, workspace string
	actorType, actorLabel                   string
	before, after                           bool
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	adaID := ada.adminID()

	want := map[string]wantAudit{} // by request id
	var secrets []string
	n := 0
	// change makes a change with its own request id and notes what the
	// audit log must say about it.
	change := func(c *client, status int, method, path string, body any, w wantAudit, out any) response {
		t.Helper()
		n++
		id := fmt.Sprintf("test-req-%02d", n)
		r := c.send(method, path, body, map[string]string{"X-Request-Id": id})
		if r.status != status {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
		if got := r.header.Get("X-Request-Id"); got != id {
			t.Fatalf("X-Request-Id %q, want the caller's %q", got, id)
		}
		if out != nil {
			r.decode(t, out)
		}
		if w.actorType == "" {
			w.actorType, w.actorLabel = "admin", "ada@example.com"
		}
		want[id] = w
		return r
	}
	admin := func(action, typ, id, ws string, before, after bool) wantAudit {
		return wantAudit{action: action, targetType: typ, targetID: id, workspace: ws, before: before, after: after,
			actorType: "admin", actorLabel: "ada@example.com"}
	}

	change(ada, 201, "POST", "/organizations", map[string]any{"id": "acme", "name": "Acme"}, admin("organization.create", "organization", "acme", "", false, true), nil)
	change(ada, 200, "PATCH", "/organizations/acme", map[string]any{"name": "Acme 2"}, admin("organization.update", "organization", "acme", "", true, true), nil)
	change(ada, 201, "POST", "/organizations/acme/workspaces", map[string]any{"id": "shop", "name": "Shop"}, admin("workspace.create", "workspace", "shop", "shop", false, true), nil)
	change(ada, 200, "PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"currency": "EUR"}}, admin("workspace.update", "workspace", "shop", "shop", true, true), nil)
	var web, rotated sourceCreated
	change(ada, 201, "POST", "/workspaces/shop/sources", map[string]any{"id": "web"}, admin("source.create", "source", "web", "shop", false, true), &web)
	change(ada, 200, "PATCH", "/workspaces/shop/sources/web", map[string]any{"name": "Web"}, admin("source.update", "source", "web", "shop", true, true), nil)
	change(ada, 200, "POST", "/workspaces/shop/sources/web/rotate", nil, admin("source.rotate", "source", "web", "shop", true, true), &rotated)
	var key apiKeyCreated
	r := change(ada, 201, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "ci", "scopes": []string{"write", "admin"}}, wantAudit{}, &key)
	want[r.header.Get("X-Request-Id")] = admin("api_key.create", "api_key", key.ID, "shop", false, true)
	prog := p.withKey(key.Key)
	keyLabel := "ci (" + key.Prefix + "…)"
	var ios sourceCreated
	change(prog, 201, "POST", "/workspaces/shop/sources", map[string]any{"id": "ios"},
		wantAudit{"source.create", "source", "ios", "shop", "api_key", keyLabel, false, true}, &ios)
	change(prog, 204, "DELETE", "/workspaces/shop/sources/ios", nil,
		wantAudit{"source.revoke", "source", "ios", "shop", "api_key", keyLabel, true, true}, nil)
	change(ada, 204, "DELETE", "/workspaces/shop/api-keys/"+key.ID, nil, admin("api_key.revoke", "api_key", key.ID, "shop", true, false), nil)
	var inv, inv2 invitationJSON
	r = change(ada, 201, "POST", "/organizations/acme/invitations", map[string]any{"email": "new@example.com", "role": "viewer"}, wantAudit{}, &inv)
	want[r.header.Get("X-Request-Id")] = admin("invitation.create", "invitation", inv.ID, "", false, true)
	anon := p.anonymous()
	newPassword := "the new admin's password"
	change(anon, 200, "POST", "/invitations/accept", map[string]any{"token": inv.Token, "name": "New", "password": newPassword},
		wantAudit{"invitation.accept", "invitation", inv.ID, "", "admin", "new@example.com", false, true}, nil)
	var newMember struct{ Data []memberJSON }
	ada.must(http.StatusOK, "GET", "/organizations/acme/members", nil, &newMember)
	newID := ""
	for _, m := range newMember.Data {
		if m.Email == "new@example.com" {
			newID = m.AdminID
		}
	}
	change(ada, 200, "PATCH", "/organizations/acme/members/"+newID, map[string]any{"role": "member"}, admin("member.update", "admin", "new@example.com", "", true, true), nil)
	r = change(ada, 201, "POST", "/organizations/acme/invitations", map[string]any{"email": "other@example.com", "role": "admin"}, wantAudit{}, &inv2)
	want[r.header.Get("X-Request-Id")] = admin("invitation.create", "invitation", inv2.ID, "", false, true)
	change(ada, 204, "DELETE", "/organizations/acme/invitations/"+inv2.ID, nil, admin("invitation.revoke", "invitation", inv2.ID, "", true, false), nil)
	change(ada, 204, "DELETE", "/organizations/acme/members/"+newID, nil, admin("member.remove", "admin", "new@example.com", "", true, false), nil)
	change(ada, 201, "POST", "/organizations/acme/workspaces", map[string]any{"id": "tmp", "name": "Tmp"}, admin("workspace.create", "workspace", "tmp", "tmp", false, true), nil)
	change(ada, 204, "DELETE", "/workspaces/tmp", nil, admin("workspace.delete", "workspace", "tmp", "tmp", true, false), nil)
	secrets = append(secrets, web.WriteKey, rotated.WriteKey, ios.WriteKey, key.Key, inv.Token, inv2.Token, newPassword,
		passwordOf("ada@example.com"), ada.sessionCookie(), ada.csrf)

	// Refused changes leave nothing.
	ada.expect(http.StatusConflict, "conflict", "POST", "/organizations", map[string]any{"id": "acme", "name": "Again"})
	ada.do("PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"currency": "x"}}).wantInvalid(t, "settings.currency")

	// Without a request id of its own, or with one that is not sane, the
	// request gets one, which the audit log keeps.
	for _, sent := range []string{"", "has spaces in it", strings.Repeat("x", 65), "quote\"d"} {
		r := ada.send("PATCH", "/workspaces/shop", map[string]any{"name": "Shop " + strconv.Itoa(len(sent))}, map[string]string{"X-Request-Id": sent})
		id := r.header.Get("X-Request-Id")
		if r.status != http.StatusOK || id == "" || id == sent {
			t.Fatalf("with X-Request-Id %q: %d, X-Request-Id %q", sent, r.status, id)
		}
		want[id] = admin("workspace.update", "workspace", "shop", "shop", true, true)
	}

	entries := auditLog(t, ada, "acme", "limit=200")
	if len(entries) != len(want) {
		var got []string
		for _, e := range entries {
			got = append(got, e.Action)
		}
		t.Fatalf("%d audit entries %v, want %d", len(entries), got, len(want))
	}
	t.Logf("%d audit entries", len(entries))
	prevID := int64(1 << 62)
	for _, e := range entries {
		if e.RequestID == nil {
			t.Fatalf("entry %s has no request id", e.ID)
		}
		w, ok := want[*e.RequestID]
		if !ok {
			t.Fatalf("entry %+v has request id %q of no change", e, *e.RequestID)
		}
		delete(want, *e.RequestID)
		ws := ""
		if e.WorkspaceID != nil {
			ws = *e.WorkspaceID
		}
		if e.Action != w.action || e.Target.Type != w.targetType || e.Target.ID != w.targetID || ws != w.workspace ||
			e.Actor.Type != w.actorType || e.Actor.Label != w.actorLabel {
			t.Errorf("request %s: entry %s %s:%s in %q by %s %q, want %+v", *e.RequestID, e.Action, e.Target.Type, e.Target.ID, ws,
				e.Actor.Type, e.Actor.Label, w)
		}
		if (string(e.Before) != "null") != w.before || (string(e.After) != "null") != w.after {
			t.Errorf("request %s (%s): before %s, after %s; want before %v, after %v", *e.RequestID, e.Action, e.Before, e.After, w.before, w.after)
		}
		if e.Actor.Type == "admin" && e.Actor.Label == "ada@example.com" && (e.Actor.ID == nil || *e.Actor.ID != adaID) {
			t.Errorf("request %s: actor id %v, want ada's %s", *e.RequestID, e.Actor.ID, adaID)
		}
		if e.Actor.Type == "api_key" && (e.Actor.ID == nil || *e.Actor.ID != key.ID) {
			t.Errorf("request %s: actor id %v, want the key's %s", *e.RequestID, e.Actor.ID, key.ID)
		}
		if e.IP == nil || *e.IP != "127.0.0.1" {
			t.Errorf("request %s: ip %v", *e.RequestID, e.IP)
		}
		id, err := strconv.ParseInt(e.ID, 10, 64)
		if err != nil || id >= prevID {
			t.Errorf("entry ids %d then %s: want newest first", prevID, e.ID)
		}
		prevID = id
	}
	// What the updates recorded.
	for _, e := range entries {
		switch e.Action {
		case "workspace.update":
			if e.RequestID != nil && *e.RequestID == "test-req-04" &&
				(!strings.Contains(string(e.Before), `"USD"`) || !strings.Contains(string(e.After), `"EUR"`)) {
				t.Errorf("workspace.update before %s after %s", e.Before, e.After)
			}
		case "source.rotate":
			if !strings.Contains(string(e.Before), web.WriteKeyPrefix) || !strings.Contains(string(e.After), rotated.WriteKeyPrefix) {
				t.Errorf("source.rotate before %s after %s: want the old and new prefixes", e.Before, e.After)
			}
		case "member.update":
			if !strings.Contains(string(e.Before), `"viewer"`) || !strings.Contains(string(e.After), `"member"`) {
				t.Errorf("member.update before %s after %s", e.Before, e.After)
			}
		}
	}

	// No secret, and no hash of one, anywhere in the audit log: not in what
	// the API shows, not in the table.
	ctx := context.Background()
	var hashes []string
	rows, err := p.store.Pool().Query(ctx, `
		SELECT password_hash FROM admins UNION ALL SELECT key_hash FROM api_keys
		UNION ALL SELECT token_hash FROM invitations UNION ALL SELECT write_key_hash FROM sources
		UNION ALL SELECT token_hash FROM admin_sessions`)
	testenv.Must(t, err, "read hashes")
	for rows.Next() {
		var h string
		testenv.Must(t, rows.Scan(&h), "scan hash")
		hashes = append(hashes, h)
	}
	testenv.Must(t, rows.Err(), "read hashes")
	var table string
	testenv.Must(t, p.store.Pool().QueryRow(ctx, `SELECT string_agg(a::text, E'\n') FROM audit_log a`).Scan(&table), "read audit_log")
	shown := string(ada.must(http.StatusOK, "GET", "/organizations/acme/audit-log?limit=200", nil, nil).body)
	for _, s := range append(secrets, hashes...) {
		if s == "" {
			t.Fatal("a secret is empty")
		}
		if strings.Contains(table, s) || strings.Contains(shown, s) {
			t.Errorf("the audit log holds the secret %q", s)
		}
	}
	for _, word := range []string{"password", "key_hash", "token_hash", "write_key\"", "argon2"} {
		if strings.Contains(table, word) {
			t.Errorf("the audit log mentions %q", word)
		}
	}

	// Filters.
	for _, e := range auditLog(t, ada, "acme", "workspace=shop") {
		if e.WorkspaceID == nil || *e.WorkspaceID != "shop" {
			t.Fatalf("workspace=shop gave %+v", e)
		}
	}
	if got := auditLog(t, ada, "acme", "workspace=shop"); len(got) != 13 {
		t.Fatalf("workspace=shop: %d entries, want 13", len(got))
	}
	if got := auditLog(t, ada, "acme", "action=source.rotate"); len(got) != 1 || *got[0].RequestID != "test-req-07" {
		t.Fatalf("action=source.rotate: %+v", got)
	}
	if got := auditLog(t, ada, "acme", "action=source.create&workspace=shop"); len(got) != 2 {
		t.Fatalf("two filters: %d entries", len(got))
	}
	if got := auditLog(t, ada, "acme", "action=nothing"); len(got) != 0 {
		t.Fatalf("action=nothing: %+v", got)
	}
	ada.do("GET", "/organizations/acme/audit-log?workspace=NOT%20VALID", nil).wantInvalid(t, "workspace")
	ada.do("GET", "/organizations/acme/audit-log?action="+strings.Repeat("a", 101), nil).wantInvalid(t, "action")
	ada.do("GET", "/organizations/acme/audit-log?cursor=abc", nil).wantInvalid(t, "cursor")
	ada.do("GET", "/organizations/acme/audit-log?limit=0", nil).wantInvalid(t, "limit")

	// Pages of 3 give the same entries in the same order.
	var all, paged []string
	for _, e := range entries {
		all = append(all, e.ID)
	}
	for _, e := range auditLog(t, ada, "acme", "limit=3") {
		paged = append(paged, e.ID)
	}
	if !slices.Equal(all, paged) {
		t.Fatalf("paged %v, want %v", paged, all)
	}
}
