package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/eddy-cdp/eddy/core/actions"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// RouteGroup is the consumer group of the events queue that copies events
// to the sink installations' queues.
const RouteGroup = "route"

// DeliverGroup is the consumer group of a sink installation's queue.
const DeliverGroup = "deliver"

// SinkOptions tune sink delivery.
type SinkOptions struct {
	// BatchSize is the most events per Write; 500 if zero.
	BatchSize int
	// MinBackoff and MaxBackoff bound the wait between retries of a
	// destination that is down or busy; 500ms and 1m if zero. A
	// destination's Retry-After is honoured up to an hour.
	MinBackoff, MaxBackoff time.Duration
	// MaxRejects is how often one event may come back for retry from a
	// destination that otherwise accepts writes before it is
	// dead-lettered; 10 if zero. While every write fails, events wait
	// instead: the destination is down, not refusing them. A deletion
	// (Delete) that fails MaxRejects times in a row is dead-lettered.
	MaxRejects int
	// LeaseTTL and Block tune the delivery consumer (see
	// queue.ConsumerOptions); defaults if zero.
	LeaseTTL, Block time.Duration
}

func (o SinkOptions) withDefaults() SinkOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.MaxRejects <= 0 {
		o.MaxRejects = 10
	}
	return o
}

// maxRetryAfter caps how long a destination can ask Eddy to wait.
const maxRetryAfter = time.Hour

// Route is the handler of the route group: it copies each event to the
// queue of every running sink and app installation of its workspace that
// receives its type, atomically with the batch's acknowledgement. A
// forget entry (event.TypeForget) goes to the workspace's sinks that
// declare deletion, whatever events and purposes they take, and to
// nothing else.
func (r *Runtime) Route(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
	sinks, apps := r.sinksOf.Load(), r.appsOf.Load()
	if r.policies != nil {
		// A policy changed through the API applies to the next batch.
		if err := r.policies.sync(ctx, 0); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	}
	var dead []queue.DeadLetter
	var pages map[string]map[string][]actions.Action // workspace → anonymous id → actions
	for _, m := range b.Messages {
		if m.Err != nil {
			dead = append(dead, queue.DeadLetter{Message: m, Reason: "undecodable queue entry: " + m.Err.Error()})
			continue
		}
		ws := m.Entry.WorkspaceID
		if m.Entry.Type == event.TypeForget {
			// Deletion is not processing of the person's data that consent
			// could refuse: it is owed to them.
			for _, ru := range sinks[ws] {
				if ru.deletes() {
					b.Forward(ru.sink.q, m, m.Entry)
				}
			}
			continue
		}
		if len(sinks[ws])+len(apps[ws]) == 0 {
			continue
		}
		g, err := r.gateFor(ctx, ws)
		if err != nil {
			return nil, fmt.Errorf("consent policy of workspace %s: %w", ws, err)
		}
		var prefs consent.Preferences
		var present bool
		if g != nil {
			prefs, present = consentOf(m.Entry.Payload, m.Entry.Context)
		}
		for _, ru := range sinks[ws] {
			if ru.receives(m.Entry.Type) && g.allows(ru, prefs, present) {
				b.Forward(ru.sink.q, m, m.Entry)
			}
		}
		for _, ru := range apps[ws] {
			// An app's own actions (their source is the installation) do
			// not come back to it, so an app cannot feed itself forever.
			if ru.receives(m.Entry.Type) && m.Entry.SourceID != ru.in.ID && g.allows(ru, prefs, present) {
				b.Forward(ru.app.q, m, m.Entry)
			}
			if m.Entry.SourceID == ru.in.ID {
				if anon, a, ok := pageAction(&m.Entry); ok {
					if pages == nil {
						pages = map[string]map[string][]actions.Action{}
					}
					if pages[ws] == nil {
						pages[ws] = map[string][]actions.Action{}
					}
					pages[ws][anon] = append(pages[ws][anon], a)
				}
			}
		}
	}
	// Actions past the gate go to their visitor's open pages too (the
	// tracker's eddy.on('action')). A failure retries the batch: a page
	// may then get an action twice, and drops it by id.
	for ws, byVisitor := range pages {
		if err := actions.Publish(ctx, r.rdb, r.opts.Prefix, ws, byVisitor); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	}
	return dead, nil
}

