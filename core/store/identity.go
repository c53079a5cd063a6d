package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eddy-cdp/eddy/core/identity"
)

// The PostgreSQL identity store runs core/identity's rules over the tables
// profiles, identities, profile_merges and profile_counted (migration
// 00003_identity.sql), through the identity.Tx interface.
//
// # Locks
//
// Three kinds of lock are taken, always in this order:
//
//  1. Transaction-level advisory locks, one per identity an event carries
//     (the key is a 64-bit hash of workspace, kind and value), taken in
//     ascending key order in one statement, before any row lock. They
//     serialise everything that may link an identity, including one that
//     does not exist yet: two workers racing on the same new userId queue
//     on its key, and the second sees the first's profile.
//  2. Row locks on live profiles (SELECT ... ORDER BY id FOR UPDATE, one
//     statement). A profile's state, its merged_into, and which identities
//     point at it change only under its row lock, so once a transaction
//     holds a live profile's lock, the identities it read as pointing there
//     stay there. Profiles are read before they are locked; if a locked
//     profile turns out to have been absorbed meanwhile, the locks are
//     released (ROLLBACK TO SAVEPOINT) and the identities read again.
//  3. The profile_counted row of a session or order counted (INSERT ... ON
//     CONFLICT DO NOTHING, which waits for a concurrent claim of the same id).
//
// The writes that follow (new identities, re-pointed identities, profile
// rows, merges) never wait: a new identity's key is advisory-locked; the
// identities of an absorbed profile and every profile row written are under
// the transaction's profile locks; profile_merges rows are new.
//
// Why one call cannot deadlock: a transaction waits only while acquiring,
// and it acquires in a global order (advisory keys ascending, then profile
// ids ascending, then one claim, after which it only writes and commits); a
// retry of step 2 first releases every lock of step 2. A cycle of waits
// would need some transaction to wait for a lock lower in that order than
// one it holds. The store never updates absorbed profiles (no path
// compression: Resolve follows merged_into chains), since those rows may be
// locked by a reader about to find them absorbed.
//
// # Batches
//
// The worker applies many events in one transaction ([IdentityTx]), where
// locks accumulate from one event to the next, so the per-event order above
// no longer holds across events. [IdentityTx.Lock] restores it: called
// first with every event of the batch, it takes all their advisory locks
// (ascending), then the locks of every live profile their identities point
// at (ascending). Each Apply of those events then only finds locks the
// transaction holds, or rows it creates; recording a session or an order on
// the profile an Apply returned takes no new lock. What can still wait in
// the middle of a batch is a claim of an order id that a concurrent batch
// also claims, or a session or order recorded on a profile that the
// batch's events did not reach; PostgreSQL detects the rare deadlock this
// allows (SQLSTATE 40P01) and the worker retries its batch.

// Identities is the PostgreSQL-backed identity.Store: each call runs in its
// own transaction.
type Identities struct{ pool *pgxpool.Pool }

var _ identity.Store = (*Identities)(nil)

// Identities returns the store's identity graph.
func (s *Store) Identities() *Identities { return &Identities{pool: s.pool} }

// Apply implements identity.Store.
func (s *Identities) Apply(ctx context.Context, ev identity.Event) (identity.Changes, error) {
	var ch identity.Changes
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		t := NewIdentityTx(tx)
		if ch, err = t.Apply(ctx, ev); err != nil {
			return err
		}
		return t.Flush(ctx)
	})
	return ch, err
}

// RecordSession implements identity.Store.
func (s *Identities) RecordSession(ctx context.Context, workspaceID, profileID string, sess identity.Session) (identity.Changes, error) {
	var ch identity.Changes
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		t := NewIdentityTx(tx)
		if ch, err = t.RecordSession(ctx, workspaceID, profileID, sess); err != nil {
			return err
		}
		return t.Flush(ctx)
	})
	return ch, err
}

