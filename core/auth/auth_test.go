package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestPasswordHashing(t *testing.T) {
	hash, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$") || strings.Contains(hash, "correct horse") {
		t.Fatalf("hash %q is not an argon2id PHC string, or shows the password", hash)
	}
	tests := []struct {
		pw, hash string
		want     bool
	}{
		{"correct horse battery staple", hash, true},
		{"correct horse battery stapl", hash, false},
		{"", hash, false},
		{"correct horse battery staple", "", false},           // unknown admin
		{"correct horse battery staple", "not a hash", false}, // corrupt row
	}
	for _, tt := range tests {
		if got := CheckPassword(tt.pw, tt.hash); got != tt.want {
			t.Errorf("CheckPassword(%q, %.20q) = %v, want %v", tt.pw, tt.hash, got, tt.want)
		}
	}
	if other, _ := HashPassword("correct horse battery staple"); other == hash {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		pw   string
		want string // a substring of the error; "" for none
	}{
		{"a fine long passphrase", ""},
		{"short", "at least 12"},
		{strings.Repeat("x", MaxPasswordLen+1), "at most 256"},
		{"Password1234", "well-known"},
		{"ünïcödé-pässwörd", ""},
		{"bad utf8 \xff\xfe xxxx", "UTF-8"},
	}
	for _, tt := range tests {
		err := CheckPasswordPolicy(tt.pw)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckPasswordPolicy(%.20q) = %v, want nil", tt.pw, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckPasswordPolicy(%.20q) = %v, want an error saying %q", tt.pw, err, tt.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := NewSecret(APIKeyPrefix)
		if !strings.HasPrefix(s, APIKeyPrefix) || len(s) != len(APIKeyPrefix)+43 || seen[s] {
			t.Fatalf("NewSecret = %q: want the prefix, 43 random characters, never twice", s)
		}
		seen[s] = true
		if p := DisplayPrefix(s); p != s[:len(APIKeyPrefix)+4] {
			t.Fatalf("DisplayPrefix(%q) = %q, want the prefix and 4 characters", s, p)
		}
	}
	if p := DisplayPrefix("a key from plugins.yaml"); p != "" {
		t.Errorf("DisplayPrefix of a foreign key = %q, want \"\"", p)
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{[]string{"admin", "read", "read"}, []string{"read", "admin"}, ""},
		{[]string{"write"}, []string{"write"}, ""},
		{nil, nil, "at least one"},
		{[]string{"read", "root"}, nil, `"root" is not a scope`},
	}
	for _, tt := range tests {
		got, err := ParseScopes(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseScopes(%v) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseScopes(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestGrants pins the permission table docs/api.md describes.
func TestGrants(t *testing.T) {
	perms := []Permission{ReadWorkspace, ConfigureWorkspace, ManageKeys, DeleteWorkspace, ReadOrganization, ManageOrganization}
	roleWant := map[string][]bool{
		RoleOwner:  {true, true, true, true, true, true},
		RoleAdmin:  {true, true, true, true, true, true},
		RoleMember: {true, true, true, false, true, false},
		RoleViewer: {true, false, false, false, true, false},
		"":         {false, false, false, false, false, false},
	}
	for role, want := range roleWant {
		for i, p := range perms {
			if got := RoleAllows(role, p); got != want[i] {
				t.Errorf("RoleAllows(%q, %d) = %v, want %v", role, p, got, want[i])
			}
		}
	}
	scopeWant := map[string][]bool{
		ScopeRead:  {true, false, false, false, false, false},
		ScopeWrite: {false, true, false, false, false, false},
		ScopeAdmin: {false, false, true, true, false, false},
	}
	for scope, want := range scopeWant {
		for i, p := range perms {
			if got := ScopesAllow([]string{scope}, p); got != want[i] {
				t.Errorf("ScopesAllow([%s], %d) = %v, want %v", scope, p, got, want[i])
			}
		}
	}
	member := func(p Permission) bool { return RoleAllows(RoleMember, p) }
	if !ScopeWithin(ScopeWrite, member) || ScopeWithin(ScopeAdmin, member) {
		t.Error("a member must be able to hand out write but not admin (which deletes workspaces)")
	}
}
