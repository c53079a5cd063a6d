package system

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// Plugins from plugins.yaml run in the pipeline of a whole Eddy: an event
// collected over HTTP is enriched by the workspace's WASM user-agent
// processor before it is stored, and delivered, enriched, by its webhook
// sink (signed); the processor's work shows in the session too.
func TestPluginsFromPluginsYAML(t *testing.T) {
	ua := plugintest.Build(t, "../../plugins/processors/useragent")
	hook := plugintest.Build(t, "../../plugins/sinks/webhook")

	var mu sync.Mutex
	var delivered []map[string]any
	var signed bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Batch []map[string]any `json:"batch"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		delivered = append(delivered, b.Batch...)
		signed = strings.HasPrefix(r.Header.Get("X-Eddy-Signature"), "v1=")
		mu.Unlock()
	}))
	defer srv.Close()

	e := newEnv(t, fmt.Sprintf(`    plugins:
      - id: processor.useragent
      - id: sink.webhook
        config:
          url: %s
          secret: a-secret-of-at-least-16
plugins:
  - path: %s
  - path: %s
`, srv.URL, ua.Dir, hook.Dir))
	base := e.serve(e.config(e.dbURL, e.redisURL))

	iphone := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	// Plugins receive only events whose consent covers what processing
	// needs (analytics, by default).
	code, _, body := e.post(base, "/v1/page", `{"messageId":"p-1","anonymousId":"dev-1","name":"Home","context":{"userAgent":"`+iphone+`","consent":{"categoryPreferences":{"analytics":true}}}}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/page = %d %s", code, body)
	}
	e.waitStored(map[string]bool{"p-1": true}, 30*time.Second)

	var device, osName, browser string
	e.eachRow(`SELECT context->'device'->>'type', context->'os'->>'name', context->'browser'->>'name' FROM events WHERE message_id = 'p-1'`, func(r pgx.Rows) {
		testenv.Must(t, r.Scan(&device, &osName, &browser), "scan")
	})
	if device != "mobile" || osName != "iOS" || browser != "Safari" {
		t.Errorf("stored context: device %q, os %q, browser %q; want mobile, iOS, Safari", device, osName, browser)
	}
	testenv.Eventually(t, 30*time.Second, "the webhook received the event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	ctx, _ := delivered[0]["context"].(map[string]any)
	if dev, _ := ctx["device"].(map[string]any); dev["type"] != "mobile" || !signed {
		t.Errorf("delivered event context = %v (signed %v), want the enriched one, signed", ctx, signed)
	}
}

// The consent gate in a whole Eddy, with the default policy (processing
// needs analytics): an event without consent, or with analytics withdrawn,
// is acknowledged but neither stored nor sessionized, and counted by
// reason; an event with analytics is stored, its IP truncated as the
// workspace's minimisation says.
func TestConsentDefaultDeny(t *testing.T) {
	e := newEnv(t, "")
	e.yaml = strings.Replace(e.yaml, "allow_necessary_only: true", "allow_necessary_only: false\n      minimise: {ip: truncate}", 1)
	base := e.serve(e.config(e.dbURL, e.redisURL))
	for _, body := range []string{
		`{"messageId":"none","anonymousId":"a-1","event":"Viewed"}`,
		`{"messageId":"withdrawn","anonymousId":"a-2","event":"Viewed","context":{"consent":{"categoryPreferences":{"analytics":false}}}}`,
		`{"messageId":"granted","anonymousId":"a-3","event":"Viewed","context":{"ip":"198.51.100.77","consent":{"categoryPreferences":{"analytics":true}}}}`,
	} {
		if code, _, resp := e.post(base, "/v1/track", body); code != http.StatusOK {
			t.Fatalf("POST /v1/track = %d %s", code, resp)
		}
	}
	e.waitStored(map[string]bool{"granted": true}, 30*time.Second)
	time.Sleep(time.Second) // the refused ones passed the same stage before
	if ids := e.storedIDs(); len(ids) != 1 {
		t.Fatalf("stored %v, want only the consented event", ids)
	}
	var ip string
	e.eachRow(`SELECT host(ip) FROM events WHERE message_id = 'granted'`, func(r pgx.Rows) { testenv.Must(t, r.Scan(&ip), "scan") })
	if ip != "198.51.100.0" {
		t.Errorf("stored IP %q, want it truncated to 198.51.100.0", ip)
	}
	if n := e.counts(`SELECT anonymous_id, count(*) FROM sessions GROUP BY anonymous_id`); n["a-1"]+n["a-2"] != 0 {
		t.Errorf("sessions of refused visitors: %v", n)
	}
	_, _, metrics := do(t, mustGet(t, base+"/metrics"))
	for _, want := range []string{`reason="no_consent"`, `reason="withdrawn"`} {
		if !strings.Contains(metrics, "eddy_consent_refused_total{") || !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks eddy_consent_refused_total with %s", want)
		}
	}
}
