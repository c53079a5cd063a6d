package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/engine"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/pipeline"
	pluginrt "github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/privacy"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
)

// The rights of the person: deletion jobs (of a person, or of a time range)
// and the export of everything held about a person. Both are for the
// workspace's owners and admins and API keys with `admin` (the
// DeleteWorkspace permission): deletion destroys data, and an export holds
// all of a person's data at once.
//
// A deletion is a job: the request records it (and audits it) and answers
// 202; the job runs in this process, at most maxDeletionWorkers at a time,
// through the store (which deletes, in order, suppressions, events,
// sessions, then the identity graph), then removes the person's live
// sessions from Redis, and records its outcome (audited as the system).
// Jobs left pending or running by a process that stopped are run again by
// ResumeDeletions: deletion is idempotent.
//
// A person's events may be in flight when the job starts: accepted and
// waiting in the ingest queue, or processed and waiting in the events
// queue for storage and the session engine, which holds the person's open
// sessions in memory. Deleting at once would let them come back. So a
// person's job first makes sure nothing of the person is on its way
// (drainPerson):
//
//  1. it records the person's suppressions, in their own commit, and
//     collects the person's identifiers;
//  2. it bumps the privacy generation (core/privacy): every batch the
//     consent gate starts from then on reads the suppressions again, so
//     no new event of the person passes the process stage;
//  3. it waits until the ingest queue's process group has passed the
//     point taken right after the bump (queue.Passed): every event of the
//     person that was accepted before is dropped or processed;
//  4. it appends a forget entry (event.TypeForget) per anonymous id and
//     user id of the person to the events queue, sharded like the
//     person's events, so each consumer meets it after them: storage
//     ignores it, the session engine drops the visitor from memory
//     without writing its sessions;
//  5. it waits until the events queue's store and sessions groups have
//     passed the point after those entries;
//
// and it repeats this for identifiers linked to the person meanwhile (by
// events that had passed the gate before the bump), then deletes. While
// it waits the job stays running (a warning is logged each minute); a
// shutdown interrupts it, and the next start resumes it.
//
// The job waits for the groups even when this process runs without the
// worker role: the workers elsewhere, or the next to start, move them on.
// Deleting without waiting would be wrong, not faster: the events in
// flight would be stored afterwards. A group that does not exist yet has
// nothing in flight and is not waited for.

// maxDeletionWorkers caps the deletion jobs running at once in a process.
const maxDeletionWorkers = 2

// deletionRunner runs deletion jobs in the background.
type deletionRunner struct {
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newDeletionRunner() *deletionRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &deletionRunner{sem: make(chan struct{}, maxDeletionWorkers), ctx: ctx, cancel: cancel}
}

// go runs fn in the background, after a worker slot frees; false once the
// runner is closed.
func (r *deletionRunner) start(fn func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case r.sem <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		defer func() { <-r.sem }()
		fn(r.ctx)
	}()
	return true
}

// close cancels the jobs running (they stay "running", resumed at the next
// start) and waits for them to return.
func (r *deletionRunner) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// ResumeDeletions runs again the deletion jobs of every workspace that a
// stopped process left pending or running. Call it once at start.
func (a *API) ResumeDeletions(ctx context.Context) error {
	jobs, err := a.store.UnfinishedDeletionJobs(ctx)
	if err != nil {
		return fmt.Errorf("resume deletions: %w", err)
	}
	for _, j := range jobs {
		a.log.InfoContext(ctx, "resuming deletion job", "job", j.ID, "workspace", j.WorkspaceID, "status", j.Status)
		a.runDeletion(j)
	}
	return nil
}

// runDeletion runs a job in the background.
func (a *API) runDeletion(j store.DeletionJob) {
	a.deletions.start(func(ctx context.Context) { a.executeDeletion(ctx, j) })
}

