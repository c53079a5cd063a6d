// Package engine is the session engine: the worker role's second consumer
// group, which turns each event into the live state of its visitor's
// session and of the customer behind it.
//
// For each shard it owns, the engine keeps in memory a session.Visitor per
// device (workspace and anonymousId) and a queue of visitors by the time
// their next session is due to close. A batch is applied to the visitors
// and to the identity graph, then committed in one PostgreSQL transaction:
// the identity changes, the sessions, page views and orders, and the
// shard's checkpoint (the state of every visitor the batch changed and
// the id of its last entry). Only then are the changes published to the
// live mirror (core/live) and the entries acknowledged.
//
// # Exactly once across failures
//
// The checkpoint commits with the effects of the entries it covers, so
// after any failure (a worker killed, a lease lost, a failed commit) the
// shard's state is the last checkpoint, and the entries after it are the
// group's pending ones. A worker acquiring a shard increments the shard's
// epoch in PostgreSQL (a fencing token every checkpoint write checks, so a
// worker that lost its lease cannot overwrite its successor's state),
// restores the visitors, and skips delivered entries at or below the
// checkpoint's last entry id (committed, but not acknowledged before the
// failure). A batch or tick that fails leaves the in-memory state ahead of
// storage, so the shard reloads from its checkpoint before its next batch.
//
// Sessions close on the wall clock (Tick), which a successor cannot
// replay; so every tick that closes or drops anything checkpoints in the
// same transaction that stores the closed sessions, and everything a
// successor replays comes from the stream.
//
// # Forgetting a person
//
// A deletion job appends a forget entry (event.TypeForget) per identifier
// of the person, sharded like the person's events, and waits for this
// group to pass it before deleting. The engine drops that visitor from
// the shard's memory without closing its sessions, keeps out of the
// commit what the same batch changed of it, and deletes its checkpoint
// row in the same commit: nothing of the person is written or published
// after the entry, and a successor restoring the shard does not find it.
//
// # Counting
//
// A profile counts a session when it closes (after any late event could
// still merge it with another), and an order when its Order Completed is
// applied, each once by id (core/identity's claims), so replays count
// nothing twice.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
)

// Group is the session engine's consumer group.
const Group = "sessions"

// Options tunes an Engine.
type Options struct {
	// BatchSize is the most entries read from one shard at once.
	BatchSize int
	// LeaseTTL bounds how long a dead worker's shards stay unowned.
	LeaseTTL time.Duration
	// MaxBackoff is the longest wait between retries of a failing batch.
	MaxBackoff time.Duration
	// TickInterval is how often idle sessions are closed; 1s if zero.
	TickInterval time.Duration
	// RulesTTL is how long a workspace's session settings are cached; 30s
	// if zero.
	RulesTTL time.Duration
	// Consumer names this worker in the group (default: generated).
	Consumer string
	// Now is the clock sessions close on; time.Now if nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Engine runs the session engine's consumer group.
type Engine struct {
	q      *queue.Queue
	st     *store.Store
	mirror *live.Mirror
	opts   Options
	log    *slog.Logger
	rules  *rulesCache

	mu     sync.Mutex
	shards map[int]*shard
}

// New returns an engine reading q, committing to st and publishing to
// mirror.
func New(q *queue.Queue, st *store.Store, mirror *live.Mirror, opts Options) *Engine {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = time.Second
	}
	if opts.RulesTTL <= 0 {
		opts.RulesTTL = 30 * time.Second
	}
	if opts.Consumer == "" {
		opts.Consumer = queue.DefaultConsumerName()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Engine{
		q: q, st: st, mirror: mirror, opts: opts,
		log:    opts.Logger.With("group", Group),
		rules:  newRulesCache(st, opts.RulesTTL),
		shards: make(map[int]*shard),
	}
}

// Run consumes until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.q.EnsureGroup(ctx, Group); err != nil {
		// Redis is down at start: the consumer creates the group on each
		// shard when it reads one without it, so wait for Redis there.
		e.log.Warn("session engine: create the consumer group; retried when Redis is back", "err", err)
	}
	return e.q.Consume(ctx, queue.ConsumerOptions{
		Group:      Group,
		Consumer:   e.opts.Consumer,
		BatchSize:  e.opts.BatchSize,
		LeaseTTL:   e.opts.LeaseTTL,
		MaxBackoff: e.opts.MaxBackoff,
		Logger:     e.opts.Logger,
		Hooks: queue.ShardHooks{
			Acquired:     e.acquire,
			Tick:         e.tick,
			TickInterval: e.opts.TickInterval,
			Released:     e.release,
		},
	}, e.handle)
}

// Stats is a snapshot of what the engine holds in memory.
type Stats struct {
	Shards, Visitors, LiveSessions int
}

