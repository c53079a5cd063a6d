package consent

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readMessage(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/message.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("minimised JSON is invalid: %v\n%s", err, b)
	}
	return v
}

func TestMinimiseIP(t *testing.T) {
	tests := []struct{ mode, in, want string }{
		{IPKeep, "203.0.113.77", "203.0.113.77"},
		{IPTruncate, "203.0.113.77", "203.0.113.0"},
		{IPTruncate, "2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"},
		{IPTruncate, "::ffff:203.0.113.77", "203.0.113.0"},
		{IPTruncate, "not an ip", ""},
		{IPTruncate, "", ""},
		{IPRemove, "203.0.113.77", ""},
	}
	for _, tt := range tests {
		if got := minimiseIP(tt.mode, tt.in); got != tt.want {
			t.Errorf("minimiseIP(%s, %q) = %q, want %q", tt.mode, tt.in, got, tt.want)
		}
	}
}

func TestApply(t *testing.T) {
	msg := readMessage(t)
	emailHash := Hash("ws-1", []byte("ann@example.com"))
	tests := []struct {
		name      string
		m         Minimise
		batch     string
		check     func(t *testing.T, v map[string]any)
		wantIP    string
		wantBatch string
	}{
		{"truncate ip", Minimise{IP: IPTruncate}, `{"ip":"198.51.100.9","library":{"name":"x"}}`, func(t *testing.T, v map[string]any) {
			if ip := v["context"].(map[string]any)["ip"]; ip != "203.0.113.0" {
				t.Errorf("context.ip = %v, want 203.0.113.0", ip)
			}
		}, "203.0.113.0", `{"ip":"198.51.100.0","library":{"name":"x"}}`},
		{"remove ip", Minimise{IP: IPRemove}, `{"ip":"198.51.100.9", "library":{"name":"x"}}`, func(t *testing.T, v map[string]any) {
			if _, ok := v["context"].(map[string]any)["ip"]; ok {
				t.Error("context.ip was not removed")
			}
		}, "", `{"library":{"name":"x"}}`},
		{"hash and drop", Minimise{IP: IPKeep, Hash: []string{"traits.email", "traits.age", "context.traits.email", "traits.address"}, Drop: []string{"properties.card.number", "traits.missing"}}, "",
			func(t *testing.T, v map[string]any) {
				traits := v["traits"].(map[string]any)
				if traits["email"] != emailHash {
					t.Errorf("traits.email = %v, want %s", traits["email"], emailHash)
				}
				if v["context"].(map[string]any)["traits"].(map[string]any)["email"] != emailHash {
					t.Error("context.traits.email is not hashed like traits.email")
				}
				if traits["age"] != Hash("ws-1", []byte("41")) {
					t.Errorf("traits.age = %v, want the hash of 41", traits["age"])
				}
				if traits["address"] != Hash("ws-1", []byte(`{"city":"Lyon","street":"1 rue X"}`)) {
					t.Errorf("traits.address = %v, want the hash of its compact JSON", traits["address"])
				}
				card := v["properties"].(map[string]any)["card"].(map[string]any)
				if _, ok := card["number"]; ok || card["brand"] != "visa" {
					t.Errorf("properties.card = %v, want only brand", card)
				}
				if traits["name"] != "Ann" || v["userId"] != "user-42" {
					t.Error("minimisation changed what it was not asked to")
				}
			}, "203.0.113.77", ""},
		{"drop the last and only members", Minimise{IP: IPKeep, Drop: []string{"context.traits.email", "context.consent"}}, "", func(t *testing.T, v map[string]any) {
			ctx := v["context"].(map[string]any)
			if len(ctx["traits"].(map[string]any)) != 0 || ctx["consent"] != nil || ctx["ip"] != "203.0.113.77" {
				t.Errorf("context = %v", ctx)
			}
		}, "203.0.113.77", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := (Policy{Minimise: tt.m}).WithDefaults().Validate(); len(errs) != 0 {
				t.Fatalf("test minimisation is invalid: %v", errs)
			}
			orig := bytes.Clone(msg)
			p, b, ip, err := tt.m.Apply("ws-1", msg, bytesOrNil(tt.batch), "203.0.113.77")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msg, orig) {
				t.Fatal("Apply modified its input")
			}
			tt.check(t, decodeJSON(t, p))
			if ip != tt.wantIP {
				t.Errorf("ip = %q, want %q", ip, tt.wantIP)
			}
			if tt.wantBatch != "" && string(b) != tt.wantBatch {
				t.Errorf("batch context = %s, want %s", b, tt.wantBatch)
			}
		})
	}
}

