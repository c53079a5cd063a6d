package apitest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const (
	source = `{"id":"web","workspace_id":"demo","name":"Web","managed":false,` +
		`"write_key_prefix":"wk_ab12","revoked_at":null,` +
		`"created_at":"2024-05-01T10:00:00Z","updated_at":"2024-05-01T10:00:00.123456789+02:00"}`
	apiKey = `{"id":"0190a6d2-3b4c-7d8e-9f00-112233445566","workspace_id":"demo","name":"ci",` +
		`"prefix":"eddy_sk_ab","scopes":["read","write"],"created_by":"ann@example.com",` +
		`"created_at":"2024-05-01T10:00:00Z","last_used_at":null,"revoked_at":null}`
	errNotFound = `{"error":{"code":"not_found","message":"no such source"}}`
)

// reply is what the test server answers.
type reply struct {
	status      int
	contentType string // "-" for none
	noRequestID bool
	body        string
}

func TestCheck(t *testing.T) {
	spec := Load(t)
	tests := []struct {
		name    string
		method  string
		path    string
		reply   reply
		wantErr string // "" when the response conforms
	}{
		{name: "conforming source", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply: reply{status: 200, body: source}},
		{name: "conforming list with cursor", method: "GET", path: "/api/v1/workspaces/demo/sources?limit=1",
			reply: reply{status: 200, body: `{"data":[` + source + `],"next_cursor":"abc"}`}},
		{name: "conforming empty list", method: "GET", path: "/api/v1/workspaces/demo/api-keys",
			reply: reply{status: 200, body: `{"data":[]}`}},
		{name: "conforming api key", method: "GET", path: "/api/v1/workspaces/demo/api-keys",
			reply: reply{status: 200, body: `{"data":[` + apiKey + `]}`}},
		{name: "conforming error", method: "GET", path: "/api/v1/workspaces/demo/sources/nope",
			reply: reply{status: 404, body: errNotFound}},
		{name: "conforming error with details", method: "POST", path: "/api/v1/workspaces/demo/sources",
			reply: reply{status: 400, body: `{"error":{"code":"invalid_request","message":"bad","details":[{"field":"id","message":"required"}]}}`}},
		{name: "conforming 204", method: "DELETE", path: "/api/v1/workspaces/demo/sources/web",
			reply: reply{status: 204, contentType: "-"}},
		{name: "500 falls back on default", method: "GET", path: "/api/v1/workspaces/demo",
			reply: reply{status: 500, body: `{"error":{"code":"internal","message":"oops"}}`}},
		{name: "429 with Retry-After", method: "POST", path: "/api/v1/auth/login",
			reply: reply{status: 429, body: `{"error":{"code":"rate_limited","message":"slow down"}}`}},
		{name: "openapi.json", method: "GET", path: "/api/v1/openapi.json",
			reply: reply{status: 200, body: `{"openapi":"3.0.3"}`}},
		{name: "outside the API is not checked", method: "POST", path: "/v1/track",
			reply: reply{status: 418, contentType: "text/plain", noRequestID: true, body: "teapot"}},

		{name: "extra field", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, body: strings.Replace(source, `"name":"Web"`, `"name":"Web","secret":"x"`, 1)},
			wantErr: "secret"},
		{name: "missing required field", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, body: strings.Replace(source, `"managed":false,`, ``, 1)},
			wantErr: "managed"},
		{name: "null where not nullable", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, body: strings.Replace(source, `"name":"Web"`, `"name":null`, 1)},
			wantErr: "nullable"},
		{name: "wrong type", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, body: strings.Replace(source, `"managed":false`, `"managed":"no"`, 1)},
			wantErr: "managed"},
		{name: "bad date-time", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, body: strings.Replace(source, `"2024-05-01T10:00:00Z"`, `"2024-05-01 10:00"`, 1)},
			wantErr: "date-time"},
		{name: "bad uuid", method: "GET", path: "/api/v1/workspaces/demo/api-keys",
			reply:   reply{status: 200, body: `{"data":[` + strings.Replace(apiKey, `0190a6d2-3b4c-7d8e-9f00-112233445566`, `42`, 1) + `]}`},
			wantErr: "uuid"},
		{name: "enum drift", method: "GET", path: "/api/v1/workspaces/demo/api-keys",
			reply:   reply{status: 200, body: `{"data":[` + strings.Replace(apiKey, `"write"`, `"delete"`, 1) + `]}`},
			wantErr: "scopes"},
		{name: "list not wrapped", method: "GET", path: "/api/v1/workspaces/demo/sources",
			reply:   reply{status: 200, body: `[` + source + `]`},
			wantErr: "doesn't match"},
		{name: "wrong status", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 201, body: source},
			wantErr: "status 201 is not documented"},
		{name: "status only the default covers", method: "GET", path: "/api/v1/workspaces/demo",
			reply:   reply{status: 502, body: `{"error":{"code":"internal","message":"oops"}}`},
			wantErr: "status 502 is not documented"},
		{name: "create answering 200", method: "POST", path: "/api/v1/workspaces/demo/sources",
			reply:   reply{status: 200, body: source},
			wantErr: "status 200 is not documented"},
		{name: "429 not documented here", method: "GET", path: "/api/v1/workspaces/demo",
			reply:   reply{status: 429, body: `{"error":{"code":"rate_limited","message":"slow down"}}`},
			wantErr: "status 429"},
		{name: "DELETE answering 200", method: "DELETE", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, body: source},
			wantErr: "status 200 is not documented"},
		{name: "undocumented route", method: "GET", path: "/api/v1/workspaces/demo/destinations",
			reply:   reply{status: 200, body: `{"data":[]}`},
			wantErr: "not a documented operation"},
		{name: "undocumented method", method: "PUT", path: "/api/v1/workspaces/demo",
			reply:   reply{status: 200, body: `{}`},
			wantErr: "not a documented operation"},
		{name: "trailing slash", method: "GET", path: "/api/v1/workspaces/demo/",
			reply:   reply{status: 200, body: `{}`},
			wantErr: "not a documented operation"},
		{name: "not JSON", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, contentType: "text/plain", body: source},
			wantErr: "Content-Type"},
		{name: "empty body", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200},
			wantErr: "decode"},
		{name: "error shape drift", method: "GET", path: "/api/v1/workspaces/demo/sources/nope",
			reply:   reply{status: 404, body: `{"error":"not found"}`},
			wantErr: "error"},
		{name: "unknown error code", method: "GET", path: "/api/v1/workspaces/demo/sources/nope",
			reply:   reply{status: 404, body: `{"error":{"code":"missing","message":"no"}}`},
			wantErr: "code"},
		{name: "missing X-Request-Id", method: "GET", path: "/api/v1/workspaces/demo/sources/web",
			reply:   reply{status: 200, noRequestID: true, body: source},
			wantErr: "X-Request-Id"},
		{name: "429 without Retry-After", method: "POST", path: "/api/v1/auth/login",
			reply:   reply{status: 429, noRequestID: false, body: `{"error":{"code":"rate_limited","message":"slow down"}}`},
			wantErr: "Retry-After"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.reply
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				switch r.contentType {
				case "":
					w.Header().Set("Content-Type", "application/json; charset=utf-8")
				case "-":
				default:
					w.Header().Set("Content-Type", r.contentType)
				}
				if !r.noRequestID {
					w.Header().Set("X-Request-Id", "req-1")
				}
				if r.status == 429 && tt.name != "429 without Retry-After" {
					w.Header().Set("Retry-After", "30")
				}
				w.WriteHeader(r.status)
				io.WriteString(w, r.body)
			}))
			defer srv.Close()

			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()

			err = spec.Check(req, resp)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Check passed, want an error about %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check: %v\nwant an error about %q", err, tt.wantErr)
			}
			if err != nil {
				var ce *CheckError
				if !errors.As(err, &ce) || ce.Method != tt.method || ce.Status != r.status ||
					!strings.HasPrefix(tt.path, ce.Path) {
					t.Errorf("Check error %#v does not name the request", err)
				}
			}
			// The caller still reads the whole body.
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != r.body {
				t.Errorf("body after Check = %q, %v; want %q", b, err, r.body)
			}
		})
	}
}