func (a *API) executeDeletion(ctx context.Context, j store.DeletionJob) {
	log := a.log.With("job", j.ID, "workspace", j.WorkspaceID, "kind", j.Kind)
	j, err := a.store.StartDeletionJob(ctx, j.WorkspaceID, j.ID)
	if err != nil {
		log.ErrorContext(ctx, "deletion job could not start", "err", err)
		return
	}
	start := time.Now()
	var d store.Deletion
	var forgets int64
	var runErr error
	if j.Kind == store.DeletionProfile {
		forgets, runErr = a.drainPerson(ctx, log, j)
	}
	if runErr == nil {
		d, runErr = a.store.RunDeletion(ctx, j)
	}
	if runErr == nil && a.opts.Redis != nil {
		var n int64
		n, runErr = a.forgetLive(ctx, j.WorkspaceID, d)
		d.Counts["live_sessions"] = n
	}
	if d.Counts != nil && j.Kind == store.DeletionProfile {
		d.Counts["forget_entries"] = forgets
	}
	if ctx.Err() != nil {
		// Shutting down: the job stays running and is resumed at the next
		// start.
		log.WarnContext(ctx, "deletion job interrupted by shutdown")
		return
	}
	if runErr != nil {
		log.ErrorContext(ctx, "deletion job failed", "err", runErr)
	}
	done, err := a.store.FinishDeletionJob(ctx, j, d.Counts, runErr)
	if err != nil {
		log.ErrorContext(ctx, "deletion job outcome not recorded", "err", err)
		return
	}
	log.InfoContext(ctx, "deletion job finished", "status", done.Status, "took", time.Since(start),
		slog.Any("counts", done.Counts))
}

// Timings of a person's deletion job waiting for the queues.
const (
	// drainPoll is how often the job asks whether a group has passed.
	drainPoll = 150 * time.Millisecond
	// drainWarnEvery is how often a job still waiting says so.
	drainWarnEvery = time.Minute
	// maxDrainRounds bounds the rounds of drainPerson: each round after
	// the first forgets identifiers linked to the person while the last
	// one waited, which needs events that passed the gate before it
	// moved; so a second round is rare, a third exceptional.
	maxDrainRounds = 5
)

// drainPerson makes sure that no event of the person of job j is left on
// its way to storage or in the session engine's memory (steps 1 to 5 of
// the job, see above), and returns the forget entries it appended. Without
// Redis it only records the suppressions; without the queues it does not
// wait.
func (a *API) drainPerson(ctx context.Context, log *slog.Logger, j store.DeletionJob) (int64, error) {
	sent := map[identity.Identity]bool{}
	var forgets int64
	for round := 0; round < maxDrainRounds; round++ {
		ids, err := a.store.SuppressPerson(ctx, j)
		if err != nil {
			return forgets, err
		}
		var fresh []identity.Identity
		for _, id := range ids {
			if !sent[id] {
				fresh = append(fresh, id)
			}
		}
		if len(fresh) == 0 || a.opts.Redis == nil {
			return forgets, nil
		}
		if err := privacy.NewGeneration(a.opts.Redis, a.opts.Prefix).Bump(ctx); err != nil {
			return forgets, err
		}
		if a.opts.Ingest == nil || a.opts.Events == nil {
			return forgets, nil
		}
		if err := a.waitPassed(ctx, log, a.opts.Ingest, pluginrt.ProcessGroup); err != nil {
			return forgets, err
		}
		entries, err := forgetEntries(j, ids, fresh, time.Now())
		if err != nil {
			return forgets, err
		}
		if err := a.opts.Events.Enqueue(ctx, entries); err != nil {
			return forgets, fmt.Errorf("append forget entries: %w", err)
		}
		forgets += int64(len(entries))
		if err := a.waitPassed(ctx, log, a.opts.Events, pipeline.Group, engine.Group); err != nil {
			return forgets, err
		}
		for _, id := range fresh {
			sent[id] = true
		}
	}
	log.WarnContext(ctx, "deletion job: identifiers kept being linked to the person while it waited; deleting anyway", "rounds", maxDrainRounds)
	return forgets, nil
}

