package event

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// Decode must agree with encoding/json: the same result when it accepts,
// an error when it refuses.
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"Order Completed","userId":42,"anonymousId":"a\"b","messageId":"m","properties":{"revenue":1.5e3,"items":[{"id":1}]},"context":{"ip":"1.2.3.4"}}`,
		`{"type":"identify","traits":{"name":"Zoë \u00e9 \ud83d\ude00"},"timestamp":"2026-11-22T10:00:00Z"}`,
		`{"userId":null,"event":null,"properties":null}`,
		`{"userId":{"a":1}}`, `{"event":5}`, `{"event":"x",`, `[1,2]`, `{"a":1e999999}`, `{"userId":-0.5e-3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			if err := Decode(data, new(Message)); err != ErrInvalidUTF8 {
				t.Fatalf("Decode of invalid UTF-8 %q: %v, want ErrInvalidUTF8", data, err)
			}
			return
		}
		var std, got Message
		stdErr := json.Unmarshal(data, &std)
		gotErr := Decode(data, &got)
		switch {
		case stdErr == nil && gotErr != nil:
			t.Fatalf("encoding/json accepts %q, Decode refuses: %v", data, gotErr)
		case stdErr != nil && gotErr == nil:
			t.Fatalf("encoding/json refuses %q (%v), Decode accepts", data, stdErr)
		case stdErr == nil && !reflect.DeepEqual(normal(std), normal(got)):
			t.Fatalf("decoders differ on %q:\nencoding/json %+v\nDecode        %+v", data, std, got)
		}
	})
}

// normal compacts the raw objects so formatting differences do not count.
func normal(m Message) Message {
	for _, raw := range []*json.RawMessage{&m.Properties, &m.Traits, &m.Context, &m.Integrations} {
		if len(*raw) == 0 {
			*raw = nil
			continue
		}
		var v any
		if json.Unmarshal(*raw, &v) == nil {
			*raw, _ = json.Marshal(v)
		}
	}
	return m
}

func TestIDAcceptsStringsAndNumbers(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		{`"abc"`, "abc", true},
		{`"a\"b\u00e9"`, `a"bé`, true},
		{`42`, "42", true},
		{`-1.5`, "-1.5", true},
		{`null`, "", true},
		{`true`, "", false},
		{`{"a":1}`, "", false},
		{`[1]`, "", false},
	}
	for _, tt := range tests {
		var m struct {
			ID ID `json:"id"`
		}
		err := Decode([]byte(`{"id":`+tt.in+`}`), &m)
		if (err == nil) != tt.ok || m.ID != tt.want {
			t.Errorf("%s: id %q err %v; want %q ok=%v", tt.in, m.ID, err, tt.want, tt.ok)
		}
	}
}