// Stats counts the shards, visitors and open sessions held.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Stats
	for _, sh := range e.shards {
		s.Shards++
		s.Visitors += int(sh.visitors.Load())
		s.LiveSessions += int(sh.open.Load())
	}
	return s
}

func (e *Engine) shard(id int) *shard {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.shards[id]
}

// acquire loads a shard's checkpoint as its new owner.
func (e *Engine) acquire(ctx context.Context, id int) error {
	sh, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	old := e.shards[id]
	e.shards[id] = sh
	e.mu.Unlock()
	if old != nil {
		old.forget()
	}
	e.log.Info("session engine: acquired shard", "shard", id, "epoch", sh.epoch,
		"visitors", sh.visitors.Load(), "live_sessions", sh.open.Load(), "last_entry_id", sh.last.String())
	return nil
}

// load restores a shard from its checkpoint and republishes its open
// sessions, which the mirror may have lost with the previous owner.
func (e *Engine) load(ctx context.Context, id int) (*shard, error) {
	cp, err := e.st.AcquireSessionShard(ctx, id, e.opts.Consumer)
	if err != nil {
		return nil, err
	}
	last, err := parseEntryID(cp.LastEntryID)
	if err != nil {
		return nil, fmt.Errorf("session shard %d checkpoint: %w", id, err)
	}
	sh := newShard(id, cp.Epoch, last)
	now := e.opts.Now()
	var open []session.Change
	for _, vs := range cp.Visitors {
		ws, err := e.rules.workspace(ctx, vs.WorkspaceID)
		if err != nil {
			return nil, fmt.Errorf("restore visitor of session shard %d: %w", id, err)
		}
		v, err := ws.RestoreVisitor(vs.State)
		if err != nil {
			// Starting empty would lose or double what the checkpoint holds.
			return nil, fmt.Errorf("restore visitor %s of workspace %s on session shard %d: %w", vs.AnonymousID, vs.WorkspaceID, id, err)
		}
		sh.add(v, now)
		for _, s := range v.Sessions() {
			open = append(open, session.Change{Kind: session.Updated, Session: s})
		}
	}
	if err := e.mirror.Put(ctx, open, dueClose(e.rules), now); err != nil {
		publishErrors.Inc()
		e.log.Warn("session engine: republish live sessions of an acquired shard", "shard", id, "err", err)
	}
	return sh, nil
}

func (e *Engine) release(id int) {
	e.mu.Lock()
	sh := e.shards[id]
	delete(e.shards, id)
	e.mu.Unlock()
	if sh != nil {
		sh.forget()
		e.log.Info("session engine: released shard", "shard", id)
	}
}

// reload replaces a shard's state, ahead of storage after a failure, with
// its checkpoint.
func (e *Engine) reload(ctx context.Context, sh *shard) (*shard, error) {
	if err := e.acquire(ctx, sh.id); err != nil {
		return nil, err
	}
	return e.shard(sh.id), nil
}

// item is one entry of a batch, decoded, with its workspace's rules; or
// a forget entry.
type item struct {
	msg *queue.Message
	ws  *session.Workspace
	ses session.Event
	idn identity.Event
	// forget marks a deletion job's forget entry (event.TypeForget): the
	// visitor of its ShardKey is dropped.
	forget bool
}

// handle applies and commits a batch.
func (e *Engine) handle(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
	sh := e.shard(b.Shard)
	if sh == nil {
		return nil, fmt.Errorf("session shard %d delivered before it was acquired", b.Shard)
	}
	if sh.broken {
		var err error
		if sh, err = e.reload(ctx, sh); err != nil {
			return nil, err
		}
	}
	var dead []queue.DeadLetter
	items := make([]item, 0, len(b.Messages))
	last := sh.last
	for i := range b.Messages {
		m := &b.Messages[i]
		id, err := parseEntryID(m.ID)
		if err != nil {
			dead = append(dead, queue.DeadLetter{Message: *m, Reason: err.Error()})
			continue
		}
		if !sh.last.less(id) {
			skippedTotal.WithLabelValues("replayed").Inc()
			continue
		}
		last = maxID(last, id)
		if m.Err != nil {
			dead = append(dead, queue.DeadLetter{Message: *m, Reason: "undecodable queue entry: " + m.Err.Error()})
			continue
		}
		if m.Entry.Type == event.TypeForget {
			items = append(items, item{msg: m, forget: true})
			continue
		}
		it := item{msg: m}
		if it.ses, err = session.FromEntry(&m.Entry); err == nil {
			it.idn, err = identity.FromEntry(&m.Entry)
		}
		if err != nil {
			dead = append(dead, queue.DeadLetter{Message: *m, Reason: err.Error()})
			continue
		}
		// Read before the transaction: nothing may wait for a second
		// connection while the transaction holds one.
		it.ws, err = e.rules.workspace(ctx, m.Entry.WorkspaceID)
		if errors.Is(err, store.ErrNotFound) {
			dead = append(dead, queue.DeadLetter{Message: *m, Reason: "unknown workspace " + m.Entry.WorkspaceID})
			continue
		} else if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return dead, nil
	}
	sh.broken = true // until committed: the visitors change from here on
	start := time.Now()
	var c commit
	err := pgx.BeginFunc(ctx, e.st.Pool(), func(tx pgx.Tx) error {
		c = commit{idtx: store.NewIdentityTx(tx)}
		if err := e.apply(ctx, sh, items, &c); err != nil {
			return err
		}
		return e.write(ctx, tx, sh, last, &c)
	})
	if err != nil {
		failures.WithLabelValues("batch").Inc()
		return nil, fmt.Errorf("session shard %d: commit %d events: %w", sh.id, len(items), err)
	}
	commitSeconds.WithLabelValues("batch").Observe(time.Since(start).Seconds())
	sh.committed(last)
	e.publish(ctx, c.changes)
	now := time.Now()
	for i := range items {
		if !items[i].forget {
			appliedTotal.Inc()
			collectToLive.Observe(now.Sub(items[i].msg.Entry.ReceivedAt).Seconds())
		}
	}
	return dead, nil
}

