package eddyplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
)

// connect serves impl in-process over real gRPC, as a plugin process
// would, and returns Eddy's side of it.
func connect(t *testing.T, impl Plugin) *Client {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{PluginName: &GRPCPlugin{Impl: impl}})
	// Closing the client shuts the server down through go-plugin's
	// controller (stopping the server as well would race with that).
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	c, ok := raw.(*Client)
	if !ok {
		t.Fatalf("dispensed %T, want *Client", raw)
	}
	return c
}

// nopPlugin is the lifecycle of the test plugins.
type nopPlugin struct{}

func (nopPlugin) Init(context.Context, Installation) error               { return nil }
func (nopPlugin) Validate(context.Context, string) ([]FieldError, error) { return nil, nil }
func (nopPlugin) Close(context.Context, string) error                    { return nil }
func (nopPlugin) Process(_ context.Context, _ string, e []Event) ([]Event, []Rejection, error) {
	return e, nil, nil
}

type emitResult struct {
	rejected []Rejection
	err      error
}

// fakeSource emits what the test sends on batches and reports what each
// Emit returned on results, and how Run ended on ended.
type fakeSource struct {
	nopPlugin
	batches chan [][]byte
	results chan emitResult
	ended   chan error
}

func newFakeSource() *fakeSource {
	return &fakeSource{batches: make(chan [][]byte), results: make(chan emitResult, 10), ended: make(chan error, 1)}
}

func (s *fakeSource) Run(ctx context.Context, id string, emit Emitter) error {
	if id != "i1" {
		return fmt.Errorf("installation %s is not initialised", id)
	}
	for {
		select {
		case <-ctx.Done():
			s.ended <- ctx.Err()
			return nil
		case b := <-s.batches:
			rejected, err := emit.Emit(ctx, b)
			s.results <- emitResult{rejected, err}
			if err != nil {
				s.ended <- err
				return err
			}
		}
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// Emit blocks until Eddy acknowledges the batch, and returns Eddy's
// rejections; cancelling RunSource ends the plugin's Run.
func TestSourceEmitWaitsForTheAck(t *testing.T) {
	src := newFakeSource()
	c := connect(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan [][]byte, 1)
	release := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.RunSource(ctx, "i1", func(_ context.Context, messages [][]byte) ([]Rejection, error) {
			got <- messages
			<-release
			var rejected []Rejection
			for _, m := range messages {
				if bytes.Contains(m, []byte(`"bad"`)) {
					rejected = append(rejected, Rejection{MessageID: "m2", Reason: "no event name"})
				}
			}
			return rejected, nil
		})
	}()

	batch := [][]byte{[]byte(`{"type":"track","event":"a","messageId":"m1"}`), []byte(`{"type":"track","event":"bad","messageId":"m2"}`)}
	src.batches <- batch
	if messages := receive(t, got, "the batch at the host"); len(messages) != 2 || !bytes.Equal(messages[0], batch[0]) || !bytes.Equal(messages[1], batch[1]) {
		t.Fatalf("the host got %q, want %q", messages, batch)
	}
	select {
	case r := <-src.results:
		t.Fatalf("Emit returned %+v before the host acknowledged the batch", r)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := receive(t, src.results, "Emit to return")
	if r.err != nil || len(r.rejected) != 1 || r.rejected[0] != (Rejection{MessageID: "m2", Reason: "no event name"}) {
		t.Fatalf("Emit = %+v, %v; want the host's one rejection", r.rejected, r.err)
	}

	// A second batch goes through the same run.
	src.batches <- [][]byte{[]byte(`{"type":"track","event":"c","messageId":"m3"}`)}
	receive(t, got, "the second batch at the host")
	if r := receive(t, src.results, "the second Emit"); r.err != nil || len(r.rejected) != 0 {
		t.Fatalf("second Emit = %+v, %v; want acknowledged without rejections", r.rejected, r.err)
	}

	cancel()
	if err := receive(t, runErr, "RunSource to return"); err != nil {
		t.Fatalf("RunSource after cancel = %v, want nil", err)
	}
	if err := receive(t, src.ended, "the plugin's Run to end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the plugin's Run ended with %v, want its context cancelled", err)
	}
}

// A batch the host cannot queue is not acknowledged: RunSource returns the
// handler's error and the plugin's Emit fails, so the plugin does not
// acknowledge its upstream.
func TestSourceHandlerErrorFailsTheEmit(t *testing.T) {
	src := newFakeSource()
	c := connect(t, src)
	queueDown := errors.New("queue is down")
	runErr := make(chan error, 1)
	go func() {
		runErr <- c.RunSource(context.Background(), "i1", func(context.Context, [][]byte) ([]Rejection, error) {
			return nil, queueDown
		})
	}()
	src.batches <- [][]byte{[]byte(`{"type":"track","event":"a"}`)}
	if err := receive(t, runErr, "RunSource to return"); !errors.Is(err, queueDown) || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("RunSource = %v, want the handler's error, batch not acknowledged", err)
	}
	if r := receive(t, src.results, "Emit to return"); r.err == nil {
		t.Fatalf("Emit = %+v, nil; want an error since the batch was not acknowledged", r.rejected)
	}
}

