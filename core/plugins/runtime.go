// Package plugins runs the plugins installed in workspaces inside Eddy's
// pipeline:
//
//   - Processors run in the worker's process stage: a consumer group
//     ("process") of the ingest queue, which the collector and sources
//     write to, runs each workspace's processors on every batch, in the
//     workspace's order, and forwards the processed events to the events
//     queue, atomically with its acknowledgement. Storage, the session
//     engine and the sinks read the events queue.
//   - Sinks: a routing group ("route") of the events queue copies each
//     event to the queue of every sink installation of its workspace (one
//     stream per installation), and a deliverer per installation writes
//     them to the plugin with retries, backoff, a rate limit and its own
//     dead-letter stream, so a slow or failing sink never holds back
//     ingestion or another sink.
//
// A Runtime keeps the running installations in line with the installed
// ones (re-read every few seconds, so that changes made through the API
// take effect without a restart), starts gRPC plugins through
// core/pluginhost (one process per plugin, serving all its installations)
// and WASM plugins through core/wasmhost (one module per installation),
// and reports each installation's state through core/pluginstatus.
package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/core/pluginstatus"
	"github.com/eddy-cdp/eddy/core/privacy"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/wasmhost"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// Installation is a plugin installed in a workspace.
type Installation struct {
	ID, WorkspaceID, PluginID string
	Enabled                   bool
	// Config is the installation's configuration, a JSON object already
	// checked against the plugin's schema.
	Config json.RawMessage
	// Position orders a workspace's processors, ascending.
	Position int
	// RateLimit caps a sink's deliveries, in events per second; 0 for no
	// limit.
	RateLimit float64
	UpdatedAt time.Time
}

// Lister returns every installation of every workspace.
type Lister func(ctx context.Context) ([]Installation, error)

// Plugin is what the runtime needs to start a plugin.
type Plugin struct {
	Manifest *plugin.Manifest
	// Module is a WASM plugin's code when it does not come from a file
	// (an uploaded app); nil to read Manifest.Artifact().
	Module []byte
}

// Catalog finds the plugin an installation of a workspace uses.
type Catalog func(ctx context.Context, workspaceID, pluginID string) (Plugin, error)

// Options configure a Runtime.
type Options struct {
	// Prefix starts the Redis keys of the per-installation queues.
	Prefix string
	// Worker names this process in status reports.
	Worker string
	// Reload is how often installations are re-read; 2s if zero.
	Reload time.Duration
	// WASMMemoryPages caps a WASM instance's memory (64 KiB pages); 1024
	// (64 MiB) if zero.
	WASMMemoryPages uint32
	// Sink delivery tuning (see SinkOptions).
	Sinks SinkOptions
	// Ingest is the queue sources write to (the collector's), and
	// Collector the limits their messages are checked against.
	Ingest    *queue.Queue
	Collector config.Collector
	// Debug, when set, records the events of the sources the console's
	// live debugger watches that the consent gate refuses, and why.
	Debug *debugger.Recorder
	// Policies, when set, is the consent gate: each event is checked
	// against its workspace's policy before anything else sees it (refused
	// events go no further) and minimised, and each plugin receives only
	// the events whose consent covers its purposes.
	Policies Policies
	// Decisions, with Policies, are the consent decisions on persons
	// (set through the API, or deleted) the gate applies on top of the
	// consent events carry; Generation tells the gate at once that they,
	// or a policy, changed (without it, changes apply within 5 s).
	Decisions  Decisions
	Generation *privacy.Generation
	Logger     *slog.Logger
}

// Runtime runs the installed plugins. Create it with New, call Reload
// (or Run) to start the installations, and Close at exit.
type Runtime struct {
	list    Lister
	catalog Catalog
	rdb     redis.UniversalClient
	events  *queue.Queue
	status  *pluginstatus.Store
	wasm    *wasmhost.Runtime
	opts    Options
	log     *slog.Logger

	mu sync.Mutex
	// policies caches the workspaces' consent policies; nil: no gate.
	policies *policyCache

	sups   map[string]*pluginhost.Supervisor // by plugin id
	active map[string]*running               // by installation id
	// chains are the enabled processors of each workspace, in order;
	// replaced whole on each change and read without the lock.
	chains  atomicMap[[]*running]
	sinksOf atomicMap[[]*running] // running sinks of each workspace
	appsOf  atomicMap[[]*running] // running apps of each workspace
}

// running is an installation started in this process.
type running struct {
	in       Installation
	manifest *plugin.Manifest
	// One of: a gRPC plugin's supervisor (shared by the plugin's
	// installations) or a WASM module (this installation's own).
	sup    *pluginhost.Supervisor
	module *wasmhost.Module
	stats  stats
	// types are the event types the plugin receives; nil for all.
	types map[string]bool
	// sink is the installation's delivery queue and loop, for sinks.
	sink *sinkLoop
	// source runs a source installation.
	source *sourceLoop
	// app is an app installation's queue and loop.
	app *loop
	// initErr is why the installation could not start; it is retried
	// retryStartAfter after started.
	initErr error
	started time.Time
}