// RecordOrder implements identity.Store.
func (s *Identities) RecordOrder(ctx context.Context, workspaceID, profileID string, o identity.Order) (identity.Changes, error) {
	var ch identity.Changes
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		t := NewIdentityTx(tx)
		if ch, err = t.RecordOrder(ctx, workspaceID, profileID, o); err != nil {
			return err
		}
		return t.Flush(ctx)
	})
	return ch, err
}

// Resolve implements identity.Store.
func (s *Identities) Resolve(ctx context.Context, workspaceID, profileID string) (string, error) {
	return resolveProfile(ctx, s.pool, workspaceID, profileID)
}

// Profile returns the live profile a profile id resolves to, with its
// identities (ordered by the time they were linked, then kind and value),
// or ErrNotFound.
func (s *Identities) Profile(ctx context.Context, workspaceID, profileID string) (identity.Profile, error) {
	var p identity.Profile
	// One snapshot, so that a concurrent merge cannot show half a profile.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		p, err = readProfile(ctx, tx, workspaceID, profileID)
		return err
	})
	return p, err
}

// resolveProfile follows merged_into from a profile id to the live profile;
// "" if the id was never issued.
func resolveProfile(ctx context.Context, q querier, workspaceID, profileID string) (string, error) {
	if !isUUID(workspaceID) || !isUUID(profileID) {
		return "", nil
	}
	var live string
	err := q.QueryRow(ctx, `
		WITH RECURSIVE chain (id, merged_into, depth) AS (
		    SELECT id, merged_into, 0 FROM profiles WHERE workspace_id = $1 AND id = $2
		    UNION ALL
		    SELECT p.id, p.merged_into, c.depth + 1
		    FROM chain c JOIN profiles p ON p.workspace_id = $1 AND p.id = c.merged_into
		    WHERE c.depth < 10000
		)
		SELECT id::text FROM chain WHERE merged_into IS NULL`, workspaceID, profileID).Scan(&live)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resolve profile %s: %w", profileID, err)
	}
	return live, nil
}

func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// IdentityTx runs the identity rules inside a caller's transaction, such as
// the worker's batch transaction. Its methods must be called one at a time.
// A call that fails with a database error leaves the transaction aborted:
// roll it back. Errors in the input (identity.ErrNoIdentity, ...) are
// returned before anything is written.
//
// Writes are deferred: they are sent before the next read that needs them
// and by Flush, which the caller must call before committing. Identities
// and profiles read under the locks the transaction holds are kept, so
// that the events of a batch locked with Lock are applied without a round
// trip each (nobody else can change what the locks cover).
type IdentityTx struct {
	tx pgx.Tx
	// keys are the advisory locks held.
	keys map[int64]bool
	// known are identities whose link is known under those locks: linked
	// to linked[id], or to nothing when absent from linked.
	known  map[wsIdentity]bool
	linked map[wsIdentity]string
	// loaded are the profiles read and locked, or created, by id (profile
	// ids are unique across workspaces).
	loaded map[string]*identity.Profile
	// dirty are the profiles to write, pending the other writes in order.
	dirty   map[string]string // profile id -> workspace id
	pending pgx.Batch
}

type wsIdentity struct {
	ws string
	id identity.Identity
}

// NewIdentityTx returns an IdentityTx over tx.
func NewIdentityTx(tx pgx.Tx) *IdentityTx {
	return &IdentityTx{tx: tx, keys: map[int64]bool{}, known: map[wsIdentity]bool{}, linked: map[wsIdentity]string{},
		loaded: map[string]*identity.Profile{}, dirty: map[string]string{}}
}

