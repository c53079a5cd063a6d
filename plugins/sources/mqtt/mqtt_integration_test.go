package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// These tests need the Mosquitto broker of the machine.
const broker = "tcp://127.0.0.1:1883"

// segment is a Segment message as the source emits it.
type segment struct {
	Type        string                       `json:"type"`
	Event       string                       `json:"event"`
	AnonymousID string                       `json:"anonymousId"`
	Properties  map[string]any               `json:"properties"`
	Context     map[string]map[string]string `json:"context"`
	Timestamp   string                       `json:"timestamp"`
	MessageID   string                       `json:"messageId"`
}

func (s segment) topic() string { return s.Context["mqtt"]["topic"] }

// prefix is a topic prefix no other test run uses.
func prefix() string { return "eddy-test/" + strings.ToLower(rand.Text()[:10]) }

// publisher connects a test client that publishes with QoS 1.
func publisher(t *testing.T) func(topic, payload string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("eddy-test-pub-" + rand.Text()[:8]).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("Mosquitto must run at %s for these tests: connect: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return func(topic, payload string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish on %s: %v", topic, tok.Error())
		}
	}
}

// forgetSession removes a client id's persistent session from the broker
// at the test's end.
func forgetSession(t *testing.T, clientID string) {
	t.Cleanup(func() {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetCleanSession(true))
		if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			c.Disconnect(100)
		}
	})
}

// running is a source installation run through the real plugin host.
type running struct {
	messages chan segment
	done     chan struct{} // closed when RunSource has returned err
	err      error
	cancel   context.CancelFunc
}

// wait returns RunSource's result, failing the test if it takes longer
// than d.
func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("RunSource did not return within %s", d)
		return nil
	}
}

// runSource runs installation id of p with RunSource; handle decides what
// to do with each batch (nil: queue it all).
func runSource(t *testing.T, p *pluginhost.Process, id string, handle eddyplugin.SourceHandler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{messages: make(chan segment, 1000), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		r.err = p.RunSource(ctx, id, func(ctx context.Context, messages [][]byte) ([]eddyplugin.Rejection, error) {
			var rejected []eddyplugin.Rejection
			if handle != nil {
				var err error
				if rejected, err = handle(ctx, messages); err != nil {
					return nil, err
				}
			}
			for _, m := range messages {
				var s segment
				if err := json.Unmarshal(m, &s); err != nil {
					t.Errorf("the source emitted a message that is not JSON: %s", m)
					continue
				}
				r.messages <- s
			}
			return rejected, nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Errorf("RunSource of %s did not end after its context", id)
		}
	})
	return r
}

// waitSubscribed publishes on probeTopic until the run receives it: then
// the source's subscriptions are in place.
func (r *running) waitSubscribed(t *testing.T, publish func(topic, payload string), probeTopic string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	publish(probeTopic, "probe")
	for {
		select {
		case s := <-r.messages:
			if s.topic() == probeTopic {
				return
			}
		case <-r.done:
			t.Fatalf("the run ended before subscribing: %v", r.err)
		case <-tick.C:
			publish(probeTopic, "probe")
		case <-deadline:
			t.Fatalf("no probe on %s arrived: the source did not subscribe", probeTopic)
		}
	}
}

// collect gathers the messages arriving within d, leaving out probes.
func (r *running) collect(d time.Duration, until func(map[string][]segment) bool) map[string][]segment {
	got := map[string][]segment{}
	timeout := time.After(d)
	for {
		select {
		case s := <-r.messages:
			if s.Properties["value"] == "probe" {
				continue
			}
			got[s.topic()] = append(got[s.topic()], s)
			if until != nil && until(got) {
				return got
			}
		case <-timeout:
			return got
		}
	}
}

