package api_test

// Tenant isolation: what a caller of organization A (an admin of each role,
// an API key of each scope) can do to organization B's objects (nothing, and
// learn nothing), and to A's own (what docs/api.md grants). The matrices are
// generated from the routes the API registers: a route without a case in
// isoRoutes fails the test.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// isoCubeFiles is a PUT /cubes body with one cube over sessions.
func isoCubeFiles(name string) map[string]any {
	return map[string]any{"files": map[string]string{"own.yml": "cubes:\n  - name: " + name +
		"\n    sql_table: sessions\n    measures:\n      - name: count\n        type: count\n" +
		"    dimensions:\n      - name: id\n        sql: \"{CUBE}.id\"\n        type: string\n        primary_key: true\n"}}
}

// isoRegisteredRoutes returns "METHOD /path" (gin form, relative to
// api.Base) of every route the API registers.
func isoRegisteredRoutes(t *testing.T) []string {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	api.New(api.Options{}).Register(r)
	var out []string
	for _, ri := range r.Routes() {
		if strings.HasPrefix(ri.Path, api.CubeBase+"/") {
			// The Cube REST API knows no workspace in its paths: the key
			// decides it (TestCubeAPIKeyDecidesTheWorkspace).
			continue
		}
		path, ok := strings.CutPrefix(ri.Path, api.Base)
		if !ok {
			t.Fatalf("route %s %s is not under %s", ri.Method, ri.Path, api.Base)
		}
		out = append(out, ri.Method+" "+path)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("the API registers no route")
	}
	return out
}

// isoParams returns the path parameters of a gin path, in order.
func isoParams(path string) []string {
	var ps []string
	for seg := range strings.SplitSeq(path, "/") {
		if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
			ps = append(ps, seg[1:])
		}
	}
	return ps
}

// isoPath fills a gin path's parameters.
func isoPath(t *testing.T, path string, params map[string]string) string {
	t.Helper()
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, ":") {
			v, ok := params[seg[1:]]
			if !ok {
				t.Fatalf("no value for :%s in %s", seg[1:], path)
			}
			segs[i] = url.PathEscape(v)
		}
	}
	return strings.Join(segs, "/")
}

// The caller kinds of docs/api.md.
const (
	isoOwner  = auth.RoleOwner
	isoAdmin  = auth.RoleAdmin
	isoMember = auth.RoleMember
	isoViewer = auth.RoleViewer
)

var (
	isoEveryone = []string{isoOwner, isoAdmin, isoMember, isoViewer}
	isoManagers = []string{isoOwner, isoAdmin}
	isoEditors  = []string{isoOwner, isoAdmin, isoMember}
)

// isoAccess is who may call a route on their own objects, per docs/api.md.
type isoAccess struct {
	// public: anyone, whatever their credentials.
	public bool
	// sessions: any admin session; API keys get 403.
	sessions bool
	// roles: the organization roles allowed; scope: the API-key scope that
	// allows it ("": API keys get 403).
	roles []string
	scope string
}

func (a isoAccess) allows(c *isoCaller) bool {
	switch {
	case a.public:
		return true
	case c.key != "":
		return !a.sessions && a.scope != "" && slices.Contains(c.scopes, a.scope)
	case a.sessions:
		return true
	default:
		return slices.Contains(a.roles, c.role)
	}
}

// isoCall is one prepared request of a caller on A's own objects.
type isoCall struct {
	params map[string]string
	// query, when set, is appended to the path ("?identity=...").
	query string
	body  any
	// header holds extra request headers (a multipart upload's
	// Content-Type).
	header map[string]string
	// client, when set, replaces the caller's (for calls that would end or
	// replace the caller's session, or need a key of another workspace).
	client *client
	// check, when set, checks the outcome beyond the status.
	check func(t *testing.T, allowed bool, r response)
}

// isoRoute is the test case of one route.
type isoRoute struct {
	access isoAccess
	// ok is the status of an allowed call.
	ok int
	// body returns a valid request body (nil: none).
	body func(w *isoWorld) any
	// own prepares the call on A's own objects; nil uses A's standing
	// objects and body.
	own func(w *isoWorld, c *isoCaller) isoCall
}

