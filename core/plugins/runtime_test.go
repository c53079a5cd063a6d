package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/core/privacy"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// Built once: the test processor (it marks properties.plugin_saw and
// refuses events named "Refuse Me") and the real webhook sink.
var (
	buildOnce          sync.Once
	upperM, webhookM   *plugin.Manifest
	mqttM, cartM       *plugin.Manifest
	greeterM           *plugin.Manifest
	buildErr           error
	wsA, wsB           = "0000000a-0000-4000-8000-000000000000", "0000000b-0000-4000-8000-000000000000"
	testSecret         = "0123456789abcdef-secret"
	defaultTestTimeout = 20 * time.Second
)

func TestMain(m *testing.M) {
	code := m.Run()
	pluginhost.CleanupClients()
	os.Exit(code)
}

func manifests(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		// Built under the first test; the folders outlive it through a
		// process-level temp dir.
		bt := &keepTB{TB: t}
		upperM = plugintest.Build(bt, "../pluginhost/testdata/upper")
		webhookM = plugintest.Build(bt, "../../plugins/sinks/webhook")
		mqttM = plugintest.Build(bt, "../../plugins/sources/mqtt")
		cartM = plugintest.Build(bt, "../../plugins/apps/cart_recovery")
		greeterM = plugintest.Build(bt, "testdata/greeter")
	})
	if upperM == nil || webhookM == nil || mqttM == nil || cartM == nil || greeterM == nil {
		t.Fatal("building the test plugins failed in an earlier test")
	}
}

// keepTB gives Build a temp dir that outlives one test.
type keepTB struct{ testing.TB }

func (k *keepTB) TempDir() string {
	d, err := os.MkdirTemp("", "eddy-plugins-test-")
	if err != nil {
		k.Fatal(err)
	}
	return d
}

// harness is a runtime over real Redis queues with the process and route
// groups running, as the worker runs them.
type harness struct {
	t      *testing.T
	rt     *Runtime
	ingest *queue.Queue
	events *queue.Queue
	rdb    *redis.Client
	mu     sync.Mutex
	ins    []Installation
}

func newHarness(t *testing.T, ins ...Installation) *harness {
	t.Helper()
	return newHarnessWith(t, nil, ins...)
}

// newHarnessWith is newHarness with the runtime's options changed by opt.
func newHarnessWith(t *testing.T, opt func(*Options), ins ...Installation) *harness {
	t.Helper()
	manifests(t)
	rdb, prefix := testenv.Redis(t)
	ingest, err := queue.New(rdb, queue.Options{Prefix: prefix + ":in", Shards: 2})
	testenv.Must(t, err, "ingest queue")
	events, err := queue.New(rdb, queue.Options{Prefix: prefix, Shards: 2})
	testenv.Must(t, err, "events queue")
	h := &harness{t: t, ingest: ingest, events: events, ins: ins, rdb: rdb}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	catalog := func(_ context.Context, _, id string) (Plugin, error) {
		switch id {
		case upperM.ID:
			return Plugin{Manifest: upperM}, nil
		case webhookM.ID:
			return Plugin{Manifest: webhookM}, nil
		case mqttM.ID:
			return Plugin{Manifest: mqttM}, nil
		case cartM.ID:
			return Plugin{Manifest: cartM}, nil
		case greeterM.ID:
			return Plugin{Manifest: greeterM}, nil
		case "sink.webhook_analytics":
			// The webhook binary under another id: a second sink.
			m := *webhookM
			m.ID = id
			return Plugin{Manifest: &m}, nil
		}
		if p, ok := deletionPlugin(id); ok {
			return p, nil
		}
		return Plugin{}, fmt.Errorf("unknown plugin %s", id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts := Options{
		Prefix: prefix, Worker: "w1", Logger: log, Ingest: ingest, Collector: defaultCollector(t),
		Sinks: SinkOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, LeaseTTL: time.Second, Block: 50 * time.Millisecond},
	}
	if opt != nil {
		opt(&opts)
	}
	h.rt, err = New(ctx, h.list, catalog, rdb, events, opts)
	testenv.Must(t, err, "new runtime")
	testenv.Must(t, h.rt.Reload(ctx), "reload")
	var wg sync.WaitGroup
	for _, c := range []struct {
		q     *queue.Queue
		group string
		h     queue.Handler
	}{{ingest, ProcessGroup, h.rt.Process}, {events, RouteGroup, h.rt.Route}} {
		testenv.Must(t, c.q.EnsureGroup(ctx, c.group), "group")
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.q.Consume(ctx, queue.ConsumerOptions{Group: c.group, Consumer: "w1", Block: 50 * time.Millisecond,
				LeaseTTL: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: log}, c.h)
		}()
	}
	testenv.Must(t, events.EnsureGroup(ctx, "store"), "store group")
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.rt.Close(context.Background())
	})
	return h
}

func (h *harness) list(context.Context) ([]Installation, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Installation(nil), h.ins...), nil
}

