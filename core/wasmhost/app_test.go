package wasmhost

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

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

var (
	appOnce sync.Once
	appWasm []byte
	appErr  error
)

// testApp returns the test app (testdata/app), built once.
func testApp(t *testing.T) []byte {
	t.Helper()
	appOnce.Do(func() { appWasm, appErr = buildModule("./testdata/app") })
	if appErr != nil {
		t.Fatal(appErr)
	}
	return appWasm
}

// testRedis returns a client of the machine's Redis, failing the test
// when it is not there.
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("these tests need Redis at 127.0.0.1:6379: %v", err)
	}
	return rdb
}

// testState returns an installation's Redis state under a prefix of its
// own, removed at the test's end.
func testState(t *testing.T, rdb *redis.Client, installation string) *RedisState {
	t.Helper()
	prefix := fmt.Sprintf("eddytest-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
	s, err := NewRedisState(rdb, prefix, installation)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Clear(context.Background()) })
	return s
}

// cmd is one command event for the test app.
func cmd(id string, fields map[string]any) eddywasm.Event {
	b, _ := json.Marshal(fields)
	return eddywasm.Event{MessageID: id, WorkspaceID: "w", Type: "track", Timestamp: when, Payload: b}
}

// actionData decodes an action's data.
func actionData(t *testing.T, a eddywasm.Action) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(a.Data, &d); err != nil {
		t.Fatalf("action %s: data %q: %v", a.Type, a.Data, err)
	}
	return d
}

func TestAppHandlersAnswerActions(t *testing.T) {
	ctx := context.Background()
	m, err := runtime.Load(ctx, "app.test", testApp(t), nil, Options{CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)

	session := json.RawMessage(`{"id":"s1","cart":{"items":[{"name":"Mug","price":9.5,"quantity":2}],"value":19}}`)
	actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{{Kind: "started", Session: session}, {Kind: "closed", Session: session}})
	if err != nil {
		t.Fatalf("OnSessions: %v", err)
	}
	if len(actions) != 2 || actions[0].Type != "started" || actions[1].Type != "closed" {
		t.Fatalf("actions = %+v, want started then closed", actions)
	}
	var got, want any
	_ = json.Unmarshal(actions[1].Data, &got)
	_ = json.Unmarshal(session, &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the session came back as %s, want %s", actions[1].Data, session)
	}

	actions, err = m.OnEvents(ctx, []eddywasm.Event{cmd("e1", map[string]any{"event": "get", "key": "k"})})
	if err != nil {
		t.Fatalf("OnEvents: %v", err)
	}
	if len(actions) != 1 || actions[0].Type != "get" || actions[0].AnonymousID != "a-e1" {
		t.Fatalf("actions = %+v", actions)
	}
	// Without a State, the state host functions answer "unavailable".
	if d := actionData(t, actions[0]); d["found"] != false {
		t.Fatalf("get without state = %v, want not found", d)
	}
	actions, err = m.OnEvents(ctx, []eddywasm.Event{cmd("e1", map[string]any{"event": "set", "key": "k", "value": "v"})})
	if err != nil || len(actions) != 1 || !strings.Contains(fmt.Sprint(actionData(t, actions[0])["error"]), "no state") {
		t.Fatalf("set without state = %+v, %v; want the unavailable error", actions, err)
	}

	// Bad input is refused before the module sees it, naming the field.
	if _, err := m.OnSessions(ctx, []eddywasm.SessionChange{{Kind: "opened", Session: session}}); err == nil || !strings.Contains(err.Error(), "changes[0].kind") {
		t.Fatalf("bad kind: %v, want an error naming changes[0].kind", err)
	}

	// A call past its time limit fails alone; the next one runs.
	start := time.Now()
	if _, err := m.OnEvents(ctx, []eddywasm.Event{cmd("e1", map[string]any{"event": "loop"})}); err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("loop: %v, want the time limit", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("loop stopped after %s, want about 300ms", d)
	}
	if actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{{Kind: "updated", Session: session}}); err != nil || len(actions) != 1 {
		t.Fatalf("after the loop: %+v, %v; want the next call answered", actions, err)
	}
	if st := m.Status(); st.Disabled || st.Failures != 0 {
		t.Fatalf("status = %+v, want enabled with no failures in a row", st)
	}
}

