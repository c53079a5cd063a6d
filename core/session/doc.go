// Package session turns a device's events into sessions (visits), in
// memory and without I/O: the worker drives it, storage persists what it
// reports, the live API publishes it.
//
// # Parts
//
// A Workspace holds one workspace's Rules (timeout, maximum length, grace,
// own and ignored referrer domains). A Visitor holds the open sessions of
// one device, a workspace and an anonymous id. The caller feeds a visitor
// its events one at a time with Apply, and closes finished sessions with
// Close from a ticker; both append Changes (Started, Updated, Merged,
// Closed), each carrying a copy of the session's state, which the caller
// persists and publishes. FromEntry builds an Event from a stored entry.
//
//	ws, err := session.NewWorkspace(workspaceID, rules)
//	v := ws.NewVisitor(anonymousID)          // one per device, kept by the caller
//	changes, err = v.Apply(&ev, changes[:0]) // errors.Is(err, session.ErrTooLate): count it
//	changes = v.Close(time.Now(), changes[:0])
//
// A Visitor is not safe for concurrent use: each belongs to the goroutine
// of its shard. A Workspace is immutable and shared.
//
// # Rules
//
// Sessions are cut on corrected event time. An event starts a new session
// when the gap since the previous event is Timeout or more (a gap of
// exactly Timeout starts one), when the session would reach MaxLength, or
// when it brings a new visit: campaign parameters other than the
// session's, or, without any, a page view referred by another site than
// the one the session came from (the workspace's own domains, the page's
// own host and ignored referrers such as payment providers do not count).
// Events without campaign parameters never start a session by themselves.
//
// # Late events
//
// Events may arrive late and out of order. A session stays open until the
// watermark passed to Close reaches its last event + Timeout + Grace;
// until then late events join it, extend it backwards, or merge it with
// its neighbour when they bridge the gap (Merged names the absorbed id).
// An event that falls before the end (last event + Timeout) of a session
// already closed is refused with ErrTooLate; one far from every session
// the visitor keeps starts a session of its own, like a mobile app's
// offline batch. Choices of "the earliest" or "the latest" event (landing
// page, current page, user id, consent, source, device, location, orders,
// cart lines) go by event time, ties broken by message id, so the result
// does not depend on arrival order, except as Visitor.Apply documents.
//
// # Consent
//
// A session's Consent is the consent (context.consent.categoryPreferences,
// as the consent gate left it) of its latest event that stated one, nil
// while none did: an event without consent leaves it, and a late event
// cannot restore what a later one withdrew. The plugin runtime reads it to
// keep a session from an app whose purposes the visitor withdrew.
//
// # Ids
//
// A session's ID is a UUIDv7 built from the time and a hash of the
// workspace, anonymous id and message id of its earliest event: replaying
// the same events, in any order, rebuilds the same ids. A late event that
// becomes a session's earliest changes its id; that is reported as Merged.
//
// # Checkpoints
//
// A worker that takes over a shard must rebuild the visitors its dead
// owner had, exactly: Apply is not idempotent, and a visitor holds more
// than its sessions show (the marks that order events, consent included,
// revenue in millionths, track events, cart changes kept apart, the
// horizon behind ErrTooLate). Visitor.AppendBinary writes all of it in a compact,
// versioned binary format, and Workspace.RestoreVisitor reads it back into
// a visitor that answers every later Apply, Close, SetProfileID, NextClose
// and Sessions exactly as the original would have. AppendVisitors and
// RestoreVisitors do the same for a whole shard in one value, each
// workspace id written once. A typical one-session visitor takes about
// 500 bytes, mostly its URLs (BenchmarkSnapshot).
//
// The owner checkpoints between two batches, from the shard's goroutine,
// all the visitors it holds (including those without open sessions that
// it keeps to refuse late events), in the transaction that writes the
// changes of the entries up to the last one applied:
//
//	state, err := session.AppendVisitors(state[:0], visitors)
//	// UPDATE session_checkpoints SET last_entry_id = $1, state = $2 WHERE shard = $3
//
// The taker restores them with the workspaces' current Workspace, keys
// them by v.Workspace().ID() and v.AnonymousID(), rebuilds its close queue
// from NextClose, and replays the entries after last_entry_id:
//
//	visitors, err := session.RestoreVisitors(state, workspaceByID)
//
// The snapshot does not alias the visitors: the owner goes on at once.
// Rewriting a large shard whole every few seconds is costly (100,000
// visitors are about 50 MB); a caller may instead store visitors one per
// row with AppendBinary, rewriting only those changed since the last
// checkpoint and deleting those dropped, with the shard's last entry id in
// the same transaction.
//
// The replay gives what the dead owner gave only if the taker makes the
// same calls in the same order. The entries replay the Apply calls; Close
// calls on the wall clock cannot be replayed, and an event arriving near a
// session's close (last event + Timeout + Grace) may then be refused as
// too late by one and joined by the other. For exact takeovers, derive
// Close watermarks from the entries (such as the receive time of the
// latest entry applied), or checkpoint in the transaction that writes the
// Closed changes of each wall-clock Close.
//
// A snapshot holds no rules: restored under changed rules, sessions go on
// under the new ones. RestoreVisitor and RestoreVisitors refuse data that
// is not a snapshot they read with ErrInvalidSnapshot: corrupt, truncated,
// beyond the engine's caps, of another workspace, or in a format this
// build does not know (the first byte is the format; a new format must be
// read alongside the old for as long as checkpoints in it may exist, so a
// rollback across a format change cannot read the newer checkpoints). A
// taker should then stop and report rather than start with no visitors,
// which would split every session open at the checkpoint.
//
// # Memory
//
// A live session costs about 1.3 KB with its visitor (TestMemoryPerSession
// and BenchmarkMemoryPerSession measure it): URLs are cut to MaxURLBytes,
// other strings to MaxTextBytes, repeated values (campaigns, countries,
// product ids, consents) are shared, a cart tracks at most MaxCartItems
// products and keeps at most MaxCartChanges changes apart, a session lists
// at most MaxOrders orders and its consent at most
// consent.MaxMessagePurposes purposes.
package session
