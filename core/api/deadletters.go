package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/auth"
	pluginrt "github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
)

// Dead letters of a sink installation: what the sink refused ten times (or
// for good), kept in Redis beside its queue until replayed. The list and
// the replay are those of `eddy dlq --group sink:<installation>`.

// maxReplayIDs caps the ids one replay request names.
const maxReplayIDs = 1000

// DeadLetterJSON is one dead letter of a sink installation.
type DeadLetterJSON struct {
	ID         string          `json:"id"`
	Reason     string          `json:"reason"`
	FailedAt   time.Time       `json:"failed_at"`
	Attempts   int             `json:"attempts"`
	MessageID  string          `json:"message_id"`
	Type       string          `json:"type"`
	Event      *string         `json:"event"`
	ReceivedAt time.Time       `json:"received_at"`
	Payload    json.RawMessage `json:"payload"`
}

func deadLetterView(d queue.DeadEntry) DeadLetterJSON {
	out := DeadLetterJSON{ID: d.ID, Reason: d.Reason, FailedAt: d.FailedAt, Attempts: d.Attempts,
		MessageID: d.Entry.MessageID, Type: d.Entry.Type, ReceivedAt: d.Entry.ReceivedAt, Payload: json.RawMessage("null")}
	if d.Err == nil && json.Valid(d.Entry.Payload) {
		out.Payload = d.Entry.Payload
		var named struct {
			Event *string `json:"event"`
		}
		if json.Unmarshal(d.Entry.Payload, &named) == nil {
			out.Event = named.Event
		}
	}
	return out
}

// sinkQueue finds the installation a dead-letter route names and its
// queue; it answers the error itself. Only sinks keep dead letters here.
func (a *API) sinkQueue(c *gin.Context, perm auth.Permission) (store.Workspace, store.Installation, *queue.Queue, bool) {
	ws, ok := a.workspace(c, perm)
	if !ok {
		return ws, store.Installation{}, nil, false
	}
	id, ok := a.pluginParam(c)
	if !ok {
		return ws, store.Installation{}, nil, false
	}
	in, err := a.store.InstallationOf(c.Request.Context(), ws, id)
	if err != nil {
		a.fail(c, err)
		return ws, in, nil, false
	}
	if !strings.HasPrefix(id, "sink.") {
		a.fail(c, apierror.New(http.StatusNotFound, "not_found", "%s is not a sink: only sinks keep dead letters", id))
		return ws, in, nil, false
	}
	if a.opts.Redis == nil {
		a.fail(c, apierror.New(http.StatusServiceUnavailable, "unavailable", "dead letters live in Redis, which this API process has not"))
		return ws, in, nil, false
	}
	q, err := queue.New(a.opts.Redis, queue.Options{Prefix: pluginrt.SinkQueuePrefix(a.opts.Prefix, in.ID), Shards: pluginrt.SinkShards})
	if err != nil {
		a.fail(c, err)
		return ws, in, nil, false
	}
	return ws, in, q, true
}

// listDeadLetters answers a page of a sink's dead letters, oldest first.
func (a *API) listDeadLetters(c *gin.Context) {
	_, _, q, ok := a.sinkQueue(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			a.fail(c, FieldErrors{{Field: "limit", Message: "must be a whole number from 1 to 500"}})
			return
		}
		limit = n
	}
	after := c.Query("after")
	if after != "" && !queue.ValidEntryID(after) {
		a.fail(c, FieldErrors{{Field: "after", Message: "is not a dead letter id (such as 1700000000000-0)"}})
		return
	}
	ctx := c.Request.Context()
	entries, err := q.DeadLetters(ctx, pluginrt.DeliverGroup, after, limit+1)
	if err != nil {
		a.fail(c, err)
		return
	}
	total, err := q.DeadLetterCount(ctx, pluginrt.DeliverGroup)
	if err != nil {
		a.fail(c, err)
		return
	}
	data := make([]DeadLetterJSON, 0, min(len(entries), limit))
	for i, d := range entries {
		if i == limit {
			break
		}
		data = append(data, deadLetterView(d))
	}
	out := gin.H{"data": data, "total": total}
	if len(entries) > limit {
		out["next_cursor"] = entries[limit-1].ID
	}
	c.JSON(http.StatusOK, out)
}

type replayRequest struct {
	IDs []string `json:"ids"`
}

// replayDeadLetters puts a sink's dead letters (those named, or all) back
// into its queue.
func (a *API) replayDeadLetters(c *gin.Context) {
	ws, in, q, ok := a.sinkQueue(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	var req replayRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	if len(req.IDs) > maxReplayIDs {
		errs = append(errs, FieldError{Field: "ids", Message: "names more than " + strconv.Itoa(maxReplayIDs) + " dead letters"})
	}
	for i, id := range req.IDs {
		if !queue.ValidEntryID(id) {
			errs = append(errs, FieldError{Field: "ids[" + strconv.Itoa(i) + "]", Message: "is not a dead letter id (such as 1700000000000-0)"})
		}
	}
	if len(errs) > 0 {
		a.fail(c, errs)
		return
	}
	ctx := c.Request.Context()
	n, err := q.Replay(ctx, pluginrt.DeliverGroup, req.IDs)
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.store.RecordWorkspaceAction(ctx, change(c), ws, "plugin.dead_letters.replay", "installation", in.ID,
		map[string]any{"plugin_id": in.PluginID, "replayed": n, "all": len(req.IDs) == 0}); err != nil {
		a.log.ErrorContext(ctx, "audit a dead-letter replay", "installation", in.ID, "err", err)
	}
	c.JSON(http.StatusOK, gin.H{"replayed": n})
}
