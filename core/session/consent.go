package session

import (
	"slices"
	"sync"

	"github.com/eddy-cdp/eddy/core/consent"
)

// internedConsents holds one copy of each consent a session keeps, keyed by
// consentKey, so that a million sessions of visitors who made the same
// choice share one map, as interned shares strings. It stops growing past
// maxInternedConsents; kept maps are then copies.
var internedConsents struct {
	sync.RWMutex
	m map[string]consent.Preferences
}

const maxInternedConsents = 1 << 12

// keptConsent returns the copy of an event's consent a session keeps: its
// valid purposes, at most consent.MaxMessagePurposes of them (the first by
// name: one left out reads as not granted, so the cut never grants), in a
// shared map. p is not nil.
func keptConsent(p consent.Preferences) consent.Preferences {
	var buf [consent.MaxMessagePurposes]string
	purposes := buf[:0]
	for purpose := range p {
		if consent.ValidPurpose(purpose) {
			purposes = append(purposes, purpose)
		}
	}
	slices.Sort(purposes)
	purposes = purposes[:min(len(purposes), consent.MaxMessagePurposes)]
	var kb [256]byte
	key := kb[:0]
	for _, purpose := range purposes {
		key = appendConsentKey(key, purpose, p[purpose])
	}
	return internConsent(key, func() consent.Preferences {
		kept := make(consent.Preferences, len(purposes))
		for _, purpose := range purposes {
			kept[intern(purpose)] = p[purpose]
		}
		return kept
	})
}

// appendConsentKey appends one purpose, in name order, to the key of a
// consent: purposes cannot contain '=' or ','.
func appendConsentKey[S string | []byte](key []byte, purpose S, granted bool) []byte {
	key = append(key, purpose...)
	if granted {
		return append(key, "=1,"...)
	}
	return append(key, "=0,"...)
}

// internConsent returns the shared consent of key, made by build when there
// is none yet.
func internConsent(key []byte, build func() consent.Preferences) consent.Preferences {
	internedConsents.RLock()
	p, ok := internedConsents.m[string(key)]
	internedConsents.RUnlock()
	if ok {
		return p
	}
	p = build()
	internedConsents.Lock()
	defer internedConsents.Unlock()
	if shared, ok := internedConsents.m[string(key)]; ok {
		return shared
	}
	if internedConsents.m == nil {
		internedConsents.m = make(map[string]consent.Preferences)
	}
	if len(internedConsents.m) < maxInternedConsents {
		internedConsents.m[string(key)] = p
	}
	return p
}

// sameConsent reports whether kept, a consent a session keeps, is what
// keptConsent would make of p: the usual case of an event repeating the
// consent of the one before, answered without building anything.
func sameConsent(kept, p consent.Preferences) bool {
	if kept == nil || len(kept) != len(p) {
		return false
	}
	for purpose, granted := range p {
		if g, ok := kept[purpose]; !ok || g != granted {
			return false
		}
	}
	return true
}