// isoRoutes has a case for every route of the API.
func isoRoutes() map[string]isoRoute {
	public := isoAccess{public: true}
	sessions := isoAccess{sessions: true}
	roles := func(r []string, scope string) isoAccess { return isoAccess{roles: r, scope: scope} }
	return map[string]isoRoute{
		"GET /openapi.json": {access: public, ok: 200},
		"POST /auth/login": {access: public, ok: 200, own: func(w *isoWorld, c *isoCaller) isoCall {
			// A fresh client: a login replaces the jar's session.
			email := w.a.callers[isoViewer].email
			return isoCall{client: w.cloneClient(c), body: map[string]any{"email": email, "password": isoPassword(email)},
				check: func(t *testing.T, allowed bool, r response) {
					if !strings.Contains(r.header.Get("Set-Cookie"), "eddy_session=") {
						t.Errorf("login set no session cookie: %v", r.header)
					}
				}}
		}},
		"POST /invitations/accept": {access: public, ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"token": auth.NewSecret(auth.InvitationPrefix)} },
			own: func(w *isoWorld, c *isoCaller) isoCall {
				email := w.fresh("invitee") + "@alpha.test"
				_, token := w.freshInvitation(w.a, email)
				return isoCall{body: map[string]any{"token": token, "name": "Fresh Invitee", "password": "fresh invitee password 1"},
					check: func(t *testing.T, allowed bool, r response) {
						var out struct{ Organization struct{ ID, Role string } }
						r.decode(t, &out)
						if out.Organization.ID != w.a.org || out.Organization.Role != isoViewer {
							t.Errorf("accepted into %+v, want %s as viewer", out.Organization, w.a.org)
						}
					}}
			}},
		"POST /auth/logout": {access: sessions, ok: 204, own: func(w *isoWorld, c *isoCaller) isoCall {
			cl := w.cloneClient(c)
			return isoCall{client: cl, check: func(t *testing.T, allowed bool, r response) {
				if r := cl.do("GET", "/workspaces/"+w.a.ws, nil); allowed && r.status != http.StatusUnauthorized {
					t.Errorf("after logout the session still works: %d %s", r.status, r.body)
				}
			}}
		}},
		"GET /auth/me":       {access: sessions, ok: 200},
		"GET /organizations": {access: sessions, ok: 200},
		"POST /organizations": {access: sessions, ok: 201,
			body: func(w *isoWorld) any { return map[string]any{"id": w.fresh("org"), "name": "Fresh Org"} }},
		"GET /organizations/:org": {access: roles(isoEveryone, ""), ok: 200},
		"PATCH /organizations/:org": {access: roles(isoManagers, ""), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"name": "Alpha Org"} }},
		"GET /organizations/:org/members": {access: roles(isoEveryone, ""), ok: 200},
		"PATCH /organizations/:org/members/:admin_id": {access: roles(isoManagers, ""), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"role": isoMember} },
			own: func(w *isoWorld, c *isoCaller) isoCall {
				id := w.freshMember(w.a)
				return isoCall{params: w.a.params(map[string]string{"admin_id": id}), body: map[string]any{"role": isoMember},
					check: func(t *testing.T, allowed bool, r response) {
						want := map[bool]string{true: isoMember, false: isoViewer}[allowed]
						if got := w.role(w.a, id); got != want {
							t.Errorf("the member's role is %q, want %q", got, want)
						}
					}}
			}},
		"DELETE /organizations/:org/members/:admin_id": {access: roles(isoManagers, ""), ok: 204,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				id := w.freshMember(w.a)
				return isoCall{params: w.a.params(map[string]string{"admin_id": id}),
					check: func(t *testing.T, allowed bool, r response) {
						want := map[bool]string{true: "", false: isoViewer}[allowed]
						if got := w.role(w.a, id); got != want {
							t.Errorf("the member's role is %q, want %q", got, want)
						}
					}}
			}},
		"GET /organizations/:org/invitations": {access: roles(isoManagers, ""), ok: 200},
		"POST /organizations/:org/invitations": {access: roles(isoManagers, ""), ok: 201,
			body: func(w *isoWorld) any {
				return map[string]any{"email": w.fresh("invitee") + "@alpha.test", "role": isoViewer}
			}},
		"DELETE /organizations/:org/invitations/:invitation_id": {access: roles(isoManagers, ""), ok: 204,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				id, _ := w.freshInvitation(w.a, w.fresh("invitee")+"@alpha.test")
				return isoCall{params: w.a.params(map[string]string{"invitation_id": id}),
					check: func(t *testing.T, allowed bool, r response) {
						var revoked bool
						testenv.Must(t, w.p.store.Pool().QueryRow(context.Background(),
							`SELECT revoked_at IS NOT NULL FROM invitations WHERE id = $1`, id).Scan(&revoked), "read invitation")
						if revoked != allowed {
							t.Errorf("invitation revoked = %v, want %v", revoked, allowed)
						}
					}}
			}},
		"GET /organizations/:org/workspaces": {access: roles(isoEveryone, ""), ok: 200},
		"POST /organizations/:org/workspaces": {access: roles(isoManagers, ""), ok: 201,
			body: func(w *isoWorld) any { return map[string]any{"id": w.fresh("ws"), "name": "Fresh Workspace"} }},
		"GET /organizations/:org/audit-log": {access: roles(isoManagers, ""), ok: 200},

		"GET /workspaces/:ws": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"PATCH /workspaces/:ws": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"settings": map[string]any{"currency": "EUR"}} }},
		"DELETE /workspaces/:ws": {access: roles(isoManagers, auth.ScopeAdmin), ok: 204,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				// A fresh workspace, with a source, and for an API key a key
				// of the same scopes there (a key reaches its own workspace
				// only).
				ws := w.freshWorkspace(w.a)
				_, srcHash := w.freshSource(ws)
				call := isoCall{params: w.a.params(map[string]string{"ws": ws.Slug})}
				if c.key != "" {
					_, key := w.freshKey(ws, c.scopes)
					call.client = w.p.withKey(key)
				}
				call.check = func(t *testing.T, allowed bool, r response) {
					if got := w.sourceKeyListed(srcHash); got == allowed {
						t.Errorf("the deleted workspace's write key listed = %v, want %v", got, !allowed)
					}
					st := w.a.callers[isoOwner].c.do("GET", "/workspaces/"+ws.Slug, nil).status
					if want := map[bool]int{true: 404, false: 200}[allowed]; st != want {
						t.Errorf("GET the workspace after: %d, want %d", st, want)
					}
					if call.client != nil {
						st := call.client.do("GET", "/workspaces/"+ws.Slug+"/sources", nil).status
						if allowed != (st == http.StatusUnauthorized) {
							t.Errorf("the deleted workspace's API key answers %d", st)
						}
					}
				}
				return call
			}},
		"GET /workspaces/:ws/sources": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"POST /workspaces/:ws/sources": {access: roles(isoEditors, auth.ScopeWrite), ok: 201,
			body: func(w *isoWorld) any { return map[string]any{"id": w.fresh("src")} },
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{body: map[string]any{"id": w.fresh("src")}, check: func(t *testing.T, allowed bool, r response) {
					if !allowed {
						return
					}
					var out struct {
						WriteKey string `json:"write_key"`
					}
					r.decode(t, &out)
					if !w.sourceKeyListed(store.HashSecret(out.WriteKey)) {
						t.Error("the new source's write key is not in SourceKeys")
					}
				}}
			}},
		"GET /workspaces/:ws/sources/:src": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"PATCH /workspaces/:ws/sources/:src": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"name": "Alpha Source"} }},
		"DELETE /workspaces/:ws/sources/:src": {access: roles(isoEditors, auth.ScopeWrite), ok: 204,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				slug, hash := w.freshSource(w.a.wsRow)
				return isoCall{params: w.a.params(map[string]string{"src": slug}), check: func(t *testing.T, allowed bool, r response) {
					if got := w.sourceKeyListed(hash); got == allowed {
						t.Errorf("the revoked source's write key listed = %v right after the call, want %v", got, !allowed)
					}
				}}
			}},
		"POST /workspaces/:ws/sources/:src/rotate": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				slug, hash := w.freshSource(w.a.wsRow)
				return isoCall{params: w.a.params(map[string]string{"src": slug}), check: func(t *testing.T, allowed bool, r response) {
					if got := w.sourceKeyListed(hash); got == allowed {
						t.Errorf("the old write key listed = %v right after the call, want %v", got, !allowed)
					}
					if !allowed {
						return
					}
					var out struct {
						WriteKey string `json:"write_key"`
					}
					r.decode(t, &out)
					if !w.sourceKeyListed(store.HashSecret(out.WriteKey)) {
						t.Error("the rotated write key is not in SourceKeys")
					}
				}}
			}},
		"GET /workspaces/:ws/api-keys": {access: roles(isoEditors, auth.ScopeAdmin), ok: 200},
		// The key asked for has the admin scope, which may delete the
		// workspace: a member, who may not, cannot create it.
		"POST /workspaces/:ws/api-keys": {access: roles(isoManagers, auth.ScopeAdmin), ok: 201,
			body: func(w *isoWorld) any {
				return map[string]any{"name": w.fresh("key"), "scopes": []string{auth.ScopeAdmin}}
			},
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{body: map[string]any{"name": w.fresh("key"), "scopes": []string{auth.ScopeAdmin}},
					check: func(t *testing.T, allowed bool, r response) {
						if !allowed {
							return
						}
						var out struct{ Key string }
						r.decode(t, &out)
						if st := w.p.withKey(out.Key).do("GET", "/workspaces/"+w.a.ws+"/api-keys", nil).status; st != 200 {
							t.Errorf("the new key cannot list keys: %d", st)
						}
					}}
			}},
		"DELETE /workspaces/:ws/api-keys/:key_id": {access: roles(isoEditors, auth.ScopeAdmin), ok: 204,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				id, key := w.freshKey(w.a.wsRow, []string{auth.ScopeRead})
				return isoCall{params: w.a.params(map[string]string{"key_id": id}), check: func(t *testing.T, allowed bool, r response) {
					st := w.p.withKey(key).do("GET", "/workspaces/"+w.a.ws, nil).status
					if want := map[bool]int{true: 401, false: 200}[allowed]; st != want {
						t.Errorf("the key answers %d on the next request, want %d", st, want)
					}
				}}
			}},
		"GET /workspaces/:ws/events":   {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"GET /workspaces/:ws/sessions": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"GET /workspaces/:ws/sessions/live": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{check: func(t *testing.T, allowed bool, r response) {
					if allowed && !strings.Contains(string(r.body), w.a.sessionID) {
						t.Errorf("A's live session: %s", r.body)
					}
				}}
			}},
		// The stream is cut after its headers: it would not end.
		"GET /workspaces/:ws/sessions/live/stream": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{client: c.c.headersOnly(), check: func(t *testing.T, allowed bool, r response) {
					if ct := r.header.Get("Content-Type"); allowed && ct != "text/event-stream" {
						t.Errorf("stream Content-Type %q", ct)
					}
				}}
			}},
		"GET /workspaces/:ws/sessions/:session_id": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{check: func(t *testing.T, allowed bool, r response) {
					if allowed && !strings.Contains(string(r.body), w.a.sessionID) {
						t.Errorf("A's session: %s", r.body)
					}
				}}
			}},
		// Without ?identity= the lookup is a 400: the own-objects call
		// names A's user.
		"GET /workspaces/:ws/profiles": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{query: "?identity=user_id:" + w.a.userID, check: func(t *testing.T, allowed bool, r response) {
					if allowed && !strings.Contains(string(r.body), w.a.profileID) {
						t.Errorf("A's profile: %s", r.body)
					}
				}}
			}},
		"GET /workspaces/:ws/profiles/:profile_id": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		// Deleting a person: a fresh person of A's each time, whose
		// deletion job must run to completion when allowed and never start
		// otherwise.
		"DELETE /workspaces/:ws/profiles": {access: roles(isoManagers, auth.ScopeAdmin), ok: 202,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				user, profile := w.freshPerson(w.a)
				return isoCall{query: "?user_id=" + url.QueryEscape(user),
					check: func(t *testing.T, allowed bool, r response) { w.checkDeletion(t, allowed, r, profile) }}
			}},
		"DELETE /workspaces/:ws/profiles/:profile_id": {access: roles(isoManagers, auth.ScopeAdmin), ok: 202,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				_, profile := w.freshPerson(w.a)
				return isoCall{params: w.a.params(map[string]string{"profile_id": profile}),
					check: func(t *testing.T, allowed bool, r response) { w.checkDeletion(t, allowed, r, profile) }}
			}},
		"GET /workspaces/:ws/profiles/:profile_id/export": {access: roles(isoManagers, auth.ScopeAdmin), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{check: func(t *testing.T, allowed bool, r response) {
					if allowed && (!strings.Contains(string(r.body), w.a.profileID) || !strings.Contains(string(r.body), w.a.sessionID)) {
						t.Errorf("A's export lacks its profile or session: %s", r.body)
					}
				}}
			}},
		"GET /workspaces/:ws/profiles/:profile_id/consent": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"PUT /workspaces/:ws/profiles/:profile_id/consent": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			body: func(w *isoWorld) any {
				return map[string]any{"categoryPreferences": map[string]any{"marketing": false}}
			}},
		// A range long before any data: the job deletes nothing.
		"POST /workspaces/:ws/deletions": {access: roles(isoManagers, auth.ScopeAdmin), ok: 202,
			body: func(w *isoWorld) any {
				return map[string]any{"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"}
			}},
		"GET /workspaces/:ws/deletions/:job_id": {access: roles(isoManagers, auth.ScopeAdmin), ok: 200},

		"GET /organizations/:org/plugins": {access: roles(isoEveryone, ""), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{check: func(t *testing.T, allowed bool, r response) {
					if allowed && (!strings.Contains(string(r.body), w.a.upload) || !strings.Contains(string(r.body), "sink.webhook")) {
						t.Errorf("A's catalog lacks its upload or a plugins.yaml plugin: %s", r.body)
					}
				}}
			}},
		"POST /organizations/:org/plugins": {access: roles(isoManagers, ""), ok: 201,
			body: func(w *isoWorld) any {
				body, _ := multipartBody([2]string{"manifest", wasmManifest(w.freshPluginID(), "1.0.0")}, [2]string{"module", string(abiWASM)})
				return body
			},
			own: func(w *isoWorld, c *isoCaller) isoCall {
				id := w.freshPluginID()
				body, ct := multipartBody([2]string{"manifest", wasmManifest(id, "1.0.0")}, [2]string{"module", string(abiWASM)})
				return isoCall{body: body, header: map[string]string{"Content-Type": ct},
					check: func(t *testing.T, allowed bool, r response) {
						if _, err := w.p.store.UploadedManifest(context.Background(), w.a.orgID, id); (err == nil) != allowed {
							t.Errorf("upload of %s stored = %v, want %v", id, err == nil, allowed)
						}
					}}
			}},
		"GET /workspaces/:ws/plugins": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{check: func(t *testing.T, allowed bool, r response) {
					if allowed && !strings.Contains(string(r.body), w.a.installID) {
						t.Errorf("A's installations: %s", r.body)
					}
				}}
			}},
		"POST /workspaces/:ws/plugins": {access: roles(isoEditors, auth.ScopeWrite), ok: 201,
			body: func(w *isoWorld) any { return map[string]any{"plugin_id": "processor.scorer"} },
			own: func(w *isoWorld, c *isoCaller) isoCall {
				w.uninstall(w.a, "processor.scorer")
				return isoCall{body: map[string]any{"plugin_id": "processor.scorer"}, check: func(t *testing.T, allowed bool, r response) {
					if got := w.installed(w.a, "processor.scorer"); got != allowed {
						t.Errorf("processor.scorer installed = %v, want %v", got, allowed)
					}
				}}
			}},
		"GET /workspaces/:ws/plugins/:plugin_id": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"PATCH /workspaces/:ws/plugins/:plugin_id": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			body: func(w *isoWorld) any {
				return map[string]any{"enabled": true, "config": map[string]any{"tag": "alpha"}}
			}},
		"GET /workspaces/:ws/cubes": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		// Replacing the set: each allowed call leaves A's own cube, whose
		// measure the check finds in A's model (B's never changes).
		"PUT /workspaces/:ws/cubes": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			body: func(w *isoWorld) any { return isoCubeFiles("alpha_cube") },
			own: func(w *isoWorld, c *isoCaller) isoCall {
				name := w.fresh("cube")
				name = strings.ReplaceAll(name, "-", "_")
				return isoCall{body: isoCubeFiles(name), check: func(t *testing.T, allowed bool, r response) {
					var got struct{ Files map[string]string }
					w.a.callers[isoOwner].c.must(http.StatusOK, "GET", "/workspaces/"+w.a.ws+"/cubes", nil, &got)
					if has := strings.Contains(got.Files["own.yml"], name); has != allowed {
						t.Errorf("A's cube files hold the new cube = %v, want %v: %v", has, allowed, got.Files)
					}
				}}
			}},
		// The semantic layer for the console: the workspace comes from the
		// path, so B's workspace (or a ghost) is a 404 before any query.
		"GET /workspaces/:ws/cube/meta": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		"GET /workspaces/:ws/cube/load": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{query: "?query=" + url.QueryEscape(isoCubeQuery)}
			}},
		"POST /workspaces/:ws/cube/load": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"query": json.RawMessage(isoCubeQuery)} }},
		"GET /workspaces/:ws/cube/sql": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				return isoCall{query: "?query=" + url.QueryEscape(isoCubeQuery)}
			}},
		"POST /workspaces/:ws/cube/sql": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{"query": json.RawMessage(isoCubeQuery)} }},
		"GET /workspaces/:ws/sources/:src/debugger": {access: roles(isoEveryone, auth.ScopeRead), ok: 200},
		// Dead letters are a sink's: A's own calls name a webhook sink
		// installed for them.
		"GET /workspaces/:ws/plugins/:plugin_id/dead-letters": {access: roles(isoEveryone, auth.ScopeRead), ok: 200,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				w.ensureSink(w.a)
				return isoCall{params: w.a.params(map[string]string{"plugin_id": "sink.webhook"})}
			}},
		"POST /workspaces/:ws/plugins/:plugin_id/dead-letters/replay": {access: roles(isoEditors, auth.ScopeWrite), ok: 200,
			body: func(w *isoWorld) any { return map[string]any{} },
			own: func(w *isoWorld, c *isoCaller) isoCall {
				w.ensureSink(w.a)
				return isoCall{params: w.a.params(map[string]string{"plugin_id": "sink.webhook"}), body: map[string]any{}}
			}},
		"DELETE /workspaces/:ws/plugins/:plugin_id": {access: roles(isoEditors, auth.ScopeWrite), ok: 204,
			own: func(w *isoWorld, c *isoCaller) isoCall {
				w.uninstall(w.a, "processor.scorer")
				w.install(w.a, "processor.scorer", `{}`)
				return isoCall{params: w.a.params(map[string]string{"plugin_id": "processor.scorer"}),
					check: func(t *testing.T, allowed bool, r response) {
						if got := w.installed(w.a, "processor.scorer"); got == allowed {
							t.Errorf("processor.scorer still installed = %v after the call, want %v", got, !allowed)
						}
					}}
			}},
	}
}

