// Package server wires Eddy's roles into one process: the collector (the
// tracking API), the worker (queue to PostgreSQL) and the api role (the
// management REST API), behind one HTTP listener that also serves /healthz,
// /readyz and /metrics.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/actions"
	"github.com/eddy-cdp/eddy/core/api"
	"github.com/eddy-cdp/eddy/core/collector"
	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/cube"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/engine"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/pipeline"
	"github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/cubes"
)

// Roles a process can take.
const (
	RoleCollector = "collector"
	RoleWorker    = "worker"
	RoleAPI       = "api"
)

// AllRoles is what `eddy serve` runs without --roles.
var AllRoles = []string{RoleCollector, RoleWorker, RoleAPI}

// ParseRoles reads a comma-separated role list.
func ParseRoles(s string) ([]string, error) {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (roles: %s)", r, strings.Join(AllRoles, ", "))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, errors.New("no role given (roles: collector, worker, api)")
	}
	return roles, nil
}

// Server is a running Eddy process.
type Server struct {
	cfg   *config.Config
	roles []string
	log   *slog.Logger
	reg   *prometheus.Registry
	rdb   *redis.Client
	store *store.Store
	queue *queue.Queue // processed events: storage, sessions and sinks read it
	cubes *cube.Model  // the semantic layer's models

	rollupCompacted prometheus.Counter
	ingest          *queue.Queue // accepted events, before the processors
	// plugins runs the installed plugins (worker role), once Run started.
	pluginRT atomic.Pointer[plugins.Runtime]
	keys     *collector.KeyCache
	// debug records the events of the sources the console's live
	// debugger watches (collector and consent gate).
	debug *debugger.Recorder
	// actionHub and actionStreams serve apps' actions to the visitors'
	// pages (collector role).
	actionHub     *actions.Hub
	actionStreams *actions.Streams
	api           *api.API
	http          *http.Server
	ln            net.Listener
	ready         chan struct{}
	closed        sync.Once
}