// commit gathers what a transaction writes.
type commit struct {
	idtx      *store.IdentityTx
	changes   []session.Change
	pageViews []store.PageView
	orders    []store.Order
}

// apply runs a batch through the identity graph and the visitors.
func (e *Engine) apply(ctx context.Context, sh *shard, items []item, c *commit) error {
	ids := make([]identity.Event, 0, len(items))
	for i := range items {
		if !items[i].forget {
			ids = append(ids, items[i].idn)
		}
	}
	if err := c.idtx.Lock(ctx, ids); err != nil {
		return fmt.Errorf("lock identities: %w", err)
	}
	now := e.opts.Now()
	for i := range items {
		it := &items[i]
		ws := it.msg.Entry.WorkspaceID
		if it.forget {
			forgetVisitor(sh, c, ws, it.msg.Entry.ShardKey)
			continue
		}
		profile := ""
		ch, err := c.idtx.Apply(ctx, it.idn)
		switch {
		case err == nil:
			profile = ch.Profile
		case isInputError(err):
			skippedTotal.WithLabelValues("identity").Inc()
			e.log.Debug("session engine: event not applied to the identity graph", "message_id", it.msg.Entry.MessageID, "err", err)
		default:
			return fmt.Errorf("identity of %s: %w", it.msg.Entry.MessageID, err)
		}
		if it.ses.AnonymousID == "" {
			skippedTotal.WithLabelValues("no_device").Inc()
			continue
		}
		vis := sh.visitor(it.ws, it.ses.AnonymousID, now)
		before := vis.v.Len()
		if profile != "" {
			c.changes = vis.v.SetProfileID(profile, c.changes)
		}
		n := len(c.changes)
		c.changes, err = vis.v.Apply(&it.ses, c.changes)
		sh.touch(vis, before, now)
		if err != nil {
			reason := "invalid"
			if errors.Is(err, session.ErrTooLate) {
				reason = "too_late"
			}
			skippedTotal.WithLabelValues(reason).Inc()
			continue
		}
		if len(c.changes) == n {
			continue
		}
		sid := c.changes[len(c.changes)-1].Session.ID
		if pv, ok := store.PageViewOf(&it.ses, sid); ok {
			c.pageViews = append(c.pageViews, pv)
		}
		if o, ok := store.OrderOf(&it.ses, sid, profile); ok {
			c.orders = append(c.orders, o)
			if profile != "" {
				_, err := c.idtx.RecordOrder(ctx, ws, profile, identity.Order{ID: o.OrderID, At: o.Timestamp, Value: o.Total, Currency: o.Currency})
				if err != nil && !isInputError(err) {
					return fmt.Errorf("record order %s: %w", o.OrderID, err)
				}
			}
		}
	}
	return nil
}