// TestIsolationMatrixCoversEveryRoute checks that every route the API
// registers has a case, and every case a route.
func TestIsolationMatrixCoversEveryRoute(t *testing.T) {
	cases := isoRoutes()
	registered := isoRegisteredRoutes(t)
	for _, r := range registered {
		if _, ok := cases[r]; !ok {
			t.Errorf("route %s has no isolation case in isoRoutes", r)
		}
	}
	for r := range cases {
		if !slices.Contains(registered, r) {
			t.Errorf("isoRoutes has a case for %s, which the API does not register", r)
		}
	}
}

// isoCaller is one caller from organization A.
type isoCaller struct {
	name string
	// role is an admin's; key and scopes an API key's.
	role    string
	adminID string
	email   string
	key     string
	scopes  []string
	c       *client
}

// isoTenant is an organization with a workspace holding a source, an API
// key, an invitation, a member and events.
type isoTenant struct {
	name                    string // "alpha", "bravo"
	org, orgID, orgName     string
	ws, wsName              string
	wsRow                   store.Workspace
	orgRow                  store.Organization
	src, srcID, srcName     string
	writeKey                string
	keyID, keyName, key     string
	invID, invEmail, invTok string
	memberID, memberEmail   string
	ownerID, ownerEmail     string
	messageIDs              []string
	// sessionID is a stored session of anonID, profileID the profile of
	// userID and anonID.
	sessionID, profileID  string
	userID, anonID, email string
	// jobID is a deletion job of the workspace (of a range before any
	// data, never run).
	jobID string
	// plugin is the plugin installed in the workspace, installID its
	// installation's id, upload the plugin id the organization uploaded,
	// pluginSecret a secret of the installation's configuration.
	plugin, installID, upload, pluginSecret string
	// callers by name: the owner always; for A every role and key scope.
	callers map[string]*isoCaller
}

// params are the tenant's standing objects as path parameters, with
// overrides.
func (tn *isoTenant) params(over map[string]string) map[string]string {
	m := map[string]string{"org": tn.org, "ws": tn.ws, "src": tn.src, "key_id": tn.keyID,
		"invitation_id": tn.invID, "admin_id": tn.memberID, "session_id": tn.sessionID, "profile_id": tn.profileID,
		"plugin_id": tn.plugin, "job_id": tn.jobID}
	for k, v := range over {
		m[k] = v
	}
	return m
}

type isoWorld struct {
	t    *testing.T
	p    *platform
	a, b *isoTenant
	// callers are A's, in a stable order.
	callers []*isoCaller
	// secrets are B's names, ids, emails, keys and event data: no response
	// to an A caller may hold one it did not send.
	secrets []string
	seq     int
}

// isoPassword is the password newAdmin gives an admin.
func isoPassword(email string) string { return "correct horse battery " + email }

var isoChange = store.Change{Actor: store.Actor{Type: "cli", Label: "isolation test"}}

func (w *isoWorld) fresh(prefix string) string {
	w.seq++
	return fmt.Sprintf("%s-%d", prefix, w.seq)
}

// newIsoWorld sets up organizations alpha (A) and bravo (B) and A's callers.
func newIsoWorld(t *testing.T) *isoWorld {
	t.Helper()
	p := newPlatform(t, withPlugins(t))
	w := &isoWorld{t: t, p: p}
	w.a = w.newTenant("alpha")
	w.b = w.newTenant("bravo")
	ctx := context.Background()
	// Plugins: A runs processor.tagger, B sink.webhook with a secret; each
	// organization uploaded an app of its own.
	w.a.plugin, w.a.upload, w.a.pluginSecret = "processor.tagger", "app.alpha_app", ""
	w.a.installID = w.install(w.a, w.a.plugin, `{"tag": "alpha"}`)
	w.b.plugin, w.b.upload, w.b.pluginSecret = "sink.webhook", "app.bravo_secret_app", "bravo-webhook-secret-0123456789"
	w.b.installID = w.install(w.b, w.b.plugin, `{"url": "https://bravo-hooks.example.com/in", "secret": "`+w.b.pluginSecret+`"}`)
	for _, tn := range []*isoTenant{w.a, w.b} {
		r := tn.callers[isoOwner].c.upload(tn.org, [2]string{"manifest", wasmManifest(tn.upload, "1.0.0")}, [2]string{"module", string(abiWASM)})
		if r.status != http.StatusCreated {
			t.Fatalf("upload %s to %s: %d %s", tn.upload, tn.org, r.status, r.body)
		}
	}

	for _, role := range isoEveryone {
		var cl *isoCaller
		if role == isoOwner {
			cl = w.a.callers[isoOwner]
		} else {
			email := role + "@alpha.test"
			c := p.newAdmin(email)
			a, _, err := p.store.AdminByEmail(ctx, email)
			testenv.Must(t, err, "admin %s", email)
			testenv.Must(t, p.store.AddMember(ctx, isoChange, w.a.orgRow, a.ID, role), "add %s", email)
			cl = &isoCaller{name: role, role: role, adminID: a.ID, email: email, c: c}
			w.a.callers[role] = cl
		}
		w.callers = append(w.callers, cl)
	}
	for _, scopes := range [][]string{{auth.ScopeRead}, {auth.ScopeWrite}, {auth.ScopeAdmin}, auth.Scopes} {
		_, key := w.freshKey(w.a.wsRow, scopes)
		name := "key:" + strings.Join(scopes, "+")
		w.callers = append(w.callers, &isoCaller{name: name, key: key, scopes: scopes, c: p.withKey(key)})
	}

	b := w.b
	w.secrets = []string{b.org, b.orgID, b.orgName, b.ws, b.wsRow.ID, b.wsName, b.src, b.srcID, b.srcName,
		b.writeKey, store.HashSecret(b.writeKey), b.keyID, b.keyName, b.key, store.HashSecret(b.key),
		b.invID, b.invEmail, b.invTok, store.HashSecret(b.invTok), b.memberID, b.memberEmail, b.ownerID, b.ownerEmail,
		"bravo-user", "Bravo Secret Event", "bravo-property-value", b.sessionID, b.profileID, b.anonID, b.email,
		b.installID, b.upload, b.pluginSecret, "bravo-hooks.example.com", b.jobID}
	w.secrets = append(w.secrets, b.messageIDs...)
	return w
}

