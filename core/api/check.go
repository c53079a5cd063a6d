package api

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"

	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
)

// The rules for what people and programs send, shared by the API and the
// CLI (which names flags where the API names fields), so that both accept
// exactly the same.

// FieldError says what is wrong with one field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// FieldErrors are a request's validation failures; the API answers them with
// a 400 whose details list each.
type FieldErrors []FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

// Err returns e as an error, or nil when there is none.
func (e FieldErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Add records a problem with field.
func (e *FieldErrors) Add(field, format string, args ...any) {
	*e = append(*e, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Require checks that v is given.
func (e *FieldErrors) Require(field, v string) {
	if v == "" {
		e.Add(field, "is required")
	}
}

// Limits on what clients send.
const (
	maxNameLen  = 200
	maxEmailLen = 254
)

// Name checks a display name: required, at most maxNameLen characters of
// valid UTF-8 without control characters (which PostgreSQL text may refuse,
// and which no name needs).
func (e *FieldErrors) Name(field, v string) {
	switch {
	case v == "":
		e.Add(field, "is required")
	case !utf8.ValidString(v):
		e.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > maxNameLen:
		e.Add(field, "must be at most %d characters", maxNameLen)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		e.Add(field, "must not contain control characters")
	}
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Slug checks an id chosen by the caller.
func (e *FieldErrors) Slug(field, v string) {
	switch {
	case v == "":
		e.Add(field, "is required")
	case !slugPattern.MatchString(v):
		e.Add(field, "must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit")
	}
}

// Email checks a plain email address.
func (e *FieldErrors) Email(field, v string) {
	if v == "" {
		e.Add(field, "is required")
		return
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || len(v) > maxEmailLen {
		e.Add(field, "must be a plain email address such as ada@example.com (at most %d characters)", maxEmailLen)
	}
}

// Text checks free text a client filters by, such as a query parameter:
// PostgreSQL text holds neither NUL characters nor invalid UTF-8, and
// refuses a parameter that has them.
func (e *FieldErrors) Text(field, v string) {
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		e.Add(field, "must be valid UTF-8 without NUL characters")
	}
}

// OneOf checks that v is one of allowed.
func (e *FieldErrors) OneOf(field, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	if v == "" {
		e.Add(field, "is required: one of %s", strings.Join(allowed, ", "))
		return
	}
	e.Add(field, "must be one of %s", strings.Join(allowed, ", "))
}

// Settings checks workspace settings; field names each setting after its
// JSON name ("settings.timezone" in the API, "--timezone" in the CLI).
func (e *FieldErrors) Settings(st store.Settings, field func(jsonName string) string) {
	if _, err := time.LoadLocation(st.Timezone); err != nil || st.Timezone == "" || st.Timezone == "Local" || len(st.Timezone) > 64 {
		e.Add(field("timezone"), "must be an IANA time zone such as Europe/Paris or UTC")
	}
	if u, err := currency.ParseISO(st.Currency); err != nil || u.String() != st.Currency {
		e.Add(field("currency"), "must be an ISO 4217 currency code in capitals, such as EUR or USD")
	}
	if n := st.SessionTimeoutMinutes; n < 1 || n > 1440 {
		e.Add(field("session_timeout_minutes"), "must be from 1 to 1440")
	}
	for _, l := range []struct {
		name    string
		domains []string
	}{{"own_domains", st.OwnDomains}, {"ignored_referrers", st.IgnoredReferrers}} {
		if len(l.domains) > MaxDomains {
			e.Add(field(l.name), "must list at most %d domains", MaxDomains)
			continue
		}
		for _, d := range l.domains {
			if !session.ValidDomain(d) {
				e.Add(field(l.name), "%q is not a host name such as shop.com", d)
			}
		}
	}
	// The policy names its fields from "privacy.".
	for _, fe := range st.Privacy.Validate() {
		e.Add(field(fe.Field), "%s", fe.Message)
	}
}

// MaxDomains caps each of a workspace's domain lists.
const MaxDomains = 50
