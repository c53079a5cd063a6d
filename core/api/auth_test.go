package api_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// sessionCookieOf returns the eddy_session cookie a response sets.
func sessionCookieOf(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "eddy_session" {
			return c
		}
	}
	t.Fatalf("no eddy_session cookie in %v", h.Values("Set-Cookie"))
	return nil
}

func TestLoginSetsSessionCookie(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		secure     bool // Options.SecureCookies
		tls        bool // served over TLS
		wantSecure bool
	}{
		{name: "plain HTTP", wantSecure: false},
		{name: "SecureCookies", secure: true, wantSecure: true},
		{name: "TLS", tls: true, wantSecure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts api.Options
			p := newPlatform(t, func(o *api.Options) {
				o.SecureCookies = tc.secure
				opts = *o
			})
			p.newAdmin("ada@example.com")
			body := `{"email": "ada@example.com", "password": "` + passwordOf("ada@example.com") + `"}`
			var h http.Header
			if tc.tls {
				// The same API, served over TLS.
				r := gin.New()
				api.New(opts).Register(r)
				srv := httptest.NewTLSServer(r)
				t.Cleanup(srv.Close)
				hc := p.spec.Client(t, srv.Client())
				resp, err := hc.Post(srv.URL+api.Base+"/auth/login", "application/json", strings.NewReader(body))
				testenv.Must(t, err, "login over TLS")
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("login over TLS: %d", resp.StatusCode)
				}
				h = resp.Header
			} else {
				r := p.anonymous().must(http.StatusOK, "POST", "/auth/login", body, nil)
				h = r.header
			}
			c := sessionCookieOf(t, h)
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tc.wantSecure || c.Path != "/" {
				t.Fatalf("cookie %q: HttpOnly %v, SameSite %v, Secure %v, Path %q; want HttpOnly, Lax, Secure %v, /",
					h.Get("Set-Cookie"), c.HttpOnly, c.SameSite, c.Secure, c.Path, tc.wantSecure)
			}
			if !strings.HasPrefix(c.Value, "eddy_ses_") || len(c.Value) < 40 || c.MaxAge <= 0 {
				t.Fatalf("cookie value %q (max-age %d): want a long eddy_ses_ token that persists", c.Value, c.MaxAge)
			}
		})
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	p.newAdmin("ada@example.com")
	anon := p.anonymous()

	unknown := anon.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login",
		map[string]any{"email": "nobody@example.com", "password": "whatever it is, it is wrong"})
	wrong := anon.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login",
		map[string]any{"email": "ada@example.com", "password": "whatever it is, it is wrong"})
	if u, w := unknown.apiErr(t).Error.Message, wrong.apiErr(t).Error.Message; u != w {
		t.Fatalf("unknown email says %q, wrong password says %q: they must not differ", u, w)
	}
	if len(sessionCookieValues(unknown.header)) != 0 || len(sessionCookieValues(wrong.header)) != 0 {
		t.Fatal("a failed login set a cookie")
	}
	// The email is matched case-insensitively; the password is not.
	anon.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "ADA@example.com", "password": passwordOf("ada@example.com")}, nil)
	anon.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login",
		map[string]any{"email": "ada@example.com", "password": strings.ToUpper(passwordOf("ada@example.com"))})

	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no email", map[string]any{"password": "x"}, "email"},
		{"no password", map[string]any{"email": "ada@example.com"}, "password"},
		{"long email", map[string]any{"email": strings.Repeat("a", 300) + "@example.com", "password": "x"}, "email"},
		{"long password", map[string]any{"email": "ada@example.com", "password": strings.Repeat("p", 2000)}, "password"},
	} {
		anon.do("POST", "/auth/login", tc.body).wantInvalid(t, tc.field)
	}
}

func sessionCookieValues(h http.Header) []string {
	var out []string
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "eddy_session" {
			out = append(out, c.Value)
		}
	}
	return out
}

// timedLogin logs in and returns the status and how long it took.
func timedLogin(c *client, email, password string) (response, time.Duration) {
	start := time.Now()
	r := c.do("POST", "/auth/login", map[string]any{"email": email, "password": password})
	return r, time.Since(start)
}