func (w *isoWorld) newTenant(name string) *isoTenant {
	t, p := w.t, w.p
	ctx := context.Background()
	title := strings.ToUpper(name[:1]) + name[1:]
	tn := &isoTenant{name: name, org: name + "-org", orgName: title + " Org", ws: name + "-ws", wsName: title + " Workspace",
		src: name + "-src", srcName: title + " Source", keyName: name + "-key",
		invEmail: "invitee@" + name + ".test", memberEmail: "staff@" + name + ".test",
		ownerEmail: "owner@" + name + ".test", callers: map[string]*isoCaller{},
		userID: name + "-user", anonID: name + "-anon", email: "customer@" + name + ".test"}

	owner := p.newAdmin(tn.ownerEmail)
	a, _, err := p.store.AdminByEmail(ctx, tn.ownerEmail)
	testenv.Must(t, err, "owner of %s", name)
	tn.ownerID = a.ID
	tn.callers[isoOwner] = &isoCaller{name: isoOwner, role: isoOwner, adminID: a.ID, email: tn.ownerEmail, c: owner}

	owner.must(http.StatusCreated, "POST", "/organizations", map[string]any{"id": tn.org, "name": tn.orgName}, nil)
	owner.must(http.StatusCreated, "POST", "/organizations/"+tn.org+"/workspaces", map[string]any{"id": tn.ws, "name": tn.wsName}, nil)
	var src struct {
		WriteKey string `json:"write_key"`
	}
	owner.must(http.StatusCreated, "POST", "/workspaces/"+tn.ws+"/sources", map[string]any{"id": tn.src, "name": tn.srcName}, &src)
	tn.writeKey = src.WriteKey
	// Both workspaces also have a source "web": a slug is per workspace.
	owner.must(http.StatusCreated, "POST", "/workspaces/"+tn.ws+"/sources", map[string]any{"id": "web"}, nil)
	var key struct{ ID, Key string }
	owner.must(http.StatusCreated, "POST", "/workspaces/"+tn.ws+"/api-keys",
		map[string]any{"name": tn.keyName, "scopes": auth.Scopes}, &key)
	tn.keyID, tn.key = key.ID, key.Key
	var inv struct{ ID, Token string }
	owner.must(http.StatusCreated, "POST", "/organizations/"+tn.org+"/invitations",
		map[string]any{"email": tn.invEmail, "role": isoMember}, &inv)
	tn.invID, tn.invTok = inv.ID, inv.Token

	tn.orgRow, err = p.store.OrganizationBySlug(ctx, tn.org)
	testenv.Must(t, err, "organization %s", tn.org)
	tn.orgID = tn.orgRow.ID
	tn.wsRow, err = p.store.WorkspaceBySlug(ctx, tn.ws)
	testenv.Must(t, err, "workspace %s", tn.ws)
	s, err := p.store.Source(ctx, tn.wsRow, tn.src)
	testenv.Must(t, err, "source %s", tn.src)
	tn.srcID = s.ID

	m, err := p.store.CreateAdmin(ctx, tn.memberEmail, "Member of "+title, "not a password hash")
	testenv.Must(t, err, "create %s", tn.memberEmail)
	tn.memberID = m.ID
	testenv.Must(t, p.store.AddMember(ctx, isoChange, tn.orgRow, m.ID, isoMember), "add %s", tn.memberEmail)

	now := time.Now().UTC()
	var events []store.Event
	for i := range 3 {
		id := fmt.Sprintf("%s-message-%d", name, i)
		tn.messageIDs = append(tn.messageIDs, id)
		events = append(events, store.Event{WorkspaceID: tn.wsRow.ID, SourceID: tn.srcID, MessageID: id, Type: "track",
			Event: title + " Secret Event", UserID: name + "-user", Timestamp: now.Add(-time.Duration(i) * time.Minute),
			ReceivedAt: now, Properties: []byte(`{"secret": "` + name + `-property-value"}`)})
	}
	n, err := p.store.InsertEvents(ctx, events)
	testenv.Must(t, err, "insert events of %s", name)
	if n != int64(len(events)) {
		t.Fatalf("inserted %d events of %s, want %d", n, name, len(events))
	}

	// A profile and a stored session.
	tn.profileID = applyIdentity(t, p.store, identity.Event{WorkspaceID: tn.wsRow.ID, MessageID: name + "-identify",
		Type: "identify", AnonymousID: tn.anonID, UserID: tn.userID, Timestamp: now,
		Traits: json.RawMessage(`{"email": "` + tn.email + `", "secret": "` + name + `-property-value"}`)}).Profile
	sw := newSessionWriter(t, p.store, tn.wsRow.ID)
	sw.setProfile(tn.anonID, tn.profileID)
	sw.apply(session.Event{AnonymousID: tn.anonID, MessageID: name + "-page", Type: session.TypePage, Timestamp: now,
		URL: "https://" + name + ".test/", UserID: tn.userID})
	// The live view mirrors the open session, as a worker would.
	testenv.Must(t, p.mirror.Publish(ctx, sw.changes, dueInAnHour, now), "publish %s's live session", name)
	sw.flush()
	tn.sessionID = sw.ids[tn.anonID]
	job, err := p.store.CreateDeletionJob(ctx, isoChange, tn.wsRow, store.NewDeletion{Kind: store.DeletionRange,
		From: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)})
	testenv.Must(t, err, "create a deletion job in %s", name)
	tn.jobID = job.ID
	return tn
}

// freshPerson gives tn's workspace a new person (a profile with a user id
// and an anonymous id, and an event) and returns their user id and profile.
func (w *isoWorld) freshPerson(tn *isoTenant) (userID, profileID string) {
	userID = w.fresh(tn.name + "-doomed-user")
	now := time.Now().UTC()
	profileID = applyIdentity(w.t, w.p.store, identity.Event{WorkspaceID: tn.wsRow.ID, MessageID: userID + "-identify",
		Type: "identify", AnonymousID: userID + "-anon", UserID: userID, Timestamp: now}).Profile
	_, err := w.p.store.InsertEvents(context.Background(), []store.Event{{WorkspaceID: tn.wsRow.ID, MessageID: userID + "-identify",
		Type: "identify", UserID: userID, AnonymousID: userID + "-anon", Timestamp: now, ReceivedAt: now}})
	testenv.Must(w.t, err, "insert an event of %s", userID)
	return userID, profileID
}

// checkDeletion checks the outcome of a person's deletion request: when
// allowed, a 202 with the job and its Location, and the job done with the
// person gone; otherwise the person intact.
func (w *isoWorld) checkDeletion(t *testing.T, allowed bool, r response, profileID string) {
	t.Helper()
	ctx := context.Background()
	exists := func() bool {
		_, err := w.p.store.WorkspaceProfile(ctx, w.a.wsRow, profileID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("read profile: %v", err)
		}
		return err == nil
	}
	if !allowed {
		if !exists() {
			t.Error("a refused deletion deleted the person")
		}
		return
	}
	var job struct{ ID, Status string }
	r.decode(t, &job)
	if loc := r.header.Get("Location"); loc != api.Base+"/workspaces/"+w.a.ws+"/deletions/"+job.ID {
		t.Errorf("Location %q for job %s", loc, job.ID)
	}
	testenv.Eventually(t, 20*time.Second, "the deletion job to finish", func() bool {
		j, err := w.p.store.DeletionJob(ctx, w.a.wsRow, job.ID)
		testenv.Must(t, err, "read job")
		if j.Status == store.DeletionFailed {
			t.Fatalf("the deletion job failed: %s", j.Error)
		}
		return j.Status == store.DeletionDone
	})
	if exists() {
		t.Error("the person's profile survived the deletion job")
	}
}

// install installs a plugin in tn's workspace through the store and
// returns the installation's id.
func (w *isoWorld) install(tn *isoTenant, pluginID, config string) string {
	in, err := w.p.store.CreateInstallation(context.Background(), isoChange, tn.wsRow,
		store.NewInstallation{PluginID: pluginID, Enabled: true, Config: json.RawMessage(config)}, nil)
	testenv.Must(w.t, err, "install %s in %s", pluginID, tn.ws)
	return in.ID
}

