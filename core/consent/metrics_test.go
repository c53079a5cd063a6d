package consent

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRefusedTotalIsRegisteredByWorkspaceAndReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := RegisterMetrics(reg); err != nil {
		t.Fatalf("RegisterMetrics: %v", err)
	}
	if err := RegisterMetrics(reg); err == nil {
		t.Error("registering twice succeeded, want an error")
	}
	_, reason := DefaultPolicy().Process(nil, false)
	RefusedTotal.WithLabelValues("ws-metrics", reason).Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "eddy_consent_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["workspace"] == "ws-metrics" && labels["reason"] == "no_consent" && m.GetCounter().GetValue() == 1 {
				return
			}
		}
	}
	t.Errorf("no eddy_consent_refused_total{workspace=ws-metrics,reason=no_consent} 1 in %v", families)
}
