package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// Helpers shared by the functional, bad-input and secrecy tests of the API.

// passwordOf is the password platform.newAdmin gives an admin.
func passwordOf(email string) string { return "correct horse battery " + email }

// in returns a copy of c that reports to t (a subtest): the harness fails
// its platform's test, which a subtest must not do from its own goroutine.
// The copy shares c's cookies.
func (c *client) in(t *testing.T) *client {
	p := *c.p
	p.t = t
	base := &http.Client{Jar: c.http.Jar, Timeout: c.http.Timeout}
	return &client{p: &p, http: p.spec.Client(t, base), bearer: c.bearer, csrf: c.csrf}
}

// send is do with extra request headers; a header set to "" is removed
// (e.g. X-CSRF-Token).
func (c *client) send(method, path string, body any, hdr map[string]string) response {
	c.p.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		testenv.Must(c.p.t, err, "encode body")
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.p.srv.URL+api.Base+path, r)
	testenv.Must(c.p.t, err, "new request")
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.http.Do(req)
	testenv.Must(c.p.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	testenv.Must(c.p.t, err, "read %s %s", method, path)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect sends a request and fails the test unless the status is want and,
// for an error, the code is code (when not "").
func (c *client) expect(want int, code, method, path string, body any) response {
	c.p.t.Helper()
	r := c.do(method, path, body)
	if r.status != want {
		c.p.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	if code != "" && r.errorCode() != code {
		c.p.t.Fatalf("%s %s: error code %q, want %q; body %s", method, path, r.errorCode(), code, r.body)
	}
	return r
}

// apiError is the error shape.
type apiError struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

// fieldDetail is one entry of an invalid_request's details.
type fieldDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// apiErr decodes an error response.
func (r response) apiErr(t *testing.T) apiError {
	t.Helper()
	var e apiError
	r.decode(t, &e)
	return e
}

// fields returns the fields an invalid_request response names.
func (r response) fields(t *testing.T) []string {
	t.Helper()
	e := r.apiErr(t)
	if e.Error.Code != "invalid_request" {
		t.Fatalf("error code %q, want invalid_request; body %s", e.Error.Code, r.body)
	}
	var details []fieldDetail
	if err := json.Unmarshal(e.Error.Details, &details); err != nil {
		t.Fatalf("invalid_request details are not a list of {field, message}: %s", r.body)
	}
	var out []string
	for _, d := range details {
		if d.Message == "" {
			t.Errorf("detail for %s has no message: %s", d.Field, r.body)
		}
		out = append(out, d.Field)
	}
	return out
}

// wantInvalid fails the test unless r is a 400 invalid_request naming field.
func (r response) wantInvalid(t *testing.T, field string) {
	t.Helper()
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400 naming %s; body %s", r.status, field, r.body)
	}
	for _, f := range r.fields(t) {
		if f == field {
			return
		}
	}
	t.Fatalf("400 does not name %q; body %s", field, r.body)
}

// adminID returns the id of a logged-in client's admin.
func (c *client) adminID() string {
	c.p.t.Helper()
	var me struct{ Admin struct{ ID string } }
	c.must(http.StatusOK, "GET", "/auth/me", nil, &me)
	return me.Admin.ID
}

// sessionCookie returns the session cookie c's jar holds ("" when none).
func (c *client) sessionCookie() string {
	u, _ := url.Parse(c.p.srv.URL + api.Base + "/")
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "eddy_session" {
			return ck.Value
		}
	}
	return ""
}

// withCookie returns an anonymous client whose jar holds session as the
// session cookie, and that sends csrf as the CSRF token.
func (p *platform) withCookie(session, csrf string) *client {
	c := p.anonymous()
	u, _ := url.Parse(p.srv.URL + "/")
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: "eddy_session", Value: session, Path: "/"}})
	c.csrf = csrf
	return c
}