// Flush sends the deferred writes.
func (t *IdentityTx) Flush(ctx context.Context) error {
	ids := make([]string, 0, len(t.dirty))
	for id := range t.dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) > 0 {
		n := len(ids)
		var (
			wss, pids, users, merged  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			first, last               = make([]*time.Time, n), make([]*time.Time, n)
			sessions, orders, revenue = make([]int64, n), make([]int64, n), make([]int64, n)
			lastOrders                = make([]*string, n)
			traits, consents          = make([]string, n), make([]string, n)
		)
		for i, id := range ids {
			p := t.loaded[id]
			if p == nil {
				return fmt.Errorf("write profile %s: not loaded", id)
			}
			tr, co, lo, err := encodeProfile(p)
			if err != nil {
				return fmt.Errorf("write profile %s: %w", id, err)
			}
			wss[i], pids[i], users[i], merged[i] = t.dirty[id], p.ID, p.UserID, p.MergedInto
			first[i], last[i] = timeOrNil(p.FirstSeen), timeOrNil(p.LastSeen)
			sessions[i], orders[i], revenue[i] = p.Sessions, p.Orders, p.RevenueMicros
			if s, ok := lo.(string); ok {
				lastOrders[i] = &s
			}
			traits[i], consents[i] = tr, co
		}
		t.pending.Queue(upsertProfilesSQL, wss, pids, users, merged, first, last, sessions, orders, revenue, lastOrders, traits, consents)
	}
	clear(t.dirty)
	if t.pending.Len() == 0 {
		return nil
	}
	b := t.pending
	t.pending = pgx.Batch{}
	if err := t.tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("write identity changes: %w", err)
	}
	return nil
}

// upsertProfilesSQL writes whole profile rows, one per element of its
// arrays (ids are distinct).
const upsertProfilesSQL = `
	INSERT INTO profiles (workspace_id, id, user_id, merged_into, first_seen, last_seen,
	                      sessions_count, orders_count, revenue_micros, last_order, traits, consent)
	SELECT ws, id, nullif(user_id, ''), nullif(merged_into, '')::uuid, first_seen, last_seen,
	       sessions_count, orders_count, revenue_micros, last_order, traits, consent
	FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
	            $7::bigint[], $8::bigint[], $9::bigint[], $10::jsonb[], $11::jsonb[], $12::jsonb[])
	     AS u (ws, id, user_id, merged_into, first_seen, last_seen, sessions_count, orders_count, revenue_micros,
	           last_order, traits, consent)
	ORDER BY id
	ON CONFLICT (workspace_id, id) DO UPDATE SET
	    user_id = excluded.user_id, merged_into = excluded.merged_into,
	    first_seen = excluded.first_seen, last_seen = excluded.last_seen,
	    sessions_count = excluded.sessions_count, orders_count = excluded.orders_count,
	    revenue_micros = excluded.revenue_micros, last_order = excluded.last_order,
	    traits = excluded.traits, consent = excluded.consent, updated_at = now()`

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Lock takes, in the order that keeps concurrent batches from deadlocking,
// the locks that applying events will need (see the package notes on
// batches). It is optional: Apply takes what it needs anyway.
func (t *IdentityTx) Lock(ctx context.Context, events []identity.Event) error {
	byWS := map[string][]identity.Identity{}
	var keys []int64
	for _, ev := range events {
		for _, id := range eventIdentities(ev) {
			byWS[ev.WorkspaceID] = append(byWS[ev.WorkspaceID], id)
			keys = append(keys, identityKey(ev.WorkspaceID, id))
		}
	}
	if err := t.lockKeys(ctx, keys); err != nil {
		return err
	}
	// Profile ids are unique across workspaces (they hash the workspace),
	// so locking workspace by workspace in id order could still interleave
	// with another batch's order; lock them all in one statement instead.
	var wss []string
	var kinds, values []string
	for ws, ids := range byWS {
		if !isUUID(ws) {
			continue
		}
		for _, id := range ids {
			wss = append(wss, ws)
			kinds = append(kinds, string(id.Kind))
			values = append(values, id.Value)
		}
	}
	if len(wss) == 0 {
		return nil
	}
	if err := t.Flush(ctx); err != nil {
		return err
	}
	found := map[wsIdentity]string{}
	profiles, err := t.lockProfiles(ctx, func(ctx context.Context, tx pgx.Tx) ([]profileRef, error) {
		clear(found)
		rows, err := tx.Query(ctx, `
			SELECT i.workspace_id::text, i.kind, i.value, i.profile_id::text
			FROM unnest($1::uuid[], $2::text[], $3::text[]) AS e (workspace_id, kind, value)
			JOIN identities i USING (workspace_id, kind, value)`, wss, kinds, values)
		if err != nil {
			return nil, err
		}
		var refs []profileRef
		seen := map[string]bool{}
		var k wsIdentity
		var profile string
		_, err = pgx.ForEachRow(rows, []any{&k.ws, &k.id.Kind, &k.id.Value, &profile}, func() error {
			found[k] = profile
			if !seen[profile] {
				seen[profile] = true
				refs = append(refs, profileRef{k.ws, profile})
			}
			return nil
		})
		return refs, err
	})
	if err != nil {
		return err
	}
	// Every identity of the batch is now advisory-locked and every profile
	// they point at row-locked: what was read stays true until commit,
	// except for this transaction's own writes, which update the cache.
	for _, p := range profiles {
		t.keep(p)
	}
	for i := range wss {
		k := wsIdentity{wss[i], identity.Identity{Kind: identity.Kind(kinds[i]), Value: values[i]}}
		if pid, ok := found[k]; ok && t.loaded[pid] != nil {
			t.linked[k] = pid
			t.known[k] = true
		} else if !ok {
			t.known[k] = true
		}
	}
	return nil
}

