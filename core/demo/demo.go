// Package demo generates realistic traffic for a fictional shop and sends it
// to an Eddy collector over the Segment HTTP Tracking API. It backs the
// `eddy demo` command and the benchmark.
//
// Visitors arrive continuously, each a browser with a stable anonymousId,
// device and locale, coming through a channel (direct, organic or paid
// search, social, newsletter, referral). Their sessions follow an e-commerce
// funnel: landing page, browsing, searching, product views, cart, checkout
// and, for about 3 % of sessions, an order; some sign up or sign in and are
// identified, some come back for another session, a few alias or join a B2B
// group. Calls use the names and properties of Segment's e-commerce spec.
//
// How the parts fit: catalog.go builds the shop once (products, pages,
// campaigns, devices); generate.go simulates the visitors in virtual time;
// messages.go and encode.go write their calls as JSON into reused buffers.
// Run, in this file, starts the senders: each takes a batch's worth of
// tokens from a shared bucket (pacer.go), builds the batch just before
// sending it, and retries 429 and 5xx answers for up to 10 s.
package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Run.
type Options struct {
	// URL is the collector's base URL, e.g. http://127.0.0.1:8080; batches go
	// to URL/v1/batch.
	URL string
	// WriteKey is the source's write key, sent as the HTTP Basic user name
	// with an empty password.
	WriteKey string
	// Rate is the target number of events per second over all senders;
	// 0 sends as fast as the collector acknowledges.
	Rate float64
	// Duration is how long to send; 0 runs until ctx is cancelled or Events
	// is reached.
	Duration time.Duration
	// Events caps the number of events sent; 0 means no cap.
	Events int64
	// BatchSize is the number of events per request, 100 if 0. At low rates
	// batches are smaller, so that no event waits more than half a second
	// to be sent (SDKs flush on a timer as well).
	BatchSize int
	// Concurrency is the number of parallel senders, 8 if 0.
	Concurrency int
	// Seed makes visitor behaviour deterministic: the same seed and Rate
	// give the same sequence of calls, in the order they are generated
	// (with Concurrency > 1, batches may reach the collector in another
	// order). Identifiers and timestamps stay random, so two seeded runs
	// never send the same messageId. 0 picks a seed from the clock.
	Seed int64
	// Client sends the requests; by default one with a connection pool
	// sized for Concurrency.
	Client *http.Client
	// Logger receives the first rejection and the first failure in full;
	// nil discards.
	Logger *slog.Logger
	// OnAccepted, if set, is called after each 2xx answer with the
	// messageIds of that request. Calls are serialized; ids must not be
	// retained after the call returns (the strings may be).
	OnAccepted func(messageIDs []string)
}

// Stats says what a Run sent and how the collector answered. Every event sent
// ends up in exactly one of Accepted, Rejected and Failed.
type Stats struct {
	// Sent is the number of events in requests that were attempted.
	Sent int64
	// Accepted is the number of events in requests answered with 2xx.
	Accepted int64
	// Rejected is the number of events in requests answered with a status
	// that retrying cannot fix: 4xx other than 429, and 3xx.
	Rejected int64
	// Failed is the number of events given up on: answered 429 or 5xx, or
	// not answered, when the 10 s retry budget ran out or the context was
	// cancelled.
	Failed int64
	// Requests is the number of HTTP requests made, retries included.
	Requests int64
	// Elapsed is the time from the first send slot until the last request
	// finished.
	Elapsed time.Duration
	// LatencyP50 and LatencyP99 are percentiles of the time one request
	// took, from sending to reading the answer, within 2 %.
	LatencyP50, LatencyP99 time.Duration
	// ByType counts the events sent by call type (track, page, identify,
	// alias, group).
	ByType map[string]int64
	// ByEvent counts the track events sent by event name.
	ByEvent map[string]int64
}

// ErrInvalidOptions is wrapped by the error Run returns for unusable Options.
var ErrInvalidOptions = errors.New("demo: invalid options")

