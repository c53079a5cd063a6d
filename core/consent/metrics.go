package consent

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RefusedTotal counts events and plugin deliveries refused for lack of
// consent, by workspace and reason (a Policy reason code, with
// missing_purpose:<purpose> as it is).
var RefusedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "eddy_consent_refused_total",
	Help: "Events refused for lack of consent, by workspace and reason.",
}, []string{"workspace", "reason"})

// RegisterMetrics registers the consent metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	if err := reg.Register(RefusedTotal); err != nil {
		return fmt.Errorf("register consent metrics: %w", err)
	}
	return nil
}