// Apply resolves an event to a profile and applies it (see identity.Apply).
func (t *IdentityTx) Apply(ctx context.Context, ev identity.Event) (identity.Changes, error) {
	if err := storableEvent(ev); err != nil {
		return identity.Changes{}, fmt.Errorf("apply %s: %w", ev.MessageID, err)
	}
	c := t.call(ctx, ev.WorkspaceID)
	c.at = ev.Timestamp.Truncate(identity.Precision).UTC()
	ch, err := identity.Apply(c, ev)
	if err != nil {
		return identity.Changes{}, err
	}
	return ch, c.flush(&ch)
}

// RecordSession counts a session on a profile (see identity.RecordSession).
func (t *IdentityTx) RecordSession(ctx context.Context, workspaceID, profileID string, s identity.Session) (identity.Changes, error) {
	if err := storable("session id", s.ID, s.Start); err != nil {
		return identity.Changes{}, fmt.Errorf("record session: %w", err)
	}
	c := t.call(ctx, workspaceID)
	ch, err := identity.RecordSession(c, profileID, s)
	if err != nil {
		return identity.Changes{}, err
	}
	return ch, c.flush(&ch)
}

// RecordOrder counts an order on a profile (see identity.RecordOrder).
func (t *IdentityTx) RecordOrder(ctx context.Context, workspaceID, profileID string, o identity.Order) (identity.Changes, error) {
	if err := storable("order id", o.ID, o.At); err != nil {
		return identity.Changes{}, fmt.Errorf("record order: %w", err)
	}
	if err := storable("currency", o.Currency, time.Time{}); err != nil {
		return identity.Changes{}, fmt.Errorf("record order %s: %w", o.ID, err)
	}
	c := t.call(ctx, workspaceID)
	ch, err := identity.RecordOrder(c, profileID, o)
	if err != nil {
		return identity.Changes{}, err
	}
	return ch, c.flush(&ch)
}

// Resolve returns the live profile a profile id is, or was merged into;
// empty if the id was never issued. It sees the transaction's writes.
func (t *IdentityTx) Resolve(ctx context.Context, workspaceID, profileID string) (string, error) {
	if err := t.Flush(ctx); err != nil {
		return "", err
	}
	return resolveProfile(ctx, t.tx, workspaceID, profileID)
}

// unstorableError reports input PostgreSQL would refuse (NUL bytes,
// invalid UTF-8, times out of range); IsDataError recognises it. Checking
// first keeps such input from aborting the caller's transaction.
type unstorableError struct{ reason string }

func (e *unstorableError) Error() string { return e.reason }

// IsUnstorable reports whether err is input the identity store refused
// before writing anything (NUL bytes, invalid UTF-8, times out of range):
// the caller's transaction is intact.
func IsUnstorable(err error) bool {
	var u *unstorableError
	return errors.As(err, &u)
}

