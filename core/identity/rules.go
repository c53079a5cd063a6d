package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unique"

	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/event"
)

// Tx is one workspace's identity graph as the rules read and write it during
// one call. The in-memory Graph implements it over maps; a database-backed
// store implements it inside a transaction, locking the rows it returns.
//
// The rules change the *Profile values that Lookup and Get return in place;
// a database-backed Tx writes them back from the call's Changes. Within one
// call, one profile must always be returned as the same *Profile.
type Tx interface {
	// Lookup sets into[i] to the live profile ids[i] is linked to, or nil.
	Lookup(ids []Identity, into []*Profile) error
	// Get returns the live profile that profileID is, or was merged into;
	// nil if the id was never issued.
	Get(profileID string) (*Profile, error)
	// Create adds a new profile.
	Create(p *Profile) error
	// Link links an identity that was not linked to a live profile.
	Link(id Identity, profileID string) error
	// Merge points every identity of absorbed at survivor and records that
	// absorbed now resolves to survivor. The rules call it before they fold
	// absorbed's state into survivor.
	Merge(survivor, absorbed *Profile) error
	// Claim records that a session or an order has been counted on a
	// profile, and reports false if it had already been counted.
	Claim(kind ClaimKind, id, profileID string) (bool, error)
}

// Precision is the precision of times kept in profiles: PostgreSQL's, so
// that a state reloaded from the database compares equal to the one built
// in memory.
const Precision = time.Microsecond

func normTime(t time.Time) time.Time { return t.Truncate(Precision).UTC() }

// Apply resolves an event to a profile, links its identities, merges the
// profiles they join, and applies its traits, consent and time. See the
// package documentation for the rules.
func Apply(tx Tx, ev Event) (Changes, error) {
	if ev.UserID == "" && ev.AnonymousID == "" {
		return Changes{}, ErrNoIdentity
	}
	if ev.Timestamp.IsZero() {
		return Changes{}, ErrNoTimestamp
	}
	traits, err := parseTraits(ev.Traits)
	if err != nil {
		return Changes{}, err
	}
	r := run{tx: tx, stamp: Stamp{At: normTime(ev.Timestamp), MessageID: ev.MessageID}, ws: ev.WorkspaceID}
	if len(traits) > 0 || len(ev.Consent) > 0 {
		// Stamps keep the message id: one copy, shared by the values it stamps.
		r.stamp.MessageID = strings.Clone(ev.MessageID)
	}

	// Every identity the event may carry, looked up at once so that a
	// database can lock them in one statement.
	var idBuf [5]Identity
	var pBuf [5]*Profile
	ids := idBuf[:0]
	primary := Identity{AnonymousID, ev.AnonymousID}
	if ev.UserID != "" {
		primary = Identity{UserID, ev.UserID}
	}
	ids = append(ids, primary)
	prev, anon, mail := -1, -1, -1
	if ev.PreviousID != "" && ev.PreviousID != ev.UserID {
		prev = len(ids)
		ids = append(ids, Identity{UserID, ev.PreviousID}, Identity{AnonymousID, ev.PreviousID})
	}
	if ev.UserID != "" && ev.AnonymousID != "" {
		anon = len(ids)
		ids = append(ids, Identity{AnonymousID, ev.AnonymousID})
	}
	if email := emailOf(traits); email != "" {
		mail = len(ids)
		ids = append(ids, Identity{Email, email})
	}
	profiles := pBuf[:len(ids)]
	if err := tx.Lookup(ids, profiles); err != nil {
		return Changes{}, fmt.Errorf("look up identities: %w", err)
	}

	// The other identities, strongest first: previousId is the point of an
	// alias; it is a user_id when one with its value is linked.
	var cBuf [3]candidate
	cands := cBuf[:0]
	add := func(i int) {
		c := candidate{ids[i], profiles[i]}
		if c.id == primary || slices.ContainsFunc(cands, func(o candidate) bool { return o.id == c.id }) {
			return
		}
		cands = append(cands, c)
	}
	if prev >= 0 {
		if profiles[prev] != nil {
			add(prev)
		} else {
			add(prev + 1)
		}
	}
	if anon >= 0 {
		add(anon)
	}
	if mail >= 0 {
		add(mail)
	}

	home := profiles[0]
	if home == nil {
		for _, c := range cands {
			if c.p != nil && canTake(c.p, primary, c.id) {
				home = c.p
				break
			}
		}
		if home == nil {
			if home, err = r.create(primary); err != nil {
				return Changes{}, err
			}
		} else if err := r.link(primary, home); err != nil {
			return Changes{}, err
		}
	}
	for _, c := range cands {
		switch {
		case c.p == nil:
			err = r.link(c.id, home)
		case c.p.ID == home.ID || c.p.MergedInto != "":
			// Already together (every profile absorbed during this call
			// was absorbed into home's side).
		case joinable(home, c.p):
			home, err = r.merge(home, c.p, c.id)
		default:
			r.ch.Conflicts = append(r.ch.Conflicts, Conflict{
				Identity: c.id, Profile: c.p.ID, UserIDs: [2]string{c.p.UserID, home.UserID}, MessageID: ev.MessageID,
			})
		}
		if err != nil {
			return Changes{}, err
		}
	}

	if touch(home, r.stamp.At) {
		r.dirty(home)
	}
	for _, t := range traits {
		if setTrait(home, t.Key, t.Value, r.stamp) {
			r.traitChanged(home.ID, t.Key)
		}
	}
	for _, purpose := range sortedKeys(ev.Consent) {
		if setConsent(home, purpose, ev.Consent[purpose], r.stamp) {
			r.consentChanged(home.ID, purpose)
		}
	}
	return r.finish(home), nil
}

