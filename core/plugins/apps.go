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
	flush := func() error {
		actions, err := a.call(ctx, events, changes)
		if err != nil {
			return err
		}
		if err := a.emit(ctx, actions, causes); err != nil {
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
func (a *appLoop) emit(ctx context.Context, actions []eddyplugin.Action, causes []string) error {
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
func (r *Runtime) SessionTap(ctx context.Context, pipe redis.Pipeliner, ws string, c *live.Change) {
	apps := r.appsOf.Load()[ws]
	if len(apps) == 0 {
		return
	}
	payload, err := json.Marshal(live.View(c.Session))
	if err != nil {
		r.log.Warn("encode a session change for apps", "err", err)
		return
	}
	e := &event.Entry{WorkspaceID: ws, MessageID: c.Session.ID + "@" + c.Kind + "@" + strconv.FormatInt(c.Session.UpdatedAt.UnixMicro(), 10),
		Type: sessionType + c.Kind, ShardKey: c.Session.ID, ReceivedAt: time.Now(), Timestamp: c.Session.LastEventAt, Payload: payload}
	for _, ru := range apps {
		ru.app.q.EnqueueIn(ctx, pipe, e)
	}
}