// pageAction reads an app's action (an event the app emitted, apps.go) as
// its visitor's pages receive it; ok is false for an action that names no
// anonymous id (actions.Publish explains why).
func pageAction(e *event.Entry) (anonymousID string, a actions.Action, ok bool) {
	if e.Type != "track" || !strings.HasPrefix(e.MessageID, "act-") {
		return "", a, false
	}
	var m struct {
		Event       string          `json:"event"`
		AnonymousID string          `json:"anonymousId"`
		Properties  json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(e.Payload, &m) != nil || m.AnonymousID == "" || len(m.AnonymousID) > actions.MaxAnonymousIDLen {
		return "", a, false
	}
	return m.AnonymousID, actions.Action{MessageID: e.MessageID, Type: m.Event, Data: m.Properties, At: e.Timestamp}, true
}

// loop consumes one installation's own queue (a sink's or an app's).
type loop struct {
	r      *Runtime
	ru     *running
	q      *queue.Queue
	group  string
	cancel context.CancelFunc
	done   chan struct{}
}

// sinkLoop delivers one sink installation's queue.
type sinkLoop struct {
	*loop
	limiter *rate.Limiter
	opts    SinkOptions
	// rejects counts, per message id, how often a destination that
	// accepted the rest of a write sent the event back.
	mu      sync.Mutex
	rejects map[string]int
	// pausedUntil (Unix nanoseconds) holds every shard's writes after a
	// destination's Retry-After: it asked the sink, not one batch, to wait.
	pausedUntil atomic.Int64
}

// SinkShards is the number of shards of a sink installation's queue: a
// sink has as many batches in flight (a visitor's events stay in one shard,
// in order), so that a destination's latency does not cap its throughput.
const SinkShards = 4

// SinkQueuePrefix is the key prefix of a sink installation's queue (its
// dead letters are those of DeliverGroup).
func SinkQueuePrefix(prefix, installationID string) string {
	return prefix + ":sink:" + installationID
}

// SinkQueue returns the queue of a sink installation.
func SinkQueue(r *Runtime, installationID string) (*queue.Queue, error) {
	return queue.New(r.rdb, queue.Options{Prefix: SinkQueuePrefix(r.opts.Prefix, installationID), Shards: SinkShards})
}

func (r *Runtime) startSink(ru *running) *sinkLoop {
	q, err := SinkQueue(r, ru.in.ID)
	if err != nil { // only invalid options, which these are not
		panic(err)
	}
	opts := r.opts.Sinks.withDefaults()
	lim := rate.NewLimiter(rate.Inf, 0)
	if ru.in.RateLimit > 0 {
		// Batches of at most a second's worth, so a slow limit paces
		// writes instead of holding a large batch back.
		burst := max(1, int(ru.in.RateLimit))
		lim = rate.NewLimiter(rate.Limit(ru.in.RateLimit), burst)
		opts.BatchSize = min(opts.BatchSize, burst)
	}
	s := &sinkLoop{limiter: lim, opts: opts, rejects: map[string]int{}}
	s.loop = r.startLoop(ru, q, DeliverGroup, opts.BatchSize, s.deliver)
	return s
}

// startLoop consumes q's shards with h, in group.
func (r *Runtime) startLoop(ru *running, q *queue.Queue, group string, batchSize int, h queue.Handler) *loop {
	opts := r.opts.Sinks.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{r: r, ru: ru, q: q, group: group, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		if err := q.EnsureGroup(ctx, group); err != nil && ctx.Err() == nil {
			r.log.Warn("create consumer group", "installation", ru.in.ID, "group", group, "err", err)
		}
		go l.trimLoop(ctx)
		_ = q.Consume(ctx, queue.ConsumerOptions{
			Group:     group,
			Consumer:  r.opts.Worker,
			BatchSize: batchSize,
			LeaseTTL:  opts.LeaseTTL,
			Block:     opts.Block,
			// A destination that is down makes a sink's handler wait
			// inside; this paces a plugin that is unavailable.
			MaxBackoff: opts.MaxBackoff,
			Logger:     r.log.With("installation", ru.in.ID, "plugin_id", ru.in.PluginID),
		}, h)
	}()
	return l
}

func (l *loop) stop() {
	l.cancel()
	<-l.done
}

func (l *loop) trimLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = l.q.Trim(ctx)
		}
	}
}