func testConfig(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	fields["broker"] = broker
	if _, ok := fields["flush_ms"]; !ok {
		fields["flush_ms"] = 20
	}
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// JSON and other payloads on wildcard topics arrive as Segment track
// messages, with the anonymousId taken from the configured topic level;
// messages on other topics do not.
func TestMessagesArriveAsTrackEvents(t *testing.T) {
	ctx := plugintest.Context(t, time.Minute)
	p := plugintest.Start(t, ".")
	publish := publisher(t)
	pre := prefix()
	clientID := "eddy-test-" + rand.Text()[:10]
	forgetSession(t, clientID)
	cfg := testConfig(t, map[string]any{"topics": []string{pre + "/sensors/+/temperature", pre + "/doors/#"},
		"client_id": clientID, "anonymous_id_topic_level": 3})
	if err := p.Init(ctx, eddyplugin.Installation{ID: "i1", PluginID: "source.mqtt", WorkspaceID: "w1", Config: cfg}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if errs, err := p.Validate(ctx, "i1"); err != nil || len(errs) != 0 {
		t.Fatalf("Validate = %v, %v; want valid", errs, err)
	}
	r := runSource(t, p, "i1", nil)
	r.waitSubscribed(t, publish, pre+"/sensors/probe/temperature")

	start := time.Now()
	publish(pre+"/sensors/dev1/temperature", `{"celsius":21.5,"unit":"C"}`)
	publish(pre+"/sensors/dev2/temperature", "19.25")
	publish(pre+"/doors/front", "open")
	publish(pre+"/doors/back/lock", "locked")
	publish(pre+"/sensors/dev1/humidity", "40") // not subscribed
	publish(pre+"/other/dev3/temperature", "1") // not subscribed
	got := r.collect(5*time.Second, func(got map[string][]segment) bool { return len(got) >= 6 })

	want := map[string]struct {
		anon  string
		props string
	}{
		pre + "/sensors/dev1/temperature": {"dev1", `{"celsius":21.5,"unit":"C"}`},
		pre + "/sensors/dev2/temperature": {"dev2", `{"value":19.25}`},
		pre + "/doors/front":              {"front", `{"value":"open"}`},
		pre + "/doors/back/lock":          {"back", `{"value":"locked"}`},
	}
	if len(got) != len(want) {
		t.Fatalf("messages arrived on %d topics, want %d: %+v", len(got), len(want), got)
	}
	ids := map[string]bool{}
	for topic, w := range want {
		ss := got[topic]
		if len(ss) != 1 {
			t.Fatalf("%s: %d messages arrived, want 1", topic, len(ss))
		}
		s := ss[0]
		props, _ := json.Marshal(s.Properties)
		ts, err := time.Parse(time.RFC3339Nano, s.Timestamp)
		if s.Type != "track" || s.Event != topic || s.AnonymousID != w.anon || string(props) != w.props || err != nil ||
			ts.Before(start.Add(-time.Second)) || ts.After(time.Now()) || s.MessageID == "" || ids[s.MessageID] {
			t.Errorf("%s: got %+v; want a track event named after the topic, anonymousId %q, properties %s, a fresh timestamp and a unique messageId",
				topic, s, w.anon, w.props)
		}
		ids[s.MessageID] = true
	}
}

// A batch Eddy could not queue is not acknowledged to the broker: after
// the source restarts, the broker delivers it again (QoS 1, persistent
// session). A queued batch, rejected messages included, is acknowledged
// and not delivered again.
func TestUnqueuedMessagesAreDeliveredAgain(t *testing.T) {
	ctx := plugintest.Context(t, 2*time.Minute)
	publish := publisher(t)
	pre := prefix()
	clientID := "eddy-test-" + rand.Text()[:10]
	forgetSession(t, clientID)
	cfg := testConfig(t, map[string]any{"topics": []string{pre + "/meters/#"}, "client_id": clientID, "anonymous_id_topic_level": 3})
	in := eddyplugin.Installation{ID: "i1", PluginID: "source.mqtt", WorkspaceID: "w1", Config: cfg}
	probe := pre + "/meters/probe"

	// Run 1: the queue is down for every batch with a reading.
	p := plugintest.Start(t, ".")
	if err := p.Init(ctx, in); err != nil {
		t.Fatalf("Init: %v", err)
	}
	queueDown := errors.New("queue is down")
	r := runSource(t, p, "i1", func(_ context.Context, messages [][]byte) ([]eddyplugin.Rejection, error) {
		for _, m := range messages {
			if !strings.Contains(string(m), `"probe"`) {
				return nil, queueDown
			}
		}
		return nil, nil
	})
	r.waitSubscribed(t, publish, probe)
	for i := 1; i <= 3; i++ {
		publish(fmt.Sprintf("%s/meters/m%d", pre, i), fmt.Sprintf(`{"kwh":%d}`, i))
	}
	if err := r.wait(t, 10*time.Second); !errors.Is(err, queueDown) {
		t.Fatalf("RunSource = %v, want the handler's error", err)
	}
	p.Kill()
	// Published while no source runs: the broker keeps it for the session.
	publish(pre+"/meters/m4", `{"kwh":4}`)

	// Run 2, in a new plugin process: the three readings come again, and
	// the fourth; the second is rejected for good (and so acknowledged too).
	p = plugintest.Start(t, ".")
	if err := p.Init(ctx, in); err != nil {
		t.Fatalf("Init after the restart: %v", err)
	}
	r = runSource(t, p, "i1", func(_ context.Context, messages [][]byte) ([]eddyplugin.Rejection, error) {
		var rejected []eddyplugin.Rejection
		for _, m := range messages {
			var s segment
			if err := json.Unmarshal(m, &s); err == nil && s.AnonymousID == "m2" {
				rejected = append(rejected, eddyplugin.Rejection{MessageID: s.MessageID, Reason: "test rejection"})
			}
		}
		return rejected, nil
	})
	got := r.collect(15*time.Second, func(got map[string][]segment) bool { return len(got) == 4 })
	for i := 1; i <= 4; i++ {
		topic := fmt.Sprintf("%s/meters/m%d", pre, i)
		if len(got[topic]) == 0 || got[topic][0].Properties["kwh"] != float64(i) {
			t.Fatalf("after the restart, %s: %+v; want the reading delivered again (got %+v)", topic, got[topic], got)
		}
	}
	// A later batch comes only after the previous one was acknowledged.
	r.waitSubscribed(t, publish, probe)
	r.cancel()
	if err := r.wait(t, 5*time.Second); err != nil {
		t.Fatalf("RunSource after cancel = %v, want nil", err)
	}

	// Run 3: everything was acknowledged, so nothing comes again.
	r = runSource(t, p, "i1", nil)
	r.waitSubscribed(t, publish, probe)
	if again := r.collect(time.Second, nil); len(again) != 0 {
		t.Fatalf("acknowledged messages came again: %+v", again)
	}
}

// Two installations in one plugin process, with different topics and
// client ids, each receive only their own messages.
func TestInstallationsReceiveOnlyTheirTopics(t *testing.T) {
	ctx := plugintest.Context(t, time.Minute)
	p := plugintest.Start(t, ".")
	publish := publisher(t)
	pre := prefix()
	runs := map[string]*running{}
	for _, id := range []string{"a", "b"} {
		clientID := "eddy-test-" + id + "-" + rand.Text()[:10]
		forgetSession(t, clientID)
		cfg := testConfig(t, map[string]any{"topics": []string{pre + "/" + id + "/#"}, "client_id": clientID, "event": "Reading " + id})
		if err := p.Init(ctx, eddyplugin.Installation{ID: id, PluginID: "source.mqtt", WorkspaceID: "w-" + id, Config: cfg}); err != nil {
			t.Fatalf("Init %s: %v", id, err)
		}
		runs[id] = runSource(t, p, id, nil)
	}
	var wg sync.WaitGroup
	for id, r := range runs {
		wg.Go(func() { r.waitSubscribed(t, publish, pre+"/"+id+"/probe") })
	}
	wg.Wait()
	publish(pre+"/a/x", `{"for":"a"}`)
	publish(pre+"/b/y", `{"for":"b"}`)
	publish(pre+"/a/z", `{"for":"a"}`)
	for id, r := range runs {
		got := r.collect(2*time.Second, nil)
		n := 0
		for topic, ss := range got {
			for _, s := range ss {
				n++
				if !strings.HasPrefix(topic, pre+"/"+id+"/") || s.Properties["for"] != id || s.Event != "Reading "+id {
					t.Errorf("installation %s received %+v", id, s)
				}
			}
		}
		if want := map[string]int{"a": 2, "b": 1}[id]; n != want {
			t.Errorf("installation %s received %d messages, want %d: %+v", id, n, want, got)
		}
	}
	// Closing an installation ends its run.
	if err := p.Close(ctx, "a"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := runs["a"].wait(t, 5*time.Second); err != nil {
		t.Fatalf("RunSource after Close = %v, want nil", err)
	}
	if err := p.Close(ctx, "never-initialised"); err != nil {
		t.Fatalf("Close of an unknown installation: %v", err)
	}
}

// Bad configurations fail Init in the real plugin with an error naming
// the field; Validate reports an unreachable broker on config.broker.
func TestInitAndValidateErrors(t *testing.T) {
	ctx := plugintest.Context(t, time.Minute)
	p := plugintest.Start(t, ".")
	tests := []struct {
		name, config, want string
	}{
		{"no topics", `{"broker":"tcp://127.0.0.1:1883","topics":[]}`, "config.topics: is required"},
		{"bad broker URL", `{"broker":"127.0.0.1:1883","topics":["a/#"]}`, "config.broker:"},
		{"bad topic", `{"broker":"tcp://127.0.0.1:1883","topics":["a/#/b"]}`, "config.topics[0]:"},
		{"qos 2", `{"broker":"tcp://127.0.0.1:1883","topics":["a"],"qos":2}`, "config.qos: must be 0 or 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Init(ctx, eddyplugin.Installation{ID: "bad", Config: []byte(tt.config)})
			var pe *eddyplugin.PluginError
			if !errors.As(err, &pe) || !strings.Contains(pe.Message, tt.want) {
				t.Fatalf("Init = %v; want the plugin's error containing %q", err, tt.want)
			}
		})
	}
	if _, err := p.Validate(ctx, "bad"); err == nil {
		t.Fatal("Validate of an installation whose Init failed: no error")
	}
	if err := p.Close(ctx, "bad"); err != nil {
		t.Fatalf("Close after a failed Init: %v", err)
	}

	cfg := `{"broker":"tcp://127.0.0.1:1","topics":["a"],"username":"u","password":"hunter2-secret"}`
	if err := p.Init(ctx, eddyplugin.Installation{ID: "down", Config: []byte(cfg)}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	errs, err := p.Validate(ctx, "down")
	if err != nil || len(errs) != 1 || errs[0].Field != "config.broker" || strings.Contains(errs[0].Message, "hunter2") {
		t.Fatalf("Validate with no broker listening = %+v, %v; want one error on config.broker", errs, err)
	}
	// Running it fails to connect, naming the broker and not the password.
	err = p.RunSource(ctx, "down", func(context.Context, [][]byte) ([]eddyplugin.Rejection, error) { return nil, nil })
	if err == nil || !strings.Contains(err.Error(), "connect to tcp://127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("RunSource with no broker listening = %v; want a connect error naming the broker", err)
	}
}