func TestApplyKeepsOtherBytes(t *testing.T) {
	in := []byte(`{ "traits" : { "email" : "a@b.c" ,  "plan":"pro" },"properties":{"x": 1.50}}`)
	got, _, _, err := Minimise{IP: IPKeep, Hash: []string{"traits.email"}}.Apply("ws", in, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `{ "traits" : { "email" : "` + Hash("ws", []byte("a@b.c")) + `" ,  "plan":"pro" },"properties":{"x": 1.50}}`
	if string(got) != want {
		t.Errorf("Apply = %s\nwant    %s", got, want)
	}
}

func TestHashDependsOnWorkspace(t *testing.T) {
	a, b := Hash("ws-1", []byte("ann@example.com")), Hash("ws-2", []byte("ann@example.com"))
	if a == b || a != Hash("ws-1", []byte("ann@example.com")) || !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Errorf("hashes %s and %s: want stable, per-workspace, sha256:<64 hex>", a, b)
	}
}

func TestApplyDuplicateKeysAndEscapes(t *testing.T) {
	in := []byte(`{"traits":{"email":"a@b.c","email":"d@e.f","n\u0061me":"x"},"context":{"ip":"bogus"}}`)
	m := Minimise{IP: IPTruncate, Hash: []string{"traits.email"}, Drop: []string{"traits.name"}}
	got, _, _, err := m.Apply("ws", in, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"traits":{"email":"` + Hash("ws", []byte("a@b.c")) + `","email":"` + Hash("ws", []byte("d@e.f")) + `"},"context":{}}`
	if string(got) != want {
		t.Errorf("Apply = %s\nwant    %s", got, want)
	}
}

func TestApplyUnchangedDoesNotAllocate(t *testing.T) {
	msg := readMessage(t)
	for _, m := range []Minimise{
		{IP: IPKeep},
		{IP: IPKeep, Hash: []string{"traits.phone", "properties.card.cvc"}, Drop: []string{"traits.address.zip"}},
	} {
		var out []byte
		allocs := testing.AllocsPerRun(100, func() {
			out, _, _, _ = m.Apply("ws-1", msg, nil, "203.0.113.77")
		})
		if allocs != 0 || &out[0] != &msg[0] {
			t.Errorf("%+v: Apply allocates %.0f times (want 0) or copied the payload", m, allocs)
		}
	}
}

func TestApplyRefusesMalformedJSON(t *testing.T) {
	m := Minimise{IP: IPKeep, Drop: []string{"traits.email"}}
	for _, in := range []string{`[1]`, `{"traits":{"email":"x"`, `{"traits":{"email" "x"}}`, `"traits.email"`} {
		if _, _, _, err := m.Apply("ws", []byte(in), nil, ""); err == nil {
			t.Errorf("Apply(%s) succeeded, want an error", in)
		}
	}
}

func TestWithDefaultsKeepsGivenFields(t *testing.T) {
	p := Policy{Required: []string{}, Minimise: Minimise{IP: IPRemove}}.WithDefaults()
	want := DefaultPolicy()
	want.Required, want.Minimise.IP = []string{}, IPRemove
	if !reflect.DeepEqual(p, want) {
		t.Errorf("WithDefaults = %+v, want %+v", p, want)
	}
}
