// Package identity resolves the visitors behind events to customer profiles
// and keeps each profile's state: traits, identities, first and last seen,
// sessions, orders, revenue and consent. It is pure: no I/O, no clock, no
// randomness.
//
// # Parts
//
// The rules (Apply, RecordSession, RecordOrder) decide what an event or a
// counted session or order does to the graph. They read and write the graph
// through a Tx, one workspace's graph inside one transaction. Graph is one
// workspace's graph in memory, safe for concurrent use; Memory holds one
// Graph per workspace and implements Store, the interface the worker calls. A PostgreSQL-backed Store will run the same rules inside a
// database transaction (see "Across shards" below). Every call returns
// Changes: exactly what a caller must persist.
//
// # Identities and profiles
//
// An identity is a (kind, value) pair: anonymous_id, user_id, or email (from
// the email trait, trimmed and lower-cased; ignored unless it holds an @).
// Each identity is linked to exactly one live profile, forever: identities
// are never unlinked or moved except when their whole profile is absorbed by
// a merge. A profile's id is derived from the workspace and the identity that
// created it (a name-based UUID), so replaying the same calls from scratch
// builds the same ids.
//
// Every event resolves to a profile through its primary identity: the
// userId when present, else the anonymousId. When the primary identity is
// new, it joins the profile of one of the event's other identities if that
// profile can take it (has no user_id, or, for an alias rename, see below),
// else a new profile is created. The event's other identities (the alias's
// previousId, the anonymousId of an event with a userId, the email trait)
// are then linked to that profile; an identity already on another profile
// merges the two profiles, unless that would join two user_ids.
//
// # Two users are never merged
//
// A profile holds at most one current user_id (Profile.UserID). A link that
// would join two profiles with different user_ids is refused and reported as
// a Conflict; the identity stays where it was. This covers the shared device:
// an anonymousId already on u1's profile, seen with u2, stays with u1 (it is
// not moved, since past anonymous events would silently change owner), the
// event resolves to u2's profile, and a Conflict is reported. Later events
// carrying that anonymousId and no userId resolve to u1: SDKs should reset
// the anonymousId on logout (analytics.reset()). The same rule refuses an
// email shared by two users and an alias between two users' profiles.
//
// An alias is Segment's: previousId is the old id (an anonymousId, or an old
// userId) and userId the new one. previousId is taken as a user_id when one
// with that value is linked, else as an anonymousId (so an old userId Eddy
// never saw becomes an anonymous id). One case lets a profile hold a second
// user_id: an alias whose previousId is a profile's current user_id and
// whose userId has never been seen renames the user (the new id becomes
// Profile.UserID; the old one keeps resolving to the profile), as Mixpanel's
// alias did. If the new userId was already seen, the alias joins
// two users and is refused. Alias chains (a→b, then b→c) therefore work.
//
// # Email
//
// Email is weaker than user_id: it links and merges only profiles without
// conflicting user_ids (an anonymous visitor who types a known customer's
// email joins that customer's profile; two users sharing an email stay
// apart, with a Conflict). Email never decides which profile an event
// belongs to and never creates a profile.
//
// # Merges
//
// The survivor is the profile first seen earlier; on equal first-seen times,
// the smaller id. The survivor takes the absorbed profile's identities; first
// seen is the minimum, last seen the maximum; sessions, orders and revenue
// add; the last order is the newer one (by time, then order id); each trait
// and consent purpose keeps the newer value of the two. The absorbed profile
// keeps only its id and MergedInto. Resolve maps any profile id ever issued
// to its live profile (union-find with path compression).
//
// Events and sessions are stored with their original anonymous and user ids,
// and the store resolves their profile through the identities mapping (and
// any profile id recorded beside them through Resolve, i.e. the
// profile_merges table), so a merge re-points past data by updating the
// mapping alone: the absorbed profile's identities point at the survivor and
// the absorbed profile row records MergedInto. Nothing in the events table
// is rewritten.
//
// # Traits and consent
//
// Traits come from identify's traits, else from context.traits (for every
// other call, including group, whose own traits describe the group).
// Last-write-wins applies per top-level key: a nested object is one value,
// replaced whole. Values are kept as raw JSON; null is a value. Each value
// carries a Stamp, the event time (truncated to microseconds, as PostgreSQL
// keeps it) and the message id; the greater stamp wins, time first, then
// message id, so the result does not depend on arrival order. Consent
// (context.consent.categoryPreferences) is kept the same way per purpose.
//
// # Idempotence and replay
//
// Every operation is idempotent by construction, so replaying events from a
// checkpoint after a failover is safe: linking a linked identity changes
// nothing; two identities already on one profile cause no merge; a trait or
// consent value with the same stamp changes nothing; first/last seen are
// min/max; a session or order is counted once per workspace by its id (a
// Claim). Re-applying an event therefore returns empty Changes (apart from
// Conflicts, which are reported each time an event hits one).
//
// Replaying in the same order from scratch builds identical state, ids
// included. In another order, histories without conflicts end with the same
// profiles (the same sets of identities), traits, consent, seen times and
// counters, but survivor ids may differ. Conflicts are decided by arrival
// order (the first link wins), so histories with conflicts may differ.
//
// Because re-applying is a no-op, a caller that applies an event in memory
// and then fails to persist the Changes must not simply retry the event: it
// must discard the in-memory graph and reload it from storage (or stop), or
// the lost Changes are never emitted again.
//
// # Across shards
//
// The queue shards by anonymousId, so one userId appears on events of
// different shards, which different workers may own. A graph held in one
// shard's memory would therefore split users. Graph is shared by every shard
// goroutine of one process (a mutex per workspace); with several worker
// processes the graph must live in a shared Store: the PostgreSQL one, which
// runs the rules inside a transaction that locks the event's identity rows
// (SELECT ... FOR UPDATE in a fixed order, with an insert-or-lock for new
// identities) and then the profile rows, through the same Tx interface.
package identity
