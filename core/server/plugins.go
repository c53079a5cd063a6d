package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/privacy"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
)

// pluginRuntime returns the runtime of the installed plugins: their
// installations come from the store (plugins.yaml's and the API's), their
// manifests from plugins.yaml or the organization's uploads.
func (s *Server) pluginRuntime(ctx context.Context) (*plugins.Runtime, error) {
	list := func(ctx context.Context) ([]plugins.Installation, error) {
		all, err := s.store.AllInstallations(ctx)
		if err != nil {
			return nil, fmt.Errorf("list plugin installations: %w", err)
		}
		out := make([]plugins.Installation, len(all))
		for i, in := range all {
			out[i] = plugins.Installation{ID: in.ID, WorkspaceID: in.WorkspaceID, PluginID: in.PluginID, Enabled: in.Enabled,
				Config: in.Config, Position: in.Position, RateLimit: in.RateLimit, UpdatedAt: in.UpdatedAt}
		}
		return out, nil
	}
	rt, err := plugins.New(ctx, list, s.pluginCatalog, s.rdb, s.queue, plugins.Options{
		Prefix:    s.cfg.Queue.Prefix,
		Worker:    queue.DefaultConsumerName(),
		Ingest:    s.ingest,
		Collector: s.cfg.Collector,
		Debug:     s.debug,
		// The consent gate: default deny, per the workspace's policy.
		Policies:   s.privacyPolicy,
		Decisions:  s.store,
		Generation: privacy.NewGeneration(s.rdb, s.cfg.Queue.Prefix),
		Logger:     s.log.With("role", RoleWorker),
	})
	if err != nil {
		return nil, err
	}
	return rt, nil
}

// pluginCatalog finds the plugin an installation uses: one plugins.yaml
// installs, else one the workspace's organization uploaded.
func (s *Server) pluginCatalog(ctx context.Context, workspaceID, pluginID string) (plugins.Plugin, error) {
	if m, ok := s.cfg.Manifests[pluginID]; ok {
		return plugins.Plugin{Manifest: m}, nil
	}
	org, err := s.store.WorkspaceOrganization(ctx, workspaceID)
	if err != nil {
		return plugins.Plugin{}, err
	}
	up, err := s.store.UploadedPlugin(ctx, org, pluginID)
	if err != nil {
		return plugins.Plugin{}, fmt.Errorf("plugin %s is neither in plugins.yaml nor uploaded: %w", pluginID, err)
	}
	m, err := plugin.ParseManifest("uploaded "+pluginID+"@"+up.Version, "", []byte(up.Manifest))
	if err != nil {
		return plugins.Plugin{}, err
	}
	return plugins.Plugin{Manifest: m, Module: up.Module}, nil
}

// runPlugins starts the plugin runtime's loops: installations kept up to
// date, the process group (ingest queue → processors → events queue) and
// the route group (events queue → sink queues).
func (s *Server) runPlugins(ctx context.Context, wg *sync.WaitGroup, errc chan<- error, rt *plugins.Runtime) {
	// The first load before any batch, so that no event passes a
	// workspace's processors while they are being read.
	if err := rt.Reload(ctx); err != nil {
		s.log.Warn("load plugin installations; retrying in the background", "err", err)
	}
	log := s.log.With("role", RoleWorker)
	consume := func(q *queue.Queue, group string, h queue.Handler) {
		defer wg.Done()
		if err := q.EnsureGroup(ctx, group); err != nil {
			log.Warn("create consumer group; the consumer retries", "group", group, "err", err)
		}
		err := q.Consume(ctx, queue.ConsumerOptions{
			Group:      group,
			BatchSize:  s.cfg.Worker.BatchSize,
			LeaseTTL:   s.cfg.Worker.LeaseTTL,
			MaxBackoff: s.cfg.Worker.MaxBackoff,
			Logger:     log,
		}, h)
		if err != nil {
			errc <- fmt.Errorf("%s: %w", group, err)
		}
	}
	wg.Add(4)
	go func() { defer wg.Done(); rt.Run(ctx) }()
	go consume(s.ingest, plugins.ProcessGroup, rt.Process)
	go consume(s.queue, plugins.RouteGroup, rt.Route)
	go func() { defer wg.Done(); trimLoop(ctx, s.ingest, s.cfg.Worker.TrimInterval, log) }()
}

// trimLoop trims what every group of q acknowledged.
func trimLoop(ctx context.Context, q *queue.Queue, every time.Duration, log interface {
	Warn(msg string, args ...any)
}) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := q.Trim(ctx); err != nil && ctx.Err() == nil {
			log.Warn("trim ingest queue", "err", err)
		}
	}
}

// pluginsChanged applies an API change of installations in this process.
func (s *Server) pluginsChanged(ctx context.Context) {
	if rt := s.pluginRT.Load(); rt != nil {
		if err := rt.Reload(ctx); err != nil {
			s.log.Warn("reload plugin installations after a change; retrying in the background", "err", err)
		}
	}
}

// privacyPolicy is a workspace's consent policy for the gate; a workspace
// that does not exist (any more) has the default one, which denies what
// lacks consent, rather than an error that would hold its shard's batches.
func (s *Server) privacyPolicy(ctx context.Context, workspaceID string) (consent.Policy, error) {
	p, err := s.store.PrivacyPolicy(ctx, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return consent.DefaultPolicy(), nil
	}
	return p, err
}
