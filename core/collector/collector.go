// Package collector is Eddy's HTTP entry point for events. It speaks the
// Segment HTTP Tracking API (/v1/track, /v1/batch and the rest, with the
// browser SDK's short paths), so existing Segment and RudderStack SDKs work
// by pointing them at Eddy.
//
// A request is validated as a whole: every message is checked (ids, event
// name, timestamps, size, nesting, key count, UTF-8) and one bad message
// refuses the request with a 400 that lists each bad message, so a client
// never has to guess which part was kept. A valid request is answered 200
// only after the queue (Redis) acknowledged every message; when it cannot,
// the answer is 503 with Retry-After, which SDKs retry.
package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/event"
)

// Enqueuer takes accepted entries; it returns nil only once every entry is
// durably queued. It must not keep the entries' slices after returning.
type Enqueuer interface {
	Enqueue(ctx context.Context, entries []event.Entry) error
}

// Keys finds the source a write key belongs to.
type Keys interface {
	Lookup(writeKey string) (Source, bool)
}

// Collector serves the tracking API.
type Collector struct {
	queue   Enqueuer
	keys    Keys
	cfg     config.Collector
	logger  *slog.Logger
	now     func() time.Time
	bufs    sync.Pool // *bytes.Buffer for request bodies
	gzips   sync.Pool // *gzip.Reader
	retryIn int       // seconds in Retry-After when the queue is down
	// debug records what becomes of the requests of watched sources (the
	// console's live debugger); nil records nothing.
	debug *debugger.Recorder
}

// SetDebugger makes the collector record the requests of the sources the
// console's live debugger watches.
func (c *Collector) SetDebugger(r *debugger.Recorder) { c.debug = r }

// New returns a collector writing to queue and authenticating with keys.
func New(queue Enqueuer, keys Keys, cfg config.Collector, logger *slog.Logger) *Collector {
	return &Collector{
		queue:   queue,
		keys:    keys,
		cfg:     cfg,
		logger:  logger,
		now:     time.Now,
		bufs:    sync.Pool{New: func() any { return new(bytes.Buffer) }},
		retryIn: 5,
	}
}

// calls maps each path segment to the Segment call it is.
var calls = map[string]string{
	"track": "track", "t": "track",
	"page": "page", "p": "page",
	"screen": "screen", "s": "screen",
	"identify": "identify", "i": "identify",
	"group": "group", "g": "group",
	"alias": "alias", "a": "alias",
	"batch": "batch", "b": "batch", "import": "batch",
}

// Register mounts the tracking API on r under /v1.
func (c *Collector) Register(r gin.IRouter) {
	v1 := r.Group("/v1")
	for path, call := range calls {
		v1.POST("/"+path, c.handle(call))
	}
}

func (c *Collector) handle(call string) gin.HandlerFunc {
	return func(g *gin.Context) {
		start := time.Now()
		status := c.serve(g, call)
		requestsTotal.WithLabelValues(call, strconv.Itoa(status)).Inc()
		requestSeconds.Observe(time.Since(start).Seconds())
	}
}

// serve handles one request and returns the status it answered.
func (c *Collector) serve(g *gin.Context, call string) int {
	fail := func(e *apierror.Error, reason string) int {
		if reason != "" {
			rejectedTotal.WithLabelValues(reason).Inc()
		}
		apierror.Abort(g, e)
		return e.Status
	}

	// A Basic-auth key is checked before reading the body.
	var src Source
	authed := false
	if key, _, ok := g.Request.BasicAuth(); ok && key != "" {
		if src, ok = c.keys.Lookup(key); !ok {
			return fail(unknownKey(), "unknown_write_key")
		}
		authed = true
	}

	buf := c.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 4*c.cfg.MaxRequestBytes {
			c.bufs.Put(buf)
		}
	}()
	if e, reason := c.readBody(g.Request, buf); e != nil {
		if authed {
			c.debugRequest(g, src, e.Message)
		}
		return fail(e, reason)
	}
	body := buf.Bytes()
	if !utf8.Valid(body) {
		if authed {
			c.debugRequest(g, src, "the body is not valid UTF-8")
		}
		return fail(apierror.New(http.StatusBadRequest, "invalid_utf8", "the body is not valid UTF-8"), "invalid_utf8")
	}

	now := c.now().UTC().Truncate(time.Microsecond)
	req := parseRequest(call, body, now, c.cfg)

	if !authed {
		if req.writeKey == "" {
			// Without a key nothing else about the request is disclosed.
			return fail(apierror.New(http.StatusUnauthorized, "missing_write_key",
				"a write key is required: HTTP Basic auth with the key as user name, or a writeKey field"), "missing_write_key")
		}
		var ok bool
		if src, ok = c.keys.Lookup(req.writeKey); !ok {
			return fail(unknownKey(), "unknown_write_key")
		}
	}

	if len(req.problems) > 0 {
		c.debugRefused(g, src, req)
		return c.refuse(g, req.problems)
	}

	ip := g.ClientIP()
	for i := range req.entries {
		e := &req.entries[i]
		e.WorkspaceID, e.SourceID, e.IP = src.WorkspaceID, src.SourceID, ip
	}
	ctx, cancel := context.WithTimeout(g.Request.Context(), c.cfg.EnqueueTimeout)
	err := c.queue.Enqueue(ctx, req.entries)
	cancel()
	if err != nil {
		unavailableTotal.Inc()
		c.logger.Warn("queue did not acknowledge; answering 503", "workspace", src.WorkspaceSlug, "messages", len(req.entries), "err", err)
		e := apierror.New(http.StatusServiceUnavailable, "queue_unavailable", "events cannot be queued right now; retry later")
		e.RetryAfter = c.retryIn
		c.debugEntries(g, src, req.entries, debugger.Rejected, "the queue did not acknowledge (503): the client should retry")
		apierror.Abort(g, e)
		return e.Status
	}
	c.debugEntries(g, src, req.entries, debugger.Accepted, "")
	acceptedTotal.WithLabelValues(src.WorkspaceSlug).Add(float64(len(req.entries)))
	batchMessages.Observe(float64(len(req.entries)))
	g.JSON(http.StatusOK, gin.H{"success": true})
	return http.StatusOK
}