// measure records the queue's lag and dead letters.
func (s *loop) measure(ctx context.Context) {
	if st, err := s.q.Stats(ctx); err == nil {
		var lag int64
		for _, sh := range st {
			for _, g := range sh.Groups {
				if g.Name == s.group {
					lag += max(g.Lag, 0) + g.Pending
				}
			}
		}
		s.ru.stats.lag.Store(lag)
		sinkLag.WithLabelValues(s.ru.in.PluginID, s.ru.in.WorkspaceID).Set(float64(lag))
	}
	if n, err := s.q.DeadLetterCount(ctx, s.group); err == nil {
		s.ru.stats.dead.Store(n)
		sinkDeadLetters.WithLabelValues(s.ru.in.PluginID, s.ru.in.WorkspaceID).Set(float64(n))
	}
}

// deliver hands a batch to the sink in queue order: its events in
// Writes, and each forget entry to Delete once the events before it are
// written, so that a deletion follows the events it concerns and
// precedes those after it. It returns an error only when ctx ends or
// the plugin is unavailable (the batch is then delivered again: at least
// once; writes and deletions are idempotent).
func (s *sinkLoop) deliver(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
	var dead []queue.DeadLetter
	msgs := map[string]queue.Message{}
	var todo []eddyplugin.Event
	flush := func() error {
		d, err := s.writeAll(ctx, todo, msgs)
		dead = append(dead, d...)
		todo = nil
		return err
	}
	for _, m := range b.Messages {
		if m.Err != nil {
			dead = append(dead, queue.DeadLetter{Message: m, Reason: "undecodable queue entry: " + m.Err.Error()})
			continue
		}
		if m.Entry.Type == event.TypeForget {
			if err := flush(); err != nil {
				return nil, err
			}
			dl, err := s.forget(ctx, m)
			if err != nil {
				return nil, err
			}
			if dl != nil {
				dead = append(dead, *dl)
			}
			continue
		}
		if _, dup := msgs[m.Entry.MessageID]; dup {
			continue // the same event routed twice: deliver it once
		}
		msgs[m.Entry.MessageID] = m
		todo = append(todo, toPluginEvent(&m.Entry))
	}
	if err := flush(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	for id := range msgs {
		delete(s.rejects, id)
	}
	s.mu.Unlock()
	return dead, nil
}

// writeAll writes events to the sink. Events the destination refuses for
// good are dead-lettered; events it asks to retry are written again after
// a backoff (or its Retry-After), for as long as the destination stays
// down: it returns when every event is delivered or dead-lettered, or
// with an error when ctx ends or the plugin is unavailable.
func (s *sinkLoop) writeAll(ctx context.Context, todo []eddyplugin.Event, msgs map[string]queue.Message) ([]queue.DeadLetter, error) {
	var dead []queue.DeadLetter
	wait := s.opts.MinBackoff
	for len(todo) > 0 {
		if err := s.throttle(ctx, len(todo)); err != nil {
			return nil, err
		}
		start := time.Now()
		res, err := s.write(ctx, todo)
		s.ru.stats.call(time.Since(start), err)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var pe *eddyplugin.PluginError
			if !errors.As(err, &pe) {
				// The plugin itself is down (crashed, restarting, disabled):
				// the queue retries the batch with its backoff.
				return nil, err
			}
			// The plugin failed the whole write: the destination is down.
			s.r.log.Warn("sink write failed; retrying", "installation", s.ru.in.ID, "events", len(todo), "wait", wait, "err", err)
			if !sleep(ctx, jitter(wait)) {
				return nil, ctx.Err()
			}
			wait = min(wait*2, s.opts.MaxBackoff)
			continue
		}
		retry := map[string]bool{}
		for _, id := range res.Retry {
			retry[id] = true
		}
		var failed int64
		for _, rj := range res.Rejected {
			if m, ok := msgs[rj.MessageID]; ok && !retry[rj.MessageID] {
				dead = append(dead, queue.DeadLetter{Message: m, Reason: fmt.Sprintf("refused by %s: %s", s.ru.in.PluginID, rj.Reason)})
				failed++
			}
		}
		var next []eddyplugin.Event
		for _, e := range todo {
			if !retry[e.MessageID] {
				continue
			}
			next = append(next, e)
		}
		delivered := int64(len(todo)-len(next)) - failed
		s.ru.stats.events(int64(len(todo)), delivered, failed)
		if len(next) > 0 && len(next) < len(todo) {
			// The destination took part of the write: an event that keeps
			// coming back is refused, not delayed.
			next, dead = s.countRejects(next, msgs, dead)
		}
		todo = next
		if len(todo) == 0 {
			break
		}
		d := jitter(wait)
		if res.RetryAfter > 0 {
			d = min(res.RetryAfter, maxRetryAfter)
			s.pause(d)
		}
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
		wait = min(wait*2, s.opts.MaxBackoff)
	}
	return dead, nil
}

