package system

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// A withdrawal made through the API in a whole Eddy: the person's later
// events, though their client still sends marketing consent, are stored
// with marketing withdrawn and no longer reach the sink that needs
// marketing, while another visitor's do; a consent update the person
// sends afterwards (their own fresh choice) grants it again.
func TestConsentWithdrawalThroughTheAPI(t *testing.T) {
	hook := plugintest.Build(t, "../../plugins/sinks/webhook")
	var mu sync.Mutex
	var delivered []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Batch []struct {
				MessageID string `json:"messageId"`
			} `json:"batch"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		for _, m := range b.Batch {
			delivered = append(delivered, m.MessageID)
		}
		mu.Unlock()
	}))
	defer srv.Close()
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(delivered))
	}

	e := newEnv(t, fmt.Sprintf(`    plugins:
      - id: sink.webhook
        config:
          url: %s
          secret: a-secret-of-at-least-16
plugins:
  - path: %s
`, srv.URL, hook.Dir))
	e.yaml = strings.Replace(e.yaml, "allow_necessary_only: true", "plugins: {sink.webhook: [marketing]}", 1)
	base := e.serve(e.config(e.dbURL, e.redisURL))
	owner := e.ownerConsole(base)

	const both = `"consent":{"categoryPreferences":{"analytics":true,"marketing":true}}`
	send := func(path, body string) {
		t.Helper()
		if code, _, resp := e.post(base, path, body); code != http.StatusOK {
			t.Fatalf("POST %s = %d %s", path, code, resp)
		}
	}
	send("/v1/identify", `{"messageId":"hello","anonymousId":"dev-1","userId":"u-1","context":{`+both+`}}`)
	testenv.Eventually(t, 30*time.Second, "the sink received the first event", func() bool { return len(got()) == 1 })

	var prof struct {
		ID string `json:"id"`
	}
	testenv.Eventually(t, 30*time.Second, "the profile exists", func() bool {
		e.eachRow(`SELECT profile_id::text FROM identities WHERE kind = 'user_id' AND value = 'u-1'`, func(r pgx.Rows) {
			testenv.Must(t, r.Scan(&prof.ID), "scan")
		})
		return prof.ID != ""
	})
	var consentOut struct {
		Purposes map[string]struct {
			Granted bool   `json:"granted"`
			Source  string `json:"source"`
		} `json:"purposes"`
	}
	owner.call(http.StatusOK, "PUT", "/workspaces/shop/profiles/"+prof.ID+"/consent", `{"categoryPreferences":{"marketing":false}}`, &consentOut)
	if p := consentOut.Purposes["marketing"]; p.Granted || p.Source != "api" {
		t.Fatalf("consent after PUT: %+v", consentOut.Purposes)
	}

	// The person's client still sends marketing; another visitor too.
	send("/v1/track", `{"messageId":"stale","anonymousId":"dev-1","event":"Viewed","context":{`+both+`}}`)
	send("/v1/track", `{"messageId":"other","anonymousId":"dev-2","event":"Viewed","context":{`+both+`}}`)
	e.waitStored(map[string]bool{"hello": true, "stale": true, "other": true}, 30*time.Second)
	testenv.Eventually(t, 30*time.Second, "the sink received the other visitor's event", func() bool {
		return slices.Contains(got(), "other")
	})
	time.Sleep(time.Second) // the stale event was routed before "other" would be
	if d := got(); slices.Contains(d, "stale") {
		t.Errorf("the sink needing marketing received %v, including the withdrawn person's event", d)
	}
	var stored string
	e.eachRow(`SELECT context->'consent'->'categoryPreferences'->>'marketing' FROM events WHERE message_id = 'stale'`, func(r pgx.Rows) {
		testenv.Must(t, r.Scan(&stored), "scan")
	})
	if stored != "false" {
		t.Errorf("stored marketing consent of the stale event = %q, want false", stored)
	}

	// The person chooses again on the site: their consent update, and what
	// follows it, reach the sink.
	send("/v1/track", `{"messageId":"update","anonymousId":"dev-1","event":"Segment Consent Preference Updated","context":{`+both+`}}`)
	e.waitStored(map[string]bool{"hello": true, "stale": true, "other": true, "update": true}, 30*time.Second)
	send("/v1/track", `{"messageId":"after","anonymousId":"dev-1","event":"Viewed","context":{`+both+`}}`)
	testenv.Eventually(t, 30*time.Second, "the sink received the update and what followed", func() bool {
		d := got()
		return slices.Contains(d, "update") && slices.Contains(d, "after")
	})
	owner.call(http.StatusOK, "GET", "/workspaces/shop/profiles/"+prof.ID+"/consent", "", &consentOut)
	if p := consentOut.Purposes["marketing"]; !p.Granted {
		t.Errorf("consent after the update: %+v, want marketing granted", consentOut.Purposes)
	}
}
