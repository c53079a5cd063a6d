package engine

import "github.com/prometheus/client_golang/prometheus"

var (
	appliedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_engine_events_applied_total",
		Help: "Events applied to live sessions and the identity graph and committed.",
	})
	skippedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_engine_events_skipped_total",
		Help: "Events the session engine did not apply, by reason: too_late (after their session closed), no_device (no anonymousId: identity only), replayed (already committed before a takeover), identity (ids the identity store cannot hold).",
	}, []string{"reason"})
	liveSessions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eddy_engine_live_sessions",
		Help: "Open sessions held in this process's memory.",
	})
	liveVisitors = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eddy_engine_visitors",
		Help: "Visitors (devices) held in this process's memory, with or without an open session.",
	})
	commitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eddy_engine_commit_seconds",
		Help:    "Time to commit a batch's (or a close tick's) sessions, identities and checkpoint.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"kind"})
	checkpointBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_engine_checkpoint_bytes_total",
		Help: "Bytes of visitor state written to checkpoints.",
	})
	publishErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_engine_publish_errors_total",
		Help: "Failed publications of committed changes to the live mirror in Redis.",
	})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_engine_failures_total",
		Help: "Batches and ticks that failed and made the shard reload from its checkpoint, by kind.",
	}, []string{"kind"})
	collectToLive = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_engine_collect_to_live_seconds",
		Help:    "Time from the collector receiving an event to its session's change being published live.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
)

// RegisterMetrics registers the engine's metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{appliedTotal, skippedTotal, liveSessions, liveVisitors,
		commitSeconds, checkpointBytes, publishErrors, failures, collectToLive} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
