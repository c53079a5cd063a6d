// Package wasmhost runs Eddy's WASM plugins in process, sandboxed by
// wazero: no file system, network or clock beyond what WASI gives a
// module by default, a memory cap per instance and a time limit per call.
//
// One Runtime compiles each module once (a shared compilation cache). A
// Module is one installation of a plugin: a pool of warm instances, each
// initialised with the installation's configuration. A call takes an
// instance, hands it a whole batch, and returns it to the pool.
//
// Batches travel in ABI version 2's compact binary layout (see
// sdk/eddywasm, the guest SDK): the host encodes the batch straight into
// a buffer the guest keeps from call to call, the guest decodes it without
// copying and answers one verdict per event, so that an unchanged event
// costs one byte on the way back; one call into the module per batch,
// plus one more only when a batch outgrows the buffer.
//
// The time limit (wazero's WithCloseOnContextDone) makes the guest check
// for cancellation at every loop iteration by a call back into the host,
// and Go's WebAssembly code jumps through a loop for most branches: a Go
// guest's code runs 5–10× slower than without the limit (~40 ns per loop
// iteration or taken branch here), which the SDK's hot path avoids and
// plugin authors should know (sdk/README.md).
//
// A call that traps (a panic), runs past its time limit or exhausts its
// memory fails only its batch: the instance is discarded and the next
// call gets a fresh one. After MaxFailures failures in a row the module
// is disabled.
package wasmhost

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
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
	// seq numbers instances: wazero refuses two live instances of one
	// name, and two installations of a plugin may share a name.
	seq atomic.Uint64
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
	// State is the installation's state, for an app that has the "state"
	// permission (see app.go); nil for none.
	State State
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
	if err := instantiateHostFunctions(ctx, rt); err != nil { // app.go
		_ = rt.Close(ctx)
		return nil, err
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

// exports every module must have, beside one of handlerExports (app.go);
// CheckExports (validate.go) applies the rule.
var required = []string{"eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init"}

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
}

// Load compiles wasm (from the cache if it was compiled before), checks
// its exports and ABI version, and starts one instance with config (a JSON
// object), so that a bad module or configuration fails here.
func (r *Runtime) Load(ctx context.Context, name string, wasm []byte, config []byte, opts Options) (*Module, error) {
	compiled, err := r.compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalidModule, err)
	}
	if err := CheckExports(compiled.ExportedFunctions()); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalidModule, err)
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
	mod                                api.Module
	alloc, free, init, buffer, process api.Function
	// bufPtr and bufLen are the guest's batch buffer (eddy_buffer), kept
	// so that most calls need no allocation in the guest.
	bufPtr, bufLen uint32
	// stack carries the parameters and results of CallWithStack.
	stack [2]uint64
}

func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	name := fmt.Sprintf("%s#%d", m.name, m.r.seq.Add(1))
	cfg := wazero.NewModuleConfig().WithName(name).WithStartFunctions("_initialize")
	mod, err := m.r.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: instantiate: %w", m.name, err)
	}
	inst := &instance{mod: mod, alloc: mod.ExportedFunction("eddy_alloc"), free: mod.ExportedFunction("eddy_free"),
		init: mod.ExportedFunction("eddy_init"), buffer: mod.ExportedFunction("eddy_buffer"),
		process: mod.ExportedFunction("eddy_process")}
	v, err := mod.ExportedFunction("eddy_abi_version").Call(ctx)
	if err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%s: %w: eddy_abi_version: %v", m.name, ErrInvalidModule, err)
	}
	if len(v) != 1 || v[0] != eddywasm.ABIVersion {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%s: %w: it speaks ABI version %v, this Eddy speaks version %d only (rebuild it with the current eddywasm SDK)",
			m.name, ErrInvalidModule, v, eddywasm.ABIVersion)
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

