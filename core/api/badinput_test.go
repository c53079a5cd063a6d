package api_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/core/api"
)

// bodyRoute is a route that reads a JSON body, with a valid body for it.
type bodyRoute struct {
	method, path string
	anonymous    bool
	// valid is a body the route accepts (fields as JSON values).
	valid map[string]any
	// stringFields are the body's string fields.
	stringFields []string
}

// badInputPlatform sets up an organization acme (owner ada, member bob),
// workspace shop with source web, and returns every route that reads a body.
func badInputPlatform(t *testing.T) (*platform, *client, []bodyRoute) {
	// Bad logins are part of the game here: do not let them be limited.
	p := newPlatform(t, func(o *api.Options) { o.MaxLoginFailuresPerEmail, o.MaxLoginFailuresPerIP = 1000, 1000 })
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	ada.source("shop", "web")
	bob := p.member("acme", "bob@example.com", "member")
	bobID := bob.adminID()
	return p, ada, []bodyRoute{
		{"POST", "/auth/login", true, map[string]any{"email": "ada@example.com", "password": "x"}, []string{"email", "password"}},
		{"POST", "/invitations/accept", true, map[string]any{"token": "eddy_inv_x", "name": "N", "password": "a long enough password"}, []string{"token", "name", "password"}},
		{"POST", "/organizations", false, map[string]any{"id": "neworg", "name": "New"}, []string{"id", "name"}},
		{"PATCH", "/organizations/acme", false, map[string]any{"name": "Acme"}, []string{"name"}},
		{"PATCH", "/organizations/acme/members/" + bobID, false, map[string]any{"role": "member"}, []string{"role"}},
		{"POST", "/organizations/acme/invitations", false, map[string]any{"email": "x@example.com", "role": "viewer"}, []string{"email", "role"}},
		{"POST", "/organizations/acme/workspaces", false, map[string]any{"id": "newws", "name": "New", "settings": map[string]any{"timezone": "UTC"}}, []string{"id", "name"}},
		{"PATCH", "/workspaces/shop", false, map[string]any{"name": "Shop", "settings": map[string]any{"currency": "USD"}}, []string{"name"}},
		{"POST", "/workspaces/shop/sources", false, map[string]any{"id": "newsrc", "name": "New"}, []string{"id", "name"}},
		{"PATCH", "/workspaces/shop/sources/web", false, map[string]any{"name": "Web"}, []string{"name"}},
		{"POST", "/workspaces/shop/api-keys", false, map[string]any{"name": "k", "scopes": []string{"read"}}, []string{"name"}},
	}
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	p, ada, routes := badInputPlatform(t)
	before := p.counts()

	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			c := ada.in(t)
			if rt.anonymous {
				c = p.anonymous().in(t)
			}
			with := func(k string, v any) map[string]any {
				m := maps.Clone(rt.valid)
				m[k] = v
				return m
			}
			field := rt.stringFields[len(rt.stringFields)-1]
			big := with(field, strings.Repeat("a", 70<<10))
			r := c.do(rt.method, rt.path, big)
			if r.status != http.StatusRequestEntityTooLarge || r.errorCode() != "body_too_large" {
				t.Fatalf("a 70 KiB body: %d %s", r.status, r.body)
			}
			// Padding counts too, not only what decodes.
			valid, _ := json.Marshal(rt.valid)
			padded := string(valid) + strings.Repeat(" ", 65<<10)
			if r := c.do(rt.method, rt.path, padded); r.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("a body padded past 64 KiB: %d %s", r.status, r.body)
			}

			for _, tc := range []struct {
				name, body, field string
			}{
				{"empty", "", "body"},
				{"blank", "  \n ", "body"},
				{"malformed", `{"name":`, "body"},
				{"not JSON", `name=x`, "body"},
				{"trailing comma", `{"name": "x",}`, "body"},
				{"array", `[]`, "body"},
				{"array of the object", "[" + string(valid) + "]", "body"},
				{"string", `"x"`, "body"},
				{"number", `42`, "body"},
				{"two objects", string(valid) + " {}", "body"},
				{"unknown field", string(valid[:len(valid)-1]) + `, "is_admin": true}`, "is_admin"},
				{"duplicate-looking unknown field", string(valid[:len(valid)-1]) + `, "Name ": "x"}`, "Name "},
			} {
				r := c.do(rt.method, rt.path, tc.body)
				if r.status != http.StatusBadRequest {
					t.Fatalf("%s body %q: %d %s", tc.name, tc.body, r.status, r.body)
				}
				r.wantInvalid(t, tc.field)
			}
			// JSON null decodes to nothing: the required fields are missing.
			// (Every field of PATCH /workspaces/{ws} is optional.)
			if rt.method != "PATCH" || rt.path != "/workspaces/shop" {
				if r := c.do(rt.method, rt.path, `null`); r.status != http.StatusBadRequest || r.errorCode() != "invalid_request" {
					t.Fatalf("null body: %d %s", r.status, r.body)
				}
			}
			// Names are matched exactly, not case-insensitively.
			c.do(rt.method, rt.path, with(strings.ToUpper(field), "x")).wantInvalid(t, strings.ToUpper(field))
			for _, f := range rt.stringFields {
				for _, v := range []any{42, true, []string{"x"}, map[string]any{"x": 1}} {
					c.do(rt.method, rt.path, with(f, v)).wantInvalid(t, f)
				}
			}
		})
	}
	// Wrong types deep inside, and for the non-string fields.
	for _, tc := range []struct {
		method, path string
		body         any
		field        string
	}{
		{"PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"session_timeout_minutes": "30"}}, "settings.session_timeout_minutes"},
		{"PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"timezone": 1}}, "settings.timezone"},
		{"PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"currency": []string{"EUR"}}}, "settings.currency"},
		{"PATCH", "/workspaces/shop", map[string]any{"settings": "UTC"}, "settings"},
		{"PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"locale": "fr"}}, "locale"},
		{"PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"TimeZone": "UTC"}}, "settings.TimeZone"},
		{"POST", "/organizations/acme/workspaces", map[string]any{"id": "x", "name": "X", "settings": []any{}}, "settings"},
		{"POST", "/workspaces/shop/api-keys", map[string]any{"name": "k", "scopes": "read"}, "scopes"},
		{"POST", "/workspaces/shop/api-keys", map[string]any{"name": "k", "scopes": map[string]any{"read": true}}, "scopes"},
	} {
		ada.do(tc.method, tc.path, tc.body).wantInvalid(t, tc.field)
	}
	// The bodies that were refused changed nothing.
	after := p.counts()
	if !maps.Equal(before, after) {
		t.Fatalf("row counts changed: before %v, after %v", before, after)
	}
}

// injections are strings that would change a query built by pasting them in.
var injections = []string{
	`'; DROP TABLE workspaces; --`,
	`" OR 1=1 --`,
	`' OR '1'='1`,
	`\`,
	`\'; DELETE FROM admins; --`,
	`$1`,
	`$$ || (SELECT 1) || $$`,
	`%_%`,
	`Robert'); DROP TABLE organizations;--`,
	`1; SELECT pg_sleep(10)`,
	`*/ UNION SELECT password_hash FROM admins /*`,
}

func TestSQLMetacharacters(t *testing.T) {
	t.Parallel()
	p, ada, _ := badInputPlatform(t)
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/api-keys", map[string]any{"name": "k", "scopes": []string{"read"}}, nil)
	before := p.counts()

	// In ids, paths and filters, they are refused or find nothing.
	for _, s := range injections {
		esc := url.PathEscape(s)
		ada.do("POST", "/organizations", map[string]any{"id": s, "name": "X"}).wantInvalid(t, "id")
		ada.do("POST", "/organizations/acme/workspaces", map[string]any{"id": s, "name": "X"}).wantInvalid(t, "id")
		ada.do("POST", "/workspaces/shop/sources", map[string]any{"id": s}).wantInvalid(t, "id")
		ada.do("POST", "/organizations/acme/invitations", map[string]any{"email": s, "role": "viewer"}).wantInvalid(t, "email")
		ada.do("POST", "/organizations/acme/invitations", map[string]any{"email": "x@example.com", "role": s}).wantInvalid(t, "role")
		ada.do("POST", "/workspaces/shop/api-keys", map[string]any{"name": "k", "scopes": []string{s}}).wantInvalid(t, "scopes")
		ada.do("PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"timezone": s}}).wantInvalid(t, "settings.timezone")
		ada.do("PATCH", "/workspaces/shop", map[string]any{"settings": map[string]any{"currency": s}}).wantInvalid(t, "settings.currency")
		// (A "/" would make other paths, which TestPathIDsThatAreNotIDs tries.)
		if !strings.Contains(s, "/") {
			ada.do("PATCH", "/organizations/acme/members/"+esc, map[string]any{"role": "viewer"}).wantInvalid(t, "admin_id")
			ada.do("DELETE", "/organizations/acme/invitations/"+esc, nil).wantInvalid(t, "invitation_id")
			ada.do("GET", "/organizations/"+esc, nil).wantInvalid(t, "org")
			ada.do("GET", "/workspaces/"+esc, nil).wantInvalid(t, "ws")
			ada.do("GET", "/workspaces/"+esc+"/events", nil).wantInvalid(t, "ws")
			ada.do("GET", "/workspaces/shop/sources/"+esc, nil).wantInvalid(t, "src")
		}
		for _, q := range []string{"user_id", "anonymous_id", "event"} {
			var page struct{ Data []any }
			ada.must(http.StatusOK, "GET", "/workspaces/shop/events?"+q+"="+url.QueryEscape(s), nil, &page)
			if len(page.Data) != 0 {
				t.Fatalf("events?%s=%q found %d events", q, s, len(page.Data))
			}
		}
		var audit struct{ Data []any }
		ada.must(http.StatusOK, "GET", "/organizations/acme/audit-log?action="+url.QueryEscape(s), nil, &audit)
		if len(audit.Data) != 0 {
			t.Fatalf("audit-log?action=%q found %d entries", s, len(audit.Data))
		}
		ada.do("GET", "/organizations/acme/audit-log?workspace="+url.QueryEscape(s), nil).wantInvalid(t, "workspace")
		p.anonymous().expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login", map[string]any{"email": s, "password": s})
		p.anonymous().expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login", map[string]any{"email": "ada@example.com", "password": s})
		p.anonymous().expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept", map[string]any{"token": s})
		p.withKey(s).expect(http.StatusUnauthorized, "unauthenticated", "GET", "/workspaces/shop", nil)
	}
	if after := p.counts(); !maps.Equal(before, after) {
		t.Fatalf("row counts changed: before %v, after %v", before, after)
	}

	// In names, they are stored as they are and read back the same.
	for i, s := range injections {
		suffix := string(rune('a' + i))
		var org orgJSON
		ada.must(http.StatusOK, "PATCH", "/organizations/acme", map[string]any{"name": s}, &org)
		ada.must(http.StatusOK, "GET", "/organizations/acme", nil, &org)
		if org.Name != s {
			t.Fatalf("organization name %q read back as %q", s, org.Name)
		}
		var ws workspaceJSON
		ada.must(http.StatusCreated, "POST", "/organizations/acme/workspaces", map[string]any{"id": "ws-" + suffix, "name": s}, nil)
		ada.must(http.StatusOK, "GET", "/workspaces/ws-"+suffix, nil, &ws)
		if ws.Name != s {
			t.Fatalf("workspace name %q read back as %q", s, ws.Name)
		}
		ada.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"name": s}, &ws)
		if ws.Name != s {
			t.Fatalf("workspace rename %q read back as %q", s, ws.Name)
		}
		var src sourceCreated
		ada.must(http.StatusCreated, "POST", "/workspaces/shop/sources", map[string]any{"id": "src-" + suffix, "name": s}, nil)
		ada.must(http.StatusOK, "GET", "/workspaces/shop/sources/src-"+suffix, nil, &src)
		if src.Name != s {
			t.Fatalf("source name %q read back as %q", s, src.Name)
		}
		ada.must(http.StatusOK, "PATCH", "/workspaces/shop/sources/web", map[string]any{"name": s}, &src)
		if src.Name != s {
			t.Fatalf("source rename %q read back as %q", s, src.Name)
		}
		k := ada.apiKey("shop", s, "read")
		if k.Name != s {
			t.Fatalf("API key name %q came back as %q", s, k.Name)
		}
		// A new admin's name, through an invitation.
		var inv invitationJSON
		email := "inj-" + suffix + "@example.com"
		ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": email, "role": "viewer"}, &inv)
		var acc acceptJSON
		p.anonymous().must(http.StatusOK, "POST", "/invitations/accept", map[string]any{"token": inv.Token, "name": s, "password": "a long enough password " + s}, &acc)
		if acc.Admin.Name != s {
			t.Fatalf("admin name %q came back as %q", s, acc.Admin.Name)
		}
	}
	// The audit log keeps them verbatim too.
	var audit struct {
		Data []auditJSON
	}
	ada.must(http.StatusOK, "GET", "/organizations/acme/audit-log?action=organization.update&limit=1", nil, &audit)
	var after struct{ Name string }
	if len(audit.Data) != 1 || json.Unmarshal(audit.Data[0].After, &after) != nil || after.Name != injections[len(injections)-1] {
		t.Fatalf("audit entry %+v", audit.Data)
	}
	// An email with a quote is an email.
	var inv invitationJSON
	ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "o'brien@example.com", "role": "viewer"}, &inv)
	if inv.Email != "o'brien@example.com" {
		t.Fatalf("email %q", inv.Email)
	}
	// Every table is still there, with exactly what was added.
	n := len(injections)
	got := p.counts()
	for table, added := range map[string]int{"organizations": 0, "workspaces": n, "sources": n, "api_keys": n, "admins": n,
		"memberships": n, "invitations": n + 1} {
		if got[table] != before[table]+added {
			t.Errorf("%s: %d rows, want %d + %d", table, got[table], before[table], added)
		}
	}
}

func TestNamesRefuseControlCharacters(t *testing.T) {
	t.Parallel()
	p, ada, _ := badInputPlatform(t)
	inv := func() string {
		var i invitationJSON
		ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "ctl@example.com", "role": "viewer"}, &i)
		return i.Token
	}()
	before := p.counts()
	routes := []struct {
		method, path string
		body         func(name string) map[string]any
	}{
		{"POST", "/organizations", func(n string) map[string]any { return map[string]any{"id": "ctl", "name": n} }},
		{"PATCH", "/organizations/acme", func(n string) map[string]any { return map[string]any{"name": n} }},
		{"POST", "/organizations/acme/workspaces", func(n string) map[string]any { return map[string]any{"id": "ctl", "name": n} }},
		{"PATCH", "/workspaces/shop", func(n string) map[string]any { return map[string]any{"name": n} }},
		{"POST", "/workspaces/shop/sources", func(n string) map[string]any { return map[string]any{"id": "ctl", "name": n} }},
		{"PATCH", "/workspaces/shop/sources/web", func(n string) map[string]any { return map[string]any{"name": n} }},
		{"POST", "/workspaces/shop/api-keys", func(n string) map[string]any { return map[string]any{"name": n, "scopes": []string{"read"}} }},
		{"POST", "/invitations/accept", func(n string) map[string]any {
			return map[string]any{"token": inv, "name": n, "password": "a long enough password"}
		}},
	}
	for _, name := range []string{"\x00", "nul\x00inside", "line\nbreak", "tab\there", "carriage\rreturn", "\x1b[31mred", "del\x7f",
		"c1\u0085control", "bell\a", strings.Repeat("n", 201), strings.Repeat("é", 201), ""} {
		for _, rt := range routes {
			if name == "" && rt.path == "/workspaces/shop/sources" {
				continue // the name defaults to the id
			}
			r := ada.do(rt.method, rt.path, rt.body(name))
			if r.status != http.StatusBadRequest {
				t.Fatalf("%s %s with name %q: %d %s", rt.method, rt.path, name, r.status, r.body)
			}
			r.wantInvalid(t, "name")
		}
	}
	if after := p.counts(); !maps.Equal(before, after) {
		t.Fatalf("row counts changed: before %v, after %v", before, after)
	}
	// 200 characters, not bytes, is the limit; other scripts are welcome.
	for _, name := range []string{strings.Repeat("é", 200), "日本語の名前", "emoji 🚀", "Zoë & Łukasz"} {
		var ws workspaceJSON
		ada.must(http.StatusOK, "PATCH", "/workspaces/shop", map[string]any{"name": name}, &ws)
		if ws.Name != name {
			t.Fatalf("name %q came back as %q", name, ws.Name)
		}
	}
	// Source names default to the id, so an empty name is fine there.
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/sources", map[string]any{"id": "noname", "name": ""}, nil)

	// NUL and invalid UTF-8 elsewhere: named, never a 500.
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		method, path string
		body         any
		field        string
	}{
		{"POST", "/auth/login", map[string]any{"email": "ada\x00@example.com", "password": "x"}, "email"},
		{"GET", "/workspaces/shop/events?user_id=%00", nil, "user_id"},
		{"GET", "/workspaces/shop/events?anonymous_id=a%00b", nil, "anonymous_id"},
		{"GET", "/workspaces/shop/events?event=%ff%fe", nil, "event"},
		{"GET", "/organizations/acme/audit-log?action=%00", nil, "action"},
		{"GET", "/organizations/acme/audit-log?action=%c3%28", nil, "action"},
		{"GET", "/organizations?cursor=" + b64(`"\u0000"`), nil, "cursor"},
		{"GET", "/organizations/acme/members?cursor=" + b64(`"a\u0000"`), nil, "cursor"},
		{"GET", "/organizations/acme/workspaces?cursor=" + b64(`"\u0000"`), nil, "cursor"},
		{"GET", "/organizations/acme/invitations?cursor=" + b64(`"\u0000"`), nil, "cursor"},
		{"GET", "/workspaces/shop/sources?cursor=" + b64(`"\u0000"`), nil, "cursor"},
		{"GET", "/workspaces/shop/api-keys?cursor=" + b64(`"\u0000"`), nil, "cursor"},
		{"GET", "/workspaces/shop/events?cursor=" + b64(`{"t":"2026-01-01T00:00:00Z","m":"\u0000"}`), nil, "cursor"},
		{"POST", "/organizations/acme/invitations", map[string]any{"email": "\"a\x00\"@example.com", "role": "viewer"}, "email"},
	} {
		ada.do(tc.method, tc.path, tc.body).wantInvalid(t, tc.field)
	}
	// A NUL in a secret finds nothing.
	p.anonymous().expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept", map[string]any{"token": "eddy_inv_\x00"})
	p.anonymous().expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login", map[string]any{"email": "ada@example.com", "password": "\x00"})
}

