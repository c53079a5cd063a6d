package queue

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the Redis queries made while collecting metrics.
const scrapeTimeout = 2 * time.Second

// metrics holds the queue's inline metrics and collects the Redis-side ones
// (lengths, pending, lag, dead letters) at scrape time.
type metrics struct {
	q *Queue

	enqueueSeconds prometheus.Histogram
	enqueued       prometheus.Counter
	acked          *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	forwarded      *prometheus.CounterVec
	redelivered    *prometheus.CounterVec
	shardsOwned    *prometheus.GaugeVec

	length      *prometheus.Desc
	pending     *prometheus.Desc
	lag         *prometheus.Desc
	deadLetters *prometheus.Desc
	up          *prometheus.Desc

	mu     sync.Mutex
	groups map[string]struct{} // groups consumed through this queue
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics(q *Queue, name string) *metrics {
	// Each queue of a process (ingest, events) labels its series.
	l := prometheus.Labels{"queue": name}
	return &metrics{
		q: q,
		enqueueSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "eddy_queue_enqueue_seconds",
			Help:        "Duration of Enqueue calls (one pipelined round trip to Redis).",
			ConstLabels: l,
			Buckets:     []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "eddy_queue_enqueued_total",
			Help:        "Entries written to the queue.",
			ConstLabels: l,
		}),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "eddy_queue_acked_total",
			Help:        "Entries acknowledged by consumers, dead letters included.",
			ConstLabels: l,
		}, []string{"group"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "eddy_queue_dead_lettered_total",
			Help:        "Entries moved to a dead-letter stream.",
			ConstLabels: l,
		}, []string{"group"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "eddy_queue_forwarded_total",
			Help:        "Entries appended to other queues atomically with the acknowledgement of their source entry.",
			ConstLabels: l,
		}, []string{"group"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "eddy_queue_redelivered_total",
			Help:        "Entries delivered again: taken over from an earlier owner or re-read after a handler error.",
			ConstLabels: l,
		}, []string{"group"}),
		shardsOwned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "eddy_queue_shards_owned",
			Help:        "Shards whose lease this process holds.",
			ConstLabels: l,
		}, []string{"group"}),
		length: prometheus.NewDesc("eddy_queue_length",
			"Entries in a shard stream (acknowledged ones included until trimmed).", []string{"shard"}, l),
		pending: prometheus.NewDesc("eddy_queue_pending",
			"Entries delivered to a group and not yet acknowledged.", []string{"shard", "group"}, l),
		lag: prometheus.NewDesc("eddy_queue_lag",
			"Entries not yet delivered to a group.", []string{"shard", "group"}, l),
		deadLetters: prometheus.NewDesc("eddy_queue_dead_letters",
			"Entries in a group's dead-letter stream.", []string{"group"}, l),
		up: prometheus.NewDesc("eddy_queue_up",
			"1 if the last scrape could read the queue's state from Redis, else 0.", nil, l),
		groups: make(map[string]struct{}),
	}
}

func (m *metrics) addGroup(group string) {
	m.mu.Lock()
	m.groups[group] = struct{}{}
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.enqueueSeconds.Describe(ch)
	m.enqueued.Describe(ch)
	m.acked.Describe(ch)
	m.deadLettered.Describe(ch)
	m.forwarded.Describe(ch)
	m.redelivered.Describe(ch)
	m.shardsOwned.Describe(ch)
	ch <- m.length
	ch <- m.pending
	ch <- m.lag
	ch <- m.deadLetters
	ch <- m.up
}

// Collect implements prometheus.Collector. It queries Redis, bounded by
// scrapeTimeout; if Redis does not answer, only the inline metrics and
// eddy_queue_up 0 are reported.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.enqueueSeconds.Collect(ch)
	m.enqueued.Collect(ch)
	m.acked.Collect(ch)
	m.deadLettered.Collect(ch)
	m.forwarded.Collect(ch)
	m.redelivered.Collect(ch)
	m.shardsOwned.Collect(ch)

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	stats, err := m.q.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 0)
		return
	}
	groups := make(map[string]struct{})
	m.mu.Lock()
	for g := range m.groups {
		groups[g] = struct{}{}
	}
	m.mu.Unlock()
	for _, s := range stats {
		shard := strconv.Itoa(s.Shard)
		ch <- prometheus.MustNewConstMetric(m.length, prometheus.GaugeValue, float64(s.Length), shard)
		for _, g := range s.Groups {
			groups[g.Name] = struct{}{}
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(g.Pending), shard, g.Name)
			if g.Lag >= 0 {
				ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(g.Lag), shard, g.Name)
			}
		}
	}
	up := 1.0
	for g := range groups {
		n, err := m.q.DeadLetterCount(ctx, g)
		if err != nil {
			up = 0
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.deadLetters, prometheus.GaugeValue, float64(n), g)
	}
	ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up)
}
