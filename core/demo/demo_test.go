package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testWriteKey = "wk_demo_test"

// fakeCollector stands in for Eddy's collector. The real one (core/collector)
// is being written at the same time as this package, so these tests check
// the Segment protocol the demo speaks against a fake that records every
// request and answers as the test says; running the demo against the real
// collector belongs to the collector's and the benchmark's tests.
type fakeCollector struct {
	t   *testing.T
	srv *httptest.Server
	// respond decides the answer to the n-th request (from 1); nil answers
	// 200 {"success":true}.
	respond func(n int, r received) (status int, header http.Header, body string)

	mu       sync.Mutex
	requests []received
}

// received is one request as the fake collector saw and answered it.
type received struct {
	ctx      context.Context // the request's; done when the client hangs up
	at       time.Time
	sentAt   time.Time
	messages []message
	raw      []json.RawMessage
	status   int
}

func (r received) ids() []string {
	ids := make([]string, len(r.messages))
	for i, m := range r.messages {
		ids[i] = m.MessageID
	}
	return ids
}

func newFakeCollector(t *testing.T) *fakeCollector {
	f := &fakeCollector{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCollector) serve(w http.ResponseWriter, r *http.Request) {
	t := f.t
	if r.Method != http.MethodPost || r.URL.Path != "/v1/batch" {
		t.Errorf("request is %s %s, want POST /v1/batch", r.Method, r.URL.Path)
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != testWriteKey || pass != "" {
		t.Errorf("basic auth is %q:%q (ok=%v), want the write key and an empty password", user, pass, ok)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type is %q, want application/json", ct)
	}
	// Unreadable requests get a 400, never an implicit 200 that would
	// count as accepted.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("read body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var doc struct {
		Batch  []json.RawMessage `json:"batch"`
		SentAt string            `json:"sentAt"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Errorf("body is not a Segment batch: %v\n%.500s", err, body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rec := received{ctx: r.Context(), at: time.Now(), raw: doc.Batch}
	if rec.sentAt, err = time.Parse(time.RFC3339Nano, doc.SentAt); err != nil {
		t.Errorf("sentAt %q is not RFC 3339", doc.SentAt)
	}
	for _, raw := range doc.Batch {
		var m message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Errorf("message does not decode: %v\n%s", err, raw)
			continue
		}
		if p := checkEnvelope(m); p != "" {
			t.Errorf("%s\n%s", p, raw)
		}
		rec.messages = append(rec.messages, m)
	}

	f.mu.Lock()
	n := len(f.requests) + 1
	f.mu.Unlock()
	status, header, answer := http.StatusOK, http.Header(nil), `{"success":true}`
	if f.respond != nil {
		status, header, answer = f.respond(n, rec)
	}
	rec.status = status
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	f.mu.Unlock()
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (f *fakeCollector) received() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// acceptedIDs returns the messageIds of the requests answered 2xx.
func (f *fakeCollector) acceptedIDs() []string {
	var ids []string
	for _, r := range f.received() {
		if r.status >= 200 && r.status < 300 {
			ids = append(ids, r.ids()...)
		}
	}
	return ids
}

func (f *fakeCollector) options(o Options) Options {
	o.URL = f.srv.URL
	o.WriteKey = testWriteKey
	return o
}

func runDemo(t *testing.T, opts Options) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAccounting(t, st)
	return st
}

// runQuick is runDemo without the warm-up: for tests of delivery, where the
// mix of events does not matter, it saves a second per run under -race.
func runQuick(t *testing.T, opts Options) Stats {
	t.Helper()
	r, err := newRunner(opts)
	if err != nil {
		t.Fatalf("newRunner: %v", err)
	}
	r.warmUp = 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := r.run(ctx)
	checkAccounting(t, st)
	return st
}

// checkAccounting checks that every event sent is counted exactly once.
func checkAccounting(t *testing.T, st Stats) {
	t.Helper()
	if st.Sent != st.Accepted+st.Rejected+st.Failed {
		t.Errorf("sent %d != accepted %d + rejected %d + failed %d", st.Sent, st.Accepted, st.Rejected, st.Failed)
	}
	var byType int64
	for _, n := range st.ByType {
		byType += n
	}
	if byType != st.Sent {
		t.Errorf("ByType adds up to %d, want Sent = %d", byType, st.Sent)
	}
}

func TestRunSendsSegmentBatches(t *testing.T) {
	f := newFakeCollector(t)
	st := runDemo(t, f.options(Options{Events: 2500, Seed: 1}))

	reqs := f.received()
	ids := map[string]bool{}
	for _, r := range reqs {
		if len(r.messages) != defaultBatchSize {
			t.Errorf("a request holds %d events, want batches of %d", len(r.messages), defaultBatchSize)
		}
		for _, m := range r.messages {
			if ids[m.MessageID] {
				t.Errorf("messageId %s sent twice", m.MessageID)
			}
			ids[m.MessageID] = true
		}
	}
	if len(ids) != 2500 || st.Sent != 2500 || st.Accepted != 2500 || st.Requests != 25 {
		t.Errorf("collector got %d events in %d requests; stats say sent %d, accepted %d in %d requests; want 2500 in 25",
			len(ids), len(reqs), st.Sent, st.Accepted, st.Requests)
	}
	if st.LatencyP50 <= 0 || st.LatencyP99 < st.LatencyP50 {
		t.Errorf("latency p50 %v, p99 %v; want 0 < p50 <= p99", st.LatencyP50, st.LatencyP99)
	}
}

func TestRunSendsAPlausibleMix(t *testing.T) {
	f := newFakeCollector(t)
	st := runDemo(t, f.options(Options{Events: 5000, Seed: 2}))

	count := map[string]int{}
	for _, r := range f.received() {
		for _, m := range r.messages {
			count[m.Type]++
			if m.Type == "track" {
				count[m.Event]++
			}
		}
	}
	for key, n := range count {
		stat := st.ByType[key]
		if !slices.Contains([]string{"page", "track", "identify", "alias", "group"}, key) {
			stat = st.ByEvent[key]
		}
		if int64(n) != stat {
			t.Errorf("collector got %d %s, stats say %d", n, key, stat)
		}
	}
	pages, views, adds, orders := count["page"], count["Product Viewed"], count["Product Added"], count["Order Completed"]
	if !(0 < orders && orders < adds && adds < views && views < pages) {
		t.Errorf("want 0 < orders < adds to cart < product views < page views, got %d, %d, %d, %d (all: %v)",
			orders, adds, views, pages, count)
	}
	for _, c := range []struct {
		what     string
		n        int
		min, max float64
	}{
		{"page views", pages, 0.35, 0.65},
		{"product views", views, 0.12, 0.35},
		{"adds to cart", adds, 0.01, 0.08},
		{"orders", orders, 0.001, 0.01},
		{"identifies", count["identify"], 0.003, 0.04},
		{"searches", count["Products Searched"], 0.01, 0.1},
	} {
		if share := float64(c.n) / 5000; share < c.min || share > c.max {
			t.Errorf("%s are %.2f%% of events, want %.1f-%.1f%%", c.what, 100*share, 100*c.min, 100*c.max)
		}
	}
}

func TestRunPacesToRate(t *testing.T) {
	for _, tc := range []struct {
		rate     float64
		duration time.Duration
	}{
		{2000, 1500 * time.Millisecond},
		{800, 2 * time.Second},
	} {
		t.Run(time.Duration(float64(time.Second)/tc.rate).String()+"/event", func(t *testing.T) {
			f := newFakeCollector(t)
			start := time.Now()
			st := runQuick(t, f.options(Options{Rate: tc.rate, Duration: tc.duration}))
			took := time.Since(start)

			want := tc.rate * tc.duration.Seconds()
			got := len(f.acceptedIDs())
			if float64(got) < 0.9*want || float64(got) > 1.1*want {
				t.Errorf("rate %v for %v sent %d events, want %.0f ± 10%%", tc.rate, tc.duration, got, want)
			}
			if st.Sent != int64(got) {
				t.Errorf("stats say %d sent, collector got %d", st.Sent, got)
			}
			if took > tc.duration+2*time.Second {
				t.Errorf("Run took %v for a duration of %v", took, tc.duration)
			}
		})
	}
}

func TestRunStopsAtTheEventsCap(t *testing.T) {
	for _, tc := range []struct {
		events      int64
		batch, conc int
	}{
		{1, 0, 0},
		{99, 0, 0},
		{100, 0, 0},
		{1234, 0, 0},
		{1234, 7, 3},
	} {
		f := newFakeCollector(t)
		st := runQuick(t, f.options(Options{Events: tc.events, BatchSize: tc.batch, Concurrency: tc.conc}))
		got := int64(len(f.acceptedIDs()))
		if got != tc.events || st.Sent != tc.events || st.Accepted != tc.events {
			t.Errorf("Events %d (batch %d, concurrency %d): collector got %d, stats say sent %d, accepted %d",
				tc.events, tc.batch, tc.conc, got, st.Sent, st.Accepted)
		}
	}
}

func TestRunHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter func() string
		wait       time.Duration // the least the retry must wait
	}{
		{"503 with seconds", http.StatusServiceUnavailable, func() string { return "1" }, time.Second},
		{"429 with a date", http.StatusTooManyRequests,
			func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCollector(t)
			f.respond = func(n int, _ received) (int, http.Header, string) {
				if n <= 2 {
					return tc.status, http.Header{"Retry-After": {tc.retryAfter()}}, `{"error":"busy"}`
				}
				return http.StatusOK, nil, `{"success":true}`
			}
			st := runQuick(t, f.options(Options{Events: 300, Concurrency: 2}))

			if st.Accepted != 300 || st.Failed != 0 || len(f.acceptedIDs()) != 300 {
				t.Errorf("accepted %d (collector: %d), failed %d; want all 300 accepted in the end",
					st.Accepted, len(f.acceptedIDs()), st.Failed)
			}
			if st.Requests != 5 {
				t.Errorf("%d requests, want 3 batches + 2 retries", st.Requests)
			}
			// Each refused batch must come back, whole, no sooner than
			// Retry-After said, with a new sentAt.
			reqs := f.received()
			for _, refused := range reqs[:2] {
				i := slices.IndexFunc(reqs[2:], func(r received) bool { return slices.Equal(r.ids(), refused.ids()) })
				if i < 0 {
					t.Fatalf("batch starting %s was refused and never retried whole", refused.ids()[0])
				}
				retry := reqs[2+i]
				if gap := retry.at.Sub(refused.at); gap < tc.wait-50*time.Millisecond {
					t.Errorf("retried after %v, want at least %v", gap, tc.wait)
				}
				if !retry.sentAt.After(refused.sentAt) {
					t.Errorf("retry has sentAt %v, not after the first attempt's %v", retry.sentAt, refused.sentAt)
				}
			}
		})
	}
}

func TestRunGivesUpWhenRetriesRunOut(t *testing.T) {
	f := newFakeCollector(t)
	f.respond = func(int, received) (int, http.Header, string) {
		return http.StatusServiceUnavailable, nil, "down for maintenance"
	}
	r, err := newRunner(f.options(Options{Events: 250, Concurrency: 2}))
	if err != nil {
		t.Fatal(err)
	}
	r.retryBudget, r.minBackoff, r.warmUp = 300*time.Millisecond, 10*time.Millisecond, 0
	st := r.run(context.Background())
	checkAccounting(t, st)
	if st.Failed != 250 || st.Accepted != 0 || st.Rejected != 0 {
		t.Errorf("failed %d, accepted %d, rejected %d; want all 250 failed", st.Failed, st.Accepted, st.Rejected)
	}
	if st.Requests <= 3 {
		t.Errorf("%d requests for 3 batches: nothing was retried", st.Requests)
	}
}

func TestOnAcceptedSeesExactlyTheAcceptedIDs(t *testing.T) {
	f := newFakeCollector(t)
	f.respond = func(n int, _ received) (int, http.Header, string) {
		switch {
		case n%5 == 0:
			return http.StatusBadRequest, nil, `{"error":"invalid batch"}`
		case n%7 == 0:
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"0"}}, ""
		}
		return http.StatusAccepted, nil, ""
	}
	var mu sync.Mutex
	var seen []string
	st := runQuick(t, f.options(Options{Events: 3000, BatchSize: 50, OnAccepted: func(ids []string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ids...)
	}}))

	want := f.acceptedIDs()
	slices.Sort(want)
	slices.Sort(seen)
	if !slices.Equal(seen, want) {
		t.Errorf("OnAccepted saw %d ids, the collector accepted %d; they differ", len(seen), len(want))
	}
	if st.Accepted != int64(len(want)) || st.Rejected == 0 || st.Accepted+st.Rejected != 3000 {
		t.Errorf("accepted %d (collector: %d), rejected %d; want the collector's count and some rejections",
			st.Accepted, len(want), st.Rejected)
	}
}

func TestRejectionBodyIsLoggedOnce(t *testing.T) {
	f := newFakeCollector(t)
	f.respond = func(int, received) (int, http.Header, string) {
		return http.StatusUnauthorized, nil, `{"error":"unknown write key"}`
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	st := runQuick(t, f.options(Options{Events: 500, Logger: logger}))

	if st.Rejected != 500 || st.Accepted != 0 {
		t.Errorf("rejected %d, accepted %d; want all 500 rejected", st.Rejected, st.Accepted)
	}
	if n := strings.Count(logs.String(), "unknown write key"); n != 1 {
		t.Errorf("the rejection body was logged %d times, want once; log:\n%s", n, logs.String())
	}
}

func TestRunIsDeterministicWithASeed(t *testing.T) {
	sequence := func(seed int64) []string {
		f := newFakeCollector(t)
		runDemo(t, f.options(Options{Events: 1500, Seed: seed, Concurrency: 1}))
		var names []string
		for _, r := range f.received() {
			for _, m := range r.messages {
				names = append(names, m.Type+":"+m.Event+m.Name)
			}
		}
		return names
	}
	a, b, c := sequence(7), sequence(7), sequence(8)
	if !slices.Equal(a, b) {
		i := 0
		for i < min(len(a), len(b)) && a[i] == b[i] {
			i++
		}
		t.Errorf("seed 7 gave two sequences, first different at event %d of %d", i, len(a))
	}
	if slices.Equal(a, c) {
		t.Error("seeds 7 and 8 gave the same sequence")
	}
}

func TestRunStopsWhenTheContextIsCancelled(t *testing.T) {
	f := newFakeCollector(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled time.Time
	var once sync.Once
	cancelAfterFirstBatch := func([]string) {
		once.Do(func() {
			cancelled = time.Now()
			cancel()
		})
	}
	st, err := Run(ctx, f.options(Options{Rate: 1000, OnAccepted: cancelAfterFirstBatch}))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkAccounting(t, st)
	if cancelled.IsZero() {
		t.Fatal("nothing was accepted")
	}
	if took := time.Since(cancelled); took > time.Second {
		t.Errorf("Run returned %v after its context was cancelled", took)
	}
	if got := len(f.acceptedIDs()); st.Accepted != int64(got) || st.Failed != 0 {
		t.Errorf("stats say %d accepted and %d failed, collector accepted %d; want all accepted",
			st.Accepted, st.Failed, got)
	}
}

func TestCancellingWaitsBrieflyForRequestsOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name          string
		delay         time.Duration // how long the collector takes to answer
		wantAccepted  bool
		maxAfterAbort time.Duration
	}{
		{"slow answer is waited for", 300 * time.Millisecond, true, time.Second},
		{"hung collector is given up on", time.Minute, false, shutdownGrace + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := newFakeCollector(t)
			f.respond = func(_ int, r received) (int, http.Header, string) {
				cancel() // the run is stopped while this request is under way
				select {
				case <-time.After(tc.delay):
				case <-r.ctx.Done():
				}
				return http.StatusOK, nil, ""
			}
			r, err := newRunner(f.options(Options{Events: 100, Concurrency: 1}))
			if err != nil {
				t.Fatal(err)
			}
			r.warmUp = 0
			st := r.run(ctx)
			checkAccounting(t, st)
			if st.Sent != 100 {
				t.Fatalf("sent %d, want the one batch of 100", st.Sent)
			}
			if got := st.Accepted == 100; got != tc.wantAccepted {
				t.Errorf("accepted %d, failed %d; want accepted: %v", st.Accepted, st.Failed, tc.wantAccepted)
			}
			if st.Elapsed > tc.maxAfterAbort {
				t.Errorf("Run took %v after being cancelled, want at most %v", st.Elapsed, tc.maxAfterAbort)
			}
		})
	}
}

func TestRunRejectsInvalidOptions(t *testing.T) {
	valid := Options{URL: "http://127.0.0.1:1", WriteKey: testWriteKey}
	for _, tc := range []struct {
		name   string
		change func(*Options)
	}{
		{"no url", func(o *Options) { o.URL = "" }},
		{"relative url", func(o *Options) { o.URL = "127.0.0.1:8080" }},
		{"ftp url", func(o *Options) { o.URL = "ftp://example.com" }},
		{"no write key", func(o *Options) { o.WriteKey = "" }},
		{"negative rate", func(o *Options) { o.Rate = -1 }},
		{"negative duration", func(o *Options) { o.Duration = -time.Second }},
		{"negative events", func(o *Options) { o.Events = -1 }},
		{"negative batch size", func(o *Options) { o.BatchSize = -1 }},
		{"negative concurrency", func(o *Options) { o.Concurrency = -1 }},
	} {
		o := valid
		tc.change(&o)
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: Run returned %v, want ErrInvalidOptions", tc.name, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", -1},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-1", -1},
		{"soon", -1},
		{"99999999", time.Hour},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.header, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestPacerSpacesBatchesAtTheRate(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	p := newPacer(1000, 1000, start)
	for _, step := range []struct {
		now  time.Time
		n    int
		want time.Duration
	}{
		{at(0), 100, 100 * time.Millisecond}, // starts empty: the batch is due when full
		{at(0), 100, 200 * time.Millisecond}, // a second sender queues behind
		{at(200), 100, 100 * time.Millisecond},
		{at(5000), 100, 0}, // idle: credit piles up, up to the burst
		{at(5000), 900, 0}, // ... which is spent at once
		{at(5000), 100, 100 * time.Millisecond},
	} {
		if got := p.reserve(step.now, step.n); got != step.want {
			t.Errorf("reserve(%v, %d) = %v, want %v", step.now.Sub(start), step.n, got, step.want)
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var h latencyHistogram
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > 1.03*float64(tc.want) {
			t.Errorf("quantile(%v) = %v, want %v within 3%%", tc.q, got, tc.want)
		}
	}
}