// Times the store keeps: PostgreSQL's range is wider, JSON's (RFC 3339,
// in the traits' stamps) is not.
var (
	minStoredTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxStoredTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func storable(what, s string, at time.Time) error {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return &unstorableError{fmt.Sprintf("%s %q holds a NUL byte or invalid UTF-8", what, s)}
	}
	if !at.IsZero() && (at.Before(minStoredTime) || !at.Before(maxStoredTime)) {
		return &unstorableError{fmt.Sprintf("%s %q: time %s out of range", what, s, at)}
	}
	return nil
}

func storableEvent(ev identity.Event) error {
	if !isUUID(ev.WorkspaceID) {
		return &unstorableError{fmt.Sprintf("workspace id %q is not a UUID", ev.WorkspaceID)}
	}
	for _, f := range []struct{ what, value string }{
		{"anonymousId", ev.AnonymousID}, {"userId", ev.UserID}, {"previousId", ev.PreviousID},
	} {
		if err := storable(f.what, f.value, time.Time{}); err != nil {
			return err
		}
	}
	if err := storable("message id", ev.MessageID, ev.Timestamp); err != nil {
		return err
	}
	for purpose := range ev.Consent {
		if err := storable("consent purpose", purpose, time.Time{}); err != nil {
			return err
		}
	}
	// jsonb refuses \u0000 in strings (an escaped backslash followed by
	// u0000 is refused too: a rare false positive).
	if !utf8.Valid(ev.Traits) || strings.Contains(string(ev.Traits), `\u0000`) {
		return &unstorableError{"traits hold \\u0000 or invalid UTF-8"}
	}
	return nil
}

func (t *IdentityTx) call(ctx context.Context, ws string) *pgCall {
	return &pgCall{t: t, ctx: ctx, ws: ws}
}

// keep makes sure one profile is always the same *Profile within the
// transaction.
func (t *IdentityTx) keep(p *identity.Profile) *identity.Profile {
	if p == nil {
		return nil
	}
	if q, ok := t.loaded[p.ID]; ok {
		return q
	}
	t.loaded[p.ID] = p
	return p
}

// live follows merges within the loaded profiles.
func (t *IdentityTx) live(p *identity.Profile) *identity.Profile {
	for p != nil && p.MergedInto != "" {
		p = t.loaded[p.MergedInto]
	}
	return p
}

