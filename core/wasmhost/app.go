package wasmhost

// Apps: modules that react to events and session changes with actions
// (exports eddy_on_events and eddy_on_sessions), and keep a little state
// per installation through host functions of the "eddy" module.
//
// A host function must reach only its caller's state. Every call into an
// app carries the installation's State in its context (wazero hands a
// host function the context of the call that reached it), so an instance
// can only ever touch the State of the Module that called it, whatever
// the instance or module names.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// State is an installation's small key-value store. The host enforces
// the limits of eddywasm (MaxStateKeyBytes, MaxStateValueBytes) before
// calling it; an implementation enforces MaxStateKeys and returns
// ErrStateFull past it.
type State interface {
	// Get returns the value under key, and whether there is one.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set keeps value under key.
	Set(ctx context.Context, key string, value []byte) error
	// Delete removes key; a missing key is no error.
	Delete(ctx context.Context, key string) error
}

// Errors of State.
var (
	ErrStateBadKey        = fmt.Errorf("state key must be 1 to %d bytes", eddywasm.MaxStateKeyBytes)
	ErrStateValueTooLarge = fmt.Errorf("state value must be at most %d bytes", eddywasm.MaxStateValueBytes)
	ErrStateFull          = fmt.Errorf("state holds %d keys already", eddywasm.MaxStateKeys)
)

// The app exports, beside the processor's eddy_process.
const (
	exportOnEvents   = "eddy_on_events"
	exportOnSessions = "eddy_on_sessions"
)

// handlerExports are the exports of which a module needs at least one.
var handlerExports = []string{"eddy_process", exportOnEvents, exportOnSessions}

// checkHandlerExports requires one of handlerExports, and a processor's
// batch buffer with eddy_process.
func checkHandlerExports(exports map[string]api.FunctionDefinition) error {
	if _, ok := exports["eddy_process"]; ok {
		if _, ok := exports["eddy_buffer"]; !ok {
			return errors.New("it exports eddy_process without eddy_buffer (build it with the eddywasm SDK)")
		}
	}
	for _, e := range handlerExports {
		if _, ok := exports[e]; ok {
			return nil
		}
	}
	return errors.New("it exports none of eddy_process, eddy_on_events or eddy_on_sessions (build it with the eddywasm SDK)")
}

// OnEvents runs the app's events handler on a batch and returns the
// actions it asks for. Time limits, failures and disabling are those of
// Process.
func (m *Module) OnEvents(ctx context.Context, events []eddywasm.Event) ([]eddywasm.Action, error) {
	if events == nil {
		events = []eddywasm.Event{}
	}
	in, err := json.Marshal(eddywasm.EventsCall{Events: events})
	if err != nil {
		return nil, fmt.Errorf("%s: encode events: %w", m.name, err)
	}
	return m.callApp(ctx, exportOnEvents, in)
}

// OnSessions runs the app's session handler on session changes and
// returns the actions it asks for. Time limits, failures and disabling
// are those of Process.
func (m *Module) OnSessions(ctx context.Context, changes []eddywasm.SessionChange) ([]eddywasm.Action, error) {
	for i, c := range changes {
		switch c.Kind {
		case "started", "updated", "merged", "closed":
		default:
			return nil, fmt.Errorf("%s: changes[%d].kind: %q is not started, updated, merged or closed", m.name, i, c.Kind)
		}
		if !json.Valid(c.Session) {
			return nil, fmt.Errorf("%s: changes[%d].session: not JSON", m.name, i)
		}
	}
	if changes == nil {
		changes = []eddywasm.SessionChange{}
	}
	in, err := json.Marshal(eddywasm.SessionsCall{Changes: changes})
	if err != nil {
		return nil, fmt.Errorf("%s: encode session changes: %w", m.name, err)
	}
	return m.callApp(ctx, exportOnSessions, in)
}

