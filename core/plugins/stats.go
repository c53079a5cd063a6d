package plugins

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddy-cdp/eddy/core/pluginhost"
	"github.com/eddy-cdp/eddy/core/pluginstatus"
)

var (
	callsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_plugin_calls_total",
		Help: "Calls to plugin installations, by outcome (ok, error).",
	}, []string{"plugin", "workspace", "outcome"})
	callSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eddy_plugin_call_seconds",
		Help:    "Duration of calls to plugins (a batch per call).",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 30},
	}, []string{"plugin"})
	eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_plugin_events_total",
		Help: "Events through plugin installations: in (given), out (kept or delivered), failed (rejected or dead-lettered).",
	}, []string{"plugin", "workspace", "direction"})
	deletionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_plugin_deletions_total",
		Help: "Deletions of persons handed to sink installations, by outcome: done, or failed (dead-lettered).",
	}, []string{"plugin", "workspace", "outcome"})
	sinkLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_plugin_sink_lag",
		Help: "Events waiting in a sink installation's queue.",
	}, []string{"plugin", "workspace"})
	sinkDeadLetters = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_plugin_sink_dead_letters",
		Help: "Events in a sink installation's dead-letter stream.",
	}, []string{"plugin", "workspace"})
	installationsUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_plugin_installation_up",
		Help: "1 if a plugin installation runs in this process, 0 if it failed to start or is disabled after failures.",
	}, []string{"plugin", "workspace"})
)

// RegisterMetrics registers the plugin metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{callsTotal, callSeconds, eventsTotal, deletionsTotal, sinkLag, sinkDeadLetters, installationsUp} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// stats counts an installation's work in this process, for its status
// report; the Prometheus series are updated alongside.
type stats struct {
	plugin, workspace string

	calls, in, out, failed atomic.Int64
	nanos                  atomic.Int64
	lag, dead              atomic.Int64

	mu      sync.Mutex
	lastErr string
	lastAt  time.Time
	failing bool
}

func (s *stats) call(d time.Duration, err error) {
	s.calls.Add(1)
	s.nanos.Add(int64(d))
	callSeconds.WithLabelValues(s.plugin).Observe(d.Seconds())
	if err != nil {
		callsTotal.WithLabelValues(s.plugin, s.workspace, "error").Inc()
		s.fail(err)
		return
	}
	callsTotal.WithLabelValues(s.plugin, s.workspace, "ok").Inc()
	s.mu.Lock()
	s.failing = false
	s.mu.Unlock()
}

func (s *stats) fail(err error) {
	s.mu.Lock()
	s.lastErr, s.lastAt, s.failing = err.Error(), time.Now(), true
	s.mu.Unlock()
}

func (s *stats) events(in, out, failed int64) {
	s.in.Add(in)
	s.out.Add(out)
	s.failed.Add(failed)
	eventsTotal.WithLabelValues(s.plugin, s.workspace, "in").Add(float64(in))
	eventsTotal.WithLabelValues(s.plugin, s.workspace, "out").Add(float64(out))
	eventsTotal.WithLabelValues(s.plugin, s.workspace, "failed").Add(float64(failed))
}

// report is this process's view of the installation.
func (ru *running) report() pluginstatus.Report {
	s := &ru.stats
	r := pluginstatus.Report{
		State: pluginstatus.Running, Calls: s.calls.Load(), CallSeconds: time.Duration(s.nanos.Load()).Seconds(),
		EventsIn: s.in.Load(), EventsOut: s.out.Load(), EventsFailed: s.failed.Load(),
		Lag: s.lag.Load(), DeadLetters: s.dead.Load(), UpdatedAt: time.Now(),
	}
	s.mu.Lock()
	r.LastError, r.LastErrorAt = s.lastErr, s.lastAt
	if s.failing {
		r.State = pluginstatus.Failing
	}
	s.mu.Unlock()
	disabled := ru.initErr != nil
	switch {
	case ru.sup != nil:
		disabled = disabled || ru.sup.Status().Disabled
	case ru.module != nil:
		disabled = disabled || ru.module.Status().Disabled
	}
	up := 1.0
	if disabled {
		r.State, up = pluginstatus.Disabled, 0
	}
	if ru.initErr != nil {
		r.State = pluginstatus.Failing
	}
	installationsUp.WithLabelValues(s.plugin, s.workspace).Set(up)
	return r
}

// report health-checks the plugin processes and writes the status of
// every running installation.
func (r *Runtime) report(ctx context.Context) {
	r.mu.Lock()
	all := make([]*running, 0, len(r.active))
	for _, ru := range r.active {
		all = append(all, ru)
	}
	sups := make([]*pluginhost.Supervisor, 0, len(r.sups))
	for _, s := range r.sups {
		sups = append(sups, s)
	}
	r.mu.Unlock()
	for _, s := range sups {
		s.Check()
	}
	for _, ru := range all {
		switch {
		case ru.sink != nil:
			ru.sink.measure(ctx)
		case ru.app != nil:
			ru.app.measure(ctx)
		}
		if err := r.status.Put(ctx, ru.in.ID, r.opts.Worker, ru.report()); err != nil && ctx.Err() == nil {
			r.log.Warn("report plugin status", "installation", ru.in.ID, "err", err)
			return
		}
	}
}

// atomicMap is a map replaced whole and read without locks.
type atomicMap[T any] struct{ p atomic.Pointer[map[string]T] }

func (a *atomicMap[T]) Load() map[string]T {
	if m := a.p.Load(); m != nil {
		return *m
	}
	return nil
}

func (a *atomicMap[T]) Store(m map[string]T) { a.p.Store(&m) }