func TestFailedLoginsSlowDown(t *testing.T) {
	t.Parallel()
	const delay, maxDelay = 50 * time.Millisecond, 400 * time.Millisecond
	p := newPlatform(t, func(o *api.Options) {
		o.LoginDelay, o.MaxLoginDelay = delay, maxDelay
		o.MaxLoginFailuresPerEmail, o.MaxLoginFailuresPerIP = 100, 100
	})
	p.newAdmin("ada@example.com")
	anon := p.anonymous()
	var took []time.Duration
	for i := range 7 {
		r, d := timedLogin(anon, "ada@example.com", "not the password")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, body %s", i+1, r.status, r.body)
		}
		took = append(took, d)
		// The pause doubles with each failure, up to the maximum: these
		// are lower bounds, whatever else the login costs.
		if want := min(delay<<i, maxDelay); d < want {
			t.Errorf("failure %d took %s, want at least %s", i+1, d, want)
		}
	}
	t.Logf("failed logins took %v", took)
	// Capped: uncapped, the 7th pause alone would be 3.2s, eight times the cap.
	if took[6] >= delay<<6 {
		t.Errorf("the 7th failure took %s: MaxLoginDelay %s is not applied", took[6], maxDelay)
	}
	// Below the limit, the right password still logs in.
	if r, _ := timedLogin(anon, "ada@example.com", passwordOf("ada@example.com")); r.status != http.StatusOK {
		t.Errorf("login with the right password: %d %s", r.status, r.body)
	}
}

func TestFailedLoginsAreLimitedPerEmail(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, func(o *api.Options) {
		o.MaxLoginFailuresPerEmail, o.MaxLoginFailuresPerIP = 3, 100
	})
	p.newAdmin("ada@example.com")
	p.newAdmin("bob@example.com")
	anon := p.anonymous()
	ada := func(pw string) response {
		return anon.do("POST", "/auth/login", map[string]any{"email": "ada@example.com", "password": pw})
	}

	// A success clears the email's failures.
	for range 2 {
		anon.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login",
			map[string]any{"email": "ada@example.com", "password": "wrong password!"})
	}
	if r := ada(passwordOf("ada@example.com")); r.status != http.StatusOK {
		t.Fatalf("login after 2 failures: %d %s", r.status, r.body)
	}
	for range 2 {
		if r := ada("wrong password!"); r.status != http.StatusUnauthorized {
			t.Fatalf("failure after a success: %d %s (the success did not clear the count)", r.status, r.body)
		}
	}
	// The third failure in a row (counted case-insensitively) reaches the limit.
	anon.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login",
		map[string]any{"email": "Ada@Example.COM", "password": "wrong password!"})

	for _, pw := range []string{"wrong password!", passwordOf("ada@example.com")} {
		r := ada(pw)
		if r.status != http.StatusTooManyRequests || r.errorCode() != "rate_limited" {
			t.Fatalf("login after 3 failures: %d %s, want 429 rate_limited", r.status, r.body)
		}
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || retry < 1 || retry > int((15*time.Minute).Seconds()) {
			t.Fatalf("Retry-After %q, want seconds within the 15-minute window", r.header.Get("Retry-After"))
		}
		if len(sessionCookieValues(r.header)) != 0 {
			t.Fatal("a refused login set a cookie")
		}
	}
	// Others log in as usual.
	anon.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "bob@example.com", "password": passwordOf("bob@example.com")}, nil)
}

func TestFailedLoginsAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, func(o *api.Options) {
		o.MaxLoginFailuresPerEmail, o.MaxLoginFailuresPerIP = 100, 4
	})
	p.newAdmin("ada@example.com")
	anon := p.anonymous()
	// Four failures, each for a different email, from one address.
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com", "ada@example.com"} {
		anon.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/login",
			map[string]any{"email": email, "password": "wrong password!"})
	}
	r := anon.expect(http.StatusTooManyRequests, "rate_limited", "POST", "/auth/login",
		map[string]any{"email": "ada@example.com", "password": passwordOf("ada@example.com")})
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// A success does not clear the address's count.
	anon.expect(http.StatusTooManyRequests, "rate_limited", "POST", "/auth/login",
		map[string]any{"email": "d@example.com", "password": "wrong password!"})
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	key := ada.apiKey("shop", "ci", "read", "write")

	noToken := map[string]string{"X-CSRF-Token": ""}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
	}{
		{"create organization", "POST", "/organizations", map[string]any{"id": "other", "name": "Other"}},
		{"rename organization", "PATCH", "/organizations/acme", map[string]any{"name": "New"}},
		{"update workspace", "PATCH", "/workspaces/shop", map[string]any{"name": "New"}},
		{"create source", "POST", "/workspaces/shop/sources", map[string]any{"id": "web"}},
		{"delete workspace", "DELETE", "/workspaces/shop", nil},
		{"logout", "POST", "/auth/logout", nil},
		{"accept invitation", "POST", "/invitations/accept", map[string]any{"token": "eddy_inv_x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ada.in(t)
			for _, hdr := range []map[string]string{noToken, {"X-CSRF-Token": "not-the-token"}, {"X-CSRF-Token": strings.ToUpper(ada.csrf)}} {
				r := c.send(tc.method, tc.path, tc.body, hdr)
				if r.status != http.StatusForbidden || r.errorCode() != "csrf" {
					t.Fatalf("with %v: %d %s, want 403 csrf", hdr, r.status, r.body)
				}
			}
		})
	}
	// Nothing changed, and the session still works.
	ada.must(http.StatusOK, "GET", "/workspaces/shop", nil, nil)
	if r := ada.do("GET", "/organizations/other", nil); r.status != http.StatusNotFound {
		t.Fatalf("a write without CSRF token created an organization: %d", r.status)
	}
	// Reads need no token.
	if r := ada.send("GET", "/organizations", nil, noToken); r.status != http.StatusOK {
		t.Fatalf("read without token: %d", r.status)
	}
	// With the right token writes pass.
	ada.must(http.StatusCreated, "POST", "/workspaces/shop/sources", map[string]any{"id": "web"}, nil)
	// Bearer writes need none.
	prog := p.withKey(key.Key)
	if r := prog.send("POST", "/workspaces/shop/sources", map[string]any{"id": "ios"}, noToken); r.status != http.StatusCreated {
		t.Fatalf("bearer write without CSRF token: %d %s", r.status, r.body)
	}
	// A bearer key wins over a cookie, so a browser's cookie does not make
	// a bearer request need the token either.
	both := ada.in(t)
	both.bearer = key.Key
	if r := both.send("PATCH", "/workspaces/shop", map[string]any{"name": "Shop 2"}, noToken); r.status != http.StatusOK {
		t.Fatalf("bearer write with a session cookie, without token: %d %s", r.status, r.body)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	session := ada.sessionCookie()
	if session == "" {
		t.Fatal("no session cookie after login")
	}
	// A second session of the same admin (another browser).
	other := p.anonymous()
	var login struct {
		CSRFToken string `json:"csrf_token"`
	}
	other.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": "ada@example.com", "password": passwordOf("ada@example.com")}, &login)
	if other.sessionCookie() == session || login.CSRFToken == ada.csrf {
		t.Fatal("two logins share a session token or CSRF token")
	}

	r := ada.must(http.StatusNoContent, "POST", "/auth/logout", nil, nil)
	if c := sessionCookieOf(t, r.header); c.Value != "" || c.MaxAge >= 0 || !c.HttpOnly {
		t.Fatalf("logout cookie %q: want it cleared", r.header.Get("Set-Cookie"))
	}
	// The browser dropped the cookie.
	ada.expect(http.StatusUnauthorized, "unauthenticated", "GET", "/auth/me", nil)
	// And the server forgot it: replaying it fails.
	replay := p.withCookie(session, ada.csrf)
	replay.expect(http.StatusUnauthorized, "unauthenticated", "GET", "/auth/me", nil)
	replay.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/organizations", map[string]any{"id": "x", "name": "X"})
	replay.expect(http.StatusUnauthorized, "unauthenticated", "POST", "/auth/logout", nil)
	// The other session lives on.
	other.must(http.StatusOK, "GET", "/auth/me", nil, nil)
	// A made-up session is no better.
	p.withCookie("eddy_ses_made-up", "x").expect(http.StatusUnauthorized, "unauthenticated", "GET", "/organizations", nil)
}

