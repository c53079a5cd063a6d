package actions

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/collector"
	"github.com/eddy-cdp/eddy/core/queue"
)

// Streams serves GET /v1/actions: a visitor's actions as Server-Sent
// Events (`event: action`, `id:` the cursor, `data:` the Action), for the
// tracker's EventSource. The write key comes as ?writeKey= (EventSource
// sends no headers); the visitor as ?anonymousId=.
type Streams struct {
	Keys   collector.Keys
	Hub    *Hub
	Redis  redis.UniversalClient
	Prefix string
	// Max caps the streams this process serves at once (503 beyond);
	// Heartbeat is the interval of comment lines that keep proxies from
	// closing an idle stream.
	Max       int
	Heartbeat time.Duration

	once    sync.Once
	slots   chan struct{}
	closing chan struct{}
	closed  sync.Once
}

func (s *Streams) init() {
	s.once.Do(func() {
		if s.Max <= 0 {
			s.Max = 10000
		}
		if s.Heartbeat <= 0 {
			s.Heartbeat = 25 * time.Second
		}
		s.slots = make(chan struct{}, s.Max)
		s.closing = make(chan struct{})
	})
}

// Close ends every stream being served (http.Server.Shutdown does not).
func (s *Streams) Close() {
	s.init()
	s.closed.Do(func() { close(s.closing) })
}

// Serve is the handler of GET /v1/actions.
func (s *Streams) Serve(c *gin.Context) {
	s.init()
	key := c.Query("writeKey")
	if key == "" {
		apierror.Abort(c, apierror.New(http.StatusUnauthorized, "missing_write_key", "a write key is required: ?writeKey="))
		return
	}
	src, ok := s.Keys.Lookup(key)
	if !ok {
		apierror.Abort(c, apierror.New(http.StatusUnauthorized, "unknown_write_key", "the write key is not known or has been revoked"))
		return
	}
	anon := c.Query("anonymousId")
	if anon == "" || len(anon) > MaxAnonymousIDLen {
		apierror.Abort(c, apierror.New(http.StatusBadRequest, "invalid_anonymous_id",
			"anonymousId is required, at most %d characters", MaxAnonymousIDLen))
		return
	}
	after := c.GetHeader("Last-Event-ID")
	if after != "" && !queue.ValidEntryID(after) {
		apierror.Abort(c, apierror.New(http.StatusBadRequest, "invalid_last_event_id", "Last-Event-ID is not an action id"))
		return
	}
	select {
	case s.slots <- struct{}{}:
		streamsOpen.Inc()
		defer func() { <-s.slots; streamsOpen.Dec() }()
	default:
		refusedStreams.Inc()
		e := apierror.New(http.StatusServiceUnavailable, "unavailable", "too many action streams; retry later")
		e.RetryAfter = 10
		apierror.Abort(c, e)
		return
	}

	// Listen before reading the stream, so that nothing announced in
	// between is missed; what arrives twice is skipped by id.
	live, stop := s.Hub.Listen(src.WorkspaceID, anon)
	defer stop()
	ctx := c.Request.Context()
	recent, err := Since(ctx, s.Redis, s.Prefix, src.WorkspaceID, anon, after)
	if err != nil {
		e := apierror.New(http.StatusServiceUnavailable, "unavailable", "actions cannot be read right now; retry later")
		e.RetryAfter = 5
		apierror.Abort(c, e)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// The server's write timeout would end the stream: each write gets
	// its own deadline instead.
	rc := http.NewResponseController(c.Writer)
	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait)) // not every writer supports deadlines
		if _, err := fmt.Fprintf(c.Writer, format, args...); err != nil {
			return false
		}
		c.Writer.Flush()
		return true
	}
	c.Status(http.StatusOK)
	// retry: how long EventSource waits before reconnecting.
	if !write("retry: 3000\n\n") {
		return
	}
	last := after
	send := func(a Action) bool {
		if last != "" && !queue.EntryIDAfter(a.ID, last) {
			return true
		}
		body, err := jsonAction(a)
		if err != nil {
			return true
		}
		last = a.ID
		sentTotal.Inc()
		return write("id: %s\nevent: action\ndata: %s\n\n", a.ID, body)
	}
	for _, a := range recent {
		if !send(a) {
			return
		}
	}
	beat := time.NewTicker(s.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case a := <-live:
			if !send(a) {
				return
			}
		case <-beat.C:
			if !write(": ping\n\n") {
				return
			}
		}
	}
}

// writeWait bounds each write to a page.
const writeWait = 10 * time.Second