// RecordSession counts a session on a profile (or the one it was merged
// into), once per session id.
func RecordSession(tx Tx, profileID string, s Session) (Changes, error) {
	if s.ID == "" {
		return Changes{}, errors.New("session has no id")
	}
	p, err := live(tx, profileID)
	if err != nil {
		return Changes{}, err
	}
	ch := Changes{Profile: p.ID}
	if first, err := tx.Claim(ClaimSession, s.ID, p.ID); err != nil || !first {
		return ch, err
	}
	p.Sessions++
	if !s.Start.IsZero() {
		touch(p, normTime(s.Start))
	}
	ch.Session = s.ID
	ch.Rows = []Row{p.Row}
	return ch, nil
}

// RecordOrder counts an order on a profile (or the one it was merged into),
// once per order id: orders, revenue, last order and seen times. An order id
// already counted keeps its first values and profile.
func RecordOrder(tx Tx, profileID string, o Order) (Changes, error) {
	if o.ID == "" {
		return Changes{}, errors.New("order has no id")
	}
	value, ok := micros(o.Value)
	if !ok {
		return Changes{}, fmt.Errorf("order %s: value %v is not a finite amount", o.ID, o.Value)
	}
	if !o.At.IsZero() {
		o.At = normTime(o.At)
	}
	p, err := live(tx, profileID)
	if err != nil {
		return Changes{}, err
	}
	ch := Changes{Profile: p.ID}
	if first, err := tx.Claim(ClaimOrder, o.ID, p.ID); err != nil || !first {
		return ch, err
	}
	o.ID, o.Currency = strings.Clone(o.ID), unique.Make(o.Currency).Value()
	p.Orders++
	p.RevenueMicros += value
	if orderAfter(o, p.LastOrder) {
		p.LastOrder = o
	}
	if !o.At.IsZero() {
		touch(p, o.At)
	}
	ch.Order = &o
	ch.Rows = []Row{p.Row}
	return ch, nil
}

func live(tx Tx, profileID string) (*Profile, error) {
	p, err := tx.Get(profileID)
	if err != nil {
		return nil, fmt.Errorf("get profile %s: %w", profileID, err)
	}
	if p == nil {
		return nil, fmt.Errorf("profile %q: %w", profileID, ErrUnknownProfile)
	}
	return p, nil
}

type candidate struct {
	id Identity
	p  *Profile
}

// canTake reports whether a new primary identity may join profile p, which
// the event reached through via.
func canTake(p *Profile, primary, via Identity) bool {
	if primary.Kind != UserID || p.UserID == "" {
		return true
	}
	// An alias from a profile's current user_id to a new one renames it.
	return via.Kind == UserID && via.Value == p.UserID
}

// joinable reports whether two profiles may merge: not two user_ids.
func joinable(a, b *Profile) bool {
	return a.UserID == "" || b.UserID == "" || a.UserID == b.UserID
}

