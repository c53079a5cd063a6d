package demo

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// pacer is a token bucket shared by all senders: tokens (events) accrue at
// rate per second up to burst, and a sender takes a whole batch's worth
// before sending it. The bucket starts empty, so a batch leaves when the last
// of its events is due, as an SDK flushes a full queue; a sender that finds
// the bucket in debt waits its turn, which staggers the senders. While the
// collector stalls, at most burst events' worth of credit piles up, so the
// run catches up on short hiccups without flooding after long ones.
type pacer struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newPacer(rate, burst float64, now time.Time) *pacer {
	return &pacer{rate: rate, burst: burst, last: now}
}

// reserve takes n tokens and returns how long the caller must wait before
// the reservation is due.
func (p *pacer) reserve(now time.Time, n int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.After(p.last) {
		p.tokens = math.Min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
		p.last = now
	}
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.rate * float64(time.Second))
}

// wait blocks until n more events may be sent. It reports false, without
// waiting, when that moment is past ctx's deadline, and false when ctx ends.
func (p *pacer) wait(ctx context.Context, n int) bool {
	now := time.Now()
	d := p.reserve(now, n)
	if d <= 0 {
		return ctx.Err() == nil
	}
	if deadline, ok := ctx.Deadline(); ok && now.Add(d).After(deadline) {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// latencyHistogram records durations in logarithmic buckets 2 % wide, so
// percentiles cost constant memory however long the run.
type latencyHistogram struct {
	buckets [latencyBuckets]atomic.Int64
}

const (
	latencyBase    = time.Microsecond
	latencyGrowth  = 1.02
	latencyBuckets = 1100 // 1 µs · 1.02^1100 ≈ 50 min
)

var logLatencyGrowth = math.Log(latencyGrowth)

func (h *latencyHistogram) record(d time.Duration) {
	i := 0
	if d > latencyBase {
		i = int(math.Log(float64(d)/float64(latencyBase)) / logLatencyGrowth)
	}
	h.buckets[min(i, latencyBuckets-1)].Add(1)
}

// quantile returns the upper bound of the bucket holding the q-quantile, or
// 0 if nothing was recorded.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return time.Duration(float64(latencyBase) * math.Pow(latencyGrowth, float64(i+1)))
		}
	}
	return time.Duration(float64(latencyBase) * math.Pow(latencyGrowth, latencyBuckets))
}
