package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/collector"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/wasmhost"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// AppGroup is the consumer group of an app installation's queue.
const AppGroup = "app"

// sessionType marks a session change in an app's queue (its Type is
// "session.<kind>"; its payload the change as apps receive it).
const sessionType = "session."

// An app installation has one queue: the route group puts in it the
// events of its workspace it receives, and the session engine, through
// SessionTap, the changes of its workspace's sessions. Its loop hands them
// to the app in order, in batches, and turns the actions the app asks for
// into events (track, named by the action's type, properties its data)
// on the ingest queue, so that they are stored, and delivered by the
// workspace's sinks like any event. The action's event id derives from
// the change or event that caused it, so a redelivered batch does not
// store an action twice.

// AppQueuePrefix is the key prefix of an app installation's queue.
func AppQueuePrefix(prefix, installationID string) string {
	return prefix + ":app:" + installationID
}

func (r *Runtime) startApp(ru *running) *loop {
	q, err := queue.New(r.rdb, queue.Options{Prefix: AppQueuePrefix(r.opts.Prefix, ru.in.ID), Shards: 1})
	if err != nil {
		panic(err) // only invalid options, which these are not
	}
	a := &appLoop{r: r, ru: ru}
	return r.startLoop(ru, q, AppGroup, appBatchSize, a.handle)
}

// appBatchSize is the most events or changes per app call.
const appBatchSize = 200

// appLoop hands an app installation's queue to the app.
type appLoop struct {
	r  *Runtime
	ru *running
}

func (a *appLoop) handle(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
	var dead []queue.DeadLetter
	var events []eddyplugin.Event
	var changes []eddyplugin.SessionChange
	var causes []string // message id of each event or change, for action ids
	// The consent the app was shown for each visitor, as of the latest
	// event or change of theirs so far: what their actions carry.
	seen := visitorConsents{}
	flush := func() error {
		actions, err := a.call(ctx, events, changes)
		if err != nil {
			return err
		}
		if err := a.emit(ctx, actions, causes, seen); err != nil {
			return err
		}
		events, changes, causes = nil, nil, nil
		return nil
	}
	for _, m := range b.Messages {
		if m.Err != nil {
			dead = append(dead, queue.DeadLetter{Message: m, Reason: "undecodable queue entry: " + m.Err.Error()})
			continue
		}
		if m.Entry.Type == event.TypeForget {
			continue // deletion is for sinks; the route group gives apps none
		}
		isChange := strings.HasPrefix(m.Entry.Type, sessionType)
		// Events and changes go in separate calls, in queue order.
		if (isChange && len(events) > 0) || (!isChange && len(changes) > 0) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if isChange {
			changes = append(changes, eddyplugin.SessionChange{Kind: strings.TrimPrefix(m.Entry.Type, sessionType), Session: m.Entry.Payload})
		} else {
			events = append(events, toPluginEvent(&m.Entry))
		}
		seen.note(&m.Entry, isChange)
		causes = append(causes, m.Entry.MessageID)
	}
	if len(events)+len(changes) > 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return dead, nil
}

// call runs the app's handler on events or changes (one of them is empty).
func (a *appLoop) call(ctx context.Context, events []eddyplugin.Event, changes []eddyplugin.SessionChange) ([]eddyplugin.Action, error) {
	ru := a.ru
	start := time.Now()
	var actions []eddyplugin.Action
	var err error
	switch {
	case ru.sup != nil:
		err = ru.sup.Do(ctx, func(c *eddyplugin.Client) error {
			var cerr error
			if len(events) > 0 {
				actions, cerr = c.OnEvents(ctx, ru.in.ID, events)
			} else {
				actions, cerr = c.OnSessions(ctx, ru.in.ID, changes)
			}
			return cerr
		})
	case ru.module != nil:
		actions, err = wasmApp(ctx, ru.module, events, changes)
	default:
		err = errors.New("app has no runtime")
	}
	ru.stats.call(time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", ru.in.PluginID, err)
	}
	ru.stats.events(int64(len(events)+len(changes)), int64(len(actions)), 0)
	return actions, nil
}