// A module built with the SDK exports both app handlers; one it did not
// register (here a processor's, which registers neither) has nothing to do
// and asks for nothing: an app may care for events only, or sessions only,
// while the host sends it both.
func TestUnregisteredAppHandlerAsksNothing(t *testing.T) {
	ctx := context.Background()
	m, err := runtime.Load(ctx, "processor.tagger", guestWasm, nil, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	if actions, err := m.OnEvents(ctx, []eddywasm.Event{{MessageID: "m1", Type: "track", Payload: []byte(`{}`)}}); err != nil || len(actions) != 0 {
		t.Fatalf("OnEvents: %v, %v; want no actions and no error", actions, err)
	}
	if actions, err := m.OnSessions(ctx, []eddywasm.SessionChange{{Kind: "updated", Session: json.RawMessage(`{}`)}}); err != nil || len(actions) != 0 {
		t.Fatalf("OnSessions: %v, %v; want no actions and no error", actions, err)
	}
	if st := m.Status(); st.Failures != 0 {
		t.Fatalf("status %+v, want no failures", st)
	}
}

func TestAppState(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	state := testState(t, rdb, "inst-1")
	m, err := runtime.Load(ctx, "app.test", testApp(t), nil, Options{State: state})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	run := func(fields map[string]any) map[string]any {
		t.Helper()
		actions, err := m.OnEvents(ctx, []eddywasm.Event{cmd("e", fields)})
		if err != nil || len(actions) != 1 {
			t.Fatalf("%v: %+v, %v", fields, actions, err)
		}
		return actionData(t, actions[0])
	}
	big := strings.Repeat("v", 5000) // larger than the guest's first buffer
	tests := []struct {
		name    string
		cmd     map[string]any
		wantErr string // part of the guest's error, "" for none
		check   map[string]any
	}{
		{"set", map[string]any{"event": "set", "key": "greeting", "value": "hello"}, "", nil},
		{"get", map[string]any{"event": "get", "key": "greeting"}, "", map[string]any{"found": true, "value": "hello"}},
		{"overwrite with a large value", map[string]any{"event": "set", "key": "greeting", "value": big}, "", nil},
		{"get the large value", map[string]any{"event": "get", "key": "greeting"}, "", map[string]any{"found": true, "value": big}},
		{"get a missing key", map[string]any{"event": "get", "key": "nothing"}, "", map[string]any{"found": false, "value": ""}},
		{"delete", map[string]any{"event": "delete", "key": "greeting"}, "", nil},
		{"get after delete", map[string]any{"event": "get", "key": "greeting"}, "", map[string]any{"found": false}},
		{"delete a missing key", map[string]any{"event": "delete", "key": "greeting"}, "", nil},
		{"key of 256 bytes", map[string]any{"event": "set", "key": strings.Repeat("k", 256), "value": "v"}, "", nil},
		{"key of 257 bytes", map[string]any{"event": "set", "key": strings.Repeat("k", 257), "value": "v"}, "the key must be", nil},
		{"empty key", map[string]any{"event": "set", "key": "", "value": "v"}, "the key must be", nil},
		{"value of 64 KiB", map[string]any{"event": "setn", "key": "big", "size": 64 << 10}, "", nil},
		{"value over 64 KiB", map[string]any{"event": "setn", "key": "big2", "size": 64<<10 + 1}, "larger than 64 KiB", nil},
	}
	for _, tt := range tests {
		d := run(tt.cmd)
		errMsg, _ := d["error"].(string)
		if tt.wantErr == "" && errMsg != "" || !strings.Contains(errMsg, tt.wantErr) {
			t.Fatalf("%s: error %q, want %q", tt.name, errMsg, tt.wantErr)
		}
		for k, v := range tt.check {
			if d[k] != v {
				t.Fatalf("%s: %s = %.40v, want %.40v", tt.name, k, d[k], v)
			}
		}
	}
	if n, err := rdb.HLen(ctx, state.key).Result(); err != nil || n != 2 {
		t.Fatalf("the hash holds %d keys (%v), want 2", n, err)
	}
	if v, err := rdb.HGet(ctx, state.key, "big").Result(); err != nil || len(v) != 64<<10 {
		t.Fatalf("big = %d bytes (%v), want 65536", len(v), err)
	}

	// Fill the installation up to its key limit: one more key is refused,
	// but an existing key may still change.
	fill := map[string]any{}
	for i := range eddywasm.MaxStateKeys - 2 {
		fill[fmt.Sprintf("fill-%d", i)] = "x"
	}
	if err := rdb.HSet(ctx, state.key, fill).Err(); err != nil {
		t.Fatal(err)
	}
	if d := run(map[string]any{"event": "set", "key": "one-too-many", "value": "v"}); !strings.Contains(fmt.Sprint(d["error"]), "10000 keys") {
		t.Fatalf("set past the key limit: %v, want the full error", d)
	}
	if d := run(map[string]any{"event": "set", "key": "fill-7", "value": "changed"}); d["error"] != nil {
		t.Fatalf("overwrite at the key limit: %v, want it kept", d)
	}
	if d := run(map[string]any{"event": "get", "key": "fill-7"}); d["value"] != "changed" {
		t.Fatalf("fill-7 = %v, want changed", d)
	}
	if n, _ := rdb.HLen(ctx, state.key).Result(); n != eddywasm.MaxStateKeys {
		t.Fatalf("the hash holds %d keys, want %d", n, eddywasm.MaxStateKeys)
	}
}

// Two installations of one module never see each other's state: the
// host functions find the caller's State in the call, not by name.
func TestAppStateIsIsolatedPerInstallation(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	a, err := runtime.Load(ctx, "app.test/inst-a", testApp(t), nil, Options{State: testState(t, rdb, "inst-a")})
	if err != nil {
		t.Fatalf("Load a: %v", err)
	}
	defer a.Close(ctx)
	b, err := runtime.Load(ctx, "app.test/inst-b", testApp(t), nil, Options{State: testState(t, rdb, "inst-b")})
	if err != nil {
		t.Fatalf("Load b: %v", err)
	}
	defer b.Close(ctx)
	for _, m := range []*Module{a, b} {
		if _, err := m.OnEvents(ctx, []eddywasm.Event{cmd("e", map[string]any{"event": "set", "key": "shared", "value": fmt.Sprintf("%p", m)})}); err != nil {
			t.Fatal(err)
		}
	}
	// In parallel, each still reads its own.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		m := []*Module{a, b}[i%2]
		wg.Go(func() {
			actions, err := m.OnEvents(ctx, []eddywasm.Event{cmd("e", map[string]any{"event": "get", "key": "shared"})})
			if err != nil || len(actions) != 1 || !bytes.Contains(actions[0].Data, []byte(fmt.Sprintf("%p", m))) {
				errs <- fmt.Errorf("installation %p read %+v, %v", m, actions, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// failingState fails every call.
type failingState struct{}

func (failingState) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errors.New("down")
}
func (failingState) Set(context.Context, string, []byte) error { return errors.New("down") }
func (failingState) Delete(context.Context, string) error      { return errors.New("down") }

func TestAppStateFailureReachesTheGuest(t *testing.T) {
	ctx := context.Background()
	m, err := runtime.Load(ctx, "app.test", testApp(t), nil, Options{State: failingState{}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer m.Close(ctx)
	actions, err := m.OnEvents(ctx, []eddywasm.Event{cmd("e", map[string]any{"event": "set", "key": "k", "value": "v"})})
	if err != nil || len(actions) != 1 || !strings.Contains(fmt.Sprint(actionData(t, actions[0])["error"]), "storage failed") {
		t.Fatalf("set on a failing state: %+v, %v; want the storage error", actions, err)
	}
}

func TestRedisStateRefusesOversizedInput(t *testing.T) {
	rdb := testRedis(t)
	s := testState(t, rdb, "inst-1")
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"empty key", "", nil, ErrStateBadKey},
		{"long key", strings.Repeat("k", 257), nil, ErrStateBadKey},
		{"large value", "k", make([]byte, 64<<10+1), ErrStateValueTooLarge},
	} {
		if err := s.Set(ctx, tt.key, tt.value); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := NewRedisState(rdb, "p", ""); err == nil {
		t.Error("NewRedisState accepted an empty installation id")
	}
}

// wasmModule encodes a module of no-op functions under the given export
// names, to check Load's export rules without a toolchain.
func wasmModule(exports ...string) []byte {
	section := func(id byte, body []byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	exp := []byte{byte(len(exports))}
	for _, e := range exports {
		exp = append(exp, byte(len(e)))
		exp = append(exp, e...)
		exp = append(exp, 0x00, 0x00) // a function, index 0
	}
	m := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	m = append(m, section(1, []byte{0x01, 0x60, 0x00, 0x00})...) // type () -> ()
	m = append(m, section(3, []byte{0x01, 0x00})...)             // one function of that type
	m = append(m, section(7, exp)...)
	m = append(m, section(10, []byte{0x01, 0x02, 0x00, 0x0b})...) // its body: end
	return m
}

func TestLoadRequiresAHandlerExport(t *testing.T) {
	ctx := context.Background()
	base := []string{"eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init"}
	tests := []struct {
		name    string
		extra   []string
		wantErr string
	}{
		{"no handler", nil, "exports none of eddy_process, eddy_on_events or eddy_on_sessions"},
		{"a processor without its buffer", []string{"eddy_process"}, "eddy_process without eddy_buffer"},
		// Past the export rules, these no-op modules fail on their ABI version.
		{"an app with a session handler", []string{"eddy_on_sessions"}, "ABI version"},
		{"an app with an events handler", []string{"eddy_on_events"}, "ABI version"},
	}
	for _, tt := range tests {
		_, err := runtime.Load(ctx, "app.x", wasmModule(append(base, tt.extra...)...), nil, Options{})
		if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: %v, want ErrInvalidModule with %q", tt.name, err, tt.wantErr)
		}
	}
}