// New connects to Redis and PostgreSQL, applies the file's workspaces and
// sources, and prepares the roles. It does not migrate: see store.Migrate.
func New(ctx context.Context, cfg *config.Config, roles []string, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, roles: roles, log: log, reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.rollupCompacted = prometheus.NewCounter(prometheus.CounterOpts{Name: "eddy_cube_rollup_groups_compacted_total",
		Help: "Groups of the semantic layer's rollups whose delta rows were folded into their compacted row."})
	s.reg.MustRegister(s.rollupCompacted)

	// go-redis logs connection retries on its own; in Eddy they are debug
	// detail, since the queue's callers already log the failures they see.
	redis.SetLogger(redisLogger{log})
	ropts, err := redis.ParseURL(cfg.Env.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("EDDY_REDIS_URL: %w", err)
	}
	// Short timeouts: an unreachable Redis must turn into a quick 503, not a
	// hung request.
	ropts.DialTimeout = 2 * time.Second
	ropts.DialerRetries = 2
	ropts.ReadTimeout = 3 * time.Second
	ropts.WriteTimeout = 3 * time.Second
	ropts.PoolSize = 64
	s.rdb = redis.NewClient(ropts)

	s.store, err = store.Open(ctx, cfg.Env.DatabaseURL)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := s.store.SyncWorkspaces(ctx, WorkspaceSpecs(cfg)); err != nil {
		s.Close()
		return nil, fmt.Errorf("apply workspaces from %s: %w", cfg.Path, err)
	}
	specs, err := InstallationSpecs(cfg)
	if err == nil {
		err = s.store.SyncInstallations(ctx, specs)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("apply plugin installations from %s: %w", cfg.Path, err)
	}
	if s.cubes, err = loadCubes(ctx, cfg, s.store); err != nil {
		s.Close()
		return nil, err
	}
	s.queue, err = queue.New(s.rdb, queue.Options{Prefix: cfg.Queue.Prefix, Shards: cfg.Queue.Shards, Registerer: s.reg})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.ingest, err = queue.New(s.rdb, queue.Options{Prefix: IngestPrefix(cfg.Queue.Prefix), Shards: cfg.Queue.Shards, Registerer: s.reg, Name: "ingest"})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.debug = debugger.NewRecorder(s.rdb, cfg.Queue.Prefix, log.With("component", "debugger"))
	if s.has(RoleCollector) || s.has(RoleWorker) {
		// The route group publishes actions; collectors serve them.
		if err := actions.RegisterMetrics(s.reg); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.has(RoleCollector) {
		s.keys = collector.NewKeyCache(s.store, 10*time.Second, log)
		if err := s.keys.Reload(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("load write keys: %w", err)
		}
		if err := collector.RegisterMetrics(s.reg); err != nil {
			s.Close()
			return nil, err
		}
		s.actionHub = actions.NewHub(s.rdb, cfg.Queue.Prefix, log.With("component", "actions"))
		s.actionStreams = &actions.Streams{Keys: s.keys, Hub: s.actionHub, Redis: s.rdb, Prefix: cfg.Queue.Prefix}
	}
	if s.has(RoleWorker) {
		if err := pipeline.RegisterMetrics(s.reg); err != nil {
			s.Close()
			return nil, err
		}
		if err := engine.RegisterMetrics(s.reg); err != nil {
			s.Close()
			return nil, err
		}
		if err := plugins.RegisterMetrics(s.reg); err != nil {
			s.Close()
			return nil, err
		}
		if err := consent.RegisterMetrics(s.reg); err != nil {
			s.Close()
			return nil, err
		}
	}
	router, err := s.routes()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.http = &http.Server{
		Handler:           router,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if s.api != nil {
		// Shutdown waits for requests without cancelling them: end the
		// live streams, which would otherwise hold it up.
		s.http.RegisterOnShutdown(s.api.Close)
	}
	if s.actionStreams != nil {
		s.http.RegisterOnShutdown(s.actionStreams.Close)
	}
	return s, nil
}

// WorkspaceSpecs are the file's workspaces and sources as the store syncs
// them.
func WorkspaceSpecs(cfg *config.Config) []store.WorkspaceSpec {
	specs := make([]store.WorkspaceSpec, 0, len(cfg.Workspaces))
	for _, ws := range cfg.Workspaces {
		spec := store.WorkspaceSpec{Slug: ws.ID, Name: ws.Name, Organization: ws.Organization, Privacy: ws.Privacy}
		for _, src := range ws.Sources {
			spec.Sources = append(spec.Sources, store.SourceSpec{Slug: src.ID, Name: src.Name, WriteKey: src.WriteKey})
		}
		specs = append(specs, spec)
	}
	return specs
}

// InstallationSpecs are the file's plugin installations as the store syncs
// them: each workspace's plugins, in the file's order.
func InstallationSpecs(cfg *config.Config) ([]store.InstallationSpec, error) {
	var specs []store.InstallationSpec
	for _, ws := range cfg.Workspaces {
		for _, in := range ws.Plugins {
			config := in.Config
			if config == nil {
				config = map[string]any{}
			}
			b, err := json.Marshal(config)
			if err != nil {
				return nil, fmt.Errorf("workspace %s: plugin %s: config: %w", ws.ID, in.ID, err)
			}
			specs = append(specs, store.InstallationSpec{Workspace: ws.ID, PluginID: in.ID, Enabled: in.IsEnabled(), Config: b,
				RateLimit: in.RateLimit})
		}
	}
	return specs, nil
}

func (s *Server) has(role string) bool { return slices.Contains(s.roles, role) }

// Queue is the process's queue of processed events (for tools and
// tests).
func (s *Server) Queue() *queue.Queue { return s.queue }

// Ingest is the queue the collector and sources write to (for tools and
// tests).
func (s *Server) Ingest() *queue.Queue { return s.ingest }

// IngestPrefix is the key prefix of the ingest queue: accepted events wait
// there for the processors, which forward them to the events queue
// (prefix itself) that storage, the session engine and sinks read.
func IngestPrefix(prefix string) string { return prefix + ":in" }

// Store is the process's store (for tools and tests).
func (s *Server) Store() *store.Store { return s.store }

func (s *Server) routes() (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		s.log.Error("panic serving request", "path", c.FullPath(), "panic", fmt.Sprint(err))
		c.AbortWithStatus(http.StatusInternalServerError)
	}))
	// Only the configured proxies may tell us a client's address.
	if err := r.SetTrustedProxies(s.cfg.Collector.TrustedProxies); err != nil {
		return nil, fmt.Errorf("%s: collector.trusted_proxies: %w", s.cfg.Path, err)
	}
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	if s.has(RoleAPI) {
		s.api = api.New(api.Options{
			Store:         s.store,
			Redis:         s.rdb,
			Prefix:        s.cfg.Queue.Prefix,
			Logger:        s.log.With("role", RoleAPI),
			SecureCookies: s.cfg.Env.SecureCookies,
			KeysChanged:   s.keysChanged,
			Manifests:     s.cfg.Manifests,
			// This process applies a change at once; other workers within
			// their reload interval.
			PluginsChanged: s.pluginsChanged,
			// plugins.yaml sits at the root of Eddy's tree, beside the
			// plugins shipped with it.
			BuiltinPluginsDir: filepath.Join(filepath.Dir(s.cfg.Path), "plugins"),
			// A person's deletion waits for the person's events in flight
			// in both queues, whichever process runs the workers.
			Ingest: s.ingest,
			Events: s.queue,
			Cubes:  s.cubes,
		})
		s.api.Register(r)
		// The console: its files, and its page for every other path.
		serveConsole := consoleHandler()
		r.NoRoute(func(c *gin.Context) {
			switch {
			case strings.HasPrefix(c.Request.URL.Path, api.Base+"/"):
				api.NoRoute(c)
			case isConsolePath(c.Request):
				serveConsole(c)
			}
		})
	}
	if s.has(RoleCollector) {
		c := collector.New(s.ingest, s.keys, s.cfg.Collector, s.log)
		c.SetDebugger(s.debug)
		g := r.Group("/", corsFor(s.cfg.Collector.AllowedOrigins))
		g.OPTIONS("/v1/*path", func(c *gin.Context) { c.Status(http.StatusNoContent) })
		c.Register(g)
		g.GET("/v1/actions", s.actionStreams.Serve)
		r.GET("/sdk/eddy.js", s.trackerHandler())
	}
	return r, nil
}

