package consent

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		payload     string
		batch       string
		want        Preferences
		wantPresent bool
	}{
		{"no consent anywhere", `{"type":"track","context":{"ip":"1.2.3.4"}}`, "", nil, false},
		{"message preferences", `{"context":{"consent":{"categoryPreferences":{"analytics":true,"marketing":false}}}}`, "",
			Preferences{"analytics": true, "marketing": false}, true},
		{"batch preferences when the message has none", `{"context":{"ip":"1.2.3.4"}}`, `{"consent":{"categoryPreferences":{"analytics":true}}}`,
			Preferences{"analytics": true}, true},
		{"message wins over batch", `{"context":{"consent":{"categoryPreferences":{"analytics":false}}}}`, `{"consent":{"categoryPreferences":{"analytics":true}}}`,
			Preferences{"analytics": false}, true},
		{"message null consent hides the batch's", `{"context":{"consent":null}}`, `{"consent":{"categoryPreferences":{"analytics":true}}}`, nil, false},
		{"consent without preferences", `{"context":{"consent":{"other":1}}}`, "", nil, false},
		{"null preferences", `{"context":{"consent":{"categoryPreferences":null}}}`, "", nil, false},
		{"empty preferences grant nothing but are present", `{"context":{"consent":{"categoryPreferences":{}}}}`, "", Preferences{}, true},
		{"the word elsewhere", `{"event":"consent given","context":{}}`, "", nil, false},
		{"no context", `{"event":"consent given"}`, `{"consent":{"categoryPreferences":{"ads":true}}}`, Preferences{"ads": true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, present, err := Parse([]byte(tt.payload), bytesOrNil(tt.batch))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if present != tt.wantPresent || !maps.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("Parse = %v, %t; want %v, %t", got, present, tt.want, tt.wantPresent)
			}
		})
	}
}

func TestParseRefusesMalformedConsentWithoutEchoingValues(t *testing.T) {
	secret := "s3cr3t-value"
	many := make([]string, MaxMessagePurposes+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"p%d":true`, i)
	}
	tests := []struct {
		name      string
		payload   string
		batch     string
		wantField string
		wantMsg   string
	}{
		{"consent not an object", `{"context":{"consent":"` + secret + `"}}`, "", "context.consent", "must be an object"},
		{"preferences not an object", `{"context":{"consent":{"categoryPreferences":["` + secret + `"]}}}`, "",
			"context.consent.categoryPreferences", "must be an object"},
		{"value not a boolean", `{"context":{"consent":{"categoryPreferences":{"analytics":"` + secret + `"}}}}`, "",
			"context.consent.categoryPreferences.analytics", "must be true or false"},
		{"value a number", `{"context":{"consent":{"categoryPreferences":{"analytics":true,"marketing":1}}}}`, "",
			"context.consent.categoryPreferences.marketing", "must be true or false"},
		{"purpose with capitals", `{"context":{"consent":{"categoryPreferences":{"` + secret + `X":true}}}}`, "",
			"context.consent.categoryPreferences", "purpose name is not valid"},
		{"purpose too long", `{"context":{"consent":{"categoryPreferences":{"` + strings.Repeat("a", 64) + `":true}}}}`, "",
			"context.consent.categoryPreferences", "purpose name is not valid"},
		{"too many purposes", `{"context":{"consent":{"categoryPreferences":{` + strings.Join(many, ",") + `}}}}`, "",
			"context.consent.categoryPreferences", "at most 50"},
		{"malformed batch consent applies", `{"context":{}}`, `{"consent":{"categoryPreferences":{"ads":"` + secret + `"}}}`,
			"context.consent.categoryPreferences.ads", "must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefs, present, err := Parse([]byte(tt.payload), bytesOrNil(tt.batch))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, %t, %v; want a *consent.Error", prefs, present, err)
			}
			if ce.Field != tt.wantField || !strings.Contains(ce.Message, tt.wantMsg) {
				t.Errorf("error = %q; want field %q and a message containing %q", err, tt.wantField, tt.wantMsg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q echoes the client's value", err)
			}
			if prefs != nil || present {
				t.Errorf("malformed consent gave %v, %t", prefs, present)
			}
		})
	}
}

func TestParseWithoutConsentDoesNotAllocate(t *testing.T) {
	payload := []byte(`{"type":"track","event":"Viewed","anonymousId":"a-1","context":{"ip":"1.2.3.4","page":{"url":"https://shop.com/"}}}`)
	batch := []byte(`{"library":{"name":"analytics-node"}}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, present, err := Parse(payload, batch); present || err != nil {
			t.Fatal("consent found where there is none")
		}
	})
	if allocs != 0 {
		t.Errorf("Parse without consent allocates %.0f times per call, want 0", allocs)
	}
}

func TestLenientKeepsBooleansOfValidPurposes(t *testing.T) {
	got := Lenient([]byte(`{"categoryPreferences":{"analytics":"yes","email":true,"Bad":true,"ads":false}}`))
	want := Preferences{"email": true, "ads": false}
	if !maps.Equal(got, want) {
		t.Errorf("Lenient = %v, want %v", got, want)
	}
	for _, raw := range []string{``, `null`, `"x"`, `{"categoryPreferences":[1]}`, `{"categoryPreferences":{"a":1}}`} {
		if got := Lenient([]byte(raw)); got != nil {
			t.Errorf("Lenient(%s) = %v, want nil", raw, got)
		}
	}
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