// retryStartAfter is how long an installation that failed to start waits
// before it is tried again (at once when it is changed).
const retryStartAfter = 30 * time.Second

// New returns a runtime over the installations list returns. events is
// the queue processed events go to (the routing group reads it).
func New(ctx context.Context, list Lister, catalog Catalog, rdb redis.UniversalClient, events *queue.Queue, opts Options) (*Runtime, error) {
	if opts.Reload <= 0 {
		opts.Reload = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Worker == "" {
		opts.Worker = queue.DefaultConsumerName()
	}
	if opts.Prefix == "" {
		opts.Prefix = "eddy"
	}
	wrt, err := wasmhost.NewRuntime(ctx, opts.WASMMemoryPages, "")
	if err != nil {
		return nil, fmt.Errorf("plugin runtime: %w", err)
	}
	var policies *policyCache
	if opts.Policies != nil {
		policies = &policyCache{load: opts.Policies, decisions: opts.Decisions, gen: opts.Generation}
	}
	return &Runtime{
		list: list, catalog: catalog, rdb: rdb, events: events, policies: policies,
		status: pluginstatus.New(rdb, opts.Prefix, 0), wasm: wrt, opts: opts,
		log:  opts.Logger.With("component", "plugins"),
		sups: map[string]*pluginhost.Supervisor{}, active: map[string]*running{},
	}, nil
}

// Run reloads the installations every Options.Reload, and reports their
// status, until ctx ends.
func (r *Runtime) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Reload)
	defer t.Stop()
	for {
		if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reload plugin installations", "err", err)
		}
		r.report(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reload brings the running installations in line with the installed
// ones: new and changed ones are (re)initialised, removed and disabled
// ones closed.
func (r *Runtime) Reload(ctx context.Context) error {
	all, err := r.list(ctx)
	if err != nil {
		return err
	}
	want := make(map[string]Installation, len(all))
	for _, in := range all {
		if in.Enabled {
			want[in.ID] = in
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	retry := map[string]bool{}
	for id, cur := range r.active {
		in, ok := want[id]
		same := ok && in.UpdatedAt.Equal(cur.in.UpdatedAt)
		if same && (cur.initErr == nil || time.Since(cur.started) < retryStartAfter) {
			continue
		}
		r.stopLocked(ctx, cur, !ok)
		delete(r.active, id)
		retry[id] = same
		changed = true
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if _, ok := r.active[id]; ok {
			continue
		}
		r.active[id] = r.startLocked(ctx, want[id], retry[id])
		changed = true
	}
	if changed {
		r.publishLocked()
	}
	return nil
}

// startLocked starts an installation; a failure is kept on it (status
// "failing") and retried later. retry says it is such a retry.
func (r *Runtime) startLocked(ctx context.Context, in Installation, retry bool) *running {
	ru := &running{in: in, started: time.Now(), stats: stats{plugin: in.PluginID, workspace: in.WorkspaceID}}
	log := r.log.With("installation", in.ID, "plugin_id", in.PluginID, "workspace_id", in.WorkspaceID)
	p, err := r.catalog(ctx, in.WorkspaceID, in.PluginID)
	if err != nil {
		ru.initErr = fmt.Errorf("find plugin %s: %w", in.PluginID, err)
		ru.stats.fail(ru.initErr)
		log.Error("plugin installation cannot start", "err", ru.initErr)
		return ru
	}
	m := p.Manifest
	ru.manifest = m
	if !slices.Contains(m.Permissions.Events, "*") {
		ru.types = map[string]bool{}
		for _, t := range m.Permissions.Events {
			ru.types[t] = true
		}
	}
	cfg := in.Config
	if len(cfg) == 0 {
		cfg = json.RawMessage("{}")
	}
	switch m.Runtime {
	case plugin.GRPC:
		sup, ok := r.sups[m.ID]
		if !ok {
			sup = pluginhost.NewSupervisor(m, pluginhost.SupervisorOptions{Logger: r.log})
			r.sups[m.ID] = sup
		}
		ru.sup = sup
		if !retry {
			// Installing, enabling or reconfiguring is an operator's retry
			// of a plugin disabled after crashes; a periodic retry of a
			// failed start is not.
			sup.Reset()
		}
		if err = sup.Init(ctx, eddyplugin.Installation{ID: in.ID, PluginID: in.PluginID, WorkspaceID: in.WorkspaceID, Config: cfg}); err == nil {
			err = validate(ctx, sup, in.ID)
		}
	case plugin.WASM:
		wasm := p.Module
		if wasm == nil {
			wasm, err = os.ReadFile(m.Artifact())
		}
		if err == nil {
			opts := wasmhost.Options{}
			// State only for an app whose manifest asks to write it.
			if m.Kind() == plugin.App && slices.Contains(m.Permissions.Write, "state") {
				if opts.State, err = wasmhost.NewRedisState(r.rdb, r.opts.Prefix, in.ID); err != nil {
					break
				}
			}
			ru.module, err = r.wasm.Load(ctx, in.ID, wasm, cfg, opts)
		}
	default:
		err = fmt.Errorf("unknown runtime %q", m.Runtime)
	}
	if err != nil {
		ru.initErr = fmt.Errorf("start %s: %w", in.PluginID, err)
		ru.stats.fail(ru.initErr)
		log.Error("plugin installation cannot start", "err", err)
		return ru
	}
	switch m.Kind() {
	case plugin.Sink:
		ru.sink = r.startSink(ru)
	case plugin.Source:
		if r.opts.Ingest != nil {
			ru.source = r.startSource(ru)
		}
	case plugin.App:
		ru.app = r.startApp(ru)
	}
	log.Info("plugin installation started")
	return ru
}

// stopLocked closes an installation; removed says it was uninstalled
// (its status is forgotten), not just changed.
func (r *Runtime) stopLocked(ctx context.Context, ru *running, removed bool) {
	if ru.sink != nil {
		ru.sink.stop()
	}
	if ru.source != nil {
		ru.source.stop()
	}
	if ru.app != nil {
		ru.app.stop()
	}
	if ru.initErr == nil {
		switch {
		case ru.sup != nil:
			if err := ru.sup.Close(ctx, ru.in.ID); err != nil {
				r.log.Warn("close plugin installation", "installation", ru.in.ID, "err", err)
			}
		case ru.module != nil:
			_ = ru.module.Close(ctx)
		}
	}
	if removed {
		if err := r.status.Delete(ctx, ru.in.ID); err != nil {
			r.log.Warn("forget plugin status", "installation", ru.in.ID, "err", err)
		}
		// An uninstalled sink's or app's queue, undelivered events and
		// dead letters included, goes with it.
		if ru.app != nil && ru.module != nil {
			if st, err := wasmhost.NewRedisState(r.rdb, r.opts.Prefix, ru.in.ID); err == nil {
				if err := st.Clear(ctx); err != nil {
					r.log.Warn("clear the state of an uninstalled app", "installation", ru.in.ID, "err", err)
				}
			}
		}
		for _, l := range []*loop{ru.sinkLoop(), ru.app} {
			if l == nil {
				continue
			}
			if err := l.q.Delete(ctx, l.group); err != nil {
				r.log.Warn("delete the queue of an uninstalled plugin", "installation", ru.in.ID, "err", err)
			}
		}
	}
}

// publishLocked replaces the per-workspace views the pipeline reads.
func (r *Runtime) publishLocked() {
	chains := map[string][]*running{}
	sinks := map[string][]*running{}
	apps := map[string][]*running{}
	for _, ru := range r.active {
		if ru.manifest == nil {
			continue
		}
		switch ru.manifest.Kind() {
		case plugin.Processor:
			// A processor that could not start is kept in the chain: its
			// events wait (dead letters) rather than skip it.
			chains[ru.in.WorkspaceID] = append(chains[ru.in.WorkspaceID], ru)
		case plugin.Sink:
			if ru.sink != nil {
				sinks[ru.in.WorkspaceID] = append(sinks[ru.in.WorkspaceID], ru)
			}
		case plugin.App:
			if ru.app != nil {
				apps[ru.in.WorkspaceID] = append(apps[ru.in.WorkspaceID], ru)
			}
		}
	}
	for _, c := range chains {
		slices.SortFunc(c, func(a, b *running) int {
			if a.in.Position != b.in.Position {
				return a.in.Position - b.in.Position
			}
			return strings.Compare(a.in.PluginID, b.in.PluginID)
		})
	}
	r.chains.Store(chains)
	r.sinksOf.Store(sinks)
	r.appsOf.Store(apps)
}

// Close stops every installation and plugin process.
func (r *Runtime) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, ru := range r.active {
		r.stopLocked(ctx, ru, false)
		delete(r.active, id)
	}
	for _, s := range r.sups {
		s.Stop(ctx)
	}
	r.publishLocked()
	_ = r.wasm.Close(ctx)
}

// sinkLoop is a sink's queue loop, or nil.
func (ru *running) sinkLoop() *loop {
	if ru.sink == nil {
		return nil
	}
	return ru.sink.loop
}

// receives reports whether the plugin gets events of type typ.
func (ru *running) receives(typ string) bool { return ru.types == nil || ru.types[typ] }

// errNotStarted fails the events of an installation that could not start.
var errNotStarted = errors.New("plugin installation not started")

// validate asks the plugin for the checks its schema cannot make
// (credentials, reachability); problems fail the installation's start.
func validate(ctx context.Context, sup *pluginhost.Supervisor, id string) error {
	var problems []eddyplugin.FieldError
	err := sup.Do(ctx, func(c *eddyplugin.Client) error {
		var verr error
		problems, verr = c.Validate(ctx, id)
		return verr
	})
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Field + ": " + p.Message
	}
	return fmt.Errorf("configuration refused: %s", strings.Join(msgs, "; "))
}