func corsFor(origins []string) gin.HandlerFunc {
	cc := cors.Config{
		AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowHeaders:  []string{"Content-Type", "Authorization", "Content-Encoding"},
		ExposeHeaders: []string{"Retry-After"},
		MaxAge:        24 * time.Hour,
	}
	if slices.Contains(origins, "*") {
		cc.AllowAllOrigins = true
	} else {
		cc.AllowOrigins = origins
	}
	return cors.New(cc)
}

// keysChannel is where this installation announces write-key changes.
func (s *Server) keysChannel() string { return collector.KeysChangedChannel(s.cfg.Queue.Prefix) }

// keysChanged is called by the API after write keys changed: it reloads this
// process's keys before the API answers, so a revoked or rotated key stops
// working here at once, and tells the other processes.
func (s *Server) keysChanged(ctx context.Context) {
	if s.keys != nil {
		if err := s.keys.Reload(ctx); err != nil {
			s.log.Warn("reload write keys after a change", "err", err)
		}
	}
	if err := s.rdb.Publish(ctx, s.keysChannel(), "1").Err(); err != nil {
		s.log.Warn("announce write-key change; other collectors reload within their interval", "err", err)
	}
}

// subscribeKeyChanges subscribes to write-key announcements and waits (a
// little) for Redis to confirm. Without Redis it returns the subscription
// anyway: go-redis keeps trying, and the periodic reload covers the gap.
func (s *Server) subscribeKeyChanges(ctx context.Context) *redis.PubSub {
	sub := s.rdb.Subscribe(ctx, s.keysChannel())
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := sub.Receive(rctx); err != nil {
		s.log.Warn("subscribe to write-key changes; collectors reload every interval meanwhile", "err", err)
	}
	return sub
}

// followKeyChanges reloads the write keys whenever another process announces
// a change, until ctx ends. go-redis resubscribes after a lost connection;
// the cache's periodic reload covers what was missed meanwhile.
func (s *Server) followKeyChanges(ctx context.Context, sub *redis.PubSub) {
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.keys.Reload(rctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reload write keys after an announced change", "err", err)
			}
			cancel()
		}
	}
}

// readyz answers 200 when Redis and PostgreSQL both answer within a second.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		checks["redis"], ok = err.Error(), false
	} else {
		checks["redis"] = "ok"
	}
	if err := s.store.Ping(ctx); err != nil {
		checks["postgres"], ok = err.Error(), false
	} else {
		checks["postgres"] = "ok"
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ok, "checks": checks})
}

