// Package wasmhost runs Eddy's WASM plugins in process, sandboxed by
// wazero: no file system, network or clock beyond what WASI gives a
// module by default, a memory cap per instance and a time limit per call.
//
// One Runtime compiles each module once (a shared compilation cache). A
// Module is one installation of a plugin: a pool of warm instances, each
// initialised with the installation's configuration. A call takes an
// instance, hands it a whole batch as JSON (the guest SDK is
// sdk/eddywasm), and returns it to the pool. A call that traps (a panic),
// runs past its time limit or exhausts its memory fails only its batch:
// the instance is discarded and the next call gets a fresh one. After
// MaxFailures failures in a row the module is disabled.
package wasmhost

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// Runtime compiles and runs WASM modules. A module's code is compiled
// once and kept, by content hash, until the runtime closes.
type Runtime struct {
	rt wazero.Runtime

	mu       sync.Mutex
	compiled map[[32]byte]wazero.CompiledModule
}

// Options bound a module's calls. The memory cap is the runtime's (see
// NewRuntime).
type Options struct {
	// CallTimeout bounds each call; 2s if zero.
	CallTimeout time.Duration
	// PoolSize is how many warm instances are kept; 2 if zero.
	PoolSize int
	// MaxFailures disables the module after that many failed calls in a
	// row; 5 if zero.
	MaxFailures int
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 2
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	return o
}

// NewRuntime returns a runtime whose instances may use at most
// memoryLimitPages pages; modules compiled by it share one compilation
// cache, kept in cacheDir if it is not empty (else in memory).
func NewRuntime(ctx context.Context, memoryLimitPages uint32, cacheDir string) (*Runtime, error) {
	if memoryLimitPages == 0 {
		memoryLimitPages = 1024
	}
	cache := wazero.NewCompilationCache()
	if cacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cacheDir); err != nil {
			return nil, fmt.Errorf("wasm compilation cache: %w", err)
		}
	}
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithMemoryLimitPages(memoryLimitPages).
		WithCloseOnContextDone(true) // time limits interrupt loops
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasi: %w", err)
	}
	return &Runtime{rt: rt, compiled: map[[32]byte]wazero.CompiledModule{}}, nil
}

// Close releases the runtime and every module.
func (r *Runtime) Close(ctx context.Context) error { return r.rt.Close(ctx) }

// Errors a Module returns.
var (
	ErrInvalidModule = errors.New("invalid wasm module")
	ErrDisabled      = errors.New("wasm module disabled after repeated failures")
)

// exports every module must have.
var required = []string{"eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init", "eddy_process"}

// Module is one installation of a WASM plugin.
type Module struct {
	r        *Runtime
	name     string
	compiled wazero.CompiledModule
	config   []byte
	opts     Options
	pool     chan *instance

	mu       sync.Mutex
	failures int
	disabled bool
	lastErr  error
	seq      int
}

// Load compiles wasm (from the cache if it was compiled before), checks
// its exports and ABI version, and starts one instance with config (a JSON
// object), so that a bad module or configuration fails here.
func (r *Runtime) Load(ctx context.Context, name string, wasm []byte, config []byte, opts Options) (*Module, error) {
	compiled, err := r.compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalidModule, err)
	}
	exports := compiled.ExportedFunctions()
	for _, e := range required {
		if _, ok := exports[e]; !ok {
			return nil, fmt.Errorf("%s: %w: it does not export %s (build it with the eddywasm SDK)", name, ErrInvalidModule, e)
		}
	}
	if len(config) == 0 {
		config = []byte("{}")
	}
	opts = opts.withDefaults()
	m := &Module{r: r, name: name, compiled: compiled, config: config, opts: opts, pool: make(chan *instance, opts.PoolSize)}
	inst, err := m.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	m.put(ctx, inst)
	return m, nil
}

// compile returns the module's compiled code, compiling it the first time.
func (r *Runtime) compile(ctx context.Context, wasm []byte) (wazero.CompiledModule, error) {
	key := sha256.Sum256(wasm)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.compiled[key]; ok {
		return c, nil
	}
	c, err := r.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, err
	}
	r.compiled[key] = c
	return c, nil
}

// instance is one instantiated module with its exports.
type instance struct {
	mod                        api.Module
	alloc, free, init, process api.Function
}

