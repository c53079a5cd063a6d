package actions

import "github.com/prometheus/client_golang/prometheus"

// Package-level metrics, registered by RegisterMetrics on the process
// registry.
var (
	publishedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_actions_published_total",
		Help: "Apps' actions published to their visitors' pages (stored in the visitor's stream and announced).",
	})
	streamsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eddy_action_streams",
		Help: "Pages connected to this process for their visitor's actions (GET /v1/actions).",
	})
	sentTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_actions_sent_total",
		Help: "Actions written to connected pages.",
	})
	skippedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_actions_skipped_total",
		Help: "Announced actions a page was too slow to take (it reads them again when it reconnects).",
	})
	refusedStreams = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_action_streams_refused_total",
		Help: "Action streams answered 503 because this process serves its maximum.",
	})
)

// RegisterMetrics registers the actions' metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{publishedTotal, streamsOpen, sentTotal, skippedTotal, refusedStreams} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
