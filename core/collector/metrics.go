package collector

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Package-level metrics: one collector per process, registered by
// RegisterMetrics on the process registry.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_collector_requests_total",
		Help: "HTTP requests to the collector by call and status code.",
	}, []string{"call", "code"})
	acceptedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_collector_accepted_total",
		Help: "Messages acknowledged in the queue, by workspace.",
	}, []string{"workspace"})
	rejectedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_collector_rejected_total",
		Help: "Messages (or whole requests, for request-level reasons) refused, by reason.",
	}, []string{"reason"})
	unavailableTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_collector_unavailable_total",
		Help: "Requests answered 503 because the queue did not acknowledge them.",
	})
	clampedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_collector_timestamps_clamped_total",
		Help: "Event times too far in the future, clamped to the receive time.",
	})
	requestSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_collector_request_seconds",
		Help:    "Time from request start to answer, including the queue acknowledgement.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	batchMessages = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_collector_request_messages",
		Help:    "Messages per accepted request.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
)

// RegisterMetrics registers the collector's metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{requestsTotal, acceptedTotal, rejectedTotal, unavailableTotal, clampedTotal, requestSeconds, batchMessages} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