func (m *Module) callApp(ctx context.Context, export string, in []byte) ([]eddywasm.Action, error) {
	if _, ok := m.compiled.ExportedFunctions()[export]; !ok {
		return nil, fmt.Errorf("%s: %w: it does not export %s", m.name, ErrInvalidModule, export)
	}
	ctx = context.WithValue(ctx, callKey{}, &callInfo{module: m.name, state: m.opts.State})
	out, err := m.call(ctx, func(inst *instance) api.Function { return inst.mod.ExportedFunction(export) }, in)
	if err != nil {
		return nil, err
	}
	var res eddywasm.AppResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("%s: the module answered something that is not a result: %w", m.name, err)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("%s: %s", m.name, res.Error)
	}
	for i, a := range res.Actions {
		if a.Type == "" {
			return nil, fmt.Errorf("%s: actions[%d].type: empty", m.name, i)
		}
		if len(a.Data) > 0 && (a.Data[0] != '{' || !json.Valid(a.Data)) {
			return nil, fmt.Errorf("%s: actions[%d].data: not a JSON object", m.name, i)
		}
	}
	return res.Actions, nil
}

// callInfo travels in an app call's context to the host functions.
type callInfo struct {
	module string
	state  State
}

type callKey struct{}

// instantiateHostFunctions defines the "eddy" host module apps import.
func instantiateHostFunctions(ctx context.Context, rt wazero.Runtime) error {
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder("eddy").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostStateGet), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("key_ptr", "key_len", "buf_ptr", "buf_cap").Export("state_get").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostStateSet), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("key_ptr", "key_len", "value_ptr", "value_len").Export("state_set").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostStateDelete), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("key_ptr", "key_len").Export("state_delete").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("eddy host functions: %w", err)
	}
	return nil
}

// stateCall returns the caller's call information and key, or a code to
// answer at once.
func stateCall(ctx context.Context, mod api.Module, keyPtr, keyLen uint32) (*callInfo, string, int32) {
	ci, _ := ctx.Value(callKey{}).(*callInfo)
	if ci == nil || ci.state == nil {
		return nil, "", eddywasm.StateUnavailable
	}
	if keyLen == 0 || keyLen > eddywasm.MaxStateKeyBytes {
		return nil, "", eddywasm.StateBadKey
	}
	b, ok := mod.Memory().Read(keyPtr, keyLen)
	if !ok {
		// A bad pointer is the module's bug: trap its call.
		panic(fmt.Errorf("eddy state: key at %d+%d is outside the module's memory", keyPtr, keyLen))
	}
	return ci, string(b), 0
}

// stateFailed logs a storage failure (never the key or value, which are
// the app's data) and returns the code for it.
func stateFailed(ctx context.Context, ci *callInfo, op string, err error) int32 {
	slog.WarnContext(ctx, "wasm app state failed", "module", ci.module, "op", op, "err", err)
	return eddywasm.StateFailed
}

func hostStateGet(ctx context.Context, mod api.Module, stack []uint64) {
	keyPtr, keyLen := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	bufPtr, bufCap := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	ci, key, code := stateCall(ctx, mod, keyPtr, keyLen)
	if code != 0 {
		stack[0] = api.EncodeI32(code)
		return
	}
	v, found, err := ci.state.Get(ctx, key)
	switch {
	case err != nil:
		code = stateFailed(ctx, ci, "get", err)
	case !found:
		code = eddywasm.StateNotFound
	default:
		// A value longer than the buffer is only measured: the guest
		// calls again with a buffer that fits.
		if uint32(len(v)) <= bufCap && len(v) > 0 && !mod.Memory().Write(bufPtr, v) {
			panic(fmt.Errorf("eddy state: buffer at %d+%d is outside the module's memory", bufPtr, bufCap))
		}
		code = int32(len(v))
	}
	stack[0] = api.EncodeI32(code)
}