const (
	defaultBatchSize   = 100
	defaultConcurrency = 8
	// maxFlushDelay bounds how long an event waits for its batch to fill.
	maxFlushDelay = 500 * time.Millisecond
	// burstTime is how much unused rate the pacer banks while the
	// collector is slow.
	burstTime = time.Second
	// maxSimRate caps the rate the simulation is scaled for. Above it
	// visitors act faster than people do rather than growing the number of
	// visitors in memory.
	maxSimRate = 2000
	// simRateUnpaced is the simulation's rate when Rate is 0.
	simRateUnpaced = 1000
	// warmUpTime is the virtual time simulated before sending, so the first
	// batches already hold carts and checkouts; bounded by warmUpEvents,
	// about 20 ms of work.
	warmUpTime   = 150 * time.Second
	warmUpEvents = 100_000
	// retryBudget is how long a batch is retried before it counts as failed.
	retryBudget    = 10 * time.Second
	minBackoff     = 200 * time.Millisecond
	maxBackoff     = 2 * time.Second
	attemptTimeout = 10 * time.Second
	// shutdownGrace is how long a request on the wire may still take once
	// the context is cancelled.
	shutdownGrace = 2 * time.Second
	// maxLoggedBody bounds the part of a rejection's body that is logged.
	maxLoggedBody = 2 << 10
)

// Run generates and sends events until opts.Duration has passed,
// opts.Events have been sent, or ctx is cancelled, and returns what
// happened. No partial batch is sent at the end. Requests under way when
// Duration or Events is reached are finished, retries included. Cancelling
// ctx is a normal way to stop too: requests on the wire get up to 2 s to be
// answered and are counted by their answer, but nothing is retried any more.
//
// Run returns an error, wrapping ErrInvalidOptions, only when opts are
// unusable; how the collector answered is in Stats.
func Run(ctx context.Context, opts Options) (Stats, error) {
	r, err := newRunner(opts)
	if err != nil {
		return Stats{}, err
	}
	return r.run(ctx), nil
}

// runner is the state of one Run.
type runner struct {
	opts      Options
	endpoint  string
	auth      string
	client    *http.Client
	transport *http.Transport // ours, closed at the end; nil with opts.Client
	log       *slog.Logger
	batchSize int
	spread    time.Duration // time between two events at the target rate
	pacer     *pacer

	// Tunable so that tests need not take 10 s or warm up every time.
	retryBudget time.Duration
	minBackoff  time.Duration
	warmUp      time.Duration

	mu        sync.Mutex // guards gen and remaining
	gen       *generator
	remaining int64 // events left under opts.Events; -1 for no cap

	sent, accepted, rejected, failed, requests atomic.Int64
	latency                                    latencyHistogram

	acceptMu                 sync.Mutex // serializes OnAccepted
	rejectLogged, failLogged atomic.Bool
}

func newRunner(opts Options) (*runner, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = defaultBatchSize
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = defaultConcurrency
	}
	r := &runner{
		opts:        opts,
		endpoint:    strings.TrimRight(opts.URL, "/") + "/v1/batch",
		auth:        "Basic " + base64.StdEncoding.EncodeToString([]byte(opts.WriteKey+":")),
		client:      opts.Client,
		log:         opts.Logger,
		batchSize:   opts.BatchSize,
		retryBudget: retryBudget,
		minBackoff:  minBackoff,
		warmUp:      warmUpTime,
		remaining:   -1,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if opts.Events > 0 {
		r.remaining = opts.Events
	}
	simRate := float64(simRateUnpaced)
	if opts.Rate > 0 {
		r.batchSize = min(r.batchSize, max(1, int(opts.Rate*maxFlushDelay.Seconds())))
		r.spread = time.Duration(float64(time.Second) / opts.Rate)
		simRate = min(opts.Rate, maxSimRate)
	}
	r.gen = newGenerator(opts.Seed, simRate)
	if r.client == nil {
		r.transport = newTransport(opts.Concurrency)
		r.client = &http.Client{Transport: r.transport}
	}
	return r, nil
}

