package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/apitest"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// platform is an API served in-process over a fresh database and Redis
// prefix, with every response checked against openapi.yaml.
type platform struct {
	t     *testing.T
	store *store.Store
	srv   *httptest.Server
	spec  *apitest.Spec
	logs  *syncBuffer
	// keysChanged counts KeysChanged calls.
	keysChanged chan struct{}
	// api is the API served; mirror the live view it reads, under its
	// Redis prefix.
	api    *api.API
	mirror *live.Mirror
	rdb    *redis.Client
	prefix string
	// router is the handler srv serves.
	router http.Handler
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// options lets a test change the API's options before it starts.
type options func(*api.Options)

func newPlatform(t *testing.T, opts ...options) *platform {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.Database(t)
	testenv.Must(t, store.Migrate(ctx, dbURL), "migrate")
	st, err := store.Open(ctx, dbURL)
	testenv.Must(t, err, "open store")
	t.Cleanup(st.Close)
	rdb, prefix := testenv.Redis(t)
	p := &platform{t: t, store: st, spec: apitest.Load(t), logs: &syncBuffer{}, keysChanged: make(chan struct{}, 100)}
	o := api.Options{
		Store: st, Redis: rdb, Prefix: prefix,
		Logger: slog.New(slog.NewJSONHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KeysChanged: func(context.Context) {
			select {
			case p.keysChanged <- struct{}{}:
			default:
			}
		},
		LoginDelay: time.Millisecond, MaxLoginDelay: 10 * time.Millisecond,
	}
	for _, f := range opts {
		f(&o)
	}
	p.mirror, p.rdb, p.prefix = live.New(o.Redis, o.Prefix), o.Redis, o.Prefix
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	p.api = api.New(o)
	p.api.Register(r)
	r.NoRoute(api.NoRoute)
	p.router = r
	p.srv = httptest.NewServer(r)
	t.Cleanup(p.srv.Close)
	// Before the server closes, which waits for every request: end the
	// live streams still open.
	t.Cleanup(p.api.Close)
	return p
}

// client is one caller of the API: an admin's browser session (cookie jar
// and CSRF token) or a program with an API key.
type client struct {
	p      *platform
	http   *http.Client
	bearer string
	csrf   string
}

// anonymous returns a caller without credentials.
func (p *platform) anonymous() *client {
	jar, _ := cookiejar.New(nil)
	base := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	return &client{p: p, http: p.spec.Client(p.t, base)}
}

// withKey returns a caller authenticating with an API key.
func (p *platform) withKey(key string) *client {
	c := p.anonymous()
	c.bearer = key
	return c
}

// newAdmin creates an admin in the store and returns a logged-in client.
func (p *platform) newAdmin(email string) *client {
	p.t.Helper()
	password := "correct horse battery " + email
	hash, err := auth.HashPassword(password)
	testenv.Must(p.t, err, "hash password")
	_, err = p.store.CreateAdmin(context.Background(), email, "Admin "+email, hash)
	testenv.Must(p.t, err, "create admin %s", email)
	c := p.anonymous()
	var out struct {
		CSRFToken string `json:"csrf_token"`
	}
	c.must(http.StatusOK, "POST", "/auth/login", map[string]any{"email": email, "password": password}, &out)
	c.csrf = out.CSRFToken
	return c
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode decodes the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the error code of an error response.
func (r response) errorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// do sends a request to path (relative to /api/v1); body is JSON-encoded
// unless it is a string or []byte, sent as is.
func (c *client) do(method, path string, body any) response {
	c.p.t.Helper()
	return c.send(method, path, body, nil)
}

// must sends a request, fails the test unless the status is want, and
// decodes the body into out (when not nil).
func (c *client) must(want int, method, path string, body any, out any) response {
	c.p.t.Helper()
	r := c.do(method, path, body)
	if r.status != want {
		c.p.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		r.decode(c.p.t, out)
	}
	return r
}
