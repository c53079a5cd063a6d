// Package auth holds Eddy's credentials: admin passwords (argon2id), the
// random secrets Eddy issues (API keys, write keys, session and invitation
// tokens), and what each organization role and API-key scope may do.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
)

// passwordParams are the argon2id parameters for new hashes: OWASP's
// recommended minimum (19 MiB, 2 passes, 1 lane). A hash keeps its own
// parameters, so raising them later still verifies old hashes.
var passwordParams = &argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// Password length limits, in characters. The upper bound keeps hashing cost
// bounded whatever a client sends.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// CheckPasswordPolicy says what is wrong with a new password, or nil.
func CheckPasswordPolicy(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		return errors.New("must be valid UTF-8")
	case n < MinPasswordLen:
		return fmt.Errorf("must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Errorf("must be at most %d characters", MaxPasswordLen)
	case weakPasswords[strings.ToLower(pw)]:
		return errors.New("is a well-known default password")
	}
	return nil
}

// weakPasswords are defaults that pass the length rule; production refuses them.
var weakPasswords = map[string]bool{
	"changeme1234": true, "password1234": true, "admin1234567": true, "administrator": true,
	"eddy-password": true, "passwordpassword": true, "123456789012": true, "qwertyuiopas": true,
}

// HashPassword returns an argon2id hash of pw in PHC string form.
func HashPassword(pw string) (string, error) {
	h, err := argon2id.CreateHash(pw, passwordParams)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// dummyHash is verified against when an email is unknown, so that a login
// takes as long whether or not the admin exists.
var dummyHash, _ = HashPassword("eddy dummy password, never valid")

// CheckPassword tells whether pw matches hash. With hash "" it still spends
// the time of a real check and returns false.
func CheckPassword(pw, hash string) bool {
	if hash == "" {
		_, _ = argon2id.ComparePasswordAndHash(pw, dummyHash)
		return false
	}
	ok, err := argon2id.ComparePasswordAndHash(pw, hash)
	return err == nil && ok
}

// Prefixes of the secrets Eddy issues, so that a leaked one is recognisable
// (and secret scanners can match it).
const (
	APIKeyPrefix     = "eddy_sk_"
	WriteKeyPrefix   = "eddy_wk_"
	InvitationPrefix = "eddy_inv_"
	SessionPrefix    = "eddy_ses_"
)

// NewSecret returns prefix followed by 32 random bytes in URL-safe base64.
func NewSecret(prefix string) string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// DisplayPrefix is how much of an issued secret lists show: its prefix and
// four random characters.
func DisplayPrefix(secret string) string {
	for _, p := range []string{APIKeyPrefix, WriteKeyPrefix} {
		if strings.HasPrefix(secret, p) && len(secret) > len(p)+4 {
			return secret[:len(p)+4]
		}
	}
	return ""
}

// Organization roles, from most to least powerful.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleViewer = "viewer"
)

// Roles lists the roles, most powerful first.
var Roles = []string{RoleOwner, RoleAdmin, RoleMember, RoleViewer}

// API-key scopes.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// Scopes lists the scopes.
var Scopes = []string{ScopeRead, ScopeWrite, ScopeAdmin}

// Permission is something a caller may be allowed to do.
type Permission int

// Permissions, each granted to some roles and one API-key scope (see
// docs/api.md).
const (
	// ReadWorkspace reads a workspace, its sources and its data.
	ReadWorkspace Permission = iota
	// ConfigureWorkspace changes a workspace's settings and sources.
	ConfigureWorkspace
	// ManageKeys lists, creates and revokes a workspace's API keys.
	ManageKeys
	// DeleteWorkspace deletes a workspace.
	DeleteWorkspace
	// ReadOrganization reads an organization, its members and workspaces.
	ReadOrganization
	// ManageOrganization renames an organization, creates workspaces, manages
	// members and invitations, and reads the audit log.
	ManageOrganization
)

// grants says which roles and which API-key scope hold each permission. An
// empty scope means API keys never do.
var grants = map[Permission]struct {
	roles []string
	scope string
}{
	ReadWorkspace:      {Roles, ScopeRead},
	ConfigureWorkspace: {[]string{RoleOwner, RoleAdmin, RoleMember}, ScopeWrite},
	ManageKeys:         {[]string{RoleOwner, RoleAdmin, RoleMember}, ScopeAdmin},
	DeleteWorkspace:    {[]string{RoleOwner, RoleAdmin}, ScopeAdmin},
	ReadOrganization:   {Roles, ""},
	ManageOrganization: {[]string{RoleOwner, RoleAdmin}, ""},
}

// RoleAllows tells whether an organization role holds a permission.
func RoleAllows(role string, p Permission) bool {
	return slices.Contains(grants[p].roles, role)
}

// ScopesAllow tells whether an API key with these scopes holds a permission.
func ScopesAllow(scopes []string, p Permission) bool {
	s := grants[p].scope
	return s != "" && slices.Contains(scopes, s)
}

// ParseScopes checks a list of scopes and returns it without duplicates, in
// the order of Scopes.
func ParseScopes(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, errors.New("must list at least one of read, write, admin")
	}
	for _, s := range in {
		if !slices.Contains(Scopes, s) {
			return nil, fmt.Errorf("%q is not a scope (scopes: read, write, admin)", s)
		}
	}
	var out []string
	for _, s := range Scopes {
		if slices.Contains(in, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// ScopeWithin tells whether every permission a scope grants passes can:
// whether someone who can do only what can allows may hand out a key with
// this scope. It keeps a key from doing more than its creator.
func ScopeWithin(scope string, can func(Permission) bool) bool {
	for p, g := range grants {
		if g.scope == scope && !can(p) {
			return false
		}
	}
	return true
}
