package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

const testSecret = "0123456789abcdef-secret"

// request is what the test endpoint received.
type request struct {
	header http.Header
	body   []byte
}

// endpoint is a test receiver that records requests and answers with
// answer (200 when nil).
type endpoint struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	answer func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newEndpoint(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body []byte)) *endpoint {
	t.Helper()
	e := &endpoint{answer: answer}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.got = append(e.got, request{r.Header.Clone(), body})
		e.mu.Unlock()
		if e.answer != nil {
			e.answer(w, r, body)
		}
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// payload is the body the sink posts.
type payload struct {
	Batch  []map[string]any `json:"batch"`
	SentAt string           `json:"sent_at"`
}

func decode(t *testing.T, body []byte) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body is not the expected JSON: %v\n%s", err, body)
	}
	return p
}

// verify checks a request as the README tells receivers to.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get("X-Eddy-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s too far from now", ts)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(h.Get("X-Eddy-Signature"))) {
		return fmt.Errorf("signature %q, want %q", h.Get("X-Eddy-Signature"), want)
	}
	return nil
}

func events(n int, prefix string) []eddyplugin.Event {
	out := make([]eddyplugin.Event, n)
	for i := range out {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		out[i] = eddyplugin.Event{
			MessageID: id, WorkspaceID: "ws1", SourceID: "src1", Type: "track",
			Timestamp: time.Now(), ReceivedAt: time.Now(),
			Payload: []byte(fmt.Sprintf(`{"type":"track","messageId":%q,"event":"Signed Up","properties":{"n":%d}}`, id, i)),
		}
	}
	return out
}

func ids(evs []eddyplugin.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.MessageID
	}
	return out
}

func cfgJSON(url string, extra string) []byte {
	return []byte(fmt.Sprintf(`{"url":%q,"secret":%q%s}`, url, testSecret, extra))
}

func initInstallation(t *testing.T, p *pluginhost.Process, id string, cfg []byte) {
	t.Helper()
	if err := p.Init(plugintest.Context(t, 10*time.Second), eddyplugin.Installation{ID: id, PluginID: "sink.webhook", WorkspaceID: "ws1", Config: cfg}); err != nil {
		t.Fatalf("init %s: %v", id, err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background(), id) })
}

func write(t *testing.T, p *pluginhost.Process, id string, evs []eddyplugin.Event) eddyplugin.WriteResult {
	t.Helper()
	res, err := p.Write(plugintest.Context(t, 30*time.Second), id, evs)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return res
}

