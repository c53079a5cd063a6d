package system

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// /metrics exposes what operators need: refusals by reason, the queue per
// shard and group, the worker's batches and store latency, dead letters.
func TestMetricsCoverQueueWorkerAndRejections(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))
	if code, _, b := e.post(base, "/v1/track", `{"userId":"u1","event":"Counted","messageId":"metric-1"}`); code != http.StatusOK {
		t.Fatalf("good event: %d %s", code, b)
	}
	if code, _, _ := e.post(base, "/v1/track", `{"event":"No ids"}`); code != http.StatusBadRequest {
		t.Fatalf("bad event: %d, want 400", code)
	}
	e.waitStored(map[string]bool{"metric-1": true}, 30*time.Second)

	var body string
	testenv.Eventually(t, 10*time.Second, "the stored event in the worker's metrics", func() bool {
		_, _, body = do(t, mustGet(t, base+"/metrics"))
		return metricValue(body, `eddy_worker_stored_total`) >= 1
	})
	if v := metricValue(body, `eddy_collector_rejected_total{reason="missing_id"}`); v < 1 {
		t.Errorf("missing_id refusals = %v, want at least 1", v)
	}
	for _, name := range []string{
		`eddy_collector_accepted_total{workspace="shop"}`,
		`eddy_collector_request_seconds_count`,
		`eddy_queue_enqueue_seconds_count{queue="ingest"}`,
		`eddy_queue_length{queue="ingest",shard="0"}`,
		`eddy_queue_lag{group="process",queue="ingest",shard="0"}`,
		`eddy_queue_forwarded_total{group="process",queue="ingest"}`,
		`eddy_queue_length{queue="events",shard="0"}`,
		`eddy_queue_lag{group="store",queue="events",shard="0"}`,
		`eddy_queue_pending{group="store",queue="events",shard="0"}`,
		`eddy_queue_dead_letters{group="store",queue="events"}`,
		`eddy_worker_batch_size_count`,
		`eddy_worker_store_seconds_count`,
		`eddy_pipeline_end_to_end_seconds_count`,
	} {
		if metricValue(body, name) < 0 {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, b := do(t, mustGet(t, base+path)); code != http.StatusOK {
			t.Errorf("%s: %d %s", path, code, b)
		}
	}
}

// metricValue is the value of the sample named exactly name (with labels
// in Prometheus' order), or -1 when there is none.
func metricValue(body, name string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(m[1]), 64)
	if err != nil {
		return -1
	}
	return v
}