// A server cannot send a body with a 204, but a response documented without
// a body must not have one whatever its status.
func TestCheckBodyWhereNone(t *testing.T) {
	spec := Load(t)
	req := httptest.NewRequest("DELETE", "http://eddy.test/api/v1/workspaces/demo", nil)
	resp := &http.Response{
		StatusCode: 204,
		Header:     http.Header{"X-Request-Id": {"req-1"}},
		Body:       io.NopCloser(strings.NewReader(`{}`)),
	}
	if err := spec.Check(req, resp); err == nil || !strings.Contains(err.Error(), "without a body") {
		t.Errorf("Check = %v, want an error about a body where none is documented", err)
	}
	resp.Body = http.NoBody
	if err := spec.Check(req, resp); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// fakeTB records what a test would report.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func TestClient(t *testing.T) {
	spec := Load(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req-1")
		switch r.URL.Path {
		case "/api/v1/workspaces/demo/sources/web":
			io.WriteString(w, source)
		case "/api/v1/workspaces/demo/sources/drift":
			io.WriteString(w, strings.Replace(source, `"name":"Web"`, `"name":"Web","extra":1`, 1))
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, errNotFound)
		}
	}))
	defer srv.Close()

	tests := []struct {
		path     string
		wantFail string
	}{
		{path: "/api/v1/workspaces/demo/sources/web"},
		{path: "/api/v1/workspaces/demo/sources/gone"},
		{path: "/api/v1/workspaces/demo/sources/drift", wantFail: "extra"},
		{path: "/api/v1/nowhere", wantFail: "not a documented operation"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			tb := &fakeTB{}
			c := spec.Client(tb, srv.Client())
			resp, err := c.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(b) == 0 {
				t.Error("the caller got an empty body")
			}
			switch {
			case tt.wantFail == "" && len(tb.errors) > 0:
				t.Errorf("reported %q", tb.errors)
			case tt.wantFail != "" && len(tb.errors) != 1:
				t.Errorf("reported %q, want one failure about %q", tb.errors, tt.wantFail)
			case tt.wantFail != "":
				msg := tb.errors[0]
				for _, want := range []string{"GET", tt.path, fmt.Sprint(resp.StatusCode), "body: {", tt.wantFail} {
					if !strings.Contains(msg, want) {
						t.Errorf("report %q does not contain %q", msg, want)
					}
				}
			}
		})
	}
}