func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	m.mu.Lock()
	m.seq++
	name := fmt.Sprintf("%s#%d", m.name, m.seq)
	m.mu.Unlock()
	cfg := wazero.NewModuleConfig().WithName(name).WithStartFunctions("_initialize")
	mod, err := m.r.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: instantiate: %w", m.name, err)
	}
	inst := &instance{mod: mod, alloc: mod.ExportedFunction("eddy_alloc"), free: mod.ExportedFunction("eddy_free"),
		init: mod.ExportedFunction("eddy_init"), process: mod.ExportedFunction("eddy_process")}
	v, err := mod.ExportedFunction("eddy_abi_version").Call(ctx)
	if err != nil || len(v) != 1 || v[0] != eddywasm.ABIVersion {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%s: %w: ABI version %v, want %d", m.name, ErrInvalidModule, v, eddywasm.ABIVersion)
	}
	out, err := m.callOn(ctx, inst, inst.init, m.config)
	if err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%s: init: %w", m.name, err)
	}
	var res eddywasm.InitResult
	if err := json.Unmarshal(out, &res); err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%s: init answered %q: %w", m.name, out, err)
	}
	if res.Error != "" {
		_ = mod.Close(ctx)
		return nil, &ConfigError{Message: res.Error}
	}
	return inst, nil
}

// ConfigError is a configuration the module refused at init.
type ConfigError struct{ Message string }

func (e *ConfigError) Error() string { return "configuration refused: " + e.Message }

func (m *Module) get(ctx context.Context) (*instance, error) {
	select {
	case inst := <-m.pool:
		return inst, nil
	default:
		return m.instantiate(ctx)
	}
}

func (m *Module) put(ctx context.Context, inst *instance) {
	select {
	case m.pool <- inst:
	default:
		_ = inst.mod.Close(ctx)
	}
}

// Process runs the module's processor on a batch.
func (m *Module) Process(ctx context.Context, events []eddywasm.Event) ([]eddywasm.Event, []eddywasm.Rejection, error) {
	in, err := json.Marshal(eddywasm.Batch{Events: events})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: encode batch: %w", m.name, err)
	}
	out, err := m.call(ctx, func(inst *instance) api.Function { return inst.process }, in)
	if err != nil {
		return nil, nil, err
	}
	var res eddywasm.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, nil, fmt.Errorf("%s: the module answered something that is not a result: %w", m.name, err)
	}
	if res.Error != "" {
		return nil, nil, fmt.Errorf("%s: %s", m.name, res.Error)
	}
	return res.Events, res.Rejected, nil
}

// call runs one export on a pooled instance under the call's time limit;
// a failed call discards the instance.
func (m *Module) call(ctx context.Context, fn func(*instance) api.Function, in []byte) ([]byte, error) {
	m.mu.Lock()
	if m.disabled {
		err := fmt.Errorf("%s: %w (last: %v)", m.name, ErrDisabled, m.lastErr)
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Unlock()
	inst, err := m.get(ctx)
	if err != nil {
		m.failed(err)
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	out, err := m.callOn(cctx, inst, fn(inst), in)
	if err != nil {
		_ = inst.mod.Close(ctx)
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("ran past its time limit of %s: %w", m.opts.CallTimeout, err)
		}
		err = fmt.Errorf("%s: %w", m.name, err)
		m.failed(err)
		return nil, err
	}
	m.mu.Lock()
	m.failures = 0
	m.mu.Unlock()
	m.put(ctx, inst)
	return out, nil
}

// callOn writes in into the instance's memory, calls f, and reads and
// frees the answer.
func (m *Module) callOn(ctx context.Context, inst *instance, f api.Function, in []byte) ([]byte, error) {
	r, err := inst.alloc.Call(ctx, uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("alloc: %w", err)
	}
	p := uint32(r[0])
	if !inst.mod.Memory().Write(p, in) {
		return nil, fmt.Errorf("write %d bytes at %d: out of the module's memory", len(in), p)
	}
	res, err := f.Call(ctx, uint64(p), uint64(len(in)))
	if err != nil {
		return nil, err
	}
	if _, err := inst.free.Call(ctx, uint64(p)); err != nil {
		return nil, fmt.Errorf("free: %w", err)
	}
	op, n := uint32(res[0]>>32), uint32(res[0])
	b, ok := inst.mod.Memory().Read(op, n)
	if !ok {
		return nil, fmt.Errorf("the module answered %d bytes at %d, out of its memory", n, op)
	}
	out := append([]byte(nil), b...)
	if _, err := inst.free.Call(ctx, uint64(op)); err != nil {
		return nil, fmt.Errorf("free: %w", err)
	}
	return out, nil
}

func (m *Module) failed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures++
	m.lastErr = err
	if m.failures >= m.opts.MaxFailures {
		m.disabled = true
	}
}

// Status is the module's state, for the API and metrics.
type Status struct {
	Disabled  bool
	Failures  int
	LastError string
}

// Status reports the module's state.
func (m *Module) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Disabled: m.disabled, Failures: m.failures}
	if m.lastErr != nil {
		st.LastError = m.lastErr.Error()
	}
	return st
}

// Close releases the module's instances (its compiled code stays with
// the runtime, for the next installation of the same module).
func (m *Module) Close(ctx context.Context) error {
	for {
		select {
		case inst := <-m.pool:
			_ = inst.mod.Close(ctx)
		default:
			return nil
		}
	}
}