// isoCubeQuery is a query every workspace's model answers.
const isoCubeQuery = `{"measures":["events.count"]}`

// ensureSink installs sink.webhook in tn's workspace unless it is.
func (w *isoWorld) ensureSink(tn *isoTenant) {
	if !w.installed(tn, "sink.webhook") {
		w.install(tn, "sink.webhook", `{"url": "https://`+tn.ws+`-hooks.example.com/in", "secret": "a webhook secret of 32 characters"}`)
	}
}

// uninstall removes a plugin from tn's workspace, if installed.
func (w *isoWorld) uninstall(tn *isoTenant, pluginID string) {
	_, err := w.p.store.DeleteInstallation(context.Background(), isoChange, tn.wsRow, pluginID, nil)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		w.t.Fatalf("uninstall %s from %s: %v", pluginID, tn.ws, err)
	}
}

// installed tells whether a plugin is installed in tn's workspace.
func (w *isoWorld) installed(tn *isoTenant, pluginID string) bool {
	_, err := w.p.store.InstallationOf(context.Background(), tn.wsRow, pluginID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		w.t.Fatalf("installation of %s in %s: %v", pluginID, tn.ws, err)
	}
	return err == nil
}

// freshPluginID returns an unused plugin id for an upload.
func (w *isoWorld) freshPluginID() string {
	w.seq++
	return fmt.Sprintf("app.fresh_%d", w.seq)
}

// freshMember adds a new admin to tn's organization as a viewer.
func (w *isoWorld) freshMember(tn *isoTenant) string {
	ctx := context.Background()
	email := w.fresh("member") + "@" + tn.name + ".test"
	a, err := w.p.store.CreateAdmin(ctx, email, "Fresh member", "not a password hash")
	testenv.Must(w.t, err, "create %s", email)
	testenv.Must(w.t, w.p.store.AddMember(ctx, isoChange, tn.orgRow, a.ID, isoViewer), "add %s", email)
	return a.ID
}

// role returns an admin's role in tn's organization, "" when not a member.
func (w *isoWorld) role(tn *isoTenant, adminID string) string {
	m, err := w.p.store.Member(context.Background(), tn.orgID, adminID)
	if err != nil {
		return ""
	}
	return m.Role
}

// freshInvitation invites email to tn's organization as a viewer.
func (w *isoWorld) freshInvitation(tn *isoTenant, email string) (id, token string) {
	token = auth.NewSecret(auth.InvitationPrefix)
	inv, err := w.p.store.CreateInvitation(context.Background(), isoChange, tn.orgRow, "", email, isoViewer,
		store.HashSecret(token), time.Hour)
	testenv.Must(w.t, err, "invite %s", email)
	return inv.ID, token
}

// freshWorkspace creates a workspace in tn's organization.
func (w *isoWorld) freshWorkspace(tn *isoTenant) store.Workspace {
	ws, err := w.p.store.CreateWorkspace(context.Background(), isoChange, tn.orgRow, w.fresh("ws"), "Fresh workspace",
		store.Settings{Timezone: "UTC", Currency: "USD", SessionTimeoutMinutes: 30})
	testenv.Must(w.t, err, "create workspace")
	return ws
}

// freshSource creates a source in ws and returns its slug and key hash.
func (w *isoWorld) freshSource(ws store.Workspace) (slug, hash string) {
	key := auth.NewSecret(auth.WriteKeyPrefix)
	src, err := w.p.store.CreateSource(context.Background(), isoChange, ws, w.fresh("src"), "Fresh source", key)
	testenv.Must(w.t, err, "create source")
	return src.Slug, store.HashSecret(key)
}

// freshKey creates an API key of ws and returns its id and secret.
func (w *isoWorld) freshKey(ws store.Workspace, scopes []string) (id, key string) {
	key = auth.NewSecret(auth.APIKeyPrefix)
	k, err := w.p.store.CreateAPIKey(context.Background(), isoChange, ws, w.fresh("key"), scopes,
		store.HashSecret(key), auth.DisplayPrefix(key))
	testenv.Must(w.t, err, "create api key")
	return k.ID, key
}

// sourceKeyListed tells whether SourceKeys (what collectors accept) lists
// a write-key hash.
func (w *isoWorld) sourceKeyListed(hash string) bool {
	keys, err := w.p.store.SourceKeys(context.Background())
	testenv.Must(w.t, err, "source keys")
	return slices.ContainsFunc(keys, func(k store.SourceKey) bool { return k.KeyHash == hash })
}

// cloneClient returns a new client with the caller's credentials: a new
// session of the same admin, or the same API key.
func (w *isoWorld) cloneClient(c *isoCaller) *client {
	if c.key != "" {
		return w.p.withKey(c.key)
	}
	token := auth.NewSecret(auth.SessionPrefix)
	testenv.Must(w.t, w.p.store.CreateSession(context.Background(), store.HashSecret(token), c.adminID, time.Hour), "create session")
	cl := w.p.anonymous()
	u, err := url.Parse(w.p.srv.URL)
	testenv.Must(w.t, err, "parse server url")
	cl.http.Jar.SetCookies(u, []*http.Cookie{{Name: "eddy_session", Value: token, Path: "/"}})
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	cl.must(http.StatusOK, "GET", "/auth/me", nil, &me)
	cl.csrf = me.CSRFToken
	return cl
}

// send makes a request and fails t if the response holds one of B's secrets
// that the request did not carry.
func (w *isoWorld) send(t *testing.T, c *client, method, path string, body any, header ...map[string]string) response {
	t.Helper()
	var hdr map[string]string
	if len(header) > 0 {
		hdr = header[0]
	}
	r := c.send(method, path, body, hdr)
	sent := path
	if body != nil {
		b, _ := json.Marshal(body)
		sent += string(b)
	}
	for _, s := range w.secrets {
		if s != "" && strings.Contains(string(r.body), s) && !strings.Contains(sent, s) {
			t.Errorf("%s %s → %d reveals %q of organization %s: %s", method, path, r.status, s, w.b.org, r.body)
		}
	}
	return r
}

// snapshot describes B's rows: its organization, workspaces, sources (write
// key hashes included), API keys, memberships (and any of B's admins'),
// admins, invitations, sessions, and the sizes of its audit log and events.
func (w *isoWorld) snapshot(t *testing.T) []string {
	t.Helper()
	tn := w.b
	admins := []string{tn.ownerID, tn.memberID}
	// b holds B's ids: every query takes the same parameters.
	queries := []string{
		`SELECT 'organization ' || o::text FROM b, organizations o WHERE o.id = b.org`,
		`SELECT 'workspace ' || x::text FROM b, workspaces x WHERE x.organization_id = b.org OR x.id = b.ws`,
		`SELECT 'source ' || s::text FROM b, sources s WHERE s.workspace_id = b.ws`,
		`SELECT 'api key ' || k::text FROM b, api_keys k WHERE k.workspace_id = b.ws`,
		`SELECT 'membership ' || m::text FROM b, memberships m WHERE m.organization_id = b.org OR m.admin_id::text = ANY(b.admins)`,
		`SELECT 'admin ' || a::text FROM b, admins a WHERE a.id::text = ANY(b.admins)`,
		`SELECT 'invitation ' || i::text FROM b, invitations i WHERE i.organization_id = b.org`,
		`SELECT 'sessions ' || count(*) FROM b, admin_sessions s WHERE s.admin_id::text = ANY(b.admins)`,
		`SELECT 'audit log ' || count(*) FROM b, audit_log l WHERE l.organization_id = b.org OR l.workspace = b.ws_slug`,
		`SELECT 'events ' || count(*) FROM b, events e WHERE e.workspace_id = b.ws`,
		`SELECT 'event ids ' || count(*) FROM b, event_ids e WHERE e.workspace_id = b.ws`,
		`SELECT 'stored session ' || s::text FROM b, sessions s WHERE s.workspace_id = b.ws`,
		`SELECT 'profile ' || x::text FROM b, profiles x WHERE x.workspace_id = b.ws`,
		`SELECT 'identity ' || i::text FROM b, identities i WHERE i.workspace_id = b.ws`,
		`SELECT 'plugin installation ' || i::text FROM b, plugin_installations i WHERE i.workspace_id = b.ws`,
		`SELECT 'deletion job ' || j::text FROM b, deletion_jobs j WHERE j.workspace_id = b.ws`,
		`SELECT 'suppressions ' || count(*) FROM b, suppressions s WHERE s.workspace_id = b.ws`,
		`SELECT 'consent decision ' || d::text FROM b, consent_decisions d WHERE d.workspace_id = b.ws`,
		`SELECT 'plugin upload ' || concat_ws(' ', u.id, u.plugin_id, u.version, u.sha256) FROM b, plugin_uploads u WHERE u.organization_id = b.org`,
	}
	var out []string
	for _, q := range queries {
		rows, err := w.p.store.Pool().Query(context.Background(),
			`WITH b AS (SELECT $1::uuid AS org, $2::uuid AS ws, $3::text[] AS admins, $4::text AS ws_slug) `+q+` ORDER BY 1`,
			tn.orgID, tn.wsRow.ID, admins, tn.ws)
		testenv.Must(t, err, "snapshot: %s", q)
		for rows.Next() {
			var s string
			testenv.Must(t, rows.Scan(&s), "snapshot")
			out = append(out, s)
		}
		testenv.Must(t, rows.Err(), "snapshot: %s", q)
	}
	return out
}

