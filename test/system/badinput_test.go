package system

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.String()
}

// Bad input gets a clear 4xx, nothing of the request is queued, and the
// collector goes on serving.
func TestBadInputIsRefusedClearlyAndNothingIsQueued(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL), "collector")

	good := `{"userId":"u1","event":"Good"}`
	bigProps := `{"userId":"u1","event":"Big","properties":{"blob":"` + strings.Repeat("x", 33<<10) + `"}}`
	var bigBatch strings.Builder
	bigBatch.WriteString(`{"batch":[`)
	for i := 0; i < 40; i++ {
		if i > 0 {
			bigBatch.WriteByte(',')
		}
		bigBatch.WriteString(`{"type":"track","userId":"u","event":"x","properties":{"p":"` + strings.Repeat("y", 15<<10) + `"}}`)
	}
	bigBatch.WriteString(`]}`)
	bomb := `{"userId":"u1","event":"Bomb","properties":` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + `}`
	truncated := gzipped(`{"batch":[{"type":"track","userId":"u","event":"x"}]}`)
	truncated = truncated[:len(truncated)/2]

	tests := []struct {
		name     string
		path     string
		body     string
		headers  []string
		key      string // "" = the env's key
		noAuth   bool
		status   int
		code     string
		detailOf string // a reason that must appear in details, for batches
	}{
		{name: "malformed JSON", path: "/v1/track", body: `{"userId":"u1","event":`, status: 400, code: "invalid_messages", detailOf: "invalid_json"},
		{name: "malformed batch JSON", path: "/v1/batch", body: `{"batch":[{"type":"track"`, status: 400, code: "invalid_json"},
		{name: "wrong content type", path: "/v1/track", body: good, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415, code: "unsupported_content_type"},
		{name: "oversized event", path: "/v1/track", body: bigProps, status: 400, code: "invalid_messages", detailOf: "event_too_large"},
		{name: "oversized batch", path: "/v1/batch", body: bigBatch.String(), status: 413, code: "request_too_large"},
		{name: "missing ids", path: "/v1/batch", body: `{"batch":[{"type":"track","event":"a","userId":"u"},{"type":"track","event":"b"}]}`, status: 400, code: "invalid_messages", detailOf: "missing_id"},
		{name: "bad timestamp", path: "/v1/track", body: `{"userId":"u1","event":"x","timestamp":"2026-02-30T25:00:00Z"}`, status: 400, code: "invalid_messages", detailOf: "invalid_timestamp"},
		{name: "unknown write key", path: "/v1/track", body: good, key: "not-a-key", status: 401, code: "unknown_write_key"},
		{name: "no write key", path: "/v1/track", body: good, noAuth: true, status: 401, code: "missing_write_key"},
		{name: "invalid UTF-8", path: "/v1/track", body: `{"userId":"u1","event":"caf` + "\xe9" + `"}`, status: 400, code: "invalid_utf8"},
		{name: "nesting bomb", path: "/v1/track", body: bomb, status: 400, code: "invalid_messages", detailOf: "too_deep"},
		{name: "truncated gzip", path: "/v1/batch", body: truncated, headers: []string{"Content-Encoding", "gzip"}, status: 400, code: "bad_gzip"},
		{name: "unsupported encoding", path: "/v1/track", body: good, headers: []string{"Content-Encoding", "br"}, status: 415, code: "unsupported_encoding"},
		{name: "empty body", path: "/v1/track", body: "", status: 400, code: "empty_body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.queued()
			req, err := http.NewRequest(http.MethodPost, base+tt.path, strings.NewReader(tt.body))
			testenv.Must(t, err, "request")
			req.Header.Set("Content-Type", "application/json")
			switch {
			case tt.noAuth:
			case tt.key != "":
				req.SetBasicAuth(tt.key, "")
			default:
				req.SetBasicAuth(e.writeKey, "")
			}
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			code, _, body := do(t, req)
			if code != tt.status {
				t.Fatalf("status %d, want %d; body %s", code, tt.status, body)
			}
			var resp struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
					Details []struct {
						Index  int    `json:"index"`
						Reason string `json:"reason"`
					} `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("error body is not JSON: %v: %s", err, body)
			}
			if resp.Error.Code != tt.code || resp.Error.Message == "" {
				t.Fatalf("error = %+v, want code %s with a message", resp.Error, tt.code)
			}
			if tt.detailOf != "" {
				found := false
				for _, d := range resp.Error.Details {
					found = found || d.Reason == tt.detailOf
				}
				if !found {
					t.Fatalf("details %+v lack reason %s", resp.Error.Details, tt.detailOf)
				}
			}
			if after := e.queued(); after != before {
				t.Fatalf("queue grew from %d to %d entries on a refused request", before, after)
			}
			// The collector goes on serving.
			if code, _, b := e.post(base, "/v1/track", good); code != http.StatusOK {
				t.Fatalf("a good request after the bad one: %d %s", code, b)
			}
		})
	}
}

// The browser SDK's way: text/plain, the write key in the body, short paths,
// gzip and CORS.
func TestBrowserStyleRequests(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))

	pre, err := http.NewRequest(http.MethodOptions, base+"/v1/t", nil)
	testenv.Must(t, err, "request")
	pre.Header.Set("Origin", "https://shop.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type")
	code, h, _ := do(t, pre)
	if code >= 300 || h.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("CORS preflight: %d, Allow-Origin %q", code, h.Get("Access-Control-Allow-Origin"))
	}

	send := func(path, body string, headers ...string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		testenv.Must(t, err, "request")
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		req.Header.Set("Origin", "https://shop.example.com")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		code, h, b := do(t, req)
		if code != http.StatusOK || h.Get("Access-Control-Allow-Origin") == "" {
			t.Fatalf("%s: %d %s (Allow-Origin %q)", path, code, b, h.Get("Access-Control-Allow-Origin"))
		}
	}
	send("/v1/t", `{"writeKey":"`+e.writeKey+`","anonymousId":"a1","event":"Clicked","messageId":"b-1"}`)
	send("/v1/p", `{"writeKey":"`+e.writeKey+`","anonymousId":"a1","name":"Home","messageId":"b-2"}`)
	send("/v1/i", `{"writeKey":"`+e.writeKey+`","anonymousId":"a1","userId":"u1","traits":{"plan":"pro"},"messageId":"b-3"}`)
	send("/v1/b", gzipped(`{"writeKey":"`+e.writeKey+`","batch":[{"type":"screen","anonymousId":"a1","name":"Cart","messageId":"b-4"},{"type":"group","userId":"u1","groupId":"g1","messageId":"b-5"},{"type":"alias","userId":"u1","previousId":"a1","messageId":"b-6"}]}`),
		"Content-Encoding", "gzip")
	want := map[string]bool{}
	for _, id := range []string{"b-1", "b-2", "b-3", "b-4", "b-5", "b-6"} {
		want[id] = true
	}
	e.waitStored(want, 30*time.Second)
}