func (o *Options) validate() error {
	u, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		return fmt.Errorf("%w: collector url is empty", ErrInvalidOptions)
	case err != nil:
		return fmt.Errorf("%w: collector url: %w", ErrInvalidOptions, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("%w: collector url %q is not an absolute http(s) url", ErrInvalidOptions, o.URL)
	case o.WriteKey == "":
		return fmt.Errorf("%w: write key is empty", ErrInvalidOptions)
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("%w: rate %v is not a finite number >= 0", ErrInvalidOptions, o.Rate)
	case o.Duration < 0:
		return fmt.Errorf("%w: duration %v is negative", ErrInvalidOptions, o.Duration)
	case o.Events < 0:
		return fmt.Errorf("%w: events %d is negative", ErrInvalidOptions, o.Events)
	case o.BatchSize < 0:
		return fmt.Errorf("%w: batch size %d is negative", ErrInvalidOptions, o.BatchSize)
	case o.Concurrency < 0:
		return fmt.Errorf("%w: concurrency %d is negative", ErrInvalidOptions, o.Concurrency)
	}
	return nil
}

func newTransport(conns int) *http.Transport {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	// The default keeps 2 idle connections per host: with more senders
	// than that, connections would be opened and closed all the time.
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.IdleConnTimeout = 30 * time.Second
	return tr
}

func (r *runner) run(ctx context.Context) Stats {
	if r.transport != nil {
		defer r.transport.CloseIdleConnections()
	}
	r.gen.warmUp(ctx, r.warmUp, warmUpEvents)

	start := time.Now()
	if r.opts.Rate > 0 {
		burst := max(float64(r.batchSize), r.opts.Rate*burstTime.Seconds())
		r.pacer = newPacer(r.opts.Rate, burst, start)
	}
	// stop ends sending; requests under way carry on under ctx.
	stop := ctx
	if r.opts.Duration > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithDeadline(ctx, start.Add(r.opts.Duration))
		defer cancel()
	}

	var wg sync.WaitGroup
	for range r.opts.Concurrency {
		wg.Go(func() { r.sendLoop(stop, ctx) })
	}
	wg.Wait()
	return r.stats(time.Since(start))
}

// batch is a sender's reusable request.
type batch struct {
	body []byte
	n    int
	ids  []string // messageIds, collected only for OnAccepted
}

func (r *runner) sendLoop(stop, ctx context.Context) {
	var b batch
	for stop.Err() == nil {
		n := r.take()
		if n == 0 {
			return
		}
		if r.pacer != nil && !r.pacer.wait(stop, n) {
			return
		}
		if stop.Err() != nil {
			return
		}
		r.fill(&b, n)
		r.deliver(ctx, &b)
	}
}

// take reserves the size of the next batch under the Events cap; 0 means the
// cap is reached.
func (r *runner) take() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remaining < 0 {
		return r.batchSize
	}
	n := int(min(int64(r.batchSize), r.remaining))
	r.remaining -= int64(n)
	return n
}

// fill builds the next n events into b. The generator is shared, so building
// happens under the lock; it is cheap next to the request.
func (r *runner) fill(b *batch, n int) {
	var ids *[]string
	if r.opts.OnAccepted != nil {
		b.ids = b.ids[:0]
		ids = &b.ids
	}
	r.mu.Lock()
	b.body = r.gen.appendBatch(b.body[:0], n, time.Now(), r.spread, ids)
	r.mu.Unlock()
	b.n = n
}

// deliver sends b, retrying 429, 5xx and transport errors with exponential
// backoff (or as Retry-After says) until retryBudget is spent, and counts
// the outcome.
func (r *runner) deliver(ctx context.Context, b *batch) {
	n := int64(b.n)
	r.sent.Add(n)
	first := time.Now()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			restamp(b.body, time.Now())
		}
		res := r.post(ctx, b)
		switch {
		case res.err == nil && res.status >= 200 && res.status < 300:
			r.accepted.Add(n)
			if cb := r.opts.OnAccepted; cb != nil {
				r.acceptMu.Lock()
				cb(b.ids)
				r.acceptMu.Unlock()
			}
			return
		case res.err == nil && !retryable(res.status):
			r.rejected.Add(n)
			if r.rejectLogged.CompareAndSwap(false, true) {
				r.log.Warn("demo: collector rejected a batch; further rejections are only counted",
					"status", res.status, "events", n, "body", string(res.body))
			}
			return
		case ctx.Err() != nil:
			r.failed.Add(n)
			return
		}
		wait := r.backoff(attempt)
		if res.retryAfter >= 0 {
			// Honour it, but do not hammer on "Retry-After: 0".
			wait = max(res.retryAfter, r.minBackoff/4)
		}
		if time.Since(first)+wait > r.retryBudget {
			r.failed.Add(n)
			if r.failLogged.CompareAndSwap(false, true) {
				r.log.Warn("demo: giving up on a batch after retries; further failures are only counted",
					"events", n, "attempts", attempt+1, "last", res.describe())
			}
			return
		}
		r.log.Debug("demo: retrying batch", "attempt", attempt+1, "in", wait, "last", res.describe())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.failed.Add(n)
			return
		}
	}
}