// plain returns an http.Client that does not check responses against the
// OpenAPI document: for routes that are not in it on purpose.
func plain() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// org creates an organization owned by c.
func (c *client) org(id string) {
	c.p.t.Helper()
	c.must(http.StatusCreated, "POST", "/organizations", map[string]any{"id": id, "name": "Org " + id}, nil)
}

// workspace creates a workspace in org.
func (c *client) workspace(org, id string) {
	c.p.t.Helper()
	c.must(http.StatusCreated, "POST", "/organizations/"+org+"/workspaces", map[string]any{"id": id, "name": "Workspace " + id}, nil)
}

// sourceCreated is a created or rotated source.
type sourceCreated struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Managed        bool       `json:"managed"`
	WriteKey       string     `json:"write_key"`
	WriteKeyPrefix string     `json:"write_key_prefix"`
	RevokedAt      *time.Time `json:"revoked_at"`
}

// source creates a source and returns it with its write key.
func (c *client) source(ws, id string) sourceCreated {
	c.p.t.Helper()
	var s sourceCreated
	c.must(http.StatusCreated, "POST", "/workspaces/"+ws+"/sources", map[string]any{"id": id}, &s)
	return s
}

// apiKeyCreated is a created API key.
type apiKeyCreated struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedBy  string     `json:"created_by"`
	Key        string     `json:"key"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// apiKey creates an API key with scopes in ws.
func (c *client) apiKey(ws, name string, scopes ...string) apiKeyCreated {
	c.p.t.Helper()
	var k apiKeyCreated
	c.must(http.StatusCreated, "POST", "/workspaces/"+ws+"/api-keys", map[string]any{"name": name, "scopes": scopes}, &k)
	return k
}

// member creates an admin, makes them a member of org with role (as the CLI
// does) and returns them logged in.
func (p *platform) member(org, email, role string) *client {
	p.t.Helper()
	c := p.newAdmin(email)
	ctx := context.Background()
	o, err := p.store.OrganizationBySlug(ctx, org)
	testenv.Must(p.t, err, "organization %s", org)
	testenv.Must(p.t, p.store.AddMember(ctx, store.Change{Actor: store.Actor{Type: "cli", Label: "test"}}, o, c.adminID(), role),
		"add %s to %s", email, org)
	return c
}

// drainKeysChanged returns how many KeysChanged calls happened since the last
// drain.
func (p *platform) drainKeysChanged() int {
	n := 0
	for {
		select {
		case <-p.keysChanged:
			n++
		default:
			return n
		}
	}
}

// count returns the number of rows of a table.
func (p *platform) count(table string) int {
	p.t.Helper()
	var n int
	err := p.store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n)
	testenv.Must(p.t, err, "count %s", table)
	return n
}

// tenancyTables are the tables the management API writes.
var tenancyTables = []string{"organizations", "workspaces", "sources", "api_keys", "admins", "memberships",
	"invitations", "admin_sessions", "audit_log"}

// counts returns the row count of every tenancy table.
func (p *platform) counts() map[string]int {
	p.t.Helper()
	m := make(map[string]int)
	for _, t := range tenancyTables {
		m[t] = p.count(t)
	}
	return m
}

// recorder keeps every response body clients receive.
type recorder struct {
	mu        sync.Mutex
	responses []recorded
}

// recorded is one request and its response.
type recorded struct {
	method, url string
	status      int
	header      string // the response headers, as sent
	body        string
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.responses...)
}

// record makes c keep every response it receives in rec.
func (c *client) record(rec *recorder) *client {
	next := c.http.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc := *c.http
	hc.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		var hdr strings.Builder
		_ = resp.Header.Write(&hdr)
		rec.mu.Lock()
		rec.responses = append(rec.responses, recorded{method: req.Method, url: req.URL.String(), status: resp.StatusCode,
			header: hdr.String(), body: string(b)})
		rec.mu.Unlock()
		return resp, err
	})
	c.http = &hc
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