// forgetEntries returns the forget entries of job j for the anonymous and
// user ids among fresh, each naming every identifier of the person (all).
// Their message ids derive from the job and the identifier (without
// showing it), so a resumed job appends the same ones.
func forgetEntries(j store.DeletionJob, all, fresh []identity.Identity, now time.Time) ([]event.Entry, error) {
	f := event.Forget{JobID: j.ID, Identities: make([]event.ForgetIdentity, len(all))}
	for i, id := range all {
		f.Identities[i] = event.ForgetIdentity{Kind: string(id.Kind), Value: id.Value}
	}
	payload, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode forget entry: %w", err)
	}
	job, err := uuid.Parse(j.ID)
	if err != nil {
		return nil, fmt.Errorf("deletion job id %q: %w", j.ID, err)
	}
	var out []event.Entry
	for _, id := range fresh {
		if id.Kind != identity.AnonymousID && id.Kind != identity.UserID {
			continue // events are sharded by anonymous id, else user id
		}
		out = append(out, event.Entry{
			WorkspaceID: j.WorkspaceID,
			MessageID:   uuid.NewSHA1(job, []byte(string(id.Kind)+"\x00"+id.Value)).String(),
			Type:        event.TypeForget,
			ShardKey:    id.Value,
			ReceivedAt:  now,
			Timestamp:   now,
			Payload:     payload,
		})
	}
	return out, nil
}