// wasmApp calls a WASM app; a module without the handler skips the call.
func wasmApp(ctx context.Context, m *wasmhost.Module, events []eddyplugin.Event, changes []eddyplugin.SessionChange) ([]eddyplugin.Action, error) {
	var out []eddywasm.Action
	var err error
	if len(events) > 0 {
		if !m.Handles("events") {
			return nil, nil
		}
		in := make([]eddywasm.Event, len(events))
		for i, e := range events {
			in[i] = eddywasm.Event{MessageID: e.MessageID, WorkspaceID: e.WorkspaceID, SourceID: e.SourceID, Type: e.Type,
				Timestamp: e.Timestamp, ReceivedAt: e.ReceivedAt, Payload: e.Payload, BatchContext: e.BatchContext, IP: e.IP}
		}
		out, err = m.OnEvents(ctx, in)
	} else {
		if !m.Handles("sessions") {
			return nil, nil
		}
		in := make([]eddywasm.SessionChange, len(changes))
		for i, c := range changes {
			in[i] = eddywasm.SessionChange{Kind: c.Kind, Session: c.Session}
		}
		out, err = m.OnSessions(ctx, in)
	}
	if err != nil {
		return nil, err
	}
	actions := make([]eddyplugin.Action, len(out))
	for i, a := range out {
		actions[i] = eddyplugin.Action{Type: a.Type, AnonymousID: a.AnonymousID, UserID: a.UserID, Data: a.Data}
	}
	return actions, nil
}

// maxActionsPerBatch bounds what one app call may ask for.
const maxActionsPerBatch = 10000

// emit queues the actions as events of the app's workspace. An action
// must name its visitor (anonymous or user id) and carry a JSON object,
// else the app's call fails.
//
// An action carries the consent the app was shown for its visitor in the
// same batch (by an event or a session change of theirs), so that the
// consent gate treats it as it treated them; an action about a visitor
// the app was not shown carries none, and the gate decides without (by
// default, it refuses it).
func (a *appLoop) emit(ctx context.Context, actions []eddyplugin.Action, causes []string, seen visitorConsents) error {
	if len(actions) == 0 {
		return nil
	}
	ru := a.ru
	if !slices.Contains(ru.manifest.Permissions.Write, "actions") {
		return fmt.Errorf("app %s asked for %d actions, but its manifest does not ask to write actions (permissions.write)", ru.in.PluginID, len(actions))
	}
	if len(actions) > maxActionsPerBatch {
		return fmt.Errorf("app %s asked for %d actions in one call; the limit is %d", ru.in.PluginID, len(actions), maxActionsPerBatch)
	}
	seed := sha256.New()
	for _, c := range causes {
		seed.Write([]byte(c))
		seed.Write([]byte{0})
	}
	base := seed.Sum([]byte(ru.in.ID))
	msgs := make([][]byte, len(actions))
	now := time.Now().UTC()
	for i, act := range actions {
		if act.AnonymousID == "" && act.UserID == "" {
			return fmt.Errorf("app %s: actions[%d] names no visitor (anonymous_id or user_id)", ru.in.PluginID, i)
		}
		data := act.Data
		if len(data) == 0 {
			data = json.RawMessage("{}")
		}
		id := sha256.Sum256(append(base, strconv.Itoa(i)...))
		msg := map[string]any{
			"type": "track", "event": act.Type, "properties": data,
			"messageId": "act-" + hex.EncodeToString(id[:16]),
			"timestamp": now.Format(time.RFC3339Nano),
			"context":   map[string]any{"app": map[string]string{"id": ru.in.PluginID, "installation": ru.in.ID}},
		}
		if prefs, ok := seen.of(act.AnonymousID, act.UserID); ok {
			msg["context"].(map[string]any)["consent"] = map[string]any{"categoryPreferences": prefs}
		}
		if act.AnonymousID != "" {
			msg["anonymousId"] = act.AnonymousID
		}
		if act.UserID != "" {
			msg["userId"] = act.UserID
		}
		b, err := json.Marshal(msg)
		if err != nil {
			return fmt.Errorf("app %s: actions[%d]: %w", ru.in.PluginID, i, err)
		}
		msgs[i] = b
	}
	entries, problems := collector.Accept(msgs, ru.in.WorkspaceID, ru.in.ID, time.Now(), a.r.opts.Collector)
	if len(problems) > 0 {
		p := problems[0]
		return fmt.Errorf("app %s: actions[%d]: %s", ru.in.PluginID, p.Index, p.Message)
	}
	if a.r.opts.Ingest == nil {
		return errors.New("no ingest queue for actions")
	}
	return a.r.opts.Ingest.Enqueue(ctx, entries)
}