// lockKeys takes advisory locks on keys not yet held, in ascending order.
func (t *IdentityTx) lockKeys(ctx context.Context, keys []int64) error {
	var todo []int64
	for _, k := range keys {
		if !t.keys[k] {
			todo = append(todo, k)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	slices.Sort(todo)
	todo = slices.Compact(todo)
	// One statement, but not the one that reads: a READ COMMITTED statement
	// reads as of its start, before it waited for a lock.
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`, todo); err != nil {
		return fmt.Errorf("lock identities: %w", err)
	}
	for _, k := range todo {
		t.keys[k] = true
	}
	return nil
}

type profileRef struct{ ws, id string }

// lockProfiles locks the live profiles that find returns, in ascending id
// order, and returns them loaded. If one was absorbed before its lock was
// granted, it releases the locks and tries again (see the package notes).
func (t *IdentityTx) lockProfiles(ctx context.Context, find func(context.Context, pgx.Tx) ([]profileRef, error)) (map[string]*identity.Profile, error) {
	for attempt := 0; ; attempt++ {
		if attempt == 100 {
			return nil, errors.New("lock profiles: they keep being merged")
		}
		// Reading takes no lock: only the locking statement needs the
		// savepoint, and a new visitor's identities find no profile.
		refs, err := find(ctx, t.tx)
		if err != nil || len(refs) == 0 {
			if err != nil {
				err = fmt.Errorf("lock profiles: %w", err)
			}
			return nil, err
		}
		sp, err := t.tx.Begin(ctx) // a savepoint
		if err != nil {
			return nil, fmt.Errorf("lock profiles: %w", err)
		}
		wss, ids := make([]string, len(refs)), make([]string, len(refs))
		for i, r := range refs {
			wss[i], ids[i] = r.ws, r.id
		}
		rows, err := sp.Query(ctx, `
			SELECT `+profileColumns+` FROM profiles
			WHERE (workspace_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
			ORDER BY id, workspace_id FOR UPDATE`, wss, ids)
		if err != nil {
			return nil, fmt.Errorf("lock profiles: %w", err)
		}
		out := map[string]*identity.Profile{}
		absorbed := false
		for rows.Next() {
			p, err := scanProfile(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("lock profiles: %w", err)
			}
			absorbed = absorbed || p.MergedInto != ""
			out[p.ID] = p
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("lock profiles: %w", err)
		}
		if absorbed {
			if err := sp.Rollback(ctx); err != nil {
				return nil, fmt.Errorf("lock profiles: %w", err)
			}
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return nil, fmt.Errorf("lock profiles: %w", err)
		}
		return out, nil
	}
}

// eventIdentities lists the identities identity.Apply looks up for an
// event (it must match the rules, or Lock misses some).
func eventIdentities(ev identity.Event) []identity.Identity {
	var ids []identity.Identity
	if ev.UserID != "" {
		ids = append(ids, identity.Identity{Kind: identity.UserID, Value: ev.UserID})
	}
	if ev.AnonymousID != "" {
		ids = append(ids, identity.Identity{Kind: identity.AnonymousID, Value: ev.AnonymousID})
	}
	if ev.PreviousID != "" && ev.PreviousID != ev.UserID {
		ids = append(ids, identity.Identity{Kind: identity.UserID, Value: ev.PreviousID},
			identity.Identity{Kind: identity.AnonymousID, Value: ev.PreviousID})
	}
	if email := emailTrait(ev.Traits); email != "" {
		ids = append(ids, identity.Identity{Kind: identity.Email, Value: email})
	}
	return ids
}

// emailTrait is the email trait as identity.Apply reads it.
func emailTrait(traits json.RawMessage) string {
	var m struct {
		Email json.RawMessage `json:"email"`
	}
	if len(traits) == 0 || json.Unmarshal(traits, &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m.Email, &s) != nil {
		return ""
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.Contains(s, "@") || len(s) > 320 {
		return ""
	}
	return s
}

// identityKey is the advisory lock key of an identity.
func identityKey(ws string, id identity.Identity) int64 {
	d := xxhash.New()
	_, _ = d.WriteString("eddy.identity\x00")
	_, _ = d.WriteString(ws)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(string(id.Kind))
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(id.Value)
	return int64(d.Sum64())
}

// pgCall is the identity.Tx of one call. It reads and locks as the rules
// ask (from the transaction's cache when it can), and queues the writes in
// the transaction's deferred batch. Its profiles carry no Identities: Merge
// re-points the absorbed profile's identities by profile id.
type pgCall struct {
	t   *IdentityTx
	ctx context.Context
	ws  string
	at  time.Time // the event time, for identities.first_seen
}

var _ identity.Tx = (*pgCall)(nil)

func (c *pgCall) Lookup(ids []identity.Identity, into []*identity.Profile) error {
	if c.cached(ids, into) {
		return nil
	}
	if err := c.t.Flush(c.ctx); err != nil {
		return err
	}
	keys := make([]int64, len(ids))
	kinds, values := make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		keys[i] = identityKey(c.ws, id)
		kinds[i], values[i] = string(id.Kind), id.Value
	}
	if err := c.t.lockKeys(c.ctx, keys); err != nil {
		return err
	}
	linked := map[identity.Identity]string{}
	profiles, err := c.t.lockProfiles(c.ctx, func(ctx context.Context, tx pgx.Tx) ([]profileRef, error) {
		clear(linked)
		rows, err := tx.Query(ctx, `
			SELECT i.kind, i.value, i.profile_id::text FROM identities i
			WHERE i.workspace_id = $1 AND (i.kind, i.value) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
			c.ws, kinds, values)
		if err != nil {
			return nil, err
		}
		var refs []profileRef
		var id identity.Identity
		var profile string
		_, err = pgx.ForEachRow(rows, []any{&id.Kind, &id.Value, &profile}, func() error {
			linked[id] = profile
			refs = append(refs, profileRef{c.ws, profile})
			return nil
		})
		return refs, err
	})
	if err != nil {
		return err
	}
	for i, id := range ids {
		into[i] = nil
		k := wsIdentity{c.ws, id}
		c.t.known[k] = true
		if pid, ok := linked[id]; ok {
			into[i] = c.t.keep(profiles[pid])
			if into[i] == nil {
				return fmt.Errorf("identity %s points at missing profile %s", id, pid)
			}
			c.t.linked[k] = pid
		}
	}
	return nil
}