// restamp overwrites the sentAt of a batch body with t, so that a retry's
// sentAt says when it left and the collector's clock-skew correction stays
// right. (Formatting goes through a buffer of its own: AppendFormat may use
// spare capacity as scratch, which here is the rest of the body.)
func restamp(body []byte, t time.Time) {
	var buf [timeLen + 8]byte
	copy(body[sentAtOffset:sentAtOffset+timeLen], appendTime(buf[:0], t))
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// backoff is the pause before retry attempt+1: exponential from minBackoff,
// capped at maxBackoff, with jitter so that senders do not retry in step.
func (r *runner) backoff(attempt int) time.Duration {
	d := min(r.minBackoff<<min(attempt, 16), maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// result is the outcome of one HTTP attempt.
type result struct {
	status     int
	retryAfter time.Duration // -1 when the answer had none
	body       []byte        // the start of the body of a rejection
	err        error
}

func (res result) describe() string {
	if res.err != nil {
		return res.err.Error()
	}
	return strconv.Itoa(res.status) + " " + http.StatusText(res.status)
}

// requestBody lets a sender know when the transport is done reading its
// buffer: the transport may close a request body after Do returns, and the
// buffer is reused for the next batch.
type requestBody struct {
	bytes.Reader
	once sync.Once
	done chan struct{}
}

func (rb *requestBody) Close() error {
	rb.once.Do(func() { close(rb.done) })
	return nil
}

func (r *runner) post(ctx context.Context, b *batch) result {
	// Cancelling ctx stops the run, but an answer already on its way is
	// worth waiting a little for: without it the batch's fate is unknown.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	defer stopGrace()
	ctx = actx
	body := &requestBody{done: make(chan struct{})}
	body.Reset(b.body)
	defer r.release(b, body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, body)
	if err != nil {
		body.Close()
		return result{err: fmt.Errorf("build request: %w", err)}
	}
	req.ContentLength = int64(len(b.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", r.auth)
	req.Header.Set("User-Agent", libraryName+"/"+libraryVersion)

	r.requests.Add(1)
	t0 := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return result{err: fmt.Errorf("post batch to %s: %w", r.endpoint, err)}
	}
	res := result{status: resp.StatusCode, retryAfter: -1}
	if resp.StatusCode >= 300 && !retryable(resp.StatusCode) {
		res.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxLoggedBody))
	}
	if retryable(resp.StatusCode) {
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	// Drain what is left so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	r.latency.record(time.Since(t0))
	return res
}

// release waits until the transport has closed the request body before b's
// buffer is written again. Should that take unusually long, b gets a copy
// and the old buffer is left to the transport.
func (r *runner) release(b *batch, body *requestBody) {
	select {
	case <-body.done:
		return
	default:
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-body.done:
	case <-t.C:
		b.body = bytes.Clone(b.body)
	}
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP date;
// it returns -1 if there is none or it cannot be read.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return -1
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil {
		if s < 0 {
			return -1
		}
		return time.Duration(min(s, int64(time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}

func (r *runner) stats(elapsed time.Duration) Stats {
	s := Stats{
		Sent:       r.sent.Load(),
		Accepted:   r.accepted.Load(),
		Rejected:   r.rejected.Load(),
		Failed:     r.failed.Load(),
		Requests:   r.requests.Load(),
		Elapsed:    elapsed,
		LatencyP50: r.latency.quantile(0.50),
		LatencyP99: r.latency.quantile(0.99),
		ByType:     make(map[string]int64),
		ByEvent:    make(map[string]int64),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range r.gen.counts {
		if n == 0 {
			continue
		}
		info := kindInfo[k]
		s.ByType[info.typ] += n
		if info.event != "" {
			s.ByEvent[info.event] += n
		}
	}
	return s
}
