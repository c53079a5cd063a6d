// Package apitest checks the management API against its OpenAPI document
// (core/api/openapi.yaml). It is for tests only.
//
// Spec.Client gives an *http.Client that validates every response to an
// /api/v1/... request and fails the test when one is not what the document
// says: an undocumented route or method, an undocumented status, a body that
// does not match the schema (unknown fields included: response schemas say
// additionalProperties: false), a missing X-Request-Id, a non-JSON body.
// Requests are not validated: tests send bad input on purpose.
//
// Spec.Operations lists the documented operations, for a test to compare with
// the routes the server registers.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/eddy-cdp/eddy/core/api"
)

// BasePath is the document's server URL: the paths of Operations are relative
// to it, and only requests under it are validated.
const BasePath = "/api/v1"

// Spec is the loaded OpenAPI document. It is safe for concurrent use.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
}

// Operation is one documented operation.
type Operation struct {
	Method string // upper case: "GET"
	Path   string // relative to BasePath: "/workspaces/{ws}/sources"
	ID     string // operationId: "listSources"
}

// Load returns the document, loaded and validated once per test binary; it
// fails the test when the document is invalid.
func Load(t testing.TB) *Spec {
	t.Helper()
	s, err := load()
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	return s
}

var load = sync.OnceValues(func() (*Spec, error) {
	b, err := api.OpenAPIJSON()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("invalid OpenAPI document: %w", err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != BasePath {
		return nil, fmt.Errorf("OpenAPI document: servers must be [{url: %s}]", BasePath)
	}
	// kin-openapi knows date-time but not uuid unless told.
	doc.SetStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
	// The server is the relative URL /api/v1: gorillamux then matches the path
	// under it on any scheme and host.
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing the OpenAPI document: %w", err)
	}
	return &Spec{
		doc:    doc,
		router: router,
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			// The body is in the report already: leave the schema and
			// value dumps out of schema errors, which keep their path.
			SchemaValidationOptions: append(doc.GetSchemaValidationOptions(), openapi3.DisableSchemaErrorDetails()),
		},
	}, nil
})

// Operations returns every documented operation, sorted by path then method.
func (s *Spec) Operations() []Operation {
	var ops []Operation
	for path, item := range s.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, Operation{Method: method, Path: path, ID: op.OperationID})
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	return ops
}

// GinPath turns a gin route path into the OpenAPI template form:
// "/workspaces/:ws/sources" becomes "/workspaces/{ws}/sources" (and a
// "*name" wildcard "{name}"). It does not strip BasePath.
func GinPath(p string) string {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if len(seg) > 1 && (seg[0] == ':' || seg[0] == '*') {
			segs[i] = "{" + seg[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// CheckError is a response that does not match the document.
type CheckError struct {
	Method string
	Path   string // the request's path
	Status int
	Body   []byte
	Err    error
}

const maxExcerpt = 1024

func (e *CheckError) Error() string {
	body := e.Body
	more := ""
	if len(body) > maxExcerpt {
		body, more = body[:maxExcerpt], fmt.Sprintf("… (%d bytes)", len(e.Body))
	}
	return fmt.Sprintf("%s %s → %d does not match the OpenAPI document: %v\nbody: %s%s",
		e.Method, e.Path, e.Status, e.Err, body, more)
}

func (e *CheckError) Unwrap() error { return e.Err }

// Check validates resp, the response to req, against the document and
// returns a *CheckError when it does not match: the route and method must be
// documented, the status documented for the operation (500 may fall back on
// the operation's default response), and the headers and body must match the
// response's schema. Requests outside BasePath are not checked. resp.Body is
// read and replaced, so the caller can still read it.
func (s *Spec) Check(req *http.Request, resp *http.Response) error {
	if !strings.HasPrefix(req.URL.Path, BasePath+"/") {
		return nil
	}
	var body []byte
	if resp.Body != nil {
		var err error
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return s.fail(req, resp, body, fmt.Errorf("reading the body: %w", err))
		}
	}

	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return s.fail(req, resp, body, fmt.Errorf("%s %s is not a documented operation: %w",
			req.Method, req.URL.Path, err))
	}
	responses := route.Operation.Responses
	ref := responses.Status(resp.StatusCode)
	if ref == nil && resp.StatusCode == http.StatusInternalServerError {
		ref = responses.Default()
	}
	if ref == nil {
		return s.fail(req, resp, body, fmt.Errorf("status %d is not documented for %s (%s %s)",
			resp.StatusCode, route.Operation.OperationID, route.Method, route.Path))
	}
	if ref.Value != nil && len(ref.Value.Content) == 0 && len(body) > 0 {
		return s.fail(req, resp, body, fmt.Errorf("status %d is documented without a body, got %d bytes",
			resp.StatusCode, len(body)))
	}

	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    s.opts,
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: s.opts,
	}
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		return s.fail(req, resp, body, err)
	}
	return nil
}

func (s *Spec) fail(req *http.Request, resp *http.Response, body []byte, err error) error {
	return &CheckError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Body: body, Err: err}
}

// Client returns a copy of base (http.DefaultClient when nil) whose transport
// checks every response with Check and reports a mismatch with t.Errorf. The
// caller reads responses as usual.
func (s *Spec) Client(t testing.TB, base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &transport{t: t, spec: s, next: next}
	return &c
}

type transport struct {
	t    testing.TB
	spec *Spec
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if err := tr.spec.Check(req, resp); err != nil {
		tr.t.Errorf("%v", err)
	}
	return resp, nil
}