func (w *isoWorld) checkUnchanged(t *testing.T, before []string, what string) {
	t.Helper()
	after := w.snapshot(t)
	if !slices.Equal(before, after) {
		t.Errorf("%s changed organization %s:\nbefore:\n  %s\nafter:\n  %s", what, w.b.org,
			strings.Join(before, "\n  "), strings.Join(after, "\n  "))
	}
}

// isoOrgRoute tells whether a route is an organization route, which API keys
// never reach (403).
func isoOrgRoute(route string) bool {
	_, path, _ := strings.Cut(route, " ")
	return strings.HasPrefix(path, "/organizations")
}

// isoVariant is a set of path parameters of a cross-tenant call, and its
// twin where B's values are replaced by ids that do not exist.
type isoVariant struct {
	params, ghost map[string]string
	// bParams are the parameters holding B's values.
	bParams []string
}

// variants returns every combination of A's and B's values for a route's
// parameters that names at least one of B's objects.
func (w *isoWorld) variants(route string, c *isoCaller) []isoVariant {
	_, path, _ := strings.Cut(route, " ")
	names := isoParams(path)
	self := w.a.memberID
	if c.adminID != "" {
		self = c.adminID
	}
	type choice struct {
		v, ghost string
		isB      bool
	}
	ghostUUID := "00000000-0000-4000-8000-00000000dead"
	options := map[string][]choice{
		"org":           {{w.a.org, "", false}, {w.b.org, "ghost-org", true}},
		"ws":            {{w.a.ws, "", false}, {w.b.ws, "ghost-ws", true}},
		"src":           {{w.a.src, "", false}, {w.b.src, "ghost-src", true}},
		"key_id":        {{w.a.keyID, "", false}, {w.b.keyID, ghostUUID, true}},
		"invitation_id": {{w.a.invID, "", false}, {w.b.invID, ghostUUID, true}},
		"session_id":    {{w.a.sessionID, "", false}, {w.b.sessionID, ghostUUID, true}},
		"profile_id":    {{w.a.profileID, "", false}, {w.b.profileID, ghostUUID, true}},
		"job_id":        {{w.a.jobID, "", false}, {w.b.jobID, ghostUUID, true}},
		// B's plugin is not installed in A's workspace, nor the ghost.
		"plugin_id": {{w.a.plugin, "", false}, {w.b.plugin, "sink.ghost", true}},
		// The caller themself (leaving is allowed to anyone), B's member
		// and B's owner.
		"admin_id": {{self, "", false}, {w.b.memberID, ghostUUID, true}, {w.b.ownerID, ghostUUID, true}},
	}
	out := []isoVariant{{params: map[string]string{}, ghost: map[string]string{}}}
	for _, n := range names {
		opts, ok := options[n]
		if !ok {
			w.t.Fatalf("route %s: no A and B values for parameter :%s", route, n)
		}
		var next []isoVariant
		for _, v := range out {
			for _, o := range opts {
				nv := isoVariant{params: maps.Clone(v.params), ghost: maps.Clone(v.ghost), bParams: slices.Clone(v.bParams)}
				nv.params[n] = o.v
				nv.ghost[n] = o.v
				if o.isB {
					nv.ghost[n] = o.ghost
					nv.bParams = append(nv.bParams, n)
				}
				next = append(next, nv)
			}
		}
		out = next
	}
	return slices.DeleteFunc(out, func(v isoVariant) bool { return len(v.bParams) == 0 })
}

// TestIsolationCrossTenant has every caller of organization A call every
// route on organization B's objects (and on A's with B's ids inside): never
// a 2xx, exactly the answer an id that does not exist gets, nothing of B's
// in any body, and B's rows unchanged.
func TestIsolationCrossTenant(t *testing.T) {
	w := newIsoWorld(t)
	cases := isoRoutes()
	start := w.snapshot(t)
	// Counts for the log: calls naming B's objects, calls of routes that
	// name nothing (checked for leaks and changes only), probes.
	named, plain, probed := 0, 0, 0
	for _, route := range isoRegisteredRoutes(t) {
		rc, ok := cases[route]
		if !ok {
			t.Errorf("route %s has no isolation case", route)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		for _, c := range w.callers {
			t.Run(route+"/"+c.name, func(t *testing.T) {
				if len(isoParams(path)) == 0 {
					// Nothing of B's to name: the caller's own call must
					// still reveal and change nothing of B's.
					before := w.snapshot(t)
					call := isoCall{body: nil}
					if rc.own != nil {
						call = rc.own(w, c)
					} else if rc.body != nil {
						call.body = rc.body(w)
					}
					cl := call.client
					if cl == nil {
						cl = c.c
					}
					w.send(t, cl, method, path, call.body, call.header)
					plain++
					w.checkUnchanged(t, before, route)
					return
				}
				for _, v := range w.variants(route, c) {
					var body any
					if rc.body != nil {
						body = rc.body(w)
					}
					p := isoPath(t, path, v.params)
					before := w.snapshot(t)
					r := w.send(t, c.c, method, p, body)
					named++
					w.checkUnchanged(t, before, method+" "+p)

					var want int
					switch {
					case c.key != "" && isoOrgRoute(route):
						want = http.StatusForbidden
					case slices.Contains(v.bParams, "org") || slices.Contains(v.bParams, "ws"):
						want = http.StatusNotFound
					case rc.access.allows(c):
						want = http.StatusNotFound
					default:
						want = http.StatusForbidden
					}
					if r.status != want {
						t.Errorf("%s %s → %d, want %d: %s", method, p, r.status, want, r.body)
					}
					// The answer must be the one an id that does not exist
					// gets, so that it tells nothing about B.
					gp := isoPath(t, path, v.ghost)
					if rc.body != nil {
						body = rc.body(w)
					}
					g := w.send(t, c.c, method, gp, body)
					if g.status != r.status || isoErrorMessage(r) != isoErrorMessage(g) {
						t.Errorf("%s %s → %d %s\nbut for ids that do not exist %s → %d %s\n(B's objects must look absent)",
							method, p, r.status, r.body, gp, g.status, g.body)
					}
				}
			})
		}
	}

	// B's ids in request bodies and queries.
	probes := []struct {
		name, method, path string
		body               any
		want               func(c *isoCaller) int
	}{
		{"create an organization with B's id", "POST", "/organizations", map[string]any{"id": w.b.org, "name": "Mine now"},
			func(c *isoCaller) int { return map[bool]int{true: 403, false: 409}[c.key != ""] }},
		{"create a workspace with B's id", "POST", "/organizations/" + w.a.org + "/workspaces",
			map[string]any{"id": w.b.ws, "name": "Mine now"}, func(c *isoCaller) int {
				if c.key != "" || !slices.Contains(isoManagers, c.role) {
					return 403
				}
				return 409
			}},
		{"accept B's invitation by its stored hash", "POST", "/invitations/accept",
			map[string]any{"token": store.HashSecret(w.b.invTok)}, func(*isoCaller) int { return 404 }},
		{"log in as B's owner with A's owner's password", "POST", "/auth/login",
			map[string]any{"email": w.b.ownerEmail, "password": isoPassword(w.a.ownerEmail)}, func(*isoCaller) int { return 401 }},
		{"audit log of B's workspace through A", "GET", "/organizations/" + w.a.org + "/audit-log?workspace=" + w.b.ws, nil,
			func(c *isoCaller) int {
				if c.key != "" || !slices.Contains(isoManagers, c.role) {
					return 403
				}
				return 200
			}},
		{"events of B's user through A", "GET", "/workspaces/" + w.a.ws + "/events?user_id=bravo-user", nil,
			func(c *isoCaller) int {
				if c.key != "" && !slices.Contains(c.scopes, auth.ScopeRead) {
					return 403
				}
				return 200
			}},
		{"B's source slug in A's workspace", "GET", "/workspaces/" + w.a.ws + "/sources/" + w.b.src, nil,
			func(c *isoCaller) int {
				if c.key != "" && !slices.Contains(c.scopes, auth.ScopeRead) {
					return 403
				}
				return 404
			}},
		{"sessions of B's visitor through A", "GET", "/workspaces/" + w.a.ws + "/sessions?anonymous_id=" + w.b.anonID, nil, isoReadOr(200)},
		{"sessions of B's profile through A", "GET", "/workspaces/" + w.a.ws + "/sessions?profile_id=" + w.b.profileID, nil, isoReadOr(200)},
		{"live sessions of B's visitor through A", "GET", "/workspaces/" + w.a.ws + "/sessions/live?anonymous_id=" + w.b.anonID, nil, isoReadOr(200)},
		{"live sessions of B's user through A", "GET", "/workspaces/" + w.a.ws + "/sessions/live?user_id=" + w.b.userID, nil, isoReadOr(200)},
		{"live sessions of B's profile through A", "GET", "/workspaces/" + w.a.ws + "/sessions/live?profile_id=" + w.b.profileID, nil, isoReadOr(200)},
		{"B's profile by user id through A", "GET", "/workspaces/" + w.a.ws + "/profiles?identity=user_id:" + w.b.userID, nil, isoReadOr(404)},
		{"B's profile by anonymous id through A", "GET", "/workspaces/" + w.a.ws + "/profiles?identity=anonymous_id:" + w.b.anonID, nil, isoReadOr(404)},
		{"install B's uploaded plugin in A", "POST", "/workspaces/" + w.a.ws + "/plugins", map[string]any{"plugin_id": w.b.upload},
			func(c *isoCaller) int {
				if c.key != "" && !slices.Contains(c.scopes, auth.ScopeWrite) || c.key == "" && !slices.Contains(isoEditors, c.role) {
					return 403
				}
				return 400
			}},
		{"B's consent through A", "GET", "/workspaces/" + w.a.ws + "/profiles/" + w.b.profileID + "/consent", nil, isoReadOr(404)},
		{"set B's consent through A", "PUT", "/workspaces/" + w.a.ws + "/profiles/" + w.b.profileID + "/consent",
			map[string]any{"categoryPreferences": map[string]any{"marketing": true}},
			func(c *isoCaller) int {
				if c.key != "" && !slices.Contains(c.scopes, auth.ScopeWrite) || c.key == "" && !slices.Contains(isoEditors, c.role) {
					return 403
				}
				return 404
			}},
		{"delete B's person by user id through A", "DELETE", "/workspaces/" + w.a.ws + "/profiles?user_id=" + w.b.userID, nil, isoAdminOr(404)},
		{"delete B's person by anonymous id through A", "DELETE", "/workspaces/" + w.a.ws + "/profiles?anonymous_id=" + w.b.anonID, nil, isoAdminOr(404)},
		{"delete B's person by email through A", "DELETE", "/workspaces/" + w.a.ws + "/profiles?email=" + url.QueryEscape(w.b.email), nil, isoAdminOr(404)},
		{"B's profile by email through A", "GET", "/workspaces/" + w.a.ws + "/profiles?identity=email:" + url.QueryEscape(w.b.email), nil, isoReadOr(404)},
	}
	for _, pr := range probes {
		for _, c := range w.callers {
			t.Run(pr.name+"/"+c.name, func(t *testing.T) {
				before := w.snapshot(t)
				cl := c.c
				if pr.path == "/auth/login" {
					cl = w.p.anonymous() // a login would replace the caller's session
				}
				r := w.send(t, cl, pr.method, pr.path, pr.body)
				probed++
				if want := pr.want(c); r.status != want {
					t.Errorf("%s %s → %d, want %d: %s", pr.method, pr.path, r.status, want, r.body)
				}
				if r.status == 200 {
					var page struct{ Data []any }
					r.decode(t, &page)
					if len(page.Data) != 0 {
						t.Errorf("%s %s lists %d items, want none: %s", pr.method, pr.path, len(page.Data), r.body)
					}
				}
				w.checkUnchanged(t, before, pr.name)
			})
		}
	}

	// A source of the same slug in both workspaces: A's changes to its own
	// touch only its own.
	t.Run("same source slug in both workspaces", func(t *testing.T) {
		before := w.snapshot(t)
		owner := w.a.callers[isoOwner].c
		for _, step := range []struct {
			method, path string
			body         any
			want         int
		}{
			{"PATCH", "/workspaces/" + w.a.ws + "/sources/web", map[string]any{"name": "Renamed"}, 200},
			{"POST", "/workspaces/" + w.a.ws + "/sources/web/rotate", nil, 200},
			{"DELETE", "/workspaces/" + w.a.ws + "/sources/web", nil, 204},
		} {
			if r := w.send(t, owner, step.method, step.path, step.body); r.status != step.want {
				t.Errorf("%s %s → %d, want %d: %s", step.method, step.path, r.status, step.want, r.body)
			}
		}
		w.checkUnchanged(t, before, "changing A's source web")
	})

	w.checkUnchanged(t, start, "the whole cross-tenant matrix")
	t.Logf("cross-tenant matrix: %d routes × %d callers: %d calls naming B's objects (each with its nonexistent-id twin), "+
		"%d calls of routes naming none, %d probes with B's ids in bodies and queries",
		len(isoRegisteredRoutes(t)), len(w.callers), named, plain, probed)
}

// isoReadOr is the status a caller of A gets for a read of its own
// workspace that finds nothing of B's: 403 for a key without read, else
// status.
func isoReadOr(status int) func(c *isoCaller) int {
	return func(c *isoCaller) int {
		if c.key != "" && !slices.Contains(c.scopes, auth.ScopeRead) {
			return 403
		}
		return status
	}
}

// isoAdminOr is the status a caller of A gets for a privacy call on its
// own workspace that finds nothing of B's: 403 unless an owner, an admin or
// a key with admin, else status.
func isoAdminOr(status int) func(c *isoCaller) int {
	return func(c *isoCaller) int {
		if c.key != "" && !slices.Contains(c.scopes, auth.ScopeAdmin) || c.key == "" && !slices.Contains(isoManagers, c.role) {
			return 403
		}
		return status
	}
}

// isoErrorMessage returns an error response's code and message.
func isoErrorMessage(r response) string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code + ": " + e.Error.Message
}