func hostStateSet(ctx context.Context, mod api.Module, stack []uint64) {
	keyPtr, keyLen := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	valuePtr, valueLen := api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	ci, key, code := stateCall(ctx, mod, keyPtr, keyLen)
	switch {
	case code != 0:
	case valueLen > eddywasm.MaxStateValueBytes:
		code = eddywasm.StateValueTooLarge
	default:
		v, ok := mod.Memory().Read(valuePtr, valueLen)
		if !ok {
			panic(fmt.Errorf("eddy state: value at %d+%d is outside the module's memory", valuePtr, valueLen))
		}
		err := ci.state.Set(ctx, key, append([]byte(nil), v...))
		switch {
		case errors.Is(err, ErrStateFull):
			code = eddywasm.StateFull
		case errors.Is(err, ErrStateValueTooLarge):
			code = eddywasm.StateValueTooLarge
		case errors.Is(err, ErrStateBadKey):
			code = eddywasm.StateBadKey
		case err != nil:
			code = stateFailed(ctx, ci, "set", err)
		}
	}
	stack[0] = api.EncodeI32(code)
}

func hostStateDelete(ctx context.Context, mod api.Module, stack []uint64) {
	ci, key, code := stateCall(ctx, mod, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	if code == 0 {
		if err := ci.state.Delete(ctx, key); err != nil {
			code = stateFailed(ctx, ci, "delete", err)
		}
	}
	stack[0] = api.EncodeI32(code)
}

// RedisState is an installation's State in Redis: one hash,
// {prefix}:app:state:{installationID}.
type RedisState struct {
	rdb redis.UniversalClient
	key string
}

// NewRedisState returns the state of an installation, under prefix (the
// queue's prefix).
func NewRedisState(rdb redis.UniversalClient, prefix, installationID string) (*RedisState, error) {
	if installationID == "" {
		return nil, errors.New("app state: installation id is empty")
	}
	return &RedisState{rdb: rdb, key: prefix + ":app:state:" + installationID}, nil
}

var _ State = (*RedisState)(nil)

// Key returns the Redis key of the installation's hash.
func (s *RedisState) Key() string { return s.key }

// Get returns the value under key.
func (s *RedisState) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := s.rdb.HGet(ctx, s.key, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("app state get: %w", err)
	}
	return v, true, nil
}

// setScript sets a field unless that would take the hash past its key
// limit, atomically: 1 if set, 0 if the hash is full.
var setScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
	redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
	return 1
end
return 0`)

// Set keeps value under key; ErrStateFull if the hash holds MaxStateKeys
// other keys.
func (s *RedisState) Set(ctx context.Context, key string, value []byte) error {
	switch {
	case len(key) == 0 || len(key) > eddywasm.MaxStateKeyBytes:
		return ErrStateBadKey
	case len(value) > eddywasm.MaxStateValueBytes:
		return ErrStateValueTooLarge
	}
	n, err := setScript.Run(ctx, s.rdb, []string{s.key}, key, value, eddywasm.MaxStateKeys).Int()
	if err != nil {
		return fmt.Errorf("app state set: %w", err)
	}
	if n == 0 {
		return ErrStateFull
	}
	return nil
}

// Delete removes key.
func (s *RedisState) Delete(ctx context.Context, key string) error {
	if err := s.rdb.HDel(ctx, s.key, key).Err(); err != nil {
		return fmt.Errorf("app state delete: %w", err)
	}
	return nil
}

// Clear removes the installation's whole state (on uninstall).
func (s *RedisState) Clear(ctx context.Context) error {
	if err := s.rdb.Del(ctx, s.key).Err(); err != nil {
		return fmt.Errorf("app state clear: %w", err)
	}
	return nil
}

// Handles reports whether the module exports a handler: "events" for
// eddy_on_events, "sessions" for eddy_on_sessions, "process" for
// eddy_process.
func (m *Module) Handles(what string) bool {
	name := map[string]string{"events": exportOnEvents, "sessions": exportOnSessions, "process": "eddy_process"}[what]
	_, ok := m.compiled.ExportedFunctions()[name]
	return ok
}