// SessionTap queues each announced session change for the apps of its
// workspace, in the pipeline that publishes it (see live.Mirror.SetTap).
//
// An app receives a change only when the session's visitor grants the
// purposes it needs: their consent as of the session's latest event that
// stated one, with the decisions made since on their identifiers (a
// withdrawal through the API, a deletion) applied. When that cannot be
// checked, no app receives the change.
func (r *Runtime) SessionTap(ctx context.Context, pipe redis.Pipeliner, ws string, c *live.Change) {
	apps := r.appsOf.Load()[ws]
	if len(apps) == 0 {
		return
	}
	g, prefs, present, ok := r.sessionConsent(ctx, ws, c)
	if !ok {
		return
	}
	payload, err := json.Marshal(live.View(c.Session))
	if err != nil {
		r.log.Warn("encode a session change for apps", "err", err)
		return
	}
	e := &event.Entry{WorkspaceID: ws, MessageID: c.Session.ID + "@" + c.Kind + "@" + strconv.FormatInt(c.Session.UpdatedAt.UnixMicro(), 10),
		Type: sessionType + c.Kind, ShardKey: c.Session.ID, ReceivedAt: time.Now(), Timestamp: c.Session.LastEventAt, Payload: payload}
	if present {
		// The visitor's effective consent rides along as the entry's batch
		// context, for the consent of the app's actions about them.
		if e.Context, err = json.Marshal(map[string]any{"consent": map[string]any{"categoryPreferences": prefs}}); err != nil {
			r.log.Warn("encode a session change's consent for apps", "err", err)
			return
		}
	}
	for _, ru := range apps {
		if g.allows(ru, prefs, present) {
			ru.app.q.EnqueueIn(ctx, pipe, e)
		}
	}
}

// tapSync is how stale the tap's view of privacy changes may be: the
// privacy generation is read at most this often on the session engine's
// publishing path.
const tapSync = 250 * time.Millisecond

// sessionConsent returns the gate of a workspace and the effective consent
// of a session's visitor; ok is false when the visitor is suppressed (a
// deleted person) or their consent cannot be checked.
func (r *Runtime) sessionConsent(ctx context.Context, ws string, c *live.Change) (g *gate, prefs consent.Preferences, present, ok bool) {
	if r.policies == nil {
		return nil, nil, false, true
	}
	if err := r.policies.sync(ctx, tapSync); err != nil {
		r.log.Warn("session changes withheld from apps: privacy state unreadable", "workspace", ws, "err", err)
		return nil, nil, false, false
	}
	cp, err := r.policies.get(ctx, ws)
	if err != nil {
		r.log.Warn("session changes withheld from apps: consent policy unreadable", "workspace", ws, "err", err)
		return nil, nil, false, false
	}
	prefs, present = c.Consent, c.Consent != nil
	if cp.any {
		hashes := idHashes(ws, c.Session.AnonymousID, c.Session.UserID)
		if err := r.policies.lookup(ctx, ws, cp, hashes); err != nil {
			r.log.Warn("session changes withheld from apps: consent decisions unreadable", "workspace", ws, "err", err)
			return nil, nil, false, false
		}
		if ds := r.policies.decisionsOf(cp, hashes); len(ds) > 0 {
			ap := consent.Apply(prefs, present, ds, false, time.Now(), cp.p.Required)
			if ap.Suppressed {
				return nil, nil, false, false
			}
			prefs, present = ap.Prefs, ap.Present
		}
	}
	return &gate{policy: cp.p, ws: ws}, prefs, present, true
}

// visitorConsents maps a visitor ("a:" anonymous id, "u:" user id) to the
// consent an app was shown for them.
type visitorConsents map[string]consent.Preferences

// note records the consent of an event or a session change (whose
// consent SessionTap put in its context) for its visitor's ids.
func (v visitorConsents) note(e *event.Entry, isChange bool) {
	var ids struct {
		AnonymousID   json.RawMessage `json:"anonymousId"`
		UserID        json.RawMessage `json:"userId"`
		AnonymousIDSn json.RawMessage `json:"anonymous_id"`
		UserIDSn      json.RawMessage `json:"user_id"`
	}
	var prefs consent.Preferences
	var present bool
	if isChange {
		prefs, present = consentOf(nil, e.Context)
	} else {
		prefs, present = consentOf(e.Payload, e.Context)
	}
	if !present || json.Unmarshal(e.Payload, &ids) != nil {
		return
	}
	anon, user := identifier(ids.AnonymousID), identifier(ids.UserID)
	if isChange {
		anon, user = identifier(ids.AnonymousIDSn), identifier(ids.UserIDSn)
	}
	if anon != "" {
		v["a:"+anon] = prefs
	}
	if user != "" {
		v["u:"+user] = prefs
	}
}

// of returns the consent shown for a visitor, by anonymous id first.
func (v visitorConsents) of(anonymousID, userID string) (consent.Preferences, bool) {
	if p, ok := v["a:"+anonymousID]; ok && anonymousID != "" {
		return p, true
	}
	p, ok := v["u:"+userID]
	return p, ok && userID != ""
}