// set replaces the installations and reloads, as the API's changes are
// picked up.
func (h *harness) set(ins ...Installation) {
	h.mu.Lock()
	h.ins = ins
	h.mu.Unlock()
	testenv.Must(h.t, h.rt.Reload(context.Background()), "reload")
}

func entry(ws, id, name string) event.Entry {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return event.Entry{WorkspaceID: ws, SourceID: "00000000-0000-4000-8000-0000000000f0", MessageID: id, Type: "track",
		ShardKey: "anon-" + id, ReceivedAt: now, Timestamp: now, IP: "203.0.113.9",
		Payload: []byte(`{"type":"track","event":"` + name + `","anonymousId":"anon-` + id + `","messageId":"` + id + `"}`)}
}

// stored reads what reached the events queue (what storage reads), by
// message id.
func (h *harness) stored(want int) map[string]event.Entry {
	h.t.Helper()
	got := map[string]event.Entry{}
	testenv.Eventually(h.t, defaultTestTimeout, fmt.Sprintf("%d events in the events queue", want), func() bool {
		ctx := context.Background()
		for shard := range h.events.Shards() {
			msgs, err := h.events.Range(ctx, shard, "-", "+", 10000)
			if err != nil {
				h.t.Fatalf("range: %v", err)
			}
			for _, m := range msgs {
				got[m.Entry.MessageID] = m.Entry
			}
		}
		return len(got) >= want
	})
	return got
}

// storedNow reads the events queue as it is.
func (h *harness) storedNow() map[string]event.Entry {
	got := map[string]event.Entry{}
	for shard := range h.events.Shards() {
		msgs, err := h.events.Range(context.Background(), shard, "-", "+", 10000)
		if err != nil {
			h.t.Fatalf("range: %v", err)
		}
		for _, m := range msgs {
			got[m.Entry.MessageID] = m.Entry
		}
	}
	return got
}

func processorIn(ws string, pos int) Installation {
	return Installation{ID: "proc-" + ws[:8], WorkspaceID: ws, PluginID: "processor.upper", Enabled: true, Config: json.RawMessage(`{}`), Position: pos, UpdatedAt: time.Unix(1, 0)}
}

func webhookIn(id, ws, url string, rateLimit float64) Installation {
	cfg, _ := json.Marshal(map[string]any{"url": url, "secret": testSecret, "batch_size": 50})
	return Installation{ID: id, WorkspaceID: ws, PluginID: "sink.webhook", Enabled: true, Config: cfg, RateLimit: rateLimit, UpdatedAt: time.Unix(1, 0)}
}

// A processor enabled in workspace A changes A's events, never sees B's;
// what it rejects is dead-lettered; B's events pass through unchanged.
func TestProcessorsRunPerWorkspace(t *testing.T) {
	h := newHarness(t, processorIn(wsA, 0))
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{
		entry(wsA, "a1", "Viewed"), entry(wsB, "b1", "Viewed"), entry(wsA, "a2", "Refuse Me"), entry(wsB, "b2", "Refuse Me"),
	}), "enqueue")
	got := h.stored(3)
	if len(got) != 3 {
		t.Fatalf("events queue holds %d events, want 3 (a1, b1, b2): %v", len(got), got)
	}
	if !strings.Contains(string(got["a1"].Payload), `"plugin_saw":true`) {
		t.Errorf("a1 was not processed: %s", got["a1"].Payload)
	}
	for _, id := range []string{"b1", "b2"} {
		if strings.Contains(string(got[id].Payload), "plugin_saw") {
			t.Errorf("workspace B's %s reached A's processor: %s", id, got[id].Payload)
		}
	}
	if got["a1"].IP != "203.0.113.9" || got["a1"].WorkspaceID != wsA {
		t.Errorf("a1 lost its identity: %+v", got["a1"])
	}
	testenv.Eventually(t, defaultTestTimeout, "a2 dead-lettered", func() bool {
		d, _ := h.ingest.DeadLetters(ctx, ProcessGroup, "", 10)
		return len(d) == 1 && d[0].Entry.MessageID == "a2" && strings.Contains(d[0].Reason, "rejected by processor processor.upper: refused on request")
	})
}

// webhookServer records delivered message ids; fail decides the answer
// for each request.
type webhookServer struct {
	*httptest.Server
	mu        sync.Mutex
	delivered map[string]int
	requests  atomic.Int64
	// starts are the requests' arrival times, in order; firstEnd is when
	// the first request was answered.
	starts   []time.Time
	firstEnd time.Time
}