// Listen binds the HTTP address; Addr then tells the bound address.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound listener address (after Listen).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully: the listener stops
// taking requests, in-flight ones finish, the worker stops after its batch.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(s.cfg.Env.HTTPAddr); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	if s.keys != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.keys.Run(bg) }()
	}
	if s.has(RoleCollector) || s.has(RoleWorker) {
		wg.Add(1)
		go func() { defer wg.Done(); s.debug.Run(bg) }()
	}
	if s.actionHub != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.actionHub.Run(bg) }()
	}
	if s.api != nil {
		// Deletion jobs a stopped process left unfinished run again
		// (deleting is idempotent).
		if err := s.api.ResumeDeletions(bg); err != nil {
			s.log.Warn("resume deletion jobs; they run at the next start", "err", err)
		}
	}
	if s.has(RoleWorker) {
		wk := pipeline.New(s.queue, s.store, pipeline.Options{
			BatchSize:    s.cfg.Worker.BatchSize,
			MaxAttempts:  s.cfg.Worker.MaxAttempts,
			TrimInterval: s.cfg.Worker.TrimInterval,
			LeaseTTL:     s.cfg.Worker.LeaseTTL,
			MaxBackoff:   s.cfg.Worker.MaxBackoff,
			Logger:       s.log.With("role", RoleWorker),
		})
		rt, err := s.pluginRuntime(bg)
		if err != nil {
			return err
		}
		s.pluginRT.Store(rt)
		mirror := live.New(s.rdb, s.cfg.Queue.Prefix)
		// Session changes reach the workspace's apps with the live state.
		mirror.SetTap(rt.SessionTap)
		eng := engine.New(s.queue, s.store, mirror, engine.Options{
			BatchSize:  s.cfg.Worker.BatchSize,
			LeaseTTL:   s.cfg.Worker.LeaseTTL,
			MaxBackoff: s.cfg.Worker.MaxBackoff,
			Logger:     s.log.With("role", RoleWorker),
		})
		s.runPlugins(bg, &wg, errc, rt)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := wk.Run(bg); err != nil {
				errc <- fmt.Errorf("worker: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := eng.Run(bg); err != nil {
				errc <- fmt.Errorf("session engine: %w", err)
			}
		}()
		wg.Add(1)
		go func() { defer wg.Done(); s.compactRollups(bg) }()
	}
	if s.keys != nil {
		// Subscribed before Ready, so that no announcement made once the
		// process serves is missed.
		sub := s.subscribeKeyChanges(bg)
		wg.Add(1)
		go func() { defer wg.Done(); s.followKeyChanges(bg, sub) }()
	}
	if s.cfg.Env.PprofAddr != "" {
		go s.servePprof(bg)
	}
	go func() {
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	s.log.Info("eddy serving", "addr", s.Addr(), "roles", strings.Join(s.roles, ","), "shards", s.cfg.Queue.Shards)
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	stopBG()
	wg.Wait()
	if rt := s.pluginRT.Load(); rt != nil {
		rt.Close(shutdownCtx)
	}
	s.Close()
	return runErr
}

// Ready is closed once Run is serving.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Close releases connections; safe after a partial New.
func (s *Server) Close() {
	s.closed.Do(func() {
		if s.store != nil {
			s.store.Close()
		}
		if s.rdb != nil {
			_ = s.rdb.Close()
		}
	})
}

// servePprof serves the runtime profiler on its own address, never on the
// public listener.
func (s *Server) servePprof(ctx context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: s.cfg.Env.PprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	s.log.Info("pprof serving", "addr", s.cfg.Env.PprofAddr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("pprof", "err", err)
	}
}

// redisLogger sends go-redis's internal messages to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// loadCubes reads the semantic layer's models (the configuration's cubes
// folder, else the shipped ones) and makes sure their rollups exist and
// are kept up to date (cube.EnsureRollups: a new rollup is created and
// filled once, the first process to start doing it).
func loadCubes(ctx context.Context, cfg *config.Config, st *store.Store) (*cube.Model, error) {
	// A model of this server's own: the rollups it makes sure of are those
	// of its database.
	fsys, dir := cubes.FS(), "the shipped models"
	if cfg.Cubes != "" {
		dir = cfg.Cubes
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(cfg.Path), dir)
		}
		fsys = os.DirFS(dir)
	}
	model, err := cube.Load(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%s: cubes %s:\n%w", cfg.Path, dir, err)
	}
	if err := model.EnsureRollups(ctx, st.Pool()); err != nil {
		return nil, fmt.Errorf("semantic layer rollups: %w", err)
	}
	return model, nil
}

// compactRollups folds the rollups' delta rows into their compacted rows
// every cube.CompactEvery, until ctx ends.
func (s *Server) compactRollups(ctx context.Context) {
	log := s.log.With("role", RoleWorker)
	t := time.NewTicker(cube.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n, err := s.cubes.CompactRollups(ctx, s.store.Pool())
		if err != nil && ctx.Err() == nil {
			log.Warn("rollup compaction failed; retried later", "err", err)
			continue
		}
		s.rollupCompacted.Add(float64(n))
		log.Debug("rollups compacted", "groups", n, "took", time.Since(start))
	}
}