func unknownKey() *apierror.Error {
	return apierror.New(http.StatusUnauthorized, "unknown_write_key", "the write key is not known or has been revoked")
}

// refuse answers 400 listing every problem; nothing of the request is kept.
func (c *Collector) refuse(g *gin.Context, problems []Problem) int {
	for _, p := range problems {
		rejectedTotal.WithLabelValues(p.Reason).Inc()
	}
	var e *apierror.Error
	if len(problems) == 1 && problems[0].Index < 0 {
		p := problems[0]
		e = apierror.New(http.StatusBadRequest, p.Reason, "%s", p.Message)
	} else {
		e = apierror.New(http.StatusBadRequest, "invalid_messages",
			"%d message(s) are invalid; nothing from this request was accepted", len(problems))
		e.Details = problems
	}
	apierror.Abort(g, e)
	return e.Status
}

// readBody reads the (possibly gzip-compressed) body into buf, enforcing the
// content type and the request size limit after decompression.
func (c *Collector) readBody(r *http.Request, buf *bytes.Buffer) (*apierror.Error, string) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && mt != "text/plain") {
		return apierror.New(http.StatusUnsupportedMediaType, "unsupported_content_type",
			"Content-Type %q is not accepted: send application/json or text/plain", ct), "unsupported_content_type"
	}
	limit := int64(c.cfg.MaxRequestBytes)
	tooLarge := func() (*apierror.Error, string) {
		return apierror.New(http.StatusRequestEntityTooLarge, "request_too_large",
			"the body exceeds %d bytes (after decompression)", limit), "request_too_large"
	}
	var src io.Reader = http.MaxBytesReader(nil, r.Body, limit+1)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := c.gzipReader(src)
		if err != nil {
			return badGzip(err), "bad_gzip"
		}
		defer c.gzips.Put(zr)
		src = zr
	default:
		return apierror.New(http.StatusUnsupportedMediaType, "unsupported_encoding",
			"Content-Encoding %q is not accepted: send gzip or nothing", enc), "unsupported_encoding"
	}
	n, err := buf.ReadFrom(io.LimitReader(src, limit+1))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr) || n > limit:
		return tooLarge()
	case err != nil && r.Header.Get("Content-Encoding") != "":
		return badGzip(err), "bad_gzip"
	case err != nil:
		return apierror.New(http.StatusBadRequest, "unreadable_body", "the body could not be read: %v", err), "unreadable_body"
	case n == 0:
		return apierror.New(http.StatusBadRequest, "empty_body", "the body is empty"), "empty_body"
	}
	return nil, ""
}

func badGzip(err error) *apierror.Error {
	return apierror.New(http.StatusBadRequest, "bad_gzip", "the gzip body is corrupt or truncated: %v", err)
}

func (c *Collector) gzipReader(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := c.gzips.Get().(*gzip.Reader); ok {
		if err := zr.Reset(r); err != nil {
			c.gzips.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(r)
}

// debugRequest records a request of a watched source refused as a whole.
func (c *Collector) debugRequest(g *gin.Context, src Source, reason string) {
	if !c.debug.Watching(src.WorkspaceID, src.SourceID) {
		return
	}
	c.debug.Record(g.Request.Context(), src.WorkspaceID, src.SourceID, debugger.Entry{
		Stage: debugger.StageCollector, Outcome: debugger.Rejected, Reason: reason})
}

// debugRefused records a watched source's request refused for its
// messages' problems: each problem, and the valid messages, which were
// refused with them.
func (c *Collector) debugRefused(g *gin.Context, src Source, req request) {
	if !c.debug.Watching(src.WorkspaceID, src.SourceID) {
		return
	}
	out := make([]debugger.Entry, 0, len(req.problems)+len(req.entries))
	for _, p := range req.problems {
		reason := p.Message
		if p.Index >= 0 {
			reason = fmt.Sprintf("message %d: %s", p.Index, p.Message)
		}
		out = append(out, debugger.Entry{Stage: debugger.StageCollector, Outcome: debugger.Rejected, Reason: reason})
	}
	c.debug.Record(g.Request.Context(), src.WorkspaceID, src.SourceID, out...)
	c.debugEntries(g, src, req.entries, debugger.Rejected, "refused with the invalid messages of its request (nothing of a request is accepted when one message is invalid)")
}

// debugEntries records a watched source's messages with one outcome.
func (c *Collector) debugEntries(g *gin.Context, src Source, entries []event.Entry, outcome, reason string) {
	if len(entries) == 0 || !c.debug.Watching(src.WorkspaceID, src.SourceID) {
		return
	}
	out := make([]debugger.Entry, len(entries))
	for i := range entries {
		e := &entries[i]
		out[i] = debugger.Entry{At: e.ReceivedAt, Stage: debugger.StageCollector, Outcome: outcome, Reason: reason,
			MessageID: e.MessageID, Type: e.Type}
		out[i].Describe(e.Payload)
	}
	c.debug.Record(g.Request.Context(), src.WorkspaceID, src.SourceID, out...)
}