// A source's own error ends RunSource as a PluginError; a plugin that is
// not a source refuses RunSource.
func TestSourceRunErrors(t *testing.T) {
	never := func(context.Context, [][]byte) ([]Rejection, error) {
		t.Error("handler called")
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := connect(t, newFakeSource()).RunSource(ctx, "unknown", never)
	var pe *PluginError
	if !errors.As(err, &pe) || pe.Message != "installation unknown is not initialised" {
		t.Fatalf("RunSource of an unknown installation = %v, want the plugin's error", err)
	}
	err = connect(t, nopPlugin{}).RunSource(ctx, "i1", never)
	if err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("RunSource on a processor = %v, want Unimplemented", err)
	}
}

// Emit may be called from several goroutines at once: each gets its own
// batch's ack.
func TestSourceConcurrentEmits(t *testing.T) {
	emitter := make(chan Emitter, 1)
	src := &funcSource{run: func(ctx context.Context, _ string, emit Emitter) error {
		emitter <- emit
		<-ctx.Done()
		return nil
	}}
	c := connect(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = c.RunSource(ctx, "i1", func(_ context.Context, messages [][]byte) ([]Rejection, error) {
			// Reject every message, naming it by its content, so that each
			// Emit can check it got its own batch's answer.
			out := make([]Rejection, len(messages))
			for i, m := range messages {
				out[i] = Rejection{MessageID: string(m), Reason: "test"}
			}
			return out, nil
		})
	}()
	emit := receive(t, emitter, "the emitter")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			msg := fmt.Sprintf(`{"n":%d}`, i)
			rejected, err := emit.Emit(ctx, [][]byte{[]byte(msg)})
			if err != nil || len(rejected) != 1 || rejected[0].MessageID != msg {
				t.Errorf("Emit %d = %+v, %v; want its own message back", i, rejected, err)
			}
		})
	}
	wg.Wait()
	if r, err := emit.Emit(ctx, nil); r != nil || err != nil {
		t.Fatalf("Emit of nothing = %v, %v; want nothing", r, err)
	}
}

type funcSource struct {
	nopPlugin
	run func(ctx context.Context, id string, emit Emitter) error
}

func (s *funcSource) Run(ctx context.Context, id string, emit Emitter) error {
	return s.run(ctx, id, emit)
}

// fakeApp answers each event with a visitor message and each session
// change with a webhook.
type fakeApp struct{ nopPlugin }

func (fakeApp) OnEvents(_ context.Context, id string, events []Event) ([]Action, error) {
	if id != "i1" {
		return nil, errors.New("unknown installation")
	}
	var out []Action
	for _, e := range events {
		out = append(out, Action{Type: "visitor.message", AnonymousID: e.MessageID, Data: json.RawMessage(`{"text":"hi"}`)})
	}
	return out, nil
}

func (fakeApp) OnSessions(_ context.Context, _ string, changes []SessionChange) ([]Action, error) {
	var out []Action
	for _, c := range changes {
		out = append(out, Action{Type: "webhook", UserID: c.Kind, Data: c.Session})
	}
	return out, nil
}

func TestAppActions(t *testing.T) {
	ctx := context.Background()
	c := connect(t, fakeApp{})
	actions, err := c.OnEvents(ctx, "i1", []Event{{MessageID: "a1", Type: "track", Payload: []byte(`{}`)}})
	if err != nil || len(actions) != 1 || actions[0].Type != "visitor.message" || actions[0].AnonymousID != "a1" ||
		string(actions[0].Data) != `{"text":"hi"}` {
		t.Fatalf("OnEvents = %+v, %v", actions, err)
	}
	actions, err = c.OnSessions(ctx, "i1", []SessionChange{{Kind: "started", Session: json.RawMessage(`{"id":"s1"}`)}, {Kind: "closed", Session: json.RawMessage(`{"id":"s2"}`)}})
	if err != nil || len(actions) != 2 || actions[0].UserID != "started" || string(actions[1].Data) != `{"id":"s2"}` {
		t.Fatalf("OnSessions = %+v, %v", actions, err)
	}
	var pe *PluginError
	if _, err := c.OnEvents(ctx, "nope", nil); !errors.As(err, &pe) || pe.Message != "unknown installation" {
		t.Fatalf("OnEvents of an unknown installation = %v, want the plugin's error", err)
	}
	if _, err := connect(t, nopPlugin{}).OnSessions(ctx, "i1", nil); err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Fatalf("OnSessions on a processor = %v, want Unimplemented", err)
	}
}