// forget hands a forget entry to the sink's Delete. A failed or retried
// deletion is called again after a backoff (or the destination's
// Retry-After), as a write is; after MaxRejects attempts, or when the
// destination refuses it, it is dead-lettered (a replay asks again), so
// that a deletion the destination cannot make does not hold back the
// shard for good. It returns an error only when ctx ends or the plugin is
// unavailable.
func (s *sinkLoop) forget(ctx context.Context, m queue.Message) (*queue.DeadLetter, error) {
	ru := s.ru
	if !ru.deletes() {
		// Routed before the sink's new version dropped deletion: nothing
		// it can do with it.
		return nil, nil
	}
	var f event.Forget
	if err := json.Unmarshal(m.Entry.Payload, &f); err != nil {
		deletionsTotal.WithLabelValues(ru.in.PluginID, ru.in.WorkspaceID, "failed").Inc()
		return &queue.DeadLetter{Message: m, Reason: "undecodable forget entry: " + err.Error()}, nil
	}
	d := eddyplugin.Deletion{JobID: f.JobID, Identities: make([]eddyplugin.Identity, len(f.Identities))}
	for i, id := range f.Identities {
		d.Identities[i] = eddyplugin.Identity{Kind: id.Kind, Value: id.Value}
	}
	dead := func(reason string) (*queue.DeadLetter, error) {
		deletionsTotal.WithLabelValues(ru.in.PluginID, ru.in.WorkspaceID, "failed").Inc()
		return &queue.DeadLetter{Message: m, Reason: reason}, nil
	}
	wait := s.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		if err := s.throttle(ctx, 1); err != nil {
			return nil, err
		}
		start := time.Now()
		res, err := s.delete(ctx, d)
		ru.stats.call(time.Since(start), err)
		var pe *eddyplugin.PluginError
		switch {
		case err == nil && res.Rejected != "":
			s.r.log.Warn("sink refused a deletion", "installation", ru.in.ID, "job_id", d.JobID)
			return dead(fmt.Sprintf("deletion refused by %s: %s", ru.in.PluginID, res.Rejected))
		case err == nil && !res.Retry:
			deletionsTotal.WithLabelValues(ru.in.PluginID, ru.in.WorkspaceID, "done").Inc()
			return nil, nil
		case errors.Is(err, eddyplugin.ErrDeleteUnsupported):
			s.r.log.Error("sink declares deletion but implements no Delete", "installation", ru.in.ID, "plugin_id", ru.in.PluginID)
			return dead(fmt.Sprintf("%s declares deletion but implements no Delete", ru.in.PluginID))
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && !errors.As(err, &pe):
			// The plugin itself is down: the queue retries the batch.
			return nil, err
		}
		reason := "the destination asked to retry"
		if err != nil {
			reason = err.Error()
		}
		if attempt >= s.opts.MaxRejects {
			s.r.log.Warn("sink deletion failed; dead-lettered", "installation", ru.in.ID, "job_id", d.JobID, "attempts", attempt, "err", reason)
			return dead(fmt.Sprintf("%s failed the deletion %d times: %s", ru.in.PluginID, attempt, reason))
		}
		pause := jitter(wait)
		if err == nil && res.RetryAfter > 0 {
			pause = min(res.RetryAfter, maxRetryAfter)
			s.pause(pause)
		}
		s.r.log.Warn("sink deletion failed; retrying", "installation", ru.in.ID, "attempt", attempt, "wait", pause, "err", reason)
		if !sleep(ctx, pause) {
			return nil, ctx.Err()
		}
		wait = min(wait*2, s.opts.MaxBackoff)
	}
}

