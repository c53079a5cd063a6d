package session

import (
	"strings"
	"testing"
	"time"
)

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Rules)
		want string // a part of the error; "" for valid
	}{
		{"defaults", func(*Rules) {}, ""},
		{"shortest timeout", func(r *Rules) { r.Timeout = time.Minute }, ""},
		{"longest timeout and length", func(r *Rules) { r.Timeout, r.MaxLength = 24*time.Hour, 24*time.Hour }, ""},
		{"no grace", func(r *Rules) { r.Grace = 0 }, ""},
		{"own domains", func(r *Rules) { r.OwnDomains = []string{"shop.com", "Shop-2.example.org"} }, ""},
		{"timeout too short", func(r *Rules) { r.Timeout = 59 * time.Second }, "timeout 59s"},
		{"timeout too long", func(r *Rules) { r.Timeout, r.MaxLength = 25*time.Hour, 48*time.Hour }, "timeout 25h"},
		{"max length under timeout", func(r *Rules) { r.MaxLength = 10 * time.Minute }, "max length 10m"},
		{"max length over a week", func(r *Rules) { r.MaxLength = 169 * time.Hour }, "max length 169h"},
		{"negative grace", func(r *Rules) { r.Grace = -time.Second }, "grace -1s"},
		{"grace over a day", func(r *Rules) { r.Grace = 25 * time.Hour }, "grace 25h"},
		{"domain with scheme", func(r *Rules) { r.OwnDomains = []string{"https://shop.com"} }, `own domain "https://shop.com"`},
		{"domain with path", func(r *Rules) { r.IgnoredReferrers = []string{"paypal.com/checkout"} }, `ignored referrer "paypal.com/checkout"`},
		{"empty domain", func(r *Rules) { r.OwnDomains = []string{""} }, `own domain ""`},
		{"leading dot", func(r *Rules) { r.OwnDomains = []string{".shop.com"} }, `own domain ".shop.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRules()
			tt.edit(&r)
			err := r.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRulesValidateListsEveryProblem(t *testing.T) {
	r := Rules{Timeout: time.Second, MaxLength: time.Second, Grace: -1, OwnDomains: []string{"a b"}}
	err := r.Validate()
	for _, want := range []string{"timeout", "grace", `own domain "a b"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestNewWorkspace(t *testing.T) {
	if _, err := NewWorkspace("", DefaultRules()); err == nil {
		t.Error("NewWorkspace with an empty id succeeded")
	}
	bad := DefaultRules()
	bad.Timeout = 0
	if _, err := NewWorkspace("ws", bad); err == nil || !strings.Contains(err.Error(), "session rules of workspace ws") {
		t.Errorf("NewWorkspace with bad rules: %v", err)
	}
	r := DefaultRules()
	ws, err := NewWorkspace("ws", r)
	if err != nil {
		t.Fatal(err)
	}
	r.IgnoredReferrers[0] = "changed.com"
	if got := ws.Rules().IgnoredReferrers[0]; got != "paypal.com" {
		t.Errorf("the workspace shares the caller's slice: ignored[0] = %s", got)
	}
}

func TestExternalReferrer(t *testing.T) {
	ws := newTestWorkspace(t, nil)
	tests := []struct {
		referrer, page, want string
	}{
		{"", "https://shop.com/", ""},
		{"https://www.google.com/", "https://shop.com/", "www.google.com"},
		{"https://WWW.Google.COM:443/search?q=x", "https://shop.com/", "www.google.com"},
		{"https://shop.com/cart", "https://shop.com/", ""},
		{"https://www.shop.com/", "https://shop.com/", ""},
		{"https://blog.shop.com/post", "https://shop.com/", ""},
		{"https://myshop.com/", "https://shop.com/", "myshop.com"},
		{"https://shop.com.evil.io/", "https://shop.com/", "shop.com.evil.io"},
		{"https://other.io/a", "https://www.other.io/b", ""}, // the page's own host
		{"https://www.paypal.com/checkoutnow", "https://shop.com/thanks", ""},
		{"https://checkout.stripe.com/pay", "https://shop.com/thanks", ""},
		{"https://pay.klarna.com/", "https://shop.com/thanks", ""},
		{"android-app://com.google.android.gm/", "https://shop.com/", "com.google.android.gm"},
		{"not a url", "https://shop.com/", ""},
		{"https://user:pw@[::1]:8080/", "https://shop.com/", "[::1]"},
	}
	for _, tt := range tests {
		if got := ws.externalReferrer(tt.referrer, tt.page); got != tt.want {
			t.Errorf("externalReferrer(%q, %q) = %q, want %q", tt.referrer, tt.page, got, tt.want)
		}
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	got := clip(long, MaxURLBytes)
	if len(got) != 512 || !strings.HasPrefix(long, got) {
		t.Fatalf("clip kept %d bytes, want 512 at a rune boundary", len(got))
	}
	if got := clip("ab"+"é", 3); got != "ab" {
		t.Fatalf("clip cut inside a rune: %q", got)
	}
}