// cached answers a Lookup from the transaction's cache if it knows every
// identity's link.
func (c *pgCall) cached(ids []identity.Identity, into []*identity.Profile) bool {
	for _, id := range ids {
		if !c.t.known[wsIdentity{c.ws, id}] {
			return false
		}
	}
	for i, id := range ids {
		into[i] = nil
		if pid, ok := c.t.linked[wsIdentity{c.ws, id}]; ok {
			if into[i] = c.t.live(c.t.loaded[pid]); into[i] == nil {
				return false
			}
		}
	}
	return true
}

func (c *pgCall) Get(profileID string) (*identity.Profile, error) {
	if !isUUID(c.ws) {
		return nil, nil
	}
	if p := c.t.live(c.t.loaded[profileID]); p != nil {
		return p, nil
	}
	if err := c.t.Flush(c.ctx); err != nil {
		return nil, err
	}
	var live string
	profiles, err := c.t.lockProfiles(c.ctx, func(ctx context.Context, tx pgx.Tx) ([]profileRef, error) {
		var err error
		live, err = resolveProfile(ctx, tx, c.ws, profileID)
		if err != nil || live == "" {
			return nil, err
		}
		return []profileRef{{c.ws, live}}, nil
	})
	if err != nil || live == "" {
		return nil, err
	}
	return c.t.keep(profiles[live]), nil
}

func (c *pgCall) Create(p *identity.Profile) error {
	c.t.loaded[p.ID] = p
	return nil // the row is written by flush
}

func (c *pgCall) Link(id identity.Identity, profileID string) error {
	c.t.pending.Queue(`INSERT INTO identities (workspace_id, kind, value, profile_id, first_seen) VALUES ($1, $2, $3, $4, $5)`,
		c.ws, string(id.Kind), id.Value, profileID, c.at)
	k := wsIdentity{c.ws, id}
	c.t.known[k], c.t.linked[k] = true, profileID
	return nil
}

func (c *pgCall) Merge(survivor, absorbed *identity.Profile) error {
	c.t.pending.Queue(`UPDATE identities SET profile_id = $3 WHERE workspace_id = $1 AND profile_id = $2`,
		c.ws, absorbed.ID, survivor.ID)
	for k, pid := range c.t.linked {
		if pid == absorbed.ID {
			c.t.linked[k] = survivor.ID
		}
	}
	return nil
}

func (c *pgCall) Claim(kind identity.ClaimKind, id, profileID string) (bool, error) {
	k := "session"
	if kind == identity.ClaimOrder {
		k = "order"
	}
	tag, err := c.t.tx.Exec(c.ctx, `
		INSERT INTO profile_counted (workspace_id, kind, id, profile_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, c.ws, k, id, profileID)
	if err != nil {
		return false, fmt.Errorf("claim %s %s: %w", k, id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// flush queues the call's changes: the merges, and the rows of the
// profiles that changed, written by the next Flush (identities linked and
// re-pointed were queued in the order the rules made them).
func (c *pgCall) flush(ch *identity.Changes) error {
	for _, m := range ch.Merged {
		c.t.pending.Queue(`
			INSERT INTO profile_merges (workspace_id, survivor, absorbed, at, message_id, via_kind, via_value)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			c.ws, m.Survivor, m.Absorbed, m.At, m.MessageID, string(m.Via.Kind), m.Via.Value)
	}
	for _, r := range ch.Rows {
		c.t.dirty[r.ID] = c.ws
	}
	if len(ch.Traits) > 0 || len(ch.Consent) > 0 {
		c.t.dirty[ch.Profile] = c.ws
	}
	return nil
}