// TestWebhookSink runs the plugin as Eddy does (its own process, over
// gRPC) against real HTTP endpoints.
func TestWebhookSink(t *testing.T) {
	p := plugintest.Start(t, ".")

	t.Run("signed request with the documented headers and body", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		initInstallation(t, p, "signed", cfgJSON(ep.URL, `,"headers":[{"name":"Authorization","value":"Bearer tok"}]`))
		evs := events(2, "sig")
		evs[0].BatchContext = []byte(`{"library":{"name":"analytics-node"},"locale":"fr-FR"}`)
		evs[0].Payload = []byte(`{"type":"track","messageId":"sig-000","event":"A","context":{"locale":"en-GB"}}`)
		res := write(t, p, "signed", evs)
		if len(res.Retry)+len(res.Rejected) != 0 {
			t.Fatalf("result %+v, want all delivered", res)
		}
		got := ep.requests()
		if len(got) != 1 {
			t.Fatalf("%d requests, want 1", len(got))
		}
		r := got[0]
		if err := verify(testSecret, r.header, r.body, time.Now()); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
		if err := verify("another-secret-1234", r.header, r.body, time.Now()); err == nil {
			t.Fatal("signature verifies with the wrong secret")
		}
		for name, want := range map[string]string{
			"Content-Type": "application/json", "User-Agent": "Eddy-Webhook/1",
			"Authorization": "Bearer tok", "X-Eddy-Delivery": deliveryID([]string{"sig-000", "sig-001"}),
		} {
			if g := r.header.Get(name); g != want {
				t.Errorf("header %s = %q, want %q", name, g, want)
			}
		}
		body := decode(t, r.body)
		if _, err := time.Parse(time.RFC3339, body.SentAt); err != nil {
			t.Errorf("sent_at %q is not RFC 3339", body.SentAt)
		}
		if len(body.Batch) != 2 || body.Batch[0]["messageId"] != "sig-000" || body.Batch[1]["messageId"] != "sig-001" {
			t.Fatalf("batch %v, want sig-000 and sig-001 in order", body.Batch)
		}
		wantCtx := map[string]any{"library": map[string]any{"name": "analytics-node"}, "locale": "en-GB"}
		if g, _ := json.Marshal(body.Batch[0]["context"]); string(g) != mustJSON(wantCtx) {
			t.Errorf("context %s, want batch context merged under the message's keys %s", g, mustJSON(wantCtx))
		}
		if _, ok := body.Batch[1]["context"]; ok {
			t.Errorf("message without batch context gained a context: %v", body.Batch[1])
		}

		// Redelivery of the same batch carries the same delivery id.
		write(t, p, "signed", evs)
		if got := ep.requests(); len(got) != 2 || got[1].header.Get("X-Eddy-Delivery") != r.header.Get("X-Eddy-Delivery") {
			t.Fatalf("redelivery did not keep X-Eddy-Delivery %q", r.header.Get("X-Eddy-Delivery"))
		}
	})

	t.Run("splits a write into requests of batch_size", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		initInstallation(t, p, "batching", cfgJSON(ep.URL, `,"batch_size":100`))
		evs := events(250, "b")
		if res := write(t, p, "batching", evs); len(res.Retry)+len(res.Rejected) != 0 {
			t.Fatalf("result %+v, want all delivered", res)
		}
		var sizes []int
		var seen []string
		for _, r := range ep.requests() {
			if err := verify(testSecret, r.header, r.body, time.Now()); err != nil {
				t.Fatalf("request does not verify: %v", err)
			}
			b := decode(t, r.body)
			sizes = append(sizes, len(b.Batch))
			for _, m := range b.Batch {
				seen = append(seen, m["messageId"].(string))
			}
		}
		if !slices.Equal(sizes, []int{100, 100, 50}) {
			t.Errorf("request sizes %v, want [100 100 50]", sizes)
		}
		if !slices.Equal(seen, ids(evs)) {
			t.Errorf("events delivered out of order or missing: %d of %d", len(seen), len(evs))
		}
	})

	t.Run("throttling answers put events in Retry with Retry-After", func(t *testing.T) {
		date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
		for _, tc := range []struct {
			name, header string
			code         int
			min, max     time.Duration
		}{
			{"429 seconds", "7", 429, 7 * time.Second, 7 * time.Second},
			{"503 HTTP date", date, 503, 85 * time.Second, 91 * time.Second},
			{"429 capped", "86400", 429, time.Hour, time.Hour},
			{"429 absent", "", 429, time.Second, time.Second},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ep := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
					if tc.header != "" {
						w.Header().Set("Retry-After", tc.header)
					}
					w.WriteHeader(tc.code)
				})
				id := "throttle-" + strconv.Itoa(tc.code) + "-" + tc.header
				initInstallation(t, p, id, cfgJSON(ep.URL, `,"batch_size":2`))
				evs := events(5, "t")
				res := write(t, p, id, evs)
				if !slices.Equal(res.Retry, ids(evs)) || len(res.Rejected) != 0 {
					t.Fatalf("result %+v, want every event in Retry", res)
				}
				if res.RetryAfter < tc.min || res.RetryAfter > tc.max {
					t.Errorf("RetryAfter %v, want between %v and %v", res.RetryAfter, tc.min, tc.max)
				}
				if n := len(ep.requests()); n != 1 {
					t.Errorf("%d requests after a throttling answer, want 1 (stop at once)", n)
				}
			})
		}
	})

	t.Run("server errors put events in Retry", func(t *testing.T) {
		for _, code := range []int{500, 502, 408} {
			ep := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { w.WriteHeader(code) })
			id := "fail-" + strconv.Itoa(code)
			initInstallation(t, p, id, cfgJSON(ep.URL, ""))
			evs := events(3, "f")
			res := write(t, p, id, evs)
			if !slices.Equal(res.Retry, ids(evs)) || len(res.Rejected) != 0 || res.RetryAfter != 0 {
				t.Errorf("HTTP %d: result %+v, want every event in Retry, no RetryAfter", code, res)
			}
		}
	})

	t.Run("client errors reject with the answer's status and body", func(t *testing.T) {
		long := strings.Repeat("x", 300)
		ep := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
			if strings.Contains(string(body), `"r-001"`) {
				w.WriteHeader(http.StatusBadRequest)
				// A careless receiver echoing the secret must not leak it.
				io.WriteString(w, "bad event, key "+testSecret+" "+long)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
		initInstallation(t, p, "reject", cfgJSON(ep.URL, `,"batch_size":1`))
		evs := events(3, "r")
		res := write(t, p, "reject", evs)
		if len(res.Retry) != 0 || len(res.Rejected) != 1 || res.Rejected[0].MessageID != "r-001" {
			t.Fatalf("result %+v, want only r-001 rejected and the others delivered", res)
		}
		reason := res.Rejected[0].Reason
		if !strings.HasPrefix(reason, "HTTP 400: bad event") {
			t.Errorf("reason %q, want it to start with the status and body", reason)
		}
		if strings.Contains(reason, testSecret) {
			t.Errorf("reason %q holds the secret", reason)
		}
		if n := len(strings.TrimPrefix(reason, "HTTP 400: ")); n > 200 {
			t.Errorf("reason quotes %d bytes of body, want at most 200", n)
		}
		if n := len(ep.requests()); n != 3 {
			t.Errorf("%d requests, want 3 (a rejection does not stop the others)", n)
		}
	})

	t.Run("an unsendable payload is rejected alone", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		initInstallation(t, p, "badpayload", cfgJSON(ep.URL, ""))
		evs := events(3, "p")
		evs[1].Payload = []byte(`{"type":"track",`)
		res := write(t, p, "badpayload", evs)
		if len(res.Retry) != 0 || len(res.Rejected) != 1 || res.Rejected[0].MessageID != "p-001" ||
			!strings.Contains(res.Rejected[0].Reason, "not valid JSON") {
			t.Fatalf("result %+v, want p-001 rejected as invalid JSON", res)
		}
		if got := ep.requests(); len(got) != 1 || len(decode(t, got[0].body).Batch) != 2 {
			t.Fatalf("want one request with the 2 valid events")
		}
	})

	t.Run("endpoint down puts events in Retry", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		initInstallation(t, p, "down", cfgJSON("http://"+addr+"/hook", ""))
		evs := events(4, "d")
		res := write(t, p, "down", evs)
		if !slices.Equal(res.Retry, ids(evs)) || len(res.Rejected) != 0 {
			t.Fatalf("result %+v, want every event in Retry", res)
		}
	})

	t.Run("a slow endpoint times out into Retry", func(t *testing.T) {
		release := make(chan struct{})
		ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		initInstallation(t, p, "slow", cfgJSON(ep.URL, `,"timeout_ms":200`))
		evs := events(2, "s")
		start := time.Now()
		res := write(t, p, "slow", evs)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("write took %v with a 200ms timeout", d)
		}
		if !slices.Equal(res.Retry, ids(evs)) || len(res.Rejected) != 0 {
			t.Fatalf("result %+v, want every event in Retry", res)
		}
	})

	t.Run("installations keep their own endpoint and secret", func(t *testing.T) {
		const secretB = "bbbbbbbbbbbbbbbb-other"
		epA, epB := newEndpoint(t, nil), newEndpoint(t, nil)
		initInstallation(t, p, "multi-a", cfgJSON(epA.URL, ""))
		initInstallation(t, p, "multi-b", []byte(fmt.Sprintf(`{"url":%q,"secret":%q}`, epB.URL, secretB)))
		var wg sync.WaitGroup
		for _, tc := range []struct{ id, prefix string }{{"multi-a", "a"}, {"multi-b", "b"}} {
			for round := range 5 {
				wg.Go(func() {
					res, err := p.Write(context.Background(), tc.id, events(3, fmt.Sprintf("%s%d", tc.prefix, round)))
					if err != nil || len(res.Retry)+len(res.Rejected) != 0 {
						t.Errorf("write %s: %+v, %v", tc.id, res, err)
					}
				})
			}
		}
		wg.Wait()
		for _, tc := range []struct {
			ep             *endpoint
			secret, prefix string
		}{{epA, testSecret, "a"}, {epB, secretB, "b"}} {
			got := tc.ep.requests()
			if len(got) != 5 {
				t.Fatalf("endpoint %s got %d requests, want 5", tc.prefix, len(got))
			}
			for _, r := range got {
				if err := verify(tc.secret, r.header, r.body, time.Now()); err != nil {
					t.Errorf("endpoint %s: %v", tc.prefix, err)
				}
				for _, m := range decode(t, r.body).Batch {
					if id := m["messageId"].(string); !strings.HasPrefix(id, tc.prefix) {
						t.Errorf("endpoint %s received %s", tc.prefix, id)
					}
				}
			}
		}
	})

	t.Run("bad configuration is refused at Init", func(t *testing.T) {
		for _, tc := range []struct {
			name, config, want string
		}{
			{"not JSON", `{"url":`, "config"},
			{"missing url", `{"secret":"` + testSecret + `"}`, "config.url: is required"},
			{"ftp url", `{"url":"ftp://x.example","secret":"` + testSecret + `"}`, "config.url: must be an http or https URL"},
			{"short secret", `{"url":"https://x.example","secret":"short"}`, "config.secret: must be at least 16"},
			{"batch too big", `{"url":"https://x.example","secret":"` + testSecret + `","batch_size":1001}`, "config.batch_size"},
			{"unknown field", `{"url":"https://x.example","secret":"` + testSecret + `","retries":3}`, `unknown field "retries"`},
			{"reserved header", `{"url":"https://x.example","secret":"` + testSecret + `","headers":[{"name":"X-Eddy-Signature","value":"v"}]}`, "config.headers[0].name"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := p.Init(plugintest.Context(t, 10*time.Second), eddyplugin.Installation{ID: "bad", Config: []byte(tc.config)})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("init error %v, want one containing %q", err, tc.want)
				}
				if strings.Contains(err.Error(), testSecret) {
					t.Errorf("error %q holds the secret", err)
				}
			})
		}
		if _, err := p.Write(context.Background(), "bad", events(1, "x")); err == nil {
			t.Error("write to an installation whose Init failed succeeded")
		}
		if err := p.Close(context.Background(), "bad"); err != nil {
			t.Errorf("close after a failed init: %v", err)
		}
	})

	t.Run("a deletion notice is signed, told apart from deliveries, and keyed by job and installation", func(t *testing.T) {
		ep := newEndpoint(t, nil)
		initInstallation(t, p, "del-1", cfgJSON(ep.URL, ""))
		initInstallation(t, p, "del-2", cfgJSON(ep.URL, ""))
		d := eddyplugin.Deletion{JobID: "job-7", Identities: []eddyplugin.Identity{{Kind: "anonymous_id", Value: "anon-1"}, {Kind: "user_id", Value: "u-1"}}}
		for _, id := range []string{"del-1", "del-1", "del-2"} {
			res, err := p.Delete(plugintest.Context(t, 10*time.Second), id, d)
			if err != nil || res != (eddyplugin.DeleteResult{}) {
				t.Fatalf("delete %s = %+v, %v; want done", id, res, err)
			}
		}
		reqs := ep.requests()
		if len(reqs) != 3 {
			t.Fatalf("%d requests, want 3", len(reqs))
		}
		for i, r := range reqs {
			if err := verify(testSecret, r.header, r.body, time.Now()); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			if r.header.Get("X-Eddy-Delivery") != "" {
				t.Errorf("request %d is marked as a delivery (X-Eddy-Delivery %q)", i, r.header.Get("X-Eddy-Delivery"))
			}
			if k := r.header.Get("X-Eddy-Deletion"); k == "" || r.header.Get("Idempotency-Key") != k {
				t.Errorf("request %d: X-Eddy-Deletion %q, Idempotency-Key %q; want the same non-empty key", i, k, r.header.Get("Idempotency-Key"))
			}
			var notice struct {
				Type       string              `json:"type"`
				JobID      string              `json:"job_id"`
				Identities []map[string]string `json:"identities"`
				SentAt     string              `json:"sent_at"`
				Batch      []map[string]any    `json:"batch"`
			}
			if err := json.Unmarshal(r.body, &notice); err != nil {
				t.Fatalf("request %d body: %v\n%s", i, err, r.body)
			}
			want := []map[string]string{{"kind": "anonymous_id", "value": "anon-1"}, {"kind": "user_id", "value": "u-1"}}
			if notice.Type != "deletion" || notice.JobID != "job-7" || notice.SentAt == "" || notice.Batch != nil || mustJSON(notice.Identities) != mustJSON(want) {
				t.Errorf("request %d body = %s", i, r.body)
			}
		}
		k1, k1again, k2 := reqs[0].header.Get("X-Eddy-Deletion"), reqs[1].header.Get("X-Eddy-Deletion"), reqs[2].header.Get("X-Eddy-Deletion")
		if k1 != k1again || k1 == k2 {
			t.Errorf("keys %q, %q (same job and installation), %q (another installation): want equal, then different", k1, k1again, k2)
		}
	})

	t.Run("a deletion's answer is classified as a delivery's", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			code   int
			header string
			want   eddyplugin.DeleteResult
		}{
			{"accepted", http.StatusAccepted, "", eddyplugin.DeleteResult{}},
			{"throttled", http.StatusTooManyRequests, "7", eddyplugin.DeleteResult{Retry: true, RetryAfter: 7 * time.Second}},
			{"server error", http.StatusInternalServerError, "", eddyplugin.DeleteResult{Retry: true}},
			{"refused", http.StatusGone, "", eddyplugin.DeleteResult{Rejected: "HTTP 410: no such person"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ep := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
					if tc.header != "" {
						w.Header().Set("Retry-After", tc.header)
					}
					w.WriteHeader(tc.code)
					_, _ = io.WriteString(w, "no such person")
				})
				initInstallation(t, p, "del-answer", cfgJSON(ep.URL, ""))
				res, err := p.Delete(plugintest.Context(t, 10*time.Second), "del-answer",
					eddyplugin.Deletion{JobID: "job-8", Identities: []eddyplugin.Identity{{Kind: "user_id", Value: "u-8"}}})
				if err != nil || res != tc.want {
					t.Fatalf("delete = %+v, %v; want %+v", res, err, tc.want)
				}
			})
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseConfig(t *testing.T) {
	ok := `"url":"https://hooks.example.com/in","secret":"` + testSecret + `"`
	for _, tc := range []struct {
		name, config string
		wantErr      []string
	}{
		{"defaults", `{` + ok + `}`, nil},
		{"all fields", `{` + ok + `,"batch_size":1,"timeout_ms":500,"headers":[{"name":"X-Api-Key","value":"k"}]}`, nil},
		{"empty", `{}`, []string{"config.url: is required", "config.secret: must be at least 16 characters"}},
		{"trailing data", `{` + ok + `} {}`, []string{"unexpected data"}},
		{"no host", `{"url":"http://","secret":"` + testSecret + `"}`, []string{"config.url: has no host"}},
		{"credentials in url", `{"url":"https://u:p@x.example","secret":"` + testSecret + `"}`, []string{"config.url: must not hold credentials"}},
		{"zero batch", `{` + ok + `,"batch_size":0}`, []string{"config.batch_size: must be between 1 and 1000"}},
		{"zero timeout", `{` + ok + `,"timeout_ms":0}`, []string{"config.timeout_ms: must be between 1 and 300000"}},
		{"header name", `{` + ok + `,"headers":[{"name":"Bad Name","value":"v"}]}`, []string{"config.headers[0].name"}},
		{"header content-type", `{` + ok + `,"headers":[{"name":"content-type","value":"text/plain"}]}`, []string{"config.headers[0].name: content-type is set by the sink"}},
		{"header injection", `{` + ok + `,"headers":[{"name":"X-A","value":"a\r\nX-B: b"}]}`, []string{"config.headers[0].value"}},
		{"wrong type", `{"url":1,"secret":"` + testSecret + `"}`, []string{"config: json: cannot unmarshal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseConfig([]byte(tc.config))
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("parseConfig: %v", err)
				}
				if s.batchSize < 1 || s.timeout <= 0 {
					t.Fatalf("settings %+v lack defaults", s)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseConfig accepted %s", tc.config)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
	s, err := parseConfig([]byte(`{` + ok + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.batchSize != 100 || s.timeout != 10*time.Second {
		t.Errorf("defaults batch_size %d timeout %v, want 100 and 10s", s.batchSize, s.timeout)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", time.Second},
		{"0", time.Second},
		{"30", 30 * time.Second},
		{" 12 ", 12 * time.Second},
		{"3601", time.Hour},
		{"99999999999999999", time.Hour},
		{"-5", time.Second},
		{"soon", time.Second},
		{now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), time.Second},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
	} {
		if got := retryAfter(tc.header, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		name, payload, batchCtx, want, wantErr string
	}{
		{"no batch context keeps bytes", `{"b":1, "a":2}`, "", `{"b":1, "a":2}`, ""},
		{"null batch context", `{"a":1}`, "null", `{"a":1}`, ""},
		{"batch context added", `{"a":1}`, `{"ip":"1.2.3.4"}`, `{"a":1,"context":{"ip":"1.2.3.4"}}`, ""},
		{"message keys win", `{"context":{"ip":"5.6.7.8","x":1}}`, `{"ip":"1.2.3.4","y":2}`, `{"context":{"ip":"5.6.7.8","x":1,"y":2}}`, ""},
		{"non-object message context wins", `{"context":"odd"}`, `{"ip":"1.2.3.4"}`, `{"context":"odd"}`, ""},
		{"invalid JSON", `{"a":`, "", "", "payload is not valid JSON"},
		{"array", `[1]`, "", "", "payload is not a JSON object"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "", "", "payload is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := message(eddyplugin.Event{Payload: []byte(tc.payload), BatchContext: []byte(tc.batchCtx)})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("message = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSignAndDeliveryID(t *testing.T) {
	// A fixed vector a receiver in any language can check against.
	got := sign([]byte("whsec_0123456789abcdef"), "1700000000", []byte(`{"batch":[],"sent_at":"2023-11-14T22:13:20Z"}`))
	mac := hmac.New(sha256.New, []byte("whsec_0123456789abcdef"))
	mac.Write([]byte(`1700000000.{"batch":[],"sent_at":"2023-11-14T22:13:20Z"}`))
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("sign = %s, want %s", got, want)
	}
	a, b := deliveryID([]string{"m1", "m2"}), deliveryID([]string{"m1", "m2"})
	if a != b || len(a) != 32 {
		t.Errorf("delivery ids %q and %q, want equal 32-hex-digit ids", a, b)
	}
	for _, other := range [][]string{{"m2", "m1"}, {"m1"}, {"m1m2"}, {"m", "1m2"}} {
		if deliveryID(other) == a {
			t.Errorf("delivery id of %v equals that of [m1 m2]", other)
		}
	}
}
