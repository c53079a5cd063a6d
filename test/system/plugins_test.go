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
	code, _, body := e.post(base, "/v1/page", `{"messageId":"p-1","anonymousId":"dev-1","name":"Home","context":{"userAgent":"`+iphone+`"}}`)
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