// Process runs the module's processor on a batch of one workspace's
// events and returns one result per event, in order: Unchanged (keep the
// event as it is), Changed (keep it with the result's Payload and IP,
// which the caller owns), Dropped, or Rejected (with a Reason). An error
// fails the whole batch; a *eddywasm.BatchError is the module's own
// refusal of the batch, any other a failure of the module (counted
// towards disabling it).
func (m *Module) Process(ctx context.Context, events []eddywasm.Event) ([]eddywasm.Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	size := eddywasm.BatchSize(events)
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("%s: a batch of %d bytes is larger than 4 GiB", m.name, size)
	}
	var results []eddywasm.Result
	err := m.run(ctx, func(ctx context.Context, inst *instance) error {
		var err error
		results, err = inst.processBatch(ctx, events, uint32(size))
		return err
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// processBatch encodes events (size bytes) straight into the guest's batch
// buffer, grown first if need be, runs the processor and decodes its
// answer.
func (inst *instance) processBatch(ctx context.Context, events []eddywasm.Event, size uint32) ([]eddywasm.Result, error) {
	if inst.process == nil || inst.buffer == nil {
		return nil, fmt.Errorf("%w: it does not export eddy_process and eddy_buffer: not a processor", ErrInvalidModule)
	}
	if size > inst.bufLen {
		inst.stack[0] = uint64(size)
		if err := inst.buffer.CallWithStack(ctx, inst.stack[:]); err != nil {
			return nil, fmt.Errorf("grow the batch buffer to %d bytes: %w", size, err)
		}
		inst.bufPtr, inst.bufLen = uint32(inst.stack[0]), size
	}
	mem := inst.mod.Memory()
	// A view of the guest's memory, valid until the memory grows: no guest
	// code runs while it is written.
	buf, ok := mem.Read(inst.bufPtr, size)
	if !ok {
		return nil, fmt.Errorf("the batch buffer at %d (%d bytes) is out of the module's memory", inst.bufPtr, size)
	}
	eddywasm.EncodeBatch(buf, events)
	inst.stack[0], inst.stack[1] = uint64(inst.bufPtr), uint64(size)
	if err := inst.process.CallWithStack(ctx, inst.stack[:]); err != nil {
		return nil, err
	}
	op, n := uint32(inst.stack[0]>>32), uint32(inst.stack[0])
	out, ok := mem.Read(op, n)
	if !ok {
		return nil, fmt.Errorf("the module answered %d bytes at %d, out of its memory", n, op)
	}
	results, err := eddywasm.DecodeResults(out, events, make([]eddywasm.Result, 0, len(events)))
	if err != nil {
		var be *eddywasm.BatchError
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, fmt.Errorf("the module answered something that is not a result: %w", err)
	}
	return results, nil
}

// call runs one export on a pooled instance under the call's time limit,
// handing it in and returning its answer (see callOn).
func (m *Module) call(ctx context.Context, fn func(*instance) api.Function, in []byte) ([]byte, error) {
	var out []byte
	err := m.run(ctx, func(ctx context.Context, inst *instance) error {
		var err error
		out, err = m.callOn(ctx, inst, fn(inst), in)
		return err
	})
	return out, err
}

// run runs f on a pooled instance under the call's time limit. A failed
// call discards the instance and counts towards disabling the module,
// except a *eddywasm.BatchError: the module refused the batch itself.
func (m *Module) run(ctx context.Context, f func(context.Context, *instance) error) error {
	m.mu.Lock()
	if m.disabled {
		err := fmt.Errorf("%s: %w (last: %v)", m.name, ErrDisabled, m.lastErr)
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()
	inst, err := m.get(ctx)
	if err != nil {
		m.failed(err)
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	err = f(cctx, inst)
	var be *eddywasm.BatchError
	if err != nil && !errors.As(err, &be) {
		_ = inst.mod.Close(ctx)
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("ran past its time limit of %s: %w", m.opts.CallTimeout, err)
		}
		err = fmt.Errorf("%s: %w", m.name, err)
		m.failed(err)
		return err
	}
	m.mu.Lock()
	m.failures = 0
	m.mu.Unlock()
	m.put(ctx, inst)
	if err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	return nil
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
