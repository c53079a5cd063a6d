package pipeline

import "github.com/prometheus/client_golang/prometheus"

var (
	batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_worker_batch_size",
		Help:    "Rows per batch handed to the store.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14),
	})
	storeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_worker_store_seconds",
		Help:    "Time to commit one batch (or one isolated row) to PostgreSQL.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	storedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_worker_stored_total",
		Help: "Events newly stored.",
	})
	duplicatesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_worker_duplicates_total",
		Help: "Events skipped because the same workspace and messageId were already stored (client retries, redeliveries).",
	})
	storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_worker_store_errors_total",
		Help: "Failed batch commits: unavailable (retried whole) or rejected (rows isolated).",
	}, []string{"kind"})
	endToEnd = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_pipeline_end_to_end_seconds",
		Help:    "Time from the collector receiving an event to its commit in PostgreSQL.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
	})
)

// RegisterMetrics registers the worker's metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{batchSize, storeSeconds, storedTotal, duplicatesTotal, storeErrors, endToEnd} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
