package api_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// TestSecretsStaySecret runs a whole session (log in, set up a workspace,
// issue and rotate keys, invite someone who accepts and logs in) and checks
// that no secret reaches the logs, that each appears in the one response
// that issues it and no other, and that no stored hash ever leaves.
func TestSecretsStaySecret(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	rec := &recorder{}
	// issued notes where each secret may appear: the index of the response
	// that issued it.
	secrets := map[string]string{} // name -> value
	issued := map[string][]int{}   // name -> responses allowed to hold it
	last := func() int { return len(rec.all()) - 1 }
	secret := func(name, value string, allowedIn ...int) {
		t.Helper()
		if value == "" {
			t.Fatalf("secret %s is empty", name)
		}
		secrets[name] = value
		issued[name] = append(issued[name], allowedIn...)
	}

	// ada logs in through the recorder.
	adaPassword := passwordOf("ada@example.com")
	p.newAdmin("ada@example.com")
	ada := p.anonymous().record(rec)
	var login struct {
		CSRFToken string `json:"csrf_token"`
	}
	ada.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "ada@example.com", "password": adaPassword}, &login)
	ada.csrf = login.CSRFToken
	secret("ada's password", adaPassword)
	secret("ada's session", ada.sessionCookie(), last())
	secret("ada's CSRF token", ada.csrf, last())

	ada.org("acme")
	ada.workspace("acme", "shop")
	web := ada.source("shop", "web")
	secret("web's first write key", web.WriteKey, last())
	var rotated sourceCreated
	ada.must(http.StatusOK, "POST", "/workspaces/shop/sources/web/rotate", nil, &rotated)
	secret("web's second write key", rotated.WriteKey, last())
	key := ada.apiKey("shop", "ci", "read", "write", "admin")
	secret("API key", key.Key, last())

	prog := p.withKey(key.Key).record(rec)
	prog.must(http.StatusOK, "GET", "/workspaces/shop", nil, nil)
	ios := prog.source("shop", "ios")
	secret("ios's write key", ios.WriteKey, last())
	// A secret in a query string is not logged either.
	prog.must(http.StatusOK, "GET", "/workspaces/shop/events?user_id="+url.QueryEscape(key.Key), nil, nil)

	var inv invitationJSON
	ada.must(http.StatusCreated, "POST", "/organizations/acme/invitations", map[string]any{"email": "new@example.com", "role": "member"}, &inv)
	secret("invitation token", inv.Token, last())
	newPassword := "new admin's secret password"
	secret("new admin's password", newPassword)
	p.anonymous().record(rec).must(http.StatusOK, "POST", "/invitations/accept",
		map[string]any{"token": inv.Token, "name": "New", "password": newPassword}, nil)

	newcomer := p.anonymous().record(rec)
	wrongPassword := "a wrong guess at the password"
	secret("wrong password", wrongPassword)
	newcomer.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login", map[string]any{"email": "new@example.com", "password": wrongPassword})
	newcomer.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "new@example.com", "password": newPassword}, &login)
	newcomer.csrf = login.CSRFToken
	secret("new admin's session", newcomer.sessionCookie(), last())
	secret("new admin's CSRF token", newcomer.csrf, last())

	// /auth/me hands out the CSRF token again, by design.
	newcomer.must(http.StatusOK, "GET", "/auth/me", nil, nil)
	issued["new admin's CSRF token"] = append(issued["new admin's CSRF token"], last())

	// Every read after the fact.
	for _, path := range []string{
		"/organizations", "/organizations/acme", "/organizations/acme/members", "/organizations/acme/invitations",
		"/organizations/acme/workspaces", "/organizations/acme/audit-log", "/workspaces/shop", "/workspaces/shop/sources",
		"/workspaces/shop/sources/web", "/workspaces/shop/sources/ios", "/workspaces/shop/api-keys", "/workspaces/shop/events",
	} {
		ada.must(http.StatusOK, "GET", path, nil, nil)
	}
	prog.must(http.StatusOK, "GET", "/workspaces/shop/api-keys", nil, nil)
	prog.must(http.StatusOK, "GET", "/workspaces/shop/sources", nil, nil)
	// Errors, too.
	p.anonymous().record(rec).expect(http.StatusNotFound, "not_found", "POST", "/invitations/accept",
		map[string]any{"token": inv.Token, "name": "Again", "password": newPassword})
	ada.expect(http.StatusConflict, "conflict", "POST", "/workspaces/shop/sources", map[string]any{"id": "web"})
	newcomer.must(http.StatusNoContent, "POST", "/auth/logout", nil, nil)
	ada.must(http.StatusNoContent, "DELETE", "/workspaces/shop/api-keys/"+key.ID, nil, nil)
	prog.expect(http.StatusUnauthorized, "unauthenticated", "GET", "/workspaces/shop", nil)

	// The hashes stored for all of these.
	ctx := context.Background()
	hashes := map[string]string{}
	rows, err := p.store.Pool().Query(ctx, `
		SELECT 'password_hash of ' || email, password_hash FROM admins
		UNION ALL SELECT 'key_hash of ' || name, key_hash FROM api_keys
		UNION ALL SELECT 'token_hash of ' || email, token_hash FROM invitations
		UNION ALL SELECT 'write_key_hash of ' || slug, write_key_hash FROM sources
		UNION ALL SELECT 'session token_hash', token_hash FROM admin_sessions`)
	testenv.Must(t, err, "read hashes")
	for rows.Next() {
		var name, h string
		testenv.Must(t, rows.Scan(&name, &h), "scan")
		hashes[name] = h
	}
	testenv.Must(t, rows.Err(), "read hashes")
	if len(hashes) < 7 {
		t.Fatalf("only %d hashes stored: %v", len(hashes), hashes)
	}

	responses := rec.all()
	if len(responses) < 30 {
		t.Fatalf("recorded only %d responses", len(responses))
	}
	for i, r := range responses {
		text := r.header + r.body
		for name, s := range secrets {
			if strings.Contains(text, s) && !slices.Contains(issued[name], i) {
				t.Errorf("%s %s → %d holds %s: %s", r.method, r.url, r.status, name, r.body)
			}
		}
		for name, h := range hashes {
			if strings.Contains(text, h) {
				t.Errorf("%s %s → %d holds the %s: %s", r.method, r.url, r.status, name, r.body)
			}
		}
		for _, word := range []string{"password_hash", "key_hash", "token_hash", "argon2id"} {
			if strings.Contains(r.body, word) {
				t.Errorf("%s %s → %d mentions %s: %s", r.method, r.url, r.status, word, r.body)
			}
		}
	}
	// Each issuing response did hold its secret (the check above is not
	// vacuous).
	for name, idx := range issued {
		if len(idx) > 0 && !strings.Contains(responses[idx[0]].header+responses[idx[0]].body, secrets[name]) {
			t.Errorf("response %d (%s %s) does not hold %s", idx[0], responses[idx[0]].method, responses[idx[0]].url, name)
		}
	}

	logs := p.logs.String()
	if !strings.Contains(logs, `"api request"`) || !strings.Contains(logs, "/workspaces/:ws/sources/:src/rotate") {
		t.Fatalf("the API logged nothing: %q", logs)
	}
	for name, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %s", name)
		}
	}
	for name, h := range hashes {
		if strings.Contains(logs, h) {
			t.Errorf("the logs hold the %s", name)
		}
	}
	for _, word := range []string{"new@example.com", "ada@example.com"} {
		if strings.Contains(logs, word) {
			t.Errorf("the logs hold the email %s", word)
		}
	}
}
