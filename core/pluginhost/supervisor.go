package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// SupervisorOptions tune a Supervisor.
type SupervisorOptions struct {
	// MinBackoff and MaxBackoff bound the wait before a restart, which
	// doubles with each crash in a row; 200ms and 30s if zero.
	MinBackoff, MaxBackoff time.Duration
	// MaxCrashes disables the plugin after that many crashes in a row
	// (a crash followed by a successful call resets the count); 5 if zero.
	MaxCrashes int
	Logger     *slog.Logger
}

// Supervisor keeps one gRPC plugin running for its installations: it
// starts it on first use, initialises each installation, and after a
// crash restarts it (with backoff) and initialises them again. It is safe
// for concurrent use.
type Supervisor struct {
	m    *plugin.Manifest
	opts SupervisorOptions
	log  *slog.Logger

	mu       sync.Mutex
	proc     *Process
	installs map[string]eddyplugin.Installation
	crashes  int
	notUntil time.Time // no restart before
	lastErr  error
	disabled bool
}

// NewSupervisor returns a supervisor of the plugin m describes.
func NewSupervisor(m *plugin.Manifest, opts SupervisorOptions) *Supervisor {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxCrashes <= 0 {
		opts.MaxCrashes = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Supervisor{m: m, opts: opts, log: opts.Logger.With("plugin_id", m.ID), installs: map[string]eddyplugin.Installation{}}
}

// Status is a plugin's state, for the API and metrics.
type Status struct {
	Running, Disabled bool
	Crashes           int
	LastError         string
}

// Status reports the plugin's state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Running: s.proc != nil && !s.proc.Exited(), Disabled: s.disabled, Crashes: s.crashes}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// Init adds an installation and initialises it in the plugin; it is
// initialised again after each restart.
func (s *Supervisor) Init(ctx context.Context, in eddyplugin.Installation) error {
	err := s.Do(ctx, func(c *eddyplugin.Client) error { return c.Init(ctx, in) })
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.installs[in.ID] = in
	s.mu.Unlock()
	return nil
}

// Close closes an installation; the plugin keeps running for the others.
func (s *Supervisor) Close(ctx context.Context, installationID string) error {
	s.mu.Lock()
	delete(s.installs, installationID)
	proc := s.proc
	s.mu.Unlock()
	if proc == nil || proc.Exited() {
		return nil
	}
	return proc.Client.Close(ctx, installationID)
}

// Do runs f against the running plugin, starting or restarting it first
// if needed. A failure that leaves the plugin process dead counts as a
// crash; errors the plugin returned do not.
func (s *Supervisor) Do(ctx context.Context, f func(*eddyplugin.Client) error) error {
	proc, err := s.running(ctx)
	if err != nil {
		return err
	}
	err = f(proc.Client)
	var pe *eddyplugin.PluginError
	switch {
	case err == nil || errors.As(err, &pe):
		s.mu.Lock()
		s.crashes = 0
		s.mu.Unlock()
		return err
	case proc.Exited() || proc.Ping() != nil:
		// The transport failed and the plugin does not answer: a crash
		// (go-plugin may not have reaped the process yet).
		proc.Kill()
		s.crashed(proc, err)
		return fmt.Errorf("%s crashed: %w", s.m.ID, err)
	default:
		return err
	}
}

// running returns the plugin process, starting it (and initialising its
// installations) if it is not running.
func (s *Supervisor) running(ctx context.Context) (*Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disabled {
		return nil, fmt.Errorf("%s: %w: disabled after %d crashes in a row (last: %v)", s.m.ID, ErrUnavailable, s.crashes, s.lastErr)
	}
	if s.proc != nil && !s.proc.Exited() {
		return s.proc, nil
	}
	if wait := time.Until(s.notUntil); wait > 0 {
		return nil, fmt.Errorf("%s: %w: restarting in %s (last: %v)", s.m.ID, ErrUnavailable, wait.Round(time.Millisecond), s.lastErr)
	}
	proc, err := Start(s.m, s.log)
	if err != nil {
		s.failedLocked(err)
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(s.installs)) {
		if err := proc.Client.Init(ctx, s.installs[id]); err != nil {
			proc.Kill()
			s.failedLocked(fmt.Errorf("initialise %s after a restart: %w", id, err))
			return nil, s.lastErr
		}
	}
	if s.proc != nil {
		s.log.Info("plugin restarted", "crashes", s.crashes)
	}
	s.proc = proc
	return proc, nil
}

func (s *Supervisor) crashed(proc *Process, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == proc {
		s.failedLocked(err)
	}
}

// failedLocked records a crash or failed start and schedules the restart.
func (s *Supervisor) failedLocked(err error) {
	s.crashes++
	s.lastErr = err
	backoff := s.opts.MinBackoff << min(s.crashes-1, 20)
	s.notUntil = time.Now().Add(min(backoff, s.opts.MaxBackoff))
	if s.crashes >= s.opts.MaxCrashes {
		s.disabled = true
		s.log.Error("plugin disabled after repeated crashes", "crashes", s.crashes, "err", err)
		return
	}
	s.log.Warn("plugin crashed; restarting after backoff", "crashes", s.crashes, "backoff", time.Until(s.notUntil).Round(time.Millisecond), "err", err)
}

// Stop closes every installation and stops the plugin.
func (s *Supervisor) Stop(ctx context.Context) {
	s.mu.Lock()
	proc, ids := s.proc, slices.Sorted(maps.Keys(s.installs))
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return
	}
	if !proc.Exited() {
		for _, id := range ids {
			if err := proc.Client.Close(ctx, id); err != nil {
				s.log.Warn("close installation", "installation", id, "err", err)
			}
		}
	}
	proc.Kill()
}

// Reset clears a disabled plugin's failure count, so that the next call
// starts it again: an operator's explicit retry (an installation enabled
// or reconfigured).
func (s *Supervisor) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.disabled {
		s.log.Info("plugin re-enabled", "crashes", s.crashes)
	}
	s.disabled, s.crashes, s.notUntil = false, 0, time.Time{}
}

// Check is the health check: a plugin process that exited or does not
// answer a ping counts as crashed (and is restarted on the next call), so
// a dead plugin is noticed between calls too.
func (s *Supervisor) Check() {
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		return
	}
	if proc.Exited() || proc.Ping() != nil {
		proc.Kill()
		s.crashed(proc, fmt.Errorf("%s: health check: the plugin process does not answer", s.m.ID))
	}
}