func TestMe(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.org("zeta")
	bob := p.member("acme", "bob@example.com", "viewer")
	bob.org("bobs")

	var me struct {
		Admin struct {
			ID, Email, Name string
		}
		Organizations []struct{ ID, Name, Role string }
		CSRFToken     string `json:"csrf_token"`
	}
	bob.must(http.StatusOK, "GET", "/auth/me", nil, &me)
	if me.Admin.Email != "bob@example.com" || me.Admin.Name != "Admin bob@example.com" || me.Admin.ID == "" {
		t.Fatalf("me.admin = %+v", me.Admin)
	}
	if me.CSRFToken != bob.csrf {
		t.Fatalf("me.csrf_token %q differs from login's %q", me.CSRFToken, bob.csrf)
	}
	got := ""
	for _, o := range me.Organizations {
		got += o.ID + ":" + o.Role + " "
	}
	if got != "acme:viewer bobs:owner " {
		t.Fatalf("me.organizations = %q, want acme as viewer and bobs as owner", got)
	}
	if me.Organizations[1].Name != "Org bobs" {
		t.Fatalf("organization name %q", me.Organizations[1].Name)
	}
	// No password hash or anything of the kind.
	r := bob.do("GET", "/auth/me", nil)
	if strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), "password") {
		t.Fatalf("/auth/me shows a password: %s", r.body)
	}
	p.anonymous().expect(http.StatusUnauthorized, "unauthenticated", "GET", "/auth/me", nil)
}

func TestAuthorizationHeader(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	ada := p.newAdmin("ada@example.com")
	ada.org("acme")
	ada.workspace("acme", "shop")
	key := ada.apiKey("shop", "ci", "read")

	for _, h := range []string{
		"Basic " + "YWRhQGV4YW1wbGUuY29tOnB3",
		"Token " + key.Key,
		key.Key,
		"Bearer",
		"Bearer ",
		"Bearer eddy_sk_unknown",
		"Bearer " + key.Key + "x",
		"Bearer " + key.Prefix,
	} {
		// Even with a valid session cookie, a bad Authorization header is
		// not ignored.
		r := ada.send("GET", "/workspaces/shop", nil, map[string]string{"Authorization": h})
		if r.status != http.StatusUnauthorized || r.errorCode() != "unauthenticated" {
			t.Errorf("Authorization %q: %d %s, want 401", h, r.status, r.body)
		}
	}
	// The scheme is case-insensitive.
	if r := p.anonymous().send("GET", "/workspaces/shop", nil, map[string]string{"Authorization": "bearer " + key.Key}); r.status != http.StatusOK {
		t.Errorf("lower-case bearer: %d %s", r.status, r.body)
	}
	// API keys are not sessions.
	prog := p.withKey(key.Key)
	prog.expect(http.StatusForbidden, "forbidden", "GET", "/auth/me", nil)
	prog.expect(http.StatusForbidden, "forbidden", "POST", "/auth/logout", nil)
	prog.expect(http.StatusForbidden, "forbidden", "GET", "/organizations", nil)
	prog.expect(http.StatusForbidden, "forbidden", "GET", "/organizations/acme", nil)
	prog.expect(http.StatusForbidden, "forbidden", "POST", "/organizations", map[string]any{"id": "x", "name": "X"})
	// Without credentials.
	anon := p.anonymous()
	for _, path := range []string{"/organizations", "/workspaces/shop", "/workspaces/shop/events", "/organizations/acme/audit-log"} {
		anon.expect(http.StatusUnauthorized, "unauthenticated", "GET", path, nil)
	}
}
