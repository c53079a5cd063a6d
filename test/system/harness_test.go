// Package system holds Eddy's system tests: whole processes and real
// PostgreSQL and Redis, with faults (a worker killed, the database or Redis
// cut off) and real clients (Segment's analytics-node).
package system

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// eddyBinary is the eddy command built once for the tests that run it as a
// separate process.
var eddyBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-system-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eddyBinary = filepath.Join(dir, "eddy")
	build := exec.Command("go", "build", "-o", eddyBinary, "../../core/cmd/eddy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build eddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's isolated platform: its own database, Redis key prefix,
// workspace and write key.
type env struct {
	t        *testing.T
	dbURL    string
	redisURL string
	prefix   string
	writeKey string
	yaml     string
	rdb      *redis.Client
}

func newEnv(t *testing.T, extraYAML string) *env {
	t.Helper()
	e := &env{t: t, dbURL: testenv.Database(t), redisURL: testenv.RedisURL()}
	e.rdb, e.prefix = testenv.Redis(t)
	e.writeKey = testenv.RandomName("wk_")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	testenv.Must(t, store.Migrate(ctx, e.dbURL), "migrate")
	e.yaml = fmt.Sprintf(`version: 1
queue:
  prefix: %q
  shards: 4
worker:
  lease_ttl: 1s
  max_backoff: 500ms
  trim_interval: 1s
workspaces:
  - id: shop
    # Most system tests send events without consent: they are processed
    # for necessary purposes only (stored, sessionized, given to no
    # plugin). The consent tests turn this off.
    privacy:
      allow_necessary_only: true
    sources:
      - id: web
        write_key: %q
%s`, e.prefix, e.writeKey, extraYAML)
	return e
}

// config returns the configuration processes of this env use, with the
// given database and Redis URLs (a proxy's, say).
func (e *env) config(dbURL, redisURL string) *config.Config {
	e.t.Helper()
	envVars := map[string]string{"EDDY_DATABASE_URL": dbURL, "EDDY_REDIS_URL": redisURL, "EDDY_ENV": "test"}
	cfg, err := config.Parse("system-test.yaml", []byte(e.yaml), func(k string) (string, bool) {
		v, ok := envVars[k]
		return v, ok
	})
	testenv.Must(e.t, err, "config")
	return cfg
}

// serve runs roles in this test process and returns the base URL.
func (e *env) serve(cfg *config.Config, roles ...string) string {
	e.t.Helper()
	if len(roles) == 0 {
		roles = server.AllRoles
	}
	log := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, roles, log)
	if err != nil {
		cancel()
		e.t.Fatalf("server.New: %v", err)
	}
	testenv.Must(e.t, srv.Listen("127.0.0.1:0"), "listen")
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("server.Run: %v", err)
		}
	})
	<-srv.Ready()
	return "http://" + srv.Addr()
}

// process runs `eddy serve --roles roles` as a child process.
type process struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

func (e *env) start(roles string) *process {
	e.t.Helper()
	cfgPath := filepath.Join(e.t.TempDir(), "plugins.yaml")
	testenv.Must(e.t, os.WriteFile(cfgPath, []byte(e.yaml), 0o600), "write config")
	cmd := exec.Command(eddyBinary, "serve", "--roles", roles, "--migrate=false")
	cmd.Env = append(os.Environ(),
		"EDDY_CONFIG="+cfgPath, "EDDY_DATABASE_URL="+e.dbURL, "EDDY_REDIS_URL="+e.redisURL,
		"EDDY_HTTP_ADDR=127.0.0.1:0", "EDDY_ENV=test", "EDDY_LOG_LEVEL=warn")
	p := &process{cmd: cmd, logs: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = io.Discard, p.logs
	testenv.Must(e.t, cmd.Start(), "start eddy %s", roles)
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if e.t.Failed() {
			e.t.Logf("eddy %s logs:\n%s", roles, p.logs)
		}
	})
	return p
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	testenv.Must(t, p.cmd.Process.Kill(), "SIGKILL") // Kill is SIGKILL on Unix
	_ = p.cmd.Wait()
}

// post sends body to path with the env's write key.
func (e *env) post(base, path, body string, headers ...string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	testenv.Must(e.t, err, "request")
	req.SetBasicAuth(e.writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(e.t, req)
}

func do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	testenv.Must(t, err, "%s %s", req.Method, req.URL)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// storedIDs returns how often each message id is stored in the workspace.
func (e *env) storedIDs() map[string]int {
	e.t.Helper()
	return e.counts(`SELECT message_id, count(*) FROM events GROUP BY message_id`)
}

// queued is the number of entries in the env's shard streams.
func (e *env) queued() int64 {
	e.t.Helper()
	var n int64
	for i := 0; i < 4; i++ {
		l, err := e.rdb.XLen(context.Background(), fmt.Sprintf("%s:events:%d", e.prefix, i)).Result()
		if err != nil && err != redis.Nil {
			e.t.Fatalf("xlen: %v", err)
		}
		n += l
	}
	return n
}

// waitStored waits until every id in want is stored, then checks each is
// stored exactly once and nothing else is.
func (e *env) waitStored(want map[string]bool, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]int
	for {
		got = e.storedIDs()
		missing := 0
		for id := range want {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s, %d of %d acknowledged events are not stored", timeout, missing, len(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id, n := range got {
		if n != 1 {
			e.t.Errorf("message %s stored %d times", id, n)
		}
		if !want[id] {
			e.t.Errorf("message %s stored but never acknowledged", id)
		}
	}
}

func redisURLFor(addr string) string {
	u, _ := url.Parse(testenv.RedisURL())
	u.Host = addr
	return u.String()
}

func dbURLFor(dbURL, addr string) string {
	u, _ := url.Parse(dbURL)
	u.Host = addr
	return u.String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mustParseURL(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return u
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	testenv.Must(t, err, "request")
	return req
}