// TestDocument checks the conventions every operation follows, so that
// a new operation cannot forget one.
func TestDocument(t *testing.T) {
	spec := Load(t)
	ops := spec.Operations()
	// That the operations are exactly the server's routes is checked in
	// core/api (TestRoutesMatchTheDocument); here, that there are some.
	if len(ops) == 0 {
		t.Fatal("the document has no operations")
	}
	ids := map[string]bool{}
	for _, o := range ops {
		op := spec.doc.Paths.Find(o.Path).GetOperation(o.Method)
		name := o.Method + " " + o.Path
		if o.ID == "" || op.Summary == "" {
			t.Errorf("%s: needs an operationId and a summary", name)
		}
		if ids[o.ID] {
			t.Errorf("%s: operationId %s is used twice", name, o.ID)
		}
		ids[o.ID] = true

		has := func(code string) bool { return op.Responses.Value(code) != nil }
		var want []string
		if has("default") {
			if ref := op.Responses.Default().Ref; ref != "#/components/responses/InternalError" {
				t.Errorf("%s: default is %q, want the InternalError response", name, ref)
			}
		} else {
			want = append(want, "default")
		}
		success := 0
		for code := range op.Responses.Map() {
			if strings.HasPrefix(code, "2") {
				success++
			}
		}
		if success != 1 {
			t.Errorf("%s: %d success responses, want 1", name, success)
		}
		if op.RequestBody != nil {
			want = append(want, "400", "413")
		}
		security := spec.doc.Security
		if op.Security != nil {
			security = *op.Security
		}
		if len(security) > 0 && len(security[0]) > 0 { // authenticated
			want = append(want, "401", "403", "404")
		}
		// An operation that starts a job answers 202 instead of 204 or 201.
		async := has("202")
		if (o.Method == "DELETE" || o.Path == "/auth/logout") && !async {
			want = append(want, "204")
		}
		if o.Method == "POST" && strings.HasPrefix(o.ID, "create") && !async {
			want = append(want, "201")
		}
		for _, code := range want {
			if !has(code) {
				t.Errorf("%s: does not document %s", name, code)
			}
		}
	}
	if ops := spec.Operations(); ops[0] != (Operation{Method: "POST", Path: "/auth/login", ID: "login"}) {
		t.Errorf("first operation = %+v", ops[0])
	}
}

func TestGinPath(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/workspaces/:ws/sources", "/workspaces/{ws}/sources"},
		{"/workspaces/:ws/sources/:src/rotate", "/workspaces/{ws}/sources/{src}/rotate"},
		{"/api/v1/organizations/:org/members/:admin_id", "/api/v1/organizations/{org}/members/{admin_id}"},
		{"/static/*filepath", "/static/{filepath}"},
		{"/openapi.json", "/openapi.json"},
		{"/", "/"},
	} {
		if got := GinPath(tt.in); got != tt.want {
			t.Errorf("GinPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
