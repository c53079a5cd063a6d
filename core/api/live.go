package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/live"
)

// The live view: the open sessions the workers mirror in Redis after each
// commit (core/live), listed, and streamed as Server-Sent Events.

// liveFilter reads the filters of the live sessions list.
func liveFilter(c *gin.Context) (live.Filter, FieldErrors) {
	f := live.Filter{AnonymousID: c.Query("anonymous_id"), UserID: c.Query("user_id"), ProfileID: c.Query("profile_id"),
		ChannelGroup: c.Query("channel_group"), DeviceType: c.Query("device_type"), Country: c.Query("country")}
	var errs FieldErrors
	for _, q := range []struct {
		name, v string
		max     int
	}{
		{"anonymous_id", f.AnonymousID, 1024}, {"user_id", f.UserID, 1024},
		{"channel_group", f.ChannelGroup, 200}, {"device_type", f.DeviceType, 200}, {"country", f.Country, 200},
	} {
		if len(q.v) > q.max {
			errs.Add(q.name, "must be at most %d bytes", q.max)
		}
		errs.Text(q.name, q.v)
	}
	if f.ProfileID != "" {
		if u, err := uuid.Parse(f.ProfileID); err != nil || len(f.ProfileID) != 36 {
			errs.Add("profile_id", "is not an id: it must be a UUID")
		} else {
			f.ProfileID = u.String()
		}
	}
	return f, errs
}

// listLiveSessions answers a page of the workspace's open sessions from the
// live mirror, the most recently active first.
func (a *API) listLiveSessions(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	f, errs := liveFilter(c)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	var cursor string
	limit, ok := a.pageParams(c, &cursor)
	if !ok {
		return
	}
	if a.live == nil {
		a.fail(c, errors.New("the live view needs Redis"))
		return
	}
	sessions, next, err := a.live.Active(c.Request.Context(), ws.ID, f, cursor, limit)
	if errors.Is(err, live.ErrInvalidCursor) {
		err = FieldErrors{{Field: "cursor", Message: "is not a cursor from this list's next_cursor"}}
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	data := make([]any, len(sessions))
	for i, s := range sessions {
		data[i] = sessionView(s)
	}
	out := gin.H{"data": data}
	if next != "" {
		b, _ := json.Marshal(next)
		out["next_cursor"] = base64.RawURLEncoding.EncodeToString(b)
	}
	c.JSON(http.StatusOK, out)
}

// liveChangeJSON is the data of a live stream event.
type liveChangeJSON struct {
	Kind    string      `json:"kind"`
	Session sessionJSON `json:"session"`
	// Absorbed is never null: [] when the change absorbed no session.
	Absorbed []string `json:"absorbed"`
}

var liveKinds = map[string]bool{"started": true, "updated": true, "merged": true, "closed": true}

// liveWriteWait bounds each write of a live stream: a client that stops
// reading is dropped. It replaces the server's WriteTimeout, which would
// end every stream after that long.
const liveWriteWait = 30 * time.Second

// streamLiveSessions streams the workspace's live changes as Server-Sent
// Events until the client leaves or the server shuts down.
func (a *API) streamLiveSessions(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	if a.live == nil {
		a.fail(c, errors.New("the live view needs Redis"))
		return
	}
	select {
	case <-a.closing:
		apierror.Abort(c, unavailable("this server is shutting down; retry through another"))
		return
	default:
	}
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		apierror.Abort(c, unavailable("this server streams to %d clients already; retry later, or through another server", cap(a.streams)))
		return
	}
	ctx := c.Request.Context()
	// Subscribe, and wait for Redis to confirm, before answering: a
	// client that has the headers misses no change published after them.
	sub := a.live.Subscribe(ctx, ws.ID)
	defer sub.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := sub.Receive(rctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return // the client left
		}
		a.fail(c, fmt.Errorf("subscribe to the live changes of %s: %w", ws.Slug, err))
		return
	}
	msgs := sub.Channel()

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(c.Writer)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteWait)) // not every writer supports deadlines
		if _, err := c.Writer.Write(b); err != nil {
			return false
		}
		c.Writer.Flush()
		return true
	}
	_ = rc.SetWriteDeadline(time.Now().Add(liveWriteWait))
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	c.Writer.Flush()

	ping := time.NewTicker(a.opts.LiveHeartbeat)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.closing:
			return
		case <-ping.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		case m, ok := <-msgs:
			if !ok {
				return
			}
			ev, err := liveEvent(m.Payload)
			if err != nil {
				a.log.WarnContext(ctx, "skip a live change", "workspace", ws.Slug, "err", err)
				continue
			}
			if !write(ev) {
				return
			}
		}
	}
}

// unavailable is the answer to a stream this server will not serve now.
func unavailable(format string, args ...any) *apierror.Error {
	e := apierror.New(http.StatusServiceUnavailable, "unavailable", format, args...)
	e.RetryAfter = 5
	return e
}

// liveEvent turns a message of the changes channel into an event.
func liveEvent(payload string) ([]byte, error) {
	ch, err := live.DecodeChange(payload)
	if err != nil {
		return nil, err
	}
	if !liveKinds[ch.Kind] {
		return nil, fmt.Errorf("unknown change kind %q", ch.Kind)
	}
	v := liveChangeJSON{Kind: ch.Kind, Session: sessionView(ch.Session), Absorbed: ch.Absorbed}
	if v.Absorbed == nil {
		v.Absorbed = []string{}
	}
	data, err := json.Marshal(v) // one line: JSON escapes newlines in strings
	if err != nil {
		return nil, fmt.Errorf("encode live change: %w", err)
	}
	b := make([]byte, 0, len(data)+len(ch.Kind)+16)
	b = append(b, "event: "...)
	b = append(b, ch.Kind...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	return b, nil
}
