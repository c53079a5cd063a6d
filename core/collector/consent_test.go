package collector

import (
	"strings"
	"testing"
)

func TestParseRequestRefusesMalformedConsent(t *testing.T) {
	const secret = "s3cr3t"
	tests := []struct {
		name    string
		call    string
		body    string
		index   int
		message string
	}{
		{"value not a boolean", "track", `{"userId":"u","event":"x","context":{"consent":{"categoryPreferences":{"analytics":"` + secret + `"}}}}`, 0,
			"context.consent.categoryPreferences.analytics: must be true or false"},
		{"preferences not an object", "page", `{"userId":"u","context":{"consent":{"categoryPreferences":"` + secret + `"}}}`, 0,
			"context.consent.categoryPreferences: must be an object"},
		{"consent not an object", "identify", `{"userId":"u","context":{"consent":["` + secret + `"]}}`, 0,
			"context.consent: must be an object"},
		{"bad purpose name", "track", `{"userId":"u","event":"x","context":{"consent":{"categoryPreferences":{"` + secret + ` X":true}}}}`, 0,
			"context.consent.categoryPreferences: a purpose name is not valid"},
		{"second message of a batch", "batch", `{"batch":[{"type":"page","userId":"u"},{"type":"page","userId":"u","context":{"consent":{"categoryPreferences":{"ads":1}}}}]}`, 1,
			"context.consent.categoryPreferences.ads: must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := parseRequest(tt.call, []byte(tt.body), now, testLimits)
			if len(req.problems) != 1 {
				t.Fatalf("problems = %+v, want exactly one", req.problems)
			}
			p := req.problems[0]
			if p.Index != tt.index || p.Reason != "invalid_consent" || !strings.HasPrefix(p.Message, tt.message) {
				t.Fatalf("problem = %+v, want index %d, reason invalid_consent, message %q", p, tt.index, tt.message)
			}
			if strings.Contains(p.Message, secret) {
				t.Errorf("message %q echoes the client's value", p.Message)
			}
		})
	}
}

func TestParseRequestConsentFromTheBatchContext(t *testing.T) {
	// The batch's malformed consent applies to the messages without their
	// own; a message with its own valid consent is accepted.
	body := `{"context":{"consent":{"categoryPreferences":{"analytics":"yes"}}},"batch":[
		{"type":"page","userId":"u"},
		{"type":"page","userId":"u","context":{"consent":{"categoryPreferences":{"analytics":true}}}}
	]}`
	req := parseRequest("batch", []byte(body), now, testLimits)
	if len(req.problems) != 1 || req.problems[0].Index != 0 || req.problems[0].Reason != "invalid_consent" || len(req.entries) != 1 {
		t.Fatalf("problems = %+v, %d entries; want message 0 refused for invalid_consent and message 1 accepted", req.problems, len(req.entries))
	}
}

func TestParseRequestAcceptsValidConsent(t *testing.T) {
	for _, body := range []string{
		`{"userId":"u","event":"x","context":{"consent":{"categoryPreferences":{"analytics":true,"marketing":false}}}}`,
		`{"userId":"u","event":"x","context":{"consent":{"categoryPreferences":{}}}}`,
		`{"userId":"u","event":"x","context":{"consent":null}}`,
		`{"userId":"u","event":"consent given","context":{}}`,
	} {
		if req := parseRequest("track", []byte(body), now, testLimits); len(req.problems) != 0 || len(req.entries) != 1 {
			t.Errorf("%s: problems %+v, want accepted", body, req.problems)
		}
	}
}

func TestAcceptRefusesMalformedConsent(t *testing.T) {
	entries, problems := Accept([][]byte{
		[]byte(`{"type":"track","userId":"u","event":"x","context":{"consent":{"categoryPreferences":{"analytics":true}}}}`),
		[]byte(`{"type":"track","userId":"u","event":"x","context":{"consent":{"categoryPreferences":{"analytics":null}}}}`),
	}, "ws", "src", now, testLimits)
	if len(entries) != 1 || len(problems) != 1 || problems[0].Index != 1 || problems[0].Reason != "invalid_consent" {
		t.Fatalf("entries %d, problems %+v; want the second refused for invalid_consent", len(entries), problems)
	}
}
