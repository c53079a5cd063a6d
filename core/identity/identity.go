package identity

import (
	"encoding/json"
	"errors"
	"math"
	"time"
)

// Kind is the kind of an identity.
type Kind string

// The kinds of identity Eddy links.
const (
	AnonymousID Kind = "anonymous_id"
	UserID      Kind = "user_id"
	Email       Kind = "email"
)

// Identity is one identifier of a customer within a workspace.
type Identity struct {
	Kind  Kind
	Value string
}

func (id Identity) String() string { return string(id.Kind) + ":" + id.Value }

// Event is what the rules read from a Segment message (see FromEntry).
type Event struct {
	// WorkspaceID is the workspace the event belongs to.
	WorkspaceID string
	// MessageID breaks ties between trait values of the same time.
	MessageID string
	// Type is the Segment call type (identify, track, alias...).
	Type string
	// AnonymousID, UserID and PreviousID are the message's ids; at least one
	// of AnonymousID and UserID is required.
	AnonymousID string
	UserID      string
	PreviousID  string
	// Timestamp is the corrected event time; it is required.
	Timestamp time.Time
	// Traits is a JSON object of user traits, or empty.
	Traits json.RawMessage
	// Consent maps a consent purpose to whether it is granted.
	Consent map[string]bool
}

// Stamp orders values written by different events: the later time wins,
// then the greater message id.
type Stamp struct {
	At        time.Time
	MessageID string
}

// After reports whether s wins over o.
func (s Stamp) After(o Stamp) bool {
	if c := s.At.Compare(o.At); c != 0 {
		return c > 0
	}
	return s.MessageID > o.MessageID
}

// Trait is one top-level trait of a profile with the stamp of its value.
type Trait struct {
	Key   string
	Value json.RawMessage
	Stamp
}

// Consent is whether a profile granted one consent purpose, and when it said so.
type Consent struct {
	Purpose string
	Granted bool
	Stamp
}

// Session is a session counted on a profile.
type Session struct {
	// ID identifies the session in its workspace; a session is counted once.
	ID string
	// Start is when the session started; it extends the profile's seen times.
	Start time.Time
}

// Order is an order counted on a profile. Value is in the workspace's
// reporting currency: callers convert before recording, so that revenue
// adds up; Currency is kept for display.
type Order struct {
	// ID identifies the order in its workspace; an order is counted once.
	ID       string
	At       time.Time
	Value    float64
	Currency string
}

// Row is the scalar part of a profile: one row of the profiles table.
type Row struct {
	ID string
	// UserID is the profile's current user_id, empty for an anonymous profile.
	UserID string
	// MergedInto is the profile that absorbed this one, empty while it lives.
	MergedInto string
	FirstSeen  time.Time
	LastSeen   time.Time
	Sessions   int64
	Orders     int64
	// RevenueMicros is the lifetime revenue in millionths of a unit, so that
	// sums are exact and do not depend on the order they were added in.
	RevenueMicros int64
	// LastOrder is the newest order (by time, then id); zero if none.
	LastOrder Order
}

// Revenue is the lifetime revenue.
func (r *Row) Revenue() float64 { return float64(r.RevenueMicros) / 1e6 }

// AverageOrderValue is the lifetime revenue divided by the number of orders.
func (r *Row) AverageOrderValue() float64 {
	if r.Orders == 0 {
		return 0
	}
	return r.Revenue() / float64(r.Orders)
}

// Profile is one customer's state.
type Profile struct {
	Row
	// Identities are the profile's identities in the order they joined it.
	Identities []Identity
	// Traits are sorted by key.
	Traits []Trait
	// Consent is sorted by purpose.
	Consent []Consent
}

// Trait returns the value of a trait, or nil.
func (p *Profile) Trait(key string) json.RawMessage {
	if i, ok := findTrait(p.Traits, key); ok {
		return p.Traits[i].Value
	}
	return nil
}

// Changes is what one call changed: what the caller must persist. Apply the
// parts in the order of the fields: Created, Merged (re-point the absorbed
// profile's identities at the survivor and set its MergedInto), Linked,
// Rows, Traits, Consent, Session and Order.
type Changes struct {
	// Profile is the live profile the call resolved to.
	Profile string
	// Created lists the profiles created, whose rows are in Rows.
	Created []string
	// Merged lists the merges in the order they happened.
	Merged []Merge
	// Linked lists identities newly linked, each to the live profile.
	Linked []Link
	// Rows holds the new state of every profile row that changed.
	Rows []Row
	// Traits holds the trait values that changed on the live profile.
	Traits []TraitChange
	// Consent holds the consent purposes that changed on the live profile.
	Consent []ConsentChange
	// Session is the session newly counted, if any.
	Session string
	// Order is the order newly counted, if any.
	Order *Order
	// Conflicts lists links refused because they would join two user_ids.
	// They change nothing and are reported each time an event hits one.
	Conflicts []Conflict
}

// Empty reports whether there is nothing to persist.
func (c *Changes) Empty() bool {
	return len(c.Created) == 0 && len(c.Merged) == 0 && len(c.Linked) == 0 && len(c.Rows) == 0 &&
		len(c.Traits) == 0 && len(c.Consent) == 0 && c.Session == "" && c.Order == nil
}

// Link is an identity linked to a profile.
type Link struct {
	Identity Identity
	Profile  string
}

// Merge records that a profile absorbed another: a row of profile_merges.
type Merge struct {
	Survivor string
	Absorbed string
	// At and MessageID are the time and id of the event that caused it.
	At        time.Time
	MessageID string
	// Via is the identity whose link joined the two profiles.
	Via Identity
}

// TraitChange is a trait's new value on a profile.
type TraitChange struct {
	Profile string
	Trait
}

// ConsentChange is a consent purpose's new state on a profile.
type ConsentChange struct {
	Profile string
	Consent
}

// Conflict is a refused link: Identity stays on Profile, whose user_id
// differs from that of With, the profile the event resolved to.
type Conflict struct {
	Identity  Identity
	Profile   string
	With      string
	UserIDs   [2]string
	MessageID string
}

// ClaimKind is what a Claim counts.
type ClaimKind uint8

// The things counted once per workspace.
const (
	ClaimSession ClaimKind = iota + 1
	ClaimOrder
)

// Errors the rules return for input they cannot apply.
var (
	ErrNoIdentity     = errors.New("event has neither userId nor anonymousId")
	ErrNoTimestamp    = errors.New("event has no timestamp")
	ErrUnknownProfile = errors.New("unknown profile")
	ErrWrongWorkspace = errors.New("event belongs to another workspace")
)

func micros(v float64) (int64, bool) {
	m := math.Round(v * 1e6)
	if math.IsNaN(m) || math.Abs(m) > math.MaxInt64/2 {
		return 0, false
	}
	return int64(m), true
}
