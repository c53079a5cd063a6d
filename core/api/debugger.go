package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/queue"
)

// maxDebuggerPage caps the entries one debugger read returns.
const maxDebuggerPage = 200

// sourceDebugger answers a source's live debugger: what became of its
// latest events (accepted or rejected, by the collector or the consent
// gate, and why). Each call keeps the source watched for
// debugger.WatchFor, since events are only recorded while someone watches:
// the console polls it.
func (a *API) sourceDebugger(c *gin.Context) {
	ws, slug, ok := a.source(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	after := c.Query("after")
	if after != "" && !queue.ValidEntryID(after) {
		a.fail(c, FieldErrors{{Field: "after", Message: "is not a debugger cursor (such as 1700000000000-0)"}})
		return
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDebuggerPage {
			a.fail(c, FieldErrors{{Field: "limit", Message: "must be a whole number from 1 to " + strconv.Itoa(maxDebuggerPage)}})
			return
		}
		limit = n
	}
	if a.opts.Redis == nil {
		a.fail(c, apierror.New(http.StatusServiceUnavailable, "unavailable", "the debugger lives in Redis, which this API process has not"))
		return
	}
	ctx := c.Request.Context()
	src, err := a.store.Source(ctx, ws, slug)
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := debugger.Watch(ctx, a.opts.Redis, a.opts.Prefix, ws.ID, src.ID); err != nil {
		a.fail(c, err)
		return
	}
	entries, err := debugger.Read(ctx, a.opts.Redis, a.opts.Prefix, ws.ID, src.ID, after, limit)
	if err != nil {
		a.fail(c, err)
		return
	}
	cursor := after
	if len(entries) > 0 {
		cursor = entries[len(entries)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"data": entries, "cursor": cursor, "watching_until": time.Now().Add(debugger.WatchFor).UTC()})
}