// TestIsolationOwnObjects has every caller of organization A call every
// route on A's own objects: allowed as docs/api.md says, 403 otherwise, and
// the effect (or its absence) visible at once.
func TestIsolationOwnObjects(t *testing.T) {
	w := newIsoWorld(t)
	cases := isoRoutes()
	start := w.snapshot(t)
	n := 0
	for _, route := range isoRegisteredRoutes(t) {
		rc, ok := cases[route]
		if !ok {
			t.Errorf("route %s has no isolation case", route)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		for _, c := range w.callers {
			t.Run(route+"/"+c.name, func(t *testing.T) {
				call := isoCall{}
				if rc.own != nil {
					call = rc.own(w, c)
				} else if rc.body != nil {
					call.body = rc.body(w)
				}
				if call.params == nil {
					call.params = w.a.params(nil)
				}
				cl := call.client
				if cl == nil {
					cl = c.c
				}
				p := isoPath(t, path, call.params) + call.query
				allowed := rc.access.allows(c)
				want := map[bool]int{true: rc.ok, false: http.StatusForbidden}[allowed]
				r := w.send(t, cl, method, p, call.body, call.header)
				n++
				if r.status != want {
					t.Fatalf("%s %s as %s → %d, want %d: %s", method, p, c.name, r.status, want, r.body)
				}
				if !allowed && r.errorCode() != "forbidden" {
					t.Errorf("%s %s as %s: error code %q, want forbidden", method, p, c.name, r.errorCode())
				}
				if call.check != nil {
					call.check(t, allowed, r)
				}
			})
		}
	}
	w.checkUnchanged(t, start, "A's calls on its own objects")
	t.Logf("own-objects matrix: %d routes × %d callers = %d calls", len(isoRegisteredRoutes(t)), len(w.callers), n)
}

// isoListAll follows a list's pages, one item each, and returns every item.
func (w *isoWorld) listAll(t *testing.T, c *client, path string) []map[string]any {
	t.Helper()
	var all []map[string]any
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for range 1000 {
		p := path + sep + "limit=1"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		r := w.send(t, c, "GET", p, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s → %d: %s", p, r.status, r.body)
		}
		var page struct {
			Data       []map[string]any
			NextCursor string `json:"next_cursor"`
		}
		r.decode(t, &page)
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
	t.Fatalf("GET %s: more than 1000 pages", path)
	return nil
}

func isoField(item map[string]any, name string) string {
	s, _ := item[name].(string)
	return s
}

// TestIsolationListsHoldOnlyTheCallersItems pages through every list each
// caller of A may read: A's items are there, none of B's.
func TestIsolationListsHoldOnlyTheCallersItems(t *testing.T) {
	w := newIsoWorld(t)
	// Some of B's items are listed once more after changes, in case a list
	// reads from the audit log or a recently changed row.
	bOwner := w.b.callers[isoOwner].c
	bOwner.must(http.StatusOK, "PATCH", "/workspaces/"+w.b.ws, map[string]any{"name": w.b.wsName}, nil)

	type list struct {
		path string
		// field identifies an item; want are A's items that must be there;
		// belongs says whether an item may be listed for A.
		field   string
		want    []string
		belongs func(item map[string]any) bool
		access  isoAccess
	}
	aMembers := []string{w.a.ownerID, w.a.memberID}
	for _, c := range w.callers {
		if c.adminID != "" {
			aMembers = append(aMembers, c.adminID)
		}
	}
	lists := []list{
		{path: "/organizations", field: "id", want: []string{w.a.org},
			belongs: func(i map[string]any) bool { return isoField(i, "id") == w.a.org }, access: isoAccess{sessions: true}},
		{path: "/organizations/" + w.a.org + "/workspaces", field: "id", want: []string{w.a.ws},
			belongs: func(i map[string]any) bool { return isoField(i, "organization_id") == w.a.org },
			access:  isoAccess{roles: isoEveryone}},
		{path: "/organizations/" + w.a.org + "/members", field: "admin_id", want: aMembers,
			belongs: func(i map[string]any) bool { return slices.Contains(aMembers, isoField(i, "admin_id")) },
			access:  isoAccess{roles: isoEveryone}},
		{path: "/organizations/" + w.a.org + "/invitations", field: "id", want: []string{w.a.invID},
			belongs: func(i map[string]any) bool { return strings.HasSuffix(isoField(i, "email"), "@alpha.test") },
			access:  isoAccess{roles: isoManagers}},
		{path: "/organizations/" + w.a.org + "/audit-log", field: "action",
			want: []string{"organization.create", "workspace.create", "source.create", "api_key.create", "invitation.create"},
			belongs: func(i map[string]any) bool {
				ws, _ := i["workspace_id"].(string)
				return ws == "" || ws == w.a.ws
			}, access: isoAccess{roles: isoManagers}},
		{path: "/workspaces/" + w.a.ws + "/sources", field: "id", want: []string{w.a.src, "web"},
			belongs: func(i map[string]any) bool { return isoField(i, "workspace_id") == w.a.ws },
			access:  isoAccess{roles: isoEveryone, scope: auth.ScopeRead}},
		{path: "/workspaces/" + w.a.ws + "/api-keys", field: "id", want: []string{w.a.keyID},
			belongs: func(i map[string]any) bool { return isoField(i, "workspace_id") == w.a.ws },
			access:  isoAccess{roles: isoEditors, scope: auth.ScopeAdmin}},
		{path: "/workspaces/" + w.a.ws + "/events", field: "message_id", want: w.a.messageIDs,
			belongs: func(i map[string]any) bool { return slices.Contains(w.a.messageIDs, isoField(i, "message_id")) },
			access:  isoAccess{roles: isoEveryone, scope: auth.ScopeRead}},
		{path: "/workspaces/" + w.a.ws + "/sessions", field: "id", want: []string{w.a.sessionID},
			belongs: func(i map[string]any) bool { return isoField(i, "id") == w.a.sessionID },
			access:  isoAccess{roles: isoEveryone, scope: auth.ScopeRead}},
		{path: "/workspaces/" + w.a.ws + "/plugins", field: "id", want: []string{w.a.installID},
			belongs: func(i map[string]any) bool { return isoField(i, "workspace_id") == w.a.ws },
			access:  isoAccess{roles: isoEveryone, scope: auth.ScopeRead}},
		{path: "/workspaces/" + w.a.ws + "/sessions/live", field: "id", want: []string{w.a.sessionID},
			belongs: func(i map[string]any) bool { return isoField(i, "id") == w.a.sessionID },
			access:  isoAccess{roles: isoEveryone, scope: auth.ScopeRead}},
	}
	for _, l := range lists {
		for _, c := range w.callers {
			if !l.access.allows(c) {
				continue
			}
			t.Run(l.path+"/"+c.name, func(t *testing.T) {
				items := w.listAll(t, c.c, l.path)
				var got []string
				for _, it := range items {
					got = append(got, isoField(it, l.field))
					if !l.belongs(it) {
						t.Errorf("GET %s lists an item that is not A's: %v", l.path, it)
					}
				}
				for _, want := range l.want {
					if !slices.Contains(got, want) {
						t.Errorf("GET %s lacks A's %q: %v", l.path, want, got)
					}
				}
			})
		}
	}

	// /auth/me lists the admin's organizations too.
	for _, c := range w.callers {
		if c.key != "" {
			continue
		}
		var me struct{ Organizations []struct{ ID string } }
		w.send(t, c.c, "GET", "/auth/me", nil).decode(t, &me)
		if len(me.Organizations) != 1 || me.Organizations[0].ID != w.a.org {
			t.Errorf("/auth/me of %s lists %+v, want only %s", c.name, me.Organizations, w.a.org)
		}
	}
}

// TestIsolationRevokedCredentialsStopAtOnce checks that revoking a key,
// deleting a workspace, rotating or revoking a write key take effect by the
// time the API has answered.
func TestIsolationRevokedCredentialsStopAtOnce(t *testing.T) {
	w := newIsoWorld(t)
	owner := w.a.callers[isoOwner].c
	ws := "/workspaces/" + w.a.ws

	t.Run("revoked API key", func(t *testing.T) {
		var k struct{ ID, Key string }
		owner.must(http.StatusCreated, "POST", ws+"/api-keys", map[string]any{"name": "soon revoked", "scopes": []string{"read"}}, &k)
		prog := w.p.withKey(k.Key)
		prog.must(http.StatusOK, "GET", ws+"/sources", nil, nil)
		owner.must(http.StatusNoContent, "DELETE", ws+"/api-keys/"+k.ID, nil, nil)
		if r := prog.do("GET", ws+"/sources", nil); r.status != http.StatusUnauthorized || r.errorCode() != "unauthenticated" {
			t.Errorf("a revoked key's next request → %d %s, want 401", r.status, r.body)
		}
	})

	t.Run("API key revoking itself", func(t *testing.T) {
		var k struct{ ID, Key string }
		owner.must(http.StatusCreated, "POST", ws+"/api-keys", map[string]any{"name": "self revoking", "scopes": []string{"admin"}}, &k)
		prog := w.p.withKey(k.Key)
		prog.must(http.StatusNoContent, "DELETE", ws+"/api-keys/"+k.ID, nil, nil)
		if r := prog.do("GET", ws+"/api-keys", nil); r.status != http.StatusUnauthorized {
			t.Errorf("a key that revoked itself → %d %s, want 401", r.status, r.body)
		}
	})

	t.Run("deleted workspace", func(t *testing.T) {
		owner.must(http.StatusCreated, "POST", "/organizations/"+w.a.org+"/workspaces", map[string]any{"id": "doomed", "name": "Doomed"}, nil)
		var src struct {
			WriteKey string `json:"write_key"`
		}
		owner.must(http.StatusCreated, "POST", "/workspaces/doomed/sources", map[string]any{"id": "web"}, &src)
		var k struct{ Key string }
		owner.must(http.StatusCreated, "POST", "/workspaces/doomed/api-keys", map[string]any{"name": "k", "scopes": auth.Scopes}, &k)
		prog := w.p.withKey(k.Key)
		prog.must(http.StatusOK, "GET", "/workspaces/doomed", nil, nil)
		if !w.sourceKeyListed(store.HashSecret(src.WriteKey)) {
			t.Fatal("the new source's write key is not in SourceKeys")
		}
		owner.must(http.StatusNoContent, "DELETE", "/workspaces/doomed", nil, nil)
		if r := prog.do("GET", "/workspaces/doomed", nil); r.status != http.StatusUnauthorized {
			t.Errorf("a deleted workspace's key → %d %s, want 401", r.status, r.body)
		}
		if w.sourceKeyListed(store.HashSecret(src.WriteKey)) {
			t.Error("a deleted workspace's write key is still in SourceKeys")
		}
		if r := owner.do("GET", "/workspaces/doomed/sources", nil); r.status != http.StatusNotFound {
			t.Errorf("a deleted workspace's sources → %d, want 404", r.status)
		}
	})

	t.Run("rotated and revoked write keys", func(t *testing.T) {
		var src struct {
			WriteKey string `json:"write_key"`
		}
		owner.must(http.StatusCreated, "POST", ws+"/sources", map[string]any{"id": "rotating"}, &src)
		old := store.HashSecret(src.WriteKey)
		var rotated struct {
			WriteKey string `json:"write_key"`
		}
		owner.must(http.StatusOK, "POST", ws+"/sources/rotating/rotate", nil, &rotated)
		if w.sourceKeyListed(old) {
			t.Error("the old write key is still in SourceKeys after the rotation answered")
		}
		if !w.sourceKeyListed(store.HashSecret(rotated.WriteKey)) {
			t.Error("the new write key is not in SourceKeys after the rotation answered")
		}
		owner.must(http.StatusNoContent, "DELETE", ws+"/sources/rotating", nil, nil)
		if w.sourceKeyListed(store.HashSecret(rotated.WriteKey)) {
			t.Error("a revoked source's write key is still in SourceKeys after the revocation answered")
		}
	})

	t.Run("removed and demoted members", func(t *testing.T) {
		email := "leaving@alpha.test"
		leaving := w.p.newAdmin(email)
		a, _, err := w.p.store.AdminByEmail(context.Background(), email)
		testenv.Must(t, err, "admin %s", email)
		testenv.Must(t, w.p.store.AddMember(context.Background(), isoChange, w.a.orgRow, a.ID, isoMember), "add %s", email)
		leaving.must(http.StatusOK, "PATCH", ws, map[string]any{"settings": map[string]any{"timezone": "Europe/Paris"}}, nil)
		owner.must(http.StatusOK, "PATCH", "/organizations/"+w.a.org+"/members/"+a.ID, map[string]any{"role": isoViewer}, nil)
		if r := leaving.do("PATCH", ws, map[string]any{"settings": map[string]any{"timezone": "UTC"}}); r.status != http.StatusForbidden {
			t.Errorf("a member demoted to viewer still changes the workspace: %d %s", r.status, r.body)
		}
		leaving.must(http.StatusOK, "GET", ws, nil, nil)
		owner.must(http.StatusNoContent, "DELETE", "/organizations/"+w.a.org+"/members/"+a.ID, nil, nil)
		for _, path := range []string{ws, ws + "/events", "/organizations/" + w.a.org} {
			if r := leaving.do("GET", path, nil); r.status != http.StatusNotFound {
				t.Errorf("a removed member's GET %s → %d %s, want 404", path, r.status, r.body)
			}
		}
	})

	t.Run("keys cannot grant scopes they lack", func(t *testing.T) {
		for _, tc := range []struct {
			holder, asked []string
			want          int
		}{
			{[]string{"admin"}, []string{"read"}, 403},
			{[]string{"admin"}, []string{"write"}, 403},
			{[]string{"admin"}, auth.Scopes, 403},
			{[]string{"read", "admin"}, []string{"write"}, 403},
			{[]string{"write", "admin"}, []string{"read", "admin"}, 403},
			{[]string{"admin"}, []string{"admin"}, 201},
			{auth.Scopes, auth.Scopes, 201},
		} {
			_, key := w.freshKey(w.a.wsRow, tc.holder)
			r := w.p.withKey(key).do("POST", ws+"/api-keys", map[string]any{"name": "child", "scopes": tc.asked})
			if r.status != tc.want {
				t.Errorf("a %v key creating a %v key → %d, want %d: %s", tc.holder, tc.asked, r.status, tc.want, r.body)
			}
		}
	})
}