// waitPassed waits until every one of groups has passed, on q, the point
// taken now (queue.Mark): until then the job stays running. It polls every
// drainPoll, logs a warning every drainWarnEvery, retries while Redis is
// unavailable, and returns ctx's error when the process shuts down (the
// job is resumed at the next start).
func (a *API) waitPassed(ctx context.Context, log *slog.Logger, q *queue.Queue, groups ...string) error {
	var mark string
	start, warned := time.Now(), time.Now()
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		err := ctx.Err()
		if err == nil && mark == "" {
			mark, err = q.Mark(ctx)
		}
		for err == nil && mark != "" && len(groups) > 0 {
			var ok bool
			if ok, err = q.Passed(ctx, groups[0], mark); err == nil && !ok {
				break
			}
			if ok {
				groups = groups[1:]
			}
		}
		if err == nil && len(groups) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, queue.ErrUnavailable) {
			return fmt.Errorf("deletion job: wait for the queue: %w", err)
		}
		if time.Since(warned) >= drainWarnEvery {
			warned = time.Now()
			log.WarnContext(ctx, "deletion job still waits for a consumer group to pass the person's events in flight; are the workers running?",
				"group", groups[0], "waited", time.Since(start).Round(time.Second), "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// forgetLive deletes the live state (core/live's keys) of the sessions d
// deleted, and of any live session of the person's identifiers or
// profiles, which storage may not have yet. It returns the keys deleted.
func (a *API) forgetLive(ctx context.Context, ws string, d store.Deletion) (int64, error) {
	rdb := a.opts.Redis
	base := a.opts.Prefix + ":live:" + ws
	active := base + ":active"
	gone := map[string]bool{}
	for _, id := range d.SessionIDs {
		gone[id] = true
	}
	if len(d.Identities) > 0 || len(d.ProfileIDs) > 0 {
		// Every live session of the workspace is looked at: deletions are
		// rare, and a session may be live before storage has it.
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, globEscape(base+":s:")+"*", 500).Result()
			if err != nil {
				return 0, fmt.Errorf("scan live sessions: %w", err)
			}
			if len(keys) > 0 {
				vals, err := rdb.MGet(ctx, keys...).Result()
				if err != nil {
					return 0, fmt.Errorf("read live sessions: %w", err)
				}
				for i, v := range vals {
					s, ok := v.(string)
					if !ok {
						continue
					}
					var sess store.StoredSession
					if json.Unmarshal([]byte(s), &sess) != nil {
						continue
					}
					if personOf(d, sess) {
						gone[strings.TrimPrefix(keys[i], base+":s:")] = true
					}
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	pipe := rdb.TxPipeline()
	del := make([]string, 0, len(gone))
	members := make([]any, 0, len(gone))
	for id := range gone {
		del = append(del, base+":s:"+id)
		members = append(members, id)
	}
	n := pipe.Del(ctx, del...)
	pipe.ZRem(ctx, active, members...)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("delete live sessions: %w", err)
	}
	return n.Val(), nil
}

// personOf tells whether a live session is of the person d deleted.
func personOf(d store.Deletion, s store.StoredSession) bool {
	if s.ProfileID != "" && slices.Contains(d.ProfileIDs, s.ProfileID) {
		return true
	}
	for _, id := range d.Identities {
		if id.Kind == identity.AnonymousID && id.Value == s.AnonymousID || id.Kind == identity.UserID && s.UserID != "" && id.Value == s.UserID {
			return true
		}
	}
	return false
}

// globEscape escapes the characters Redis's SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// deletionJobJSON is a deletion job as the API shows it.
type deletionJobJSON struct {
	ID          string           `json:"id"`
	WorkspaceID string           `json:"workspace_id"`
	Kind        string           `json:"kind"`
	Status      string           `json:"status"`
	From        *time.Time       `json:"from"`
	To          *time.Time       `json:"to"`
	Counts      map[string]int64 `json:"counts"`
	Error       *string          `json:"error"`
	RequestedBy string           `json:"requested_by"`
	CreatedAt   time.Time        `json:"created_at"`
	StartedAt   *time.Time       `json:"started_at"`
	FinishedAt  *time.Time       `json:"finished_at"`
}

func deletionJobView(ws store.Workspace, j store.DeletionJob) deletionJobJSON {
	v := deletionJobJSON{ID: j.ID, WorkspaceID: ws.Slug, Kind: j.Kind, Status: j.Status, From: nullTime(j.From), To: nullTime(j.To),
		Counts: j.Counts, Error: nullString(j.Error), RequestedBy: j.RequestedBy, CreatedAt: j.CreatedAt.UTC(),
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt}
	if v.Counts == nil {
		v.Counts = map[string]int64{}
	}
	return v
}

// acceptDeletion records a deletion job, starts it, and answers 202 with
// the job and its Location.
func (a *API) acceptDeletion(c *gin.Context, ws store.Workspace, nd store.NewDeletion) {
	j, err := a.store.CreateDeletionJob(c.Request.Context(), change(c), ws, nd)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.runDeletion(j)
	c.Header("Location", Base+"/workspaces/"+ws.Slug+"/deletions/"+j.ID)
	c.JSON(http.StatusAccepted, deletionJobView(ws, j))
}

// deleteProfile deletes a person: the profile of the path (a merged-away
// id deletes its survivor's person).
func (a *API) deleteProfile(c *gin.Context) {
	ws, ok := a.workspace(c, auth.DeleteWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "profile_id")
	if !ok {
		return
	}
	p, err := a.store.WorkspaceProfile(c.Request.Context(), ws, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.acceptDeletion(c, ws, store.NewDeletion{Kind: store.DeletionProfile, ProfileID: p.ID})
}

// deleteProfileByIdentity deletes the person one identity (exactly one of
// ?anonymous_id=, ?user_id=, ?email=) belongs to.
func (a *API) deleteProfileByIdentity(c *gin.Context) {
	ws, ok := a.workspace(c, auth.DeleteWorkspace)
	if !ok {
		return
	}
	var errs FieldErrors
	kind, value := "", ""
	for _, k := range identityKinds {
		v, given := c.GetQuery(k)
		if !given {
			continue
		}
		if kind != "" {
			errs.Add(k, "give exactly one of %s", strings.Join(identityKinds, ", "))
			continue
		}
		kind, value = k, v
		switch {
		case v == "":
			errs.Add(k, "is empty")
		case len(v) > 1024:
			errs.Add(k, "must be at most 1024 bytes")
		}
		errs.Text(k, v)
	}
	if kind == "" {
		errs.Add("identity", "is required: one of ?%s=", strings.Join(identityKinds, "=, ?"))
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	p, err := a.store.ProfileByIdentity(c.Request.Context(), ws, kind, value)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.acceptDeletion(c, ws, store.NewDeletion{Kind: store.DeletionProfile, ProfileID: p.ID})
}

// rangeDeletionRequest is the body of POST .../deletions.
type rangeDeletionRequest struct {
	From *string `json:"from"`
	To   *string `json:"to"`
}

// createRangeDeletion deletes a workspace's events (and the sessions that
// started, and page views and orders timed) in [from, to).
func (a *API) createRangeDeletion(c *gin.Context) {
	ws, ok := a.workspace(c, auth.DeleteWorkspace)
	if !ok {
		return
	}
	var req rangeDeletionRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	var bounds [2]time.Time
	for i, f := range []struct {
		name string
		v    *string
	}{{"from", req.From}, {"to", req.To}} {
		if f.v == nil || *f.v == "" {
			errs.Add(f.name, "is required: an RFC 3339 time such as 2026-11-22T10:00:00Z")
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *f.v)
		if err != nil {
			errs.Add(f.name, "must be an RFC 3339 time such as 2026-11-22T10:00:00Z")
			continue
		}
		bounds[i] = t
	}
	if errs == nil && !bounds[0].Before(bounds[1]) {
		errs.Add("to", "must be after from")
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	a.acceptDeletion(c, ws, store.NewDeletion{Kind: store.DeletionRange, From: bounds[0], To: bounds[1]})
}

// getDeletion answers a deletion job's status and counts.
func (a *API) getDeletion(c *gin.Context) {
	ws, ok := a.workspace(c, auth.DeleteWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "job_id")
	if !ok {
		return
	}
	j, err := a.store.DeletionJob(c.Request.Context(), ws, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, deletionJobView(ws, j))
}

// Export views.

type stampedJSON struct {
	Value     json.RawMessage `json:"value"`
	At        time.Time       `json:"at"`
	MessageID string          `json:"message_id"`
}

type stampedConsentJSON struct {
	Granted   bool      `json:"granted"`
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id"`
}

type exportProfileJSON struct {
	ID            string                        `json:"id"`
	UserID        *string                       `json:"user_id"`
	FirstSeen     *time.Time                    `json:"first_seen"`
	LastSeen      *time.Time                    `json:"last_seen"`
	SessionsCount int64                         `json:"sessions_count"`
	OrdersCount   int64                         `json:"orders_count"`
	Revenue       float64                       `json:"revenue"`
	LastOrder     *lastOrderJSON                `json:"last_order"`
	Identities    []profileIdentityJSON         `json:"identities"`
	Traits        map[string]stampedJSON        `json:"traits"`
	Consent       map[string]stampedConsentJSON `json:"consent"`
}

type exportMergeJSON struct {
	Survivor  string    `json:"survivor"`
	Absorbed  string    `json:"absorbed"`
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id"`
	ViaKind   string    `json:"via_kind"`
	ViaValue  string    `json:"via_value"`
}

type exportPageViewJSON struct {
	MessageID   string    `json:"message_id"`
	SessionID   string    `json:"session_id"`
	AnonymousID string    `json:"anonymous_id"`
	UserID      *string   `json:"user_id"`
	Timestamp   time.Time `json:"timestamp"`
	URL         *string   `json:"url"`
	Referrer    *string   `json:"referrer"`
	Title       *string   `json:"title"`
}

type exportOrderJSON struct {
	OrderID     string          `json:"order_id"`
	MessageID   string          `json:"message_id"`
	SessionID   string          `json:"session_id"`
	AnonymousID string          `json:"anonymous_id"`
	UserID      *string         `json:"user_id"`
	Timestamp   time.Time       `json:"timestamp"`
	Total       float64         `json:"total"`
	Currency    *string         `json:"currency"`
	Products    json.RawMessage `json:"products"`
}

type exportJSON struct {
	ExportedAt      time.Time            `json:"exported_at"`
	WorkspaceID     string               `json:"workspace_id"`
	Profile         exportProfileJSON    `json:"profile"`
	MergedProfiles  []string             `json:"merged_profiles"`
	Merges          []exportMergeJSON    `json:"merges"`
	Sessions        []sessionJSON        `json:"sessions"`
	PageViews       []exportPageViewJSON `json:"page_views"`
	Orders          []exportOrderJSON    `json:"orders"`
	Events          []eventJSON          `json:"events"`
	EventsTruncated bool                 `json:"events_truncated"`
	// ConsentDecisions are the consent decisions on the person's
	// identifiers (see the profile consent API).
	ConsentDecisions []exportDecisionJSON `json:"consent_decisions"`
}

type exportDecisionJSON struct {
	Kind    string    `json:"kind"`
	Value   string    `json:"value"`
	Purpose string    `json:"purpose"`
	Granted bool      `json:"granted"`
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
}

func exportView(ws store.Workspace, x store.ProfileExport, now time.Time) exportJSON {
	p := x.Profile
	v := exportJSON{ExportedAt: now.UTC(), WorkspaceID: ws.Slug, MergedProfiles: x.MergedProfiles,
		Merges: []exportMergeJSON{}, Sessions: []sessionJSON{}, PageViews: []exportPageViewJSON{}, Orders: []exportOrderJSON{},
		Events: make([]eventJSON, 0, len(x.Events)), EventsTruncated: x.Truncated,
		Profile: exportProfileJSON{ID: p.ID, UserID: nullString(p.UserID), FirstSeen: nullTime(p.FirstSeen), LastSeen: nullTime(p.LastSeen),
			SessionsCount: p.Sessions, OrdersCount: p.Orders, Revenue: p.Revenue(),
			Identities: make([]profileIdentityJSON, len(p.Identities)),
			Traits:     make(map[string]stampedJSON, len(p.Traits)), Consent: make(map[string]stampedConsentJSON, len(p.Consent))}}
	if v.MergedProfiles == nil {
		v.MergedProfiles = []string{}
	}
	v.ConsentDecisions = make([]exportDecisionJSON, len(x.ConsentDecisions))
	for i, d := range x.ConsentDecisions {
		v.ConsentDecisions[i] = exportDecisionJSON{Kind: d.Kind, Value: d.Value, Purpose: d.Purpose, Granted: d.Granted, At: d.At.UTC(), Source: d.Source}
	}
	if o := p.LastOrder; o.ID != "" {
		v.Profile.LastOrder = &lastOrderJSON{ID: o.ID, At: o.At.UTC(), Value: o.Value, Currency: o.Currency}
	}
	for i, id := range p.Identities {
		v.Profile.Identities[i] = profileIdentityJSON{Kind: string(id.Kind), Value: id.Value}
	}
	for _, t := range p.Traits {
		v.Profile.Traits[t.Key] = stampedJSON{Value: nullJSON(t.Value), At: t.Stamp.At.UTC(), MessageID: t.Stamp.MessageID}
	}
	for _, c := range p.Consent {
		v.Profile.Consent[c.Purpose] = stampedConsentJSON{Granted: c.Granted, At: c.Stamp.At.UTC(), MessageID: c.Stamp.MessageID}
	}
	for _, m := range x.Merges {
		v.Merges = append(v.Merges, exportMergeJSON{Survivor: m.Survivor, Absorbed: m.Absorbed, At: m.At.UTC(),
			MessageID: m.MessageID, ViaKind: m.ViaKind, ViaValue: m.ViaValue})
	}
	for _, s := range x.Sessions {
		v.Sessions = append(v.Sessions, sessionView(s))
	}
	for _, pv := range x.PageViews {
		v.PageViews = append(v.PageViews, exportPageViewJSON{MessageID: pv.MessageID, SessionID: pv.SessionID.String(),
			AnonymousID: pv.AnonymousID, UserID: nullString(pv.UserID), Timestamp: pv.Timestamp.UTC(),
			URL: nullString(pv.URL), Referrer: nullString(pv.Referrer), Title: nullString(pv.Title)})
	}
	for _, o := range x.Orders {
		v.Orders = append(v.Orders, exportOrderJSON{OrderID: o.OrderID, MessageID: o.MessageID, SessionID: o.SessionID,
			AnonymousID: o.AnonymousID, UserID: nullString(o.UserID), Timestamp: o.Timestamp.UTC(), Total: o.Total,
			Currency: nullString(o.Currency), Products: nullJSON(o.Products)})
	}
	for _, e := range x.Events {
		v.Events = append(v.Events, eventView(e))
	}
	return v
}

// exportProfile answers everything the workspace holds about a person, as
// a JSON attachment.
func (a *API) exportProfile(c *gin.Context) {
	ws, ok := a.workspace(c, auth.DeleteWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "profile_id")
	if !ok {
		return
	}
	x, err := a.store.ExportProfile(c.Request.Context(), ws, id)
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, store.ErrNotFound)
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="profile-`+x.Profile.ID+`.json"`)
	c.JSON(http.StatusOK, exportView(ws, x, time.Now()))
}