// forgetVisitor drops the visitor of a forget entry (a deleted person's
// device, keyed as the engine keys visitors: workspace and the entry's
// ShardKey, an anonymous id or a user id) without closing its sessions,
// and takes out of the commit what the batch's earlier entries changed of
// it: none of its sessions is written or published, and the commit
// deletes its checkpoint row. The deletion job deletes what storage holds
// of the person once this group has passed the entry, so the sessions
// written before are gone too. An unknown visitor is fine (idempotent).
func forgetVisitor(sh *shard, c *commit, ws, key string) {
	if key == "" || !validUUID(ws) {
		return // no visitor nor checkpoint row can have these keys
	}
	sh.drop(ws, key)
	of := func(w, anon string) bool { return w == ws && anon == key }
	c.changes = slices.DeleteFunc(c.changes, func(ch session.Change) bool {
		return of(ch.Session.WorkspaceID, ch.Session.AnonymousID)
	})
	c.pageViews = slices.DeleteFunc(c.pageViews, func(pv store.PageView) bool { return of(pv.WorkspaceID, pv.AnonymousID) })
	c.orders = slices.DeleteFunc(c.orders, func(o store.Order) bool { return of(o.WorkspaceID, o.AnonymousID) })
}

func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// isInputError tells an event the identity store cannot take (no ids, ids
// PostgreSQL cannot hold) from a failure of the store.
func isInputError(err error) bool {
	return errors.Is(err, identity.ErrNoIdentity) || errors.Is(err, identity.ErrNoTimestamp) ||
		errors.Is(err, identity.ErrWrongWorkspace) || store.IsUnstorable(err)
}

// write stores the identity changes, the session changes, page views and
// orders, and the shard's checkpoint.
func (e *Engine) write(ctx context.Context, tx pgx.Tx, sh *shard, last entryID, c *commit) error {
	if err := c.idtx.Flush(ctx); err != nil {
		return err
	}
	if err := e.st.WriteSessionsTx(ctx, tx, c.changes, c.pageViews, c.orders); err != nil {
		return err
	}
	put, del, n, err := sh.checkpoint()
	if err != nil {
		return err
	}
	checkpointBytes.Add(float64(n))
	return e.st.WriteShardCheckpointTx(ctx, tx, sh.id, sh.epoch, last.String(), put, del)
}

// tick closes the sessions of a shard that are due and drops idle
// visitors, committing the result with a checkpoint.
func (e *Engine) tick(ctx context.Context, id int) error {
	sh := e.shard(id)
	if sh == nil {
		return nil
	}
	if sh.broken {
		var err error
		if sh, err = e.reload(ctx, sh); err != nil {
			return err
		}
	}
	now := e.opts.Now()
	if !sh.due(now) {
		return nil
	}
	sh.broken = true
	start := time.Now()
	var c commit
	err := pgx.BeginFunc(ctx, e.st.Pool(), func(tx pgx.Tx) error {
		c = commit{idtx: store.NewIdentityTx(tx)}
		c.changes = sh.closeDue(now, c.changes)
		for i := range c.changes {
			s := &c.changes[i].Session
			if c.changes[i].Kind != session.Closed || s.ProfileID == "" {
				continue
			}
			_, err := c.idtx.RecordSession(ctx, s.WorkspaceID, s.ProfileID, identity.Session{ID: s.ID.String(), Start: s.Start})
			if err != nil && !isInputError(err) {
				return fmt.Errorf("count session %s: %w", s.ID, err)
			}
		}
		return e.write(ctx, tx, sh, sh.last, &c)
	})
	if err != nil {
		failures.WithLabelValues("tick").Inc()
		return fmt.Errorf("session shard %d: close sessions: %w", id, err)
	}
	commitSeconds.WithLabelValues("tick").Observe(time.Since(start).Seconds())
	sh.committed(sh.last)
	e.publish(ctx, c.changes)
	return nil
}

func (e *Engine) publish(ctx context.Context, changes []session.Change) {
	if len(changes) == 0 {
		return
	}
	// The changes are committed: publish them even if the consumer is
	// stopping.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.mirror.Publish(pctx, changes, dueClose(e.rules), time.Now()); err != nil {
		publishErrors.Inc()
		e.log.Warn("session engine: publish live sessions", "err", err)
	}
}

// dueClose returns when an open session is due to close under its
// workspace's rules.
func dueClose(r *rulesCache) func(*session.Session) time.Time {
	return func(s *session.Session) time.Time {
		timeout, grace := session.DefaultRules().Timeout, session.DefaultRules().Grace
		if w, ok := r.cached(s.WorkspaceID); ok {
			rules := w.Rules()
			timeout, grace = rules.Timeout, rules.Grace
		}
		return s.LastEvent.Add(timeout + grace)
	}
}

// entryID is a stream entry id, ms-seq.
type entryID struct{ ms, seq uint64 }

func parseEntryID(s string) (entryID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return entryID{}, fmt.Errorf("invalid stream entry id %q", s)
	}
	return entryID{ms, seq}, nil
}

func (id entryID) less(o entryID) bool {
	return id.ms < o.ms || id.ms == o.ms && id.seq < o.seq
}

func (id entryID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func maxID(a, b entryID) entryID {
	if a.less(b) {
		return b
	}
	return a
}
