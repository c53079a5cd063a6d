package session

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Rules are a workspace's sessionization settings.
type Rules struct {
	// Timeout is the inactivity after which the next event starts a new
	// session: a gap of exactly Timeout starts one. 1 minute to 24 hours.
	Timeout time.Duration
	// MaxLength is the longest a session may last: an event MaxLength or
	// more after the session's start starts a new one. Timeout to 7 days.
	MaxLength time.Duration
	// Grace is how long a session stays open after its inactivity timeout
	// has passed, to receive late events: it closes when the watermark
	// reaches its last event + Timeout + Grace. 0 to 24 hours.
	Grace time.Duration
	// OwnDomains are the workspace's sites: a referrer on one of them or a
	// subdomain (www.shop.com for shop.com) is internal navigation, never a
	// new visit. A referrer on the page's own host is internal even when
	// OwnDomains is empty.
	OwnDomains []string
	// IgnoredReferrers are third-party sites whose referrals continue the
	// visit, typically payment pages that send the buyer back (subdomains
	// match too).
	IgnoredReferrers []string
}

// DefaultRules returns GA-like settings: 30 minutes of inactivity, 24 hours
// at most, 10 minutes of grace for late events (browsers send at once and
// retry within seconds; mobile SDKs flush every 30 seconds or 20 events),
// and the common payment providers as ignored referrers.
func DefaultRules() Rules {
	return Rules{
		Timeout:          30 * time.Minute,
		MaxLength:        24 * time.Hour,
		Grace:            10 * time.Minute,
		IgnoredReferrers: []string{"paypal.com", "stripe.com", "checkout.stripe.com", "adyen.com", "klarna.com"},
	}
}

// Validate reports every setting out of range, one error per problem.
func (r Rules) Validate() error {
	var errs []error
	if r.Timeout < time.Minute || r.Timeout > 24*time.Hour {
		errs = append(errs, fmt.Errorf("timeout %v: want 1m to 24h", r.Timeout))
	}
	if r.MaxLength < r.Timeout || r.MaxLength > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("max length %v: want the timeout (%v) to 168h", r.MaxLength, r.Timeout))
	}
	if r.Grace < 0 || r.Grace > 24*time.Hour {
		errs = append(errs, fmt.Errorf("grace %v: want 0 to 24h", r.Grace))
	}
	for _, list := range []struct {
		name    string
		domains []string
	}{{"own domain", r.OwnDomains}, {"ignored referrer", r.IgnoredReferrers}} {
		for _, d := range list.domains {
			if !ValidDomain(d) {
				errs = append(errs, fmt.Errorf("%s %q: want a host name such as shop.com", list.name, d))
			}
		}
	}
	return errors.Join(errs...)
}

// ValidDomain reports whether d is a host name as Rules take them: letters,
// digits, hyphens and dots, at most 253 bytes, no leading or trailing dot.
func ValidDomain(d string) bool {
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		return false
	}
	for _, c := range d {
		if !(c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// Workspace is the sessionizer of one workspace: its id and validated
// rules. It is immutable and safe to share between goroutines; to change
// the rules, make a new Workspace and new Visitors.
type Workspace struct {
	id      string
	rules   Rules
	own     []string // lower case
	ignored []string // lower case
}

// NewWorkspace validates r and returns the sessionizer of workspace id.
func NewWorkspace(id string, r Rules) (*Workspace, error) {
	if id == "" {
		return nil, errors.New("new workspace: empty id")
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("session rules of workspace %s: %w", id, err)
	}
	w := &Workspace{id: id, rules: r}
	for _, d := range r.OwnDomains {
		w.own = append(w.own, strings.ToLower(d))
	}
	for _, d := range r.IgnoredReferrers {
		w.ignored = append(w.ignored, strings.ToLower(d))
	}
	w.rules.OwnDomains = append([]string(nil), r.OwnDomains...)
	w.rules.IgnoredReferrers = append([]string(nil), r.IgnoredReferrers...)
	return w, nil
}

// ID returns the workspace id.
func (w *Workspace) ID() string { return w.id }

// Rules returns a copy of the workspace's rules.
func (w *Workspace) Rules() Rules {
	r := w.rules
	r.OwnDomains = append([]string(nil), r.OwnDomains...)
	r.IgnoredReferrers = append([]string(nil), r.IgnoredReferrers...)
	return r
}

// externalReferrer returns the host of a page view's referrer when it is a
// new visit from another site: not one of the workspace's domains, not the
// page's own host, not an ignored referrer. Otherwise "".
func (w *Workspace) externalReferrer(referrer, page string) string {
	host := hostOf(referrer)
	if host == "" {
		return ""
	}
	if bareHost(host) == bareHost(hostOf(page)) {
		return ""
	}
	for _, d := range w.own {
		if withinDomain(host, d) {
			return ""
		}
	}
	for _, d := range w.ignored {
		if withinDomain(host, d) {
			return ""
		}
	}
	return host
}