// run collects the Changes of one Apply.
type run struct {
	tx     Tx
	ws     string
	stamp  Stamp
	ch     Changes
	rows   []*Profile
	traits []TraitChange // key and profile only until finish
	consnt []ConsentChange
}

func (r *run) dirty(p *Profile) {
	if !slices.Contains(r.rows, p) {
		r.rows = append(r.rows, p)
	}
}

func (r *run) traitChanged(profile, key string) {
	r.traits = append(r.traits, TraitChange{Profile: profile, Trait: Trait{Key: key}})
}

func (r *run) consentChanged(profile, purpose string) {
	r.consnt = append(r.consnt, ConsentChange{Profile: profile, Consent: Consent{Purpose: purpose}})
}

func (r *run) create(primary Identity) (*Profile, error) {
	primary.Value = strings.Clone(primary.Value)
	p := &Profile{Row: Row{ID: ProfileID(r.ws, primary), FirstSeen: r.stamp.At, LastSeen: r.stamp.At}}
	if primary.Kind == UserID {
		p.UserID = primary.Value
	}
	if err := r.tx.Create(p); err != nil {
		return nil, fmt.Errorf("create profile for %s: %w", primary, err)
	}
	r.ch.Created = append(r.ch.Created, p.ID)
	r.dirty(p)
	return p, r.link(primary, p)
}

func (r *run) link(id Identity, p *Profile) error {
	id.Value = strings.Clone(id.Value)
	if err := r.tx.Link(id, p.ID); err != nil {
		return fmt.Errorf("link %s: %w", id, err)
	}
	p.Identities = append(p.Identities, id)
	r.ch.Linked = append(r.ch.Linked, Link{Identity: id})
	if id.Kind == UserID && p.UserID != id.Value {
		p.UserID = id.Value // a new user, or a rename by alias
		r.dirty(p)
	}
	return nil
}

// merge joins two profiles and returns the survivor: the one first seen
// earlier, else the one with the smaller id.
func (r *run) merge(a, b *Profile, via Identity) (*Profile, error) {
	s, x := a, b
	if c := x.FirstSeen.Compare(s.FirstSeen); c < 0 || c == 0 && x.ID < s.ID {
		s, x = x, s
	}
	if err := r.tx.Merge(s, x); err != nil {
		return nil, fmt.Errorf("merge profile %s into %s: %w", x.ID, s.ID, err)
	}
	if s.UserID == "" {
		s.UserID = x.UserID
	}
	s.Identities = append(s.Identities, x.Identities...)
	touch(s, x.FirstSeen)
	touch(s, x.LastSeen)
	s.Sessions += x.Sessions
	s.Orders += x.Orders
	s.RevenueMicros += x.RevenueMicros
	if orderAfter(x.LastOrder, s.LastOrder) {
		s.LastOrder = x.LastOrder
	}
	for _, t := range x.Traits {
		if setTrait(s, t.Key, t.Value, t.Stamp) {
			r.traitChanged(s.ID, t.Key)
		}
	}
	for _, c := range x.Consent {
		if setConsent(s, c.Purpose, c.Granted, c.Stamp) {
			r.consentChanged(s.ID, c.Purpose)
		}
	}
	*x = Profile{Row: Row{ID: x.ID, MergedInto: s.ID}}
	r.ch.Merged = append(r.ch.Merged, Merge{Survivor: s.ID, Absorbed: x.ID, At: r.stamp.At, MessageID: r.stamp.MessageID, Via: via})
	r.dirty(s)
	r.dirty(x)
	return s, nil
}

// finish completes the Changes once home is final: every link and conflict
// of the call ends on home, and only home's trait and consent changes
// matter (those of absorbed profiles were carried into it by the merge).
func (r *run) finish(home *Profile) Changes {
	ch := r.ch
	ch.Profile = home.ID
	for i := range ch.Linked {
		ch.Linked[i].Profile = home.ID
	}
	for i := range ch.Conflicts {
		ch.Conflicts[i].With = home.ID
	}
	for _, p := range r.rows {
		ch.Rows = append(ch.Rows, p.Row)
	}
	for _, t := range r.traits {
		if t.Profile == home.ID && !slices.ContainsFunc(ch.Traits, func(o TraitChange) bool { return o.Key == t.Key }) {
			i, _ := findTrait(home.Traits, t.Key)
			ch.Traits = append(ch.Traits, TraitChange{Profile: home.ID, Trait: home.Traits[i]})
		}
	}
	for _, c := range r.consnt {
		if c.Profile == home.ID && !slices.ContainsFunc(ch.Consent, func(o ConsentChange) bool { return o.Purpose == c.Purpose }) {
			i, _ := findConsent(home.Consent, c.Purpose)
			ch.Consent = append(ch.Consent, ConsentChange{Profile: home.ID, Consent: home.Consent[i]})
		}
	}
	return ch
}