// The JSON forms of the profiles' stamped values (see the migration).
type (
	traitJSON struct {
		Value     json.RawMessage `json:"value"`
		At        time.Time       `json:"at"`
		MessageID string          `json:"message_id"`
	}
	consentJSON struct {
		Granted   bool      `json:"granted"`
		At        time.Time `json:"at"`
		MessageID string    `json:"message_id"`
	}
	orderJSON struct {
		ID       string    `json:"id"`
		At       time.Time `json:"at"`
		Value    float64   `json:"value"`
		Currency string    `json:"currency"`
	}
)

func encodeProfile(p *identity.Profile) (traits, consent string, lastOrder any, err error) {
	tm := make(map[string]traitJSON, len(p.Traits))
	for _, t := range p.Traits {
		tm[t.Key] = traitJSON{Value: t.Value, At: t.At, MessageID: t.MessageID}
	}
	cm := make(map[string]consentJSON, len(p.Consent))
	for _, c := range p.Consent {
		cm[c.Purpose] = consentJSON{Granted: c.Granted, At: c.At, MessageID: c.MessageID}
	}
	tb, err := json.Marshal(tm)
	if err != nil {
		return "", "", nil, fmt.Errorf("traits: %w", err)
	}
	cb, err := json.Marshal(cm)
	if err != nil {
		return "", "", nil, fmt.Errorf("consent: %w", err)
	}
	if p.LastOrder.ID != "" {
		o := p.LastOrder
		ob, err := json.Marshal(orderJSON{ID: o.ID, At: o.At, Value: o.Value, Currency: o.Currency})
		if err != nil {
			return "", "", nil, fmt.Errorf("last order: %w", err)
		}
		lastOrder = string(ob)
	}
	return string(tb), string(cb), lastOrder, nil
}

const profileColumns = `id::text, coalesce(user_id, ''), coalesce(merged_into::text, ''), first_seen, last_seen,
	sessions_count, orders_count, revenue_micros, last_order, traits, consent`

func scanProfile(row pgx.Row) (*identity.Profile, error) {
	p := &identity.Profile{}
	var first, last *time.Time
	var lastOrder, traits, consent []byte
	err := row.Scan(&p.ID, &p.UserID, &p.MergedInto, &first, &last,
		&p.Sessions, &p.Orders, &p.RevenueMicros, &lastOrder, &traits, &consent)
	if err != nil {
		return nil, err
	}
	if first != nil {
		p.FirstSeen = first.UTC()
	}
	if last != nil {
		p.LastSeen = last.UTC()
	}
	if len(lastOrder) > 0 {
		var o orderJSON
		if err := json.Unmarshal(lastOrder, &o); err != nil {
			return nil, fmt.Errorf("profile %s: last order: %w", p.ID, err)
		}
		p.LastOrder = identity.Order{ID: o.ID, At: o.At.UTC(), Value: o.Value, Currency: o.Currency}
	}
	var tm map[string]traitJSON
	if err := json.Unmarshal(traits, &tm); err != nil {
		return nil, fmt.Errorf("profile %s: traits: %w", p.ID, err)
	}
	for k, t := range tm {
		p.Traits = append(p.Traits, identity.Trait{Key: k, Value: t.Value, Stamp: identity.Stamp{At: t.At.UTC(), MessageID: t.MessageID}})
	}
	slices.SortFunc(p.Traits, func(a, b identity.Trait) int { return strings.Compare(a.Key, b.Key) })
	var cm map[string]consentJSON
	if err := json.Unmarshal(consent, &cm); err != nil {
		return nil, fmt.Errorf("profile %s: consent: %w", p.ID, err)
	}
	for k, c := range cm {
		p.Consent = append(p.Consent, identity.Consent{Purpose: k, Granted: c.Granted, Stamp: identity.Stamp{At: c.At.UTC(), MessageID: c.MessageID}})
	}
	slices.SortFunc(p.Consent, func(a, b identity.Consent) int { return strings.Compare(a.Purpose, b.Purpose) })
	return p, nil
}