func TestPathIDsThatAreNotIDs(t *testing.T) {
	t.Parallel()
	p, ada, _ := badInputPlatform(t)
	k := ada.apiKey("shop", "k", "read")
	hc := plain()
	long := strings.Repeat("a", 2000)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/workspaces/NOT%20AN%20ID"},
		{"GET", "/workspaces/Shop"},
		{"GET", "/workspaces/-shop"},
		{"GET", "/workspaces/" + long},
		{"GET", "/workspaces/" + long + "/sources"},
		{"GET", "/workspaces/shop/sources/" + long},
		{"GET", "/organizations/" + long},
		{"DELETE", "/workspaces/x/api-keys/not-a-uuid"},
		{"DELETE", "/workspaces/shop/api-keys/not-a-uuid"},
		{"DELETE", "/workspaces/shop/api-keys/" + strings.ReplaceAll(k.ID, "-", "")},
		{"DELETE", "/workspaces/shop/api-keys/{" + k.ID + "}"},
		{"DELETE", "/workspaces/shop/api-keys/urn:uuid:" + k.ID},
		{"DELETE", "/workspaces/shop/api-keys/" + k.ID + "0"},
		{"DELETE", "/workspaces/shop/api-keys/" + long},
		{"DELETE", "/workspaces/shop/api-keys/00000000-0000-0000-0000-000000000000"},
		{"DELETE", "/organizations/acme/invitations/%27%20OR%201=1%20--"},
		{"DELETE", "/organizations/acme/members/..%2F..%2Fadmins"},
		{"PATCH", "/organizations/acme/members/" + long},
		{"GET", "/workspaces/..%2F..%2Fetc%2Fpasswd"},
		{"GET", "/workspaces/../organizations"},
		{"GET", "/workspaces/shop/sources/../../../organizations/acme"},
		{"GET", "/workspaces/./shop"},
		{"GET", "/workspaces/shop%00"},
		{"GET", "/workspaces/shop%0d%0aX-Injected:%201"},
		{"GET", "/workspaces/%e2%80%ae"},
		{"GET", "/workspaces/%ff"},
		{"GET", "/workspaces//sources"},
		{"GET", "/workspaces/shop/sources/web/rotate"},
		{"POST", "/workspaces/shop/sources/nope/rotate"},
		{"GET", "/organizations/acme/nothing"},
		{"GET", "/nothing"},
		{"PUT", "/workspaces/shop"},
	} {
		req, err := http.NewRequest(tc.method, p.srv.URL+api.Base+tc.path, strings.NewReader(`{"role": "viewer"}`))
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", ada.csrf)
		req.AddCookie(&http.Cookie{Name: "eddy_session", Value: ada.sessionCookie()})
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e apiError
		if (resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound) || json.Unmarshal(body, &e) != nil ||
			(e.Error.Code != "invalid_request" && e.Error.Code != "not_found") {
			t.Errorf("%s %s: %d %s, want a 400 or 404 error", tc.method, tc.path, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no X-Request-Id", tc.method, tc.path)
		}
		if resp.Header.Get("X-Injected") != "" {
			t.Errorf("%s %s: a header was injected", tc.method, tc.path)
		}
	}
}