// touch widens a profile's seen times to include t.
func touch(p *Profile, t time.Time) bool {
	changed := false
	if p.FirstSeen.IsZero() || t.Before(p.FirstSeen) {
		p.FirstSeen, changed = t, true
	}
	if t.After(p.LastSeen) {
		p.LastSeen, changed = t, true
	}
	return changed
}

func orderAfter(o, than Order) bool {
	if o.ID == "" {
		return false
	}
	if than.ID == "" {
		return true
	}
	if c := o.At.Compare(than.At); c != 0 {
		return c > 0
	}
	return o.ID > than.ID
}

func findTrait(ts []Trait, key string) (int, bool) {
	return slices.BinarySearchFunc(ts, key, func(t Trait, k string) int { return strings.Compare(t.Key, k) })
}

func findConsent(cs []Consent, purpose string) (int, bool) {
	return slices.BinarySearchFunc(cs, purpose, func(c Consent, p string) int { return strings.Compare(c.Purpose, p) })
}

// setTrait writes a trait value if its stamp wins over the current one.
// The stamp's message id must not alias a caller's buffer.
func setTrait(p *Profile, key string, value json.RawMessage, st Stamp) bool {
	i, ok := findTrait(p.Traits, key)
	if ok && !st.After(p.Traits[i].Stamp) {
		return false
	}
	t := Trait{Key: key, Value: bytes.Clone(value), Stamp: st}
	if ok {
		p.Traits[i] = t
	} else {
		// Keys repeat across profiles: keep one copy of each.
		t.Key = unique.Make(key).Value()
		p.Traits = slices.Insert(p.Traits, i, t)
	}
	return true
}

// setConsent writes a consent purpose if its stamp wins over the current one.
func setConsent(p *Profile, purpose string, granted bool, st Stamp) bool {
	i, ok := findConsent(p.Consent, purpose)
	if ok && !st.After(p.Consent[i].Stamp) {
		return false
	}
	c := Consent{Purpose: purpose, Granted: granted, Stamp: st}
	if ok {
		p.Consent[i] = c
	} else {
		c.Purpose = unique.Make(purpose).Value()
		p.Consent = slices.Insert(p.Consent, i, c)
	}
	return true
}

type keyValue struct {
	Key   string
	Value json.RawMessage
}

// parseTraits reads a traits object into its top-level keys, sorted.
func parseTraits(raw json.RawMessage) ([]keyValue, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := event.Decode(raw, &m); err != nil {
		return nil, fmt.Errorf("traits: %w", err)
	}
	kvs := make([]keyValue, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, keyValue{k, v})
	}
	slices.SortFunc(kvs, func(a, b keyValue) int { return strings.Compare(a.Key, b.Key) })
	return kvs, nil
}

// emailOf is the email trait as an identity value: trimmed and lower-cased,
// empty unless it is a string holding an @.
func emailOf(traits []keyValue) string {
	i, ok := slices.BinarySearchFunc(traits, "email", func(kv keyValue, k string) int { return strings.Compare(kv.Key, k) })
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(traits[i].Value, &s) != nil {
		return ""
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.Contains(s, "@") || len(s) > 320 {
		return ""
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// profileSpace is the UUID namespace of profile ids (a fixed random UUID),
// which keeps them distinct from other name-based UUIDs.
var profileSpace = uuid.MustParse("6b1f3e0a-52c4-4d0e-9a57-2f8e7d2c9b41")

// ProfileID is the id of the profile created for an identity: a name-based
// (version 5) UUID of the workspace and the identity. An identity creates at
// most one profile, since it stays linked once linked.
func ProfileID(workspaceID string, id Identity) string {
	return uuid.NewSHA1(profileSpace, []byte(workspaceID+"\x00"+string(id.Kind)+"\x00"+id.Value)).String()
}