func newWebhookServer(t *testing.T, answer func(n int64) int) *webhookServer {
	w := &webhookServer{delivered: map[string]int{}}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		n := w.requests.Add(1)
		w.starts = append(w.starts, time.Now())
		w.mu.Unlock()
		code := answer(n)
		if n == 1 {
			defer func() {
				w.mu.Lock()
				w.firstEnd = time.Now()
				w.mu.Unlock()
			}()
		}
		body, _ := io.ReadAll(r.Body)
		if code != http.StatusOK {
			if code == http.StatusTooManyRequests {
				rw.Header().Set("Retry-After", "1")
			}
			rw.WriteHeader(code)
			return
		}
		var b struct {
			Batch []struct {
				MessageID string `json:"messageId"`
			} `json:"batch"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		for _, m := range b.Batch {
			w.delivered[m.MessageID]++
		}
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhookServer) ids() (ids []string, dup bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, n := range w.delivered {
		ids = append(ids, id)
		dup = dup || n > 1
	}
	sort.Strings(ids)
	return ids, dup
}

func entries(ws, prefix string, n int) []event.Entry {
	out := make([]event.Entry, n)
	for i := range out {
		out[i] = entry(ws, fmt.Sprintf("%s%03d", prefix, i), "Viewed")
	}
	return out
}

// A sink that is down gets every event once it is back, once each; a
// sink of workspace A never receives workspace B's events; a failing
// sink holds back neither storage nor another sink.
func TestSinkDownThenBackAndIsolated(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	slow := newWebhookServer(t, func(int64) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	fine := newWebhookServer(t, func(int64) int { return http.StatusOK })
	h := newHarness(t, webhookIn("sink-down", wsA, slow.URL, 0), webhookIn("sink-fine", wsA, fine.URL, 0))
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, append(entries(wsA, "a", 60), entries(wsB, "b", 40)...)), "enqueue")

	// Storage and the healthy sink get everything meanwhile.
	h.stored(100)
	testenv.Eventually(t, defaultTestTimeout, "the healthy sink has A's 60 events", func() bool {
		ids, _ := fine.ids()
		return len(ids) == 60
	})
	testenv.Eventually(t, defaultTestTimeout, "the down sink was retried", func() bool { return slow.requests.Load() >= 3 })
	if ids, _ := slow.ids(); len(ids) != 0 {
		t.Fatalf("the down sink recorded %d events", len(ids))
	}
	down.Store(false)
	testenv.Eventually(t, defaultTestTimeout, "the sink that came back has A's 60 events", func() bool {
		ids, _ := slow.ids()
		return len(ids) == 60
	})
	for _, w := range []*webhookServer{slow, fine} {
		ids, dup := w.ids()
		if dup {
			t.Errorf("a sink received an event twice")
		}
		for _, id := range ids {
			if !strings.HasPrefix(id, "a") {
				t.Errorf("workspace A's sink received %s", id)
			}
		}
	}
}

// Events a destination refuses for good are dead-lettered, and replayed
// once it accepts them.
func TestSinkDeadLettersAndReplay(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	w := newWebhookServer(t, func(int64) int {
		if refuse.Load() {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	h := newHarness(t, webhookIn("sink-dlq", wsA, w.URL, 0))
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, entries(wsA, "a", 5)), "enqueue")
	var dead []queue.DeadEntry
	testenv.Eventually(t, defaultTestTimeout, "5 dead letters", func() bool {
		var err error
		dead, err = h.rt.DeadLetters(ctx, "sink-dlq", "", 100)
		return err == nil && len(dead) == 5
	})
	if !strings.Contains(dead[0].Reason, "refused by sink.webhook: HTTP 400") {
		t.Errorf("reason = %q", dead[0].Reason)
	}
	refuse.Store(false)
	n, err := h.rt.Replay(ctx, "sink-dlq", nil)
	testenv.Must(t, err, "replay")
	if n != 5 {
		t.Fatalf("replayed %d, want 5", n)
	}
	testenv.Eventually(t, defaultTestTimeout, "replayed events delivered", func() bool {
		ids, _ := w.ids()
		return len(ids) == 5
	})
}

// A throttled sink is paced by its rate limit; a 429's Retry-After is
// honoured.
func TestSinkThrottled(t *testing.T) {
	w := newWebhookServer(t, func(n int64) int {
		if n == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	h := newHarness(t, webhookIn("sink-slow", wsA, w.URL, 10))
	ctx := context.Background()
	start := time.Now()
	testenv.Must(t, h.ingest.Enqueue(ctx, entries(wsA, "a", 30)), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "30 events delivered", func() bool {
		ids, _ := w.ids()
		return len(ids) == 30
	})
	// 30 events at 10/s with a burst of 10: at least 2s whatever the
	// machine's speed.
	if d := time.Since(start); d < 1950*time.Millisecond {
		t.Errorf("30 events at 10/s took %s", d)
	}
	// After the 429's Retry-After of 1s no write starts for a second, on
	// any shard (one already on its way when the 429 came may land just
	// after it).
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, at := range w.starts[1:] {
		if wait := at.Sub(w.firstEnd); wait > 100*time.Millisecond && wait < 950*time.Millisecond {
			t.Errorf("request %d came %s after the 429 asked for 1s", i+2, wait)
		}
	}
}

// An installation changed or removed through the API takes effect at the
// next reload, without a restart.
func TestReloadAppliesChanges(t *testing.T) {
	w := newWebhookServer(t, func(int64) int { return http.StatusOK })
	h := newHarness(t)
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, entries(wsA, "x", 3)), "enqueue")
	h.stored(3)
	h.set(processorIn(wsA, 0), webhookIn("sink-new", wsA, w.URL, 0))
	testenv.Must(t, h.ingest.Enqueue(ctx, entries(wsA, "y", 3)), "enqueue")
	got := h.stored(6)
	if !strings.Contains(string(got["y000"].Payload), "plugin_saw") || strings.Contains(string(got["x000"].Payload), "plugin_saw") {
		t.Errorf("the processor installed later should see y, not x: %s / %s", got["y000"].Payload, got["x000"].Payload)
	}
	testenv.Eventually(t, defaultTestTimeout, "the new sink gets y", func() bool {
		ids, _ := w.ids()
		return len(ids) == 3
	})
	h.set() // uninstalled
	testenv.Must(t, h.ingest.Enqueue(ctx, entries(wsA, "z", 3)), "enqueue")
	got = h.stored(9)
	if strings.Contains(string(got["z000"].Payload), "plugin_saw") {
		t.Errorf("an uninstalled processor still ran: %s", got["z000"].Payload)
	}
	time.Sleep(300 * time.Millisecond)
	if ids, _ := w.ids(); len(ids) != 3 {
		t.Errorf("an uninstalled sink received %v", ids)
	}
	// Its queue went with it.
	q, err := SinkQueue(h.rt, "sink-new")
	testenv.Must(t, err, "sink queue")
	if n, err := h.rdb.Exists(ctx, q.Streams()...).Result(); err != nil || n != 0 {
		t.Errorf("an uninstalled sink's queue still has %d streams (%v)", n, err)
	}
}

// A source installation's messages take the collector's path: validated,
// queued on the ingest queue with the installation as their source, then
// processed and stored; the broker's messages are acknowledged only then.
func TestSourceFeedsTheIngestQueue(t *testing.T) {
	topic := "eddytest/" + strings.ReplaceAll(testenv.RandomName("s"), "_", "")
	cfg, _ := json.Marshal(map[string]any{"broker": "tcp://127.0.0.1:1883", "topics": []string{topic + "/+/temp"},
		"anonymous_id_topic_level": 2, "event": "Temperature", "flush_ms": 20})
	src := Installation{ID: "00000000-0000-4000-8000-00000000005c", WorkspaceID: wsA, PluginID: "source.mqtt", Enabled: true, Config: cfg, UpdatedAt: time.Unix(1, 0)}
	h := newHarness(t, src, processorIn(wsA, 0))

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:1883").SetClientID(testenv.RandomName("pub")))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to Mosquitto at 127.0.0.1:1883: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	// The source subscribes once it holds its lease and the plugin runs.
	var got map[string]event.Entry
	testenv.Eventually(t, defaultTestTimeout, "an MQTT message in the events queue", func() bool {
		pub.Publish(topic+"/sensor-7/temp", 1, false, `{"celsius":21.5}`).Wait()
		got = h.storedNow()
		return len(got) > 0
	})
	for _, e := range got {
		if e.WorkspaceID != wsA || e.SourceID != src.ID || e.Type != "track" {
			t.Fatalf("source event = %+v", e)
		}
		for _, want := range []string{`"event":"Temperature"`, `"anonymousId":"sensor-7"`, `"celsius":21.5`, `"plugin_saw":true`} {
			if !strings.Contains(string(e.Payload), want) {
				t.Errorf("payload lacks %s: %s", want, e.Payload)
			}
		}
	}
}

// defaultCollector is the collector's default limits, as plugins.yaml
// without settings gives them.
func defaultCollector(t *testing.T) config.Collector {
	cfg, err := config.Parse("plugins.yaml", []byte("version: 1\n"), func(string) (string, bool) { return "", false })
	testenv.Must(t, err, "default configuration")
	return cfg.Collector
}

// A session that closes with a cart and no order reaches the workspace's
// cart-recovery app, whose action becomes an event that the workspace's
// webhook sink delivers; a redelivered change asks for nothing twice, and
// another workspace's sessions never reach the app.
func TestAppActionDeliveredBySink(t *testing.T) {
	w := newWebhookServer(t, func(int64) int { return http.StatusOK })
	app := Installation{ID: "00000000-0000-4000-8000-0000000000ca", WorkspaceID: wsA, PluginID: "app.cart_recovery", Enabled: true,
		Config: json.RawMessage(`{"action_type":"cart_abandoned","currency":"EUR"}`), UpdatedAt: time.Unix(1, 0)}
	h := newHarness(t, app, webhookIn("sink-actions", wsA, w.URL, 0))
	ctx := context.Background()
	now := time.Now().UTC()
	closed := func(ws, id string, orders int) *live.Change {
		return &live.Change{Kind: "closed", Session: store.StoredSession{ID: id, AnonymousID: "anon-" + id, StartedAt: now.Add(-time.Hour),
			LastEventAt: now.Add(-40 * time.Minute), Events: 3, ChannelGroup: "Direct", OrdersCount: orders, Closed: true, UpdatedAt: now,
			Cart: &store.SessionCart{Items: []store.CartItem{{ProductID: "p1", Price: 20, Quantity: 2}}, Value: 40}}}
	}
	tap := func(ws string, c *live.Change) {
		pipe := h.rdb.Pipeline()
		h.rt.SessionTap(ctx, pipe, ws, c)
		_, err := pipe.Exec(ctx)
		testenv.Must(t, err, "tap")
	}
	tap(wsA, closed(wsA, "s-abandoned", 0))
	tap(wsA, closed(wsA, "s-abandoned", 0)) // redelivered
	tap(wsA, closed(wsA, "s-bought", 1))
	tap(wsB, closed(wsB, "s-other", 0))

	testenv.Eventually(t, defaultTestTimeout, "the action delivered by the webhook", func() bool {
		ids, _ := w.ids()
		return len(ids) == 1
	})
	time.Sleep(500 * time.Millisecond)
	ids, dup := w.ids()
	if len(ids) != 1 || dup {
		t.Fatalf("webhook received %v (duplicates: %v), want one action", ids, dup)
	}
	var action event.Entry
	for _, e := range h.storedNow() {
		if e.Type == "track" && strings.Contains(string(e.Payload), `"event":"cart_abandoned"`) {
			action = e
		}
	}
	for _, want := range []string{`"anonymousId":"anon-s-abandoned"`, `"session_id":"s-abandoned"`, `"app.cart_recovery"`} {
		if !strings.Contains(string(action.Payload), want) {
			t.Errorf("action event lacks %s: %s", want, action.Payload)
		}
	}
	if action.WorkspaceID != wsA || action.SourceID != app.ID {
		t.Errorf("action event belongs to %s/%s", action.WorkspaceID, action.SourceID)
	}
}

// An app receives its workspace's events of the types it asks for; the
// action it asks for is stored and delivered like an event, once.
func TestAppReceivesEvents(t *testing.T) {
	w := newWebhookServer(t, func(int64) int { return http.StatusOK })
	app := Installation{ID: "00000000-0000-4000-8000-0000000000ee", WorkspaceID: wsA, PluginID: "app.greeter", Enabled: true, UpdatedAt: time.Unix(1, 0)}
	h := newHarness(t, app, webhookIn("sink-greet", wsA, w.URL, 0))
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{entry(wsA, "a1", "Signed Up"), entry(wsA, "a2", "Viewed"), entry(wsB, "b1", "Signed Up")}), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "A's two events and one action delivered", func() bool {
		ids, _ := w.ids()
		return len(ids) == 3
	})
	var action event.Entry
	for _, e := range h.storedNow() {
		if strings.Contains(string(e.Payload), `"event":"welcome"`) {
			action = e
		}
	}
	if action.WorkspaceID != wsA || !strings.Contains(string(action.Payload), `"anonymousId":"anon-a1"`) || !strings.Contains(string(action.Payload), `"signed_up":"a1"`) {
		t.Fatalf("action event = %+v %s", action, action.Payload)
	}
	time.Sleep(300 * time.Millisecond)
	if ids, dup := w.ids(); len(ids) != 3 || dup {
		t.Fatalf("webhook received %v (duplicates %v), want a1, a2 and one action", ids, dup)
	}
}

// withConsent gives an entry Segment's consent context.
func withConsent(e event.Entry, prefs string) event.Entry {
	e.Payload = []byte(strings.TrimSuffix(string(e.Payload), "}") + `,"context":{"consent":{"categoryPreferences":` + prefs + `}}}`)
	return e
}

// The consent gate: an event without consent for what processing needs is
// not processed at all; a sink receives only events whose consent covers
// its purposes (here the workspace makes the webhook need marketing); a
// withdrawal stops what comes after it. Minimisation applies before any
// processor or sink sees the event.
func TestConsentGate(t *testing.T) {
	marketing := newWebhookServer(t, func(int64) int { return http.StatusOK })
	analytics := newWebhookServer(t, func(int64) int { return http.StatusOK })
	policy := consent.DefaultPolicy()
	policy.Plugins = map[string][]string{"sink.webhook": {"marketing"}}
	policy.Minimise = consent.Minimise{IP: consent.IPTruncate, Hash: []string{}, Drop: []string{}}
	analyticsSink := webhookIn("sink-analytics", wsA, analytics.URL, 0)
	analyticsSink.PluginID = "sink.webhook_analytics"
	h := newHarnessWith(t, func(o *Options) {
		o.Policies = func(context.Context, string) (consent.Policy, error) { return policy, nil }
	}, processorIn(wsA, 0), webhookIn("sink-marketing", wsA, marketing.URL, 0), analyticsSink)
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{
		withConsent(entry(wsA, "both", "Viewed"), `{"analytics":true,"marketing":true}`),
		withConsent(entry(wsA, "analytics-only", "Viewed"), `{"analytics":true}`),
		entry(wsA, "none", "Viewed"),
		withConsent(entry(wsA, "withdrawn", "Viewed"), `{"analytics":false,"marketing":true}`),
		// The processor grants this one marketing: it is dead-lettered.
		withConsent(entry(wsA, "self-granted", "Grant Me"), `{"analytics":true}`),
	}), "enqueue")
	got := h.stored(2)
	time.Sleep(500 * time.Millisecond)
	got = h.storedNow()
	if len(got) != 2 || got["both"].MessageID == "" || got["analytics-only"].MessageID == "" {
		t.Fatalf("processed %v, want both and analytics-only", keys(got))
	}
	if ip := got["both"].IP; ip != "203.0.113.0" {
		t.Errorf("stored IP %q, want it truncated to 203.0.113.0", ip)
	}
	if !strings.Contains(string(got["both"].Payload), "plugin_saw") {
		t.Errorf("the processor did not see a consented event: %s", got["both"].Payload)
	}
	testenv.Eventually(t, defaultTestTimeout, "the analytics sink has both consented events", func() bool {
		ids, _ := analytics.ids()
		return len(ids) == 2
	})
	testenv.Eventually(t, defaultTestTimeout, "the marketing sink has the marketing-consented event", func() bool {
		ids, _ := marketing.ids()
		return len(ids) == 1
	})
	time.Sleep(300 * time.Millisecond)
	if ids, _ := marketing.ids(); len(ids) != 1 || ids[0] != "both" {
		t.Errorf("marketing sink received %v, want only the event consented to marketing", ids)
	}
	testenv.Eventually(t, defaultTestTimeout, "the self-granted event dead-lettered", func() bool {
		d, _ := h.ingest.DeadLetters(ctx, ProcessGroup, "", 10)
		return len(d) == 1 && d[0].Entry.MessageID == "self-granted" && strings.Contains(d[0].Reason, "changed the event's consent")
	})
}

func keys(m map[string]event.Entry) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// memDecisions stands in for the store's decisions (core/store runs the
// same calls against PostgreSQL in its own tests): decisions by
// identifier hash, and the updates the gate records.
type memDecisions struct {
	mu       sync.Mutex
	byHash   map[[32]byte][]consent.Decision
	recorded []consent.Update
}

func (d *memDecisions) add(ws, kind, value string, dec consent.Decision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byHash == nil {
		d.byHash = map[[32]byte][]consent.Decision{}
	}
	h := consent.IdentifierHash(ws, kind, value)
	d.byHash[h] = append(d.byHash[h], dec)
}

func (d *memDecisions) HasPrivacyDecisions(context.Context, string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.byHash) > 0, nil
}

func (d *memDecisions) PrivacyDecisions(_ context.Context, _ string, hashes [][32]byte) (map[[32]byte][]consent.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[[32]byte][]consent.Decision{}
	for _, h := range hashes {
		if ds, ok := d.byHash[h]; ok {
			out[h] = slices.Clone(ds)
		}
	}
	return out, nil
}

func (d *memDecisions) RecordConsentUpdates(_ context.Context, _ string, us []consent.Update) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recorded = append(d.recorded, us...)
	for _, u := range us {
		for _, h := range u.Hashes {
			for p, g := range u.Prefs {
				d.byHash[h] = append(d.byHash[h], consent.Decision{Purpose: p, Granted: g, At: u.At, Source: consent.SourceEvent})
			}
		}
	}
	return nil
}

// consentUpdate is the visitor's consent update event (consent.UpdateEvent).
func consentUpdate(ws, id, prefs string) event.Entry {
	e := withConsent(entry(ws, id, consent.UpdateEvent), prefs)
	e.ReceivedAt = time.Now()
	return e
}

// A deleted person's events are dropped, even where necessary-only
// processing is allowed and whatever consent they carry, until the person
// consents again in a consent update; the same identifier in another
// workspace is not affected.
func TestSuppressedVisitorsAreDropped(t *testing.T) {
	policy := consent.DefaultPolicy()
	policy.AllowNecessaryOnly = true
	decisions := &memDecisions{}
	decisions.add(wsA, "anonymous_id", "anon-gone", consent.Decision{Purpose: consent.All, At: time.Now().Add(-time.Minute), Source: consent.SourceDeletion})
	h := newHarnessWith(t, func(o *Options) {
		o.Policies = func(context.Context, string) (consent.Policy, error) { return policy, nil }
		o.Decisions = decisions
	})
	ctx := context.Background()
	dropped := entry(wsA, "gone", "Viewed") // anonymousId anon-gone
	stale := withConsent(entry(wsA, "gone", "Viewed"), `{"analytics":true}`)
	stale.MessageID = "stale"
	other := entry(wsB, "gone", "Viewed") // the same id in another workspace
	other.MessageID = "other"
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{dropped, stale, other, entry(wsA, "kept", "Viewed")}), "enqueue")
	h.stored(2)
	time.Sleep(300 * time.Millisecond)
	if got := h.storedNow(); len(got) != 2 || got["other"].MessageID == "" || got["kept"].MessageID == "" {
		t.Fatalf("processed %v, want other and kept (not the deleted visitor's events, not even with consent)", keys(got))
	}
	// The person consents again: the update passes and is recorded, and
	// so do their events after it.
	back := consentUpdate(wsA, "gone", `{"analytics":true}`)
	back.MessageID = "back"
	after := withConsent(entry(wsA, "gone", "Viewed"), `{"analytics":true,"marketing":true}`)
	after.MessageID, after.ReceivedAt = "after", time.Now().Add(time.Second)
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{back}), "enqueue")
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{after}), "enqueue")
	got := h.stored(4)
	if got["back"].MessageID == "" || got["after"].MessageID == "" {
		t.Fatalf("processed %v, want the consent update and the event after it", keys(got))
	}
	// Marketing was not granted again: it stays withdrawn in what is stored.
	if prefs, _, _ := consent.Parse(got["after"].Payload, got["after"].Context); !prefs["analytics"] || prefs["marketing"] {
		t.Errorf("stored consent %v, want analytics granted and marketing withdrawn", prefs)
	}
	decisions.mu.Lock()
	defer decisions.mu.Unlock()
	if len(decisions.recorded) != 1 || !decisions.recorded[0].Prefs["analytics"] {
		t.Errorf("recorded %+v, want the consent update granting analytics", decisions.recorded)
	}
}

// A purpose withdrawn through the API holds over the stale consent a
// client keeps sending: the marketing sink gets nothing more of that
// visitor, from the first batch after the change, while the analytics sink
// and other visitors carry on.
func TestWithdrawalHoldsOverStaleConsent(t *testing.T) {
	marketing := newWebhookServer(t, func(int64) int { return http.StatusOK })
	analytics := newWebhookServer(t, func(int64) int { return http.StatusOK })
	policy := consent.DefaultPolicy()
	policy.Plugins = map[string][]string{"sink.webhook": {"marketing"}}
	analyticsSink := webhookIn("sink-analytics", wsA, analytics.URL, 0)
	analyticsSink.PluginID = "sink.webhook_analytics"
	decisions := &memDecisions{}
	var gen *privacy.Generation
	h := newHarnessWith(t, func(o *Options) {
		o.Policies = func(context.Context, string) (consent.Policy, error) { return policy, nil }
		o.Decisions = decisions
		ropts, err := redis.ParseURL(testenv.RedisURL())
		testenv.Must(t, err, "redis url")
		rc := redis.NewClient(ropts)
		t.Cleanup(func() { rc.Close() })
		gen = privacy.NewGeneration(rc, o.Prefix)
		o.Generation = gen
	}, webhookIn("sink-marketing", wsA, marketing.URL, 0), analyticsSink)
	ctx := context.Background()
	both := `{"analytics":true,"marketing":true}`
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{withConsent(entry(wsA, "before", "Viewed"), both)}), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "the marketing sink has the event before the withdrawal", func() bool {
		ids, _ := marketing.ids()
		return len(ids) == 1
	})
	// Withdrawn through the API (as core/store records it), then the
	// generation bumped (as the API does).
	decisions.add(wsA, "anonymous_id", "anon-before", consent.Decision{Purpose: "marketing", At: time.Now(), Source: consent.SourceAPI})
	testenv.Must(t, gen.Bump(ctx), "bump")
	stale := withConsent(entry(wsA, "before", "Viewed"), both) // the same visitor
	stale.MessageID = "stale"
	stale.Payload = bytes.Replace(stale.Payload, []byte(`"messageId":"before"`), []byte(`"messageId":"stale"`), 1)
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{stale, withConsent(entry(wsA, "someone-else", "Viewed"), both)}), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "the analytics sink has all three events", func() bool {
		ids, _ := analytics.ids()
		return len(ids) == 3
	})
	testenv.Eventually(t, defaultTestTimeout, "the marketing sink has the other visitor's event", func() bool {
		ids, _ := marketing.ids()
		return len(ids) == 2
	})
	time.Sleep(300 * time.Millisecond)
	if ids, _ := marketing.ids(); !slices.Equal(ids, []string{"before", "someone-else"}) {
		t.Errorf("marketing sink received %v, want before and someone-else (not the withdrawn visitor's later event)", ids)
	}
	got := h.storedNow()
	if prefs, _, _ := consent.Parse(got["stale"].Payload, got["stale"].Context); !prefs["analytics"] || prefs["marketing"] {
		t.Errorf("stored consent of the stale event %v, want marketing withdrawn", prefs)
	}
}

// The cart-recovery app needs marketing: it is shown the session changes
// of visitors who grant it, and no others (refused, unknown, withdrawn
// through the API, deleted); its action carries the visitor's consent, so
// that the gate processes it and the sink delivers it.
func TestAppSeesOnlyConsentedSessions(t *testing.T) {
	w := newWebhookServer(t, func(int64) int { return http.StatusOK })
	app := Installation{ID: "00000000-0000-4000-8000-0000000000cb", WorkspaceID: wsA, PluginID: "app.cart_recovery", Enabled: true,
		Config: json.RawMessage(`{"action_type":"cart_abandoned","currency":"EUR"}`), UpdatedAt: time.Unix(1, 0)}
	policy := consent.DefaultPolicy()
	decisions := &memDecisions{}
	decisions.add(wsA, "anonymous_id", "anon-s-withdrawn", consent.Decision{Purpose: "marketing", At: time.Now(), Source: consent.SourceAPI})
	decisions.add(wsA, "anonymous_id", "anon-s-deleted", consent.Decision{Purpose: consent.All, At: time.Now(), Source: consent.SourceDeletion})
	h := newHarnessWith(t, func(o *Options) {
		o.Policies = func(context.Context, string) (consent.Policy, error) { return policy, nil }
		o.Decisions = decisions
	}, app, webhookIn("sink-actions", wsA, w.URL, 0))
	ctx := context.Background()
	now := time.Now().UTC()
	granted := consent.Preferences{"analytics": true, "marketing": true}
	for _, s := range []struct {
		id    string
		prefs consent.Preferences
	}{
		{"s-granted", granted},
		{"s-refused", consent.Preferences{"analytics": true, "marketing": false}},
		{"s-unknown", nil},
		{"s-withdrawn", granted},
		{"s-deleted", granted},
	} {
		c := &live.Change{Kind: "closed", Consent: s.prefs, Session: store.StoredSession{ID: s.id, AnonymousID: "anon-" + s.id,
			StartedAt: now.Add(-time.Hour), LastEventAt: now.Add(-40 * time.Minute), Events: 3, ChannelGroup: "Direct", Closed: true, UpdatedAt: now,
			Cart: &store.SessionCart{Items: []store.CartItem{{ProductID: "p1", Price: 20, Quantity: 2}}, Value: 40}}}
		pipe := h.rdb.Pipeline()
		h.rt.SessionTap(ctx, pipe, wsA, c)
		_, err := pipe.Exec(ctx)
		testenv.Must(t, err, "tap")
	}
	testenv.Eventually(t, defaultTestTimeout, "the granted visitor's action delivered", func() bool {
		ids, _ := w.ids()
		return len(ids) == 1
	})
	time.Sleep(500 * time.Millisecond)
	var actions []string
	for _, e := range h.storedNow() {
		if strings.Contains(string(e.Payload), `"event":"cart_abandoned"`) {
			actions = append(actions, string(e.Payload))
		}
	}
	if len(actions) != 1 || !strings.Contains(actions[0], `"anonymousId":"anon-s-granted"`) {
		t.Fatalf("actions stored: %v, want only the granted visitor's", actions)
	}
	if !strings.Contains(actions[0], `"categoryPreferences":{"analytics":true,"marketing":true}`) {
		t.Errorf("the action does not carry its visitor's consent: %s", actions[0])
	}
}

// An app receives only the events whose consent grants what the
// workspace asks of it (here marketing): the analytics-only sign-up is
// stored but not shown to it, so it asks for one welcome, not two; the
// welcome carries the visitor's consent and is delivered.
func TestAppReceivesOnlyConsentedEvents(t *testing.T) {
	w := newWebhookServer(t, func(int64) int { return http.StatusOK })
	app := Installation{ID: "00000000-0000-4000-8000-0000000000ef", WorkspaceID: wsA, PluginID: "app.greeter", Enabled: true, UpdatedAt: time.Unix(1, 0)}
	policy := consent.DefaultPolicy()
	policy.Plugins = map[string][]string{"app.greeter": {"marketing"}}
	h := newHarnessWith(t, func(o *Options) {
		o.Policies = func(context.Context, string) (consent.Policy, error) { return policy, nil }
	}, app, webhookIn("sink-greet", wsA, w.URL, 0))
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{
		withConsent(entry(wsA, "marketing", "Signed Up"), `{"analytics":true,"marketing":true}`),
		withConsent(entry(wsA, "analytics-only", "Signed Up"), `{"analytics":true}`),
		entry(wsA, "none", "Signed Up"),
	}), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "two sign-ups and one welcome delivered", func() bool {
		ids, _ := w.ids()
		return len(ids) == 3
	})
	time.Sleep(500 * time.Millisecond)
	var welcomes []string
	for _, e := range h.storedNow() {
		if strings.Contains(string(e.Payload), `"event":"welcome"`) {
			welcomes = append(welcomes, string(e.Payload))
		}
	}
	if len(welcomes) != 1 || !strings.Contains(welcomes[0], `"anonymousId":"anon-marketing"`) {
		t.Fatalf("welcomes: %v, want one, for the visitor who granted marketing", welcomes)
	}
	if !strings.Contains(welcomes[0], `"marketing":true`) {
		t.Errorf("the welcome does not carry its visitor's consent: %s", welcomes[0])
	}
	if ids, _ := w.ids(); len(ids) != 3 {
		t.Errorf("webhook received %v, want the two consented sign-ups and the welcome", ids)
	}
}