// deletes reports whether the installation is a sink that declares
// deletion.
func (ru *running) deletes() bool {
	return ru.sink != nil && ru.manifest != nil && ru.manifest.Deletion
}

// delete hands a deletion to the sink plugin.
func (s *sinkLoop) delete(ctx context.Context, d eddyplugin.Deletion) (eddyplugin.DeleteResult, error) {
	ru := s.ru
	if ru.sup == nil {
		return eddyplugin.DeleteResult{}, errors.New("sink has no running plugin")
	}
	var res eddyplugin.DeleteResult
	err := ru.sup.Do(ctx, func(c *eddyplugin.Client) error {
		var cerr error
		res, cerr = c.Delete(ctx, ru.in.ID, d)
		return cerr
	})
	return res, err
}

// pause holds every shard's writes for d.
func (s *sinkLoop) pause(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := s.pausedUntil.Load()
		if cur >= until || s.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// throttle waits out a pause, then until the rate limit allows n more
// events.
func (s *sinkLoop) throttle(ctx context.Context, n int) error {
	if d := time.Until(time.Unix(0, s.pausedUntil.Load())); d > 0 && !sleep(ctx, d) {
		return ctx.Err()
	}
	if s.limiter.Limit() == rate.Inf {
		return nil
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	// A pause may have begun while this shard waited for the limiter.
	if d := time.Until(time.Unix(0, s.pausedUntil.Load())); d > 0 && !sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// countRejects dead-letters the events sent back MaxRejects times by a
// destination that accepted others.
func (s *sinkLoop) countRejects(next []eddyplugin.Event, msgs map[string]queue.Message, dead []queue.DeadLetter) ([]eddyplugin.Event, []queue.DeadLetter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := next[:0]
	for _, e := range next {
		s.rejects[e.MessageID]++
		if s.rejects[e.MessageID] >= s.opts.MaxRejects {
			dead = append(dead, queue.DeadLetter{Message: msgs[e.MessageID],
				Reason: fmt.Sprintf("%s asked to retry it %d times while accepting other events", s.ru.in.PluginID, s.rejects[e.MessageID])})
			delete(s.rejects, e.MessageID)
			continue
		}
		keep = append(keep, e)
	}
	return keep, dead
}

// write hands events to the sink plugin.
func (s *sinkLoop) write(ctx context.Context, events []eddyplugin.Event) (eddyplugin.WriteResult, error) {
	ru := s.ru
	if ru.sup == nil {
		return eddyplugin.WriteResult{}, errors.New("sink has no running plugin")
	}
	var res eddyplugin.WriteResult
	err := ru.sup.Do(ctx, func(c *eddyplugin.Client) error {
		var cerr error
		res, cerr = c.Write(ctx, ru.in.ID, events)
		return cerr
	})
	return res, err
}

// DeadLetters lists a sink installation's dead letters.
func (r *Runtime) DeadLetters(ctx context.Context, installationID, after string, count int) ([]queue.DeadEntry, error) {
	q, err := SinkQueue(r, installationID)
	if err != nil {
		return nil, err
	}
	return q.DeadLetters(ctx, DeliverGroup, after, count)
}

// Replay puts a sink installation's dead letters (all when ids is empty)
// back into its queue.
func (r *Runtime) Replay(ctx context.Context, installationID string, ids []string) (int, error) {
	q, err := SinkQueue(r, installationID)
	if err != nil {
		return 0, err
	}
	return q.Replay(ctx, DeliverGroup, slices.Clone(ids))
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
