package session

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Caps on what a session keeps, so that one visitor cannot make its session
// large: a live session must stay near 1 KB (see TestMemoryPerSession).
const (
	// MaxURLBytes caps the landing, current and exit pages and the referrer.
	// Longer URLs are cut at a UTF-8 boundary; 512 bytes keep the path and
	// the campaign parameters of any URL seen in practice.
	MaxURLBytes = 512
	// MaxTextBytes caps every other kept string: campaign values, click ids,
	// product ids and names, user id, location, device names.
	MaxTextBytes = 128
	// MaxCartItems caps the distinct products tracked in a cart; products
	// added after that are not tracked (real carts hold a handful).
	MaxCartItems = 50
	// MaxCartChanges caps the add and remove events a cart keeps apart to
	// place late events exactly; older ones are folded together.
	MaxCartChanges = 100
	// MaxOrders caps the orders listed on a session; further orders still
	// count in OrderCount and Revenue.
	MaxOrders = 10
)

// clip returns at most n bytes of s, cut at a UTF-8 boundary, as a copy: a
// session must not keep alive the buffer an event was decoded from.
func clip(s string, n int) string {
	return strings.Clone(cut(s, n))
}

// cut is clip without the copy.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// interned holds one copy of each repeated short value (campaign values,
// countries, cities, product ids, currencies, referring hosts) so that a
// million sessions share them. It is process-wide and safe for concurrent
// use; past maxInterned values it stops growing and intern only copies,
// so hostile input cannot make it grow without bound.
var interned struct {
	sync.RWMutex
	m map[string]string
}

const maxInterned = 1 << 16

// intern returns the shared copy of s cut to MaxTextBytes.
func intern(s string) string {
	if s == "" {
		return ""
	}
	s = cut(s, MaxTextBytes)
	interned.RLock()
	v, ok := interned.m[s]
	interned.RUnlock()
	if ok {
		return v
	}
	c := strings.Clone(s)
	interned.Lock()
	defer interned.Unlock()
	if v, ok := interned.m[s]; ok {
		return v
	}
	if interned.m == nil {
		interned.m = make(map[string]string)
	}
	if len(interned.m) < maxInterned {
		interned.m[c] = c
	}
	return c
}

// hostOf returns the lower-case host of an absolute URL
// ("https://user@WWW.Shop.com:8443/a?b" → "www.shop.com"), or "" when u has
// no host. It is a small scanner rather than url.Parse: it runs for every
// page view and must not allocate for the usual lower-case host.
func hostOf(u string) string {
	i := strings.Index(u, "//")
	if i < 0 || (i > 0 && u[i-1] != ':') {
		return ""
	}
	h := u[i+2:]
	if j := strings.IndexAny(h, "/?#"); j >= 0 {
		h = h[:j]
	}
	if j := strings.LastIndexByte(h, '@'); j >= 0 {
		h = h[j+1:]
	}
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if j := strings.IndexByte(h, ']'); j >= 0 {
			return strings.ToLower(h[:j+1])
		}
		return ""
	}
	if j := strings.LastIndexByte(h, ':'); j >= 0 {
		h = h[:j]
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// withinDomain reports whether host is domain or one of its subdomains
// (www.shop.com is within shop.com; myshop.com is not).
func withinDomain(host, domain string) bool {
	return host == domain ||
		len(host) > len(domain) && strings.HasSuffix(host, domain) && host[len(host)-len(domain)-1] == '.'
}

// bareHost drops a leading "www." so that www.shop.com and shop.com compare
// equal.
func bareHost(h string) string {
	return strings.TrimPrefix(h, "www.")
}
