package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/demo"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/queue"
)

// liveResult is phase 3's outcome: how soon a collected event shows in
// the live state, under load.
type liveResult struct {
	offered            float64
	sent               demo.Stats
	probes, seen       int
	p50, p99, max      time.Duration
	applied            float64 // events/s the session engine committed in the window
	window             time.Duration
	memPerSession      float64 // bytes, from BenchmarkLiveSessionMemory
	memSessions        int
	updateNs           float64 // ns per state update on one core, from BenchmarkStateUpdates
	benchErr, probeErr string
	low                *liveResult // a second run at a lower rate
}

const (
	probeDevices = 20
	probeEvery   = 100 * time.Millisecond // per device: 200 probe events/s in all
)

// liveLatency offers rate events/s (demo traffic plus probes) and measures,
// for each probe event sent in the window, the time from just before its
// request to the moment its session's change, counting it, arrives on the
// workspace's live channel (what the SSE stream relays).
func liveLatency(ctx context.Context, o options, rate float64, dbURL, key, prefix string, rdb *redis.Client, q *queue.Queue) (liveResult, error) {
	r := liveResult{offered: rate, window: o.e2eFor}
	// Start from an empty queue: a backlog of an earlier run would count.
	for start := time.Now(); !drained(ctx, q) && time.Since(start) < 10*time.Minute; {
		time.Sleep(100 * time.Millisecond)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return r, err
	}
	var ws string
	err = conn.QueryRow(ctx, `SELECT id::text FROM workspaces WHERE slug = 'bench'`).Scan(&ws)
	conn.Close(ctx)
	if err != nil {
		return r, fmt.Errorf("bench workspace: %w", err)
	}
	sub := rdb.Subscribe(ctx, live.New(rdb, prefix).Channel(ws))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return r, fmt.Errorf("subscribe to live changes: %w", err)
	}

	type probe struct {
		sent    time.Time
		seen    time.Duration
		counted bool // sent in the window
	}
	var mu sync.Mutex
	probes := make([][]probe, probeDevices) // per device, probe n at index n-1
	devices := map[string]int{}
	run := randomHex(4)
	for i := range probeDevices {
		devices[fmt.Sprintf("probe-%s-%d", run, i)] = i
	}
	go func() {
		for m := range sub.Channel() {
			now := time.Now()
			c, err := live.DecodeChange(m.Payload)
			if err != nil {
				continue
			}
			i, ok := devices[c.Session.AnonymousID]
			if !ok {
				continue
			}
			mu.Lock()
			for n := 0; n < min(c.Session.Events, len(probes[i])); n++ {
				if probes[i][n].seen == 0 {
					probes[i][n].seen = now.Sub(probes[i][n].sent)
				}
			}
			mu.Unlock()
		}
	}()

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	statsc := make(chan demo.Stats, 1)
	probeRate := float64(probeDevices) / probeEvery.Seconds()
	go func() {
		st, err := demo.Run(loadCtx, demo.Options{URL: "http://" + eddyAddr, WriteKey: key, Rate: rate - probeRate,
			Duration: warmup + o.e2eFor, BatchSize: 100, Concurrency: o.senders, Seed: 43})
		if err != nil && loadCtx.Err() == nil {
			logf("  demo traffic: %v", err)
		}
		statsc <- st
	}()
	start := time.Now()
	windowStart, windowEnd := start.Add(warmup), start.Add(warmup+o.e2eFor)
	var wg sync.WaitGroup
	var probeErr error
	var errOnce sync.Once
	for name, i := range devices {
		wg.Go(func() {
			t := time.NewTicker(probeEvery)
			defer t.Stop()
			for n := 1; time.Now().Before(windowEnd); n++ {
				body := fmt.Sprintf(`{"type":"page","anonymousId":%q,"messageId":"%s-%d","name":"Probe","properties":{"url":"https://shop.example.com/probe/%d"},"context":{"consent":{"categoryPreferences":{"analytics":true}}}}`, name, name, n, n)
				req, _ := http.NewRequest(http.MethodPost, "http://"+eddyAddr+"/v1/batch", strings.NewReader(`{"batch":[`+body+`]}`))
				req.SetBasicAuth(key, "")
				req.Header.Set("Content-Type", "application/json")
				sent := time.Now()
				mu.Lock()
				probes[i] = append(probes[i], probe{sent: sent, counted: !sent.Before(windowStart)})
				mu.Unlock()
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("probe answered %s", resp.Status)
					}
				}
				if err != nil {
					errOnce.Do(func() { probeErr = err })
					return // the device's later probes would be miscounted
				}
				<-t.C
			}
		})
	}
	time.Sleep(warmup)
	a0 := scrapeCounter("eddy_engine_events_applied_total")
	time.Sleep(o.e2eFor)
	a1 := scrapeCounter("eddy_engine_events_applied_total")
	r.applied = (a1 - a0) / o.e2eFor.Seconds()
	wg.Wait()
	r.sent = <-statsc
	if probeErr != nil {
		r.probeErr = probeErr.Error()
	}
	// Let the last probes arrive (a probe unseen after this counts as
	// missing, not as fast).
	time.Sleep(30 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	for _, ps := range probes {
		for _, p := range ps {
			if !p.counted {
				continue
			}
			r.probes++
			if p.seen > 0 {
				r.seen++
				lat = append(lat, p.seen)
			}
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	return r, nil
}

// scrapeCounter reads a counter's value from the eddy process's /metrics.
func scrapeCounter(name string) float64 {
	resp, err := http.Get("http://" + eddyAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// metric reads "<value> <unit>" from the rest of a benchmark's line; 0 if
// absent.
func metric(rest, unit string) float64 {
	mm := regexp.MustCompile(`([\d.]+) ` + regexp.QuoteMeta(unit) + `\b`).FindStringSubmatch(rest)
	if mm == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(mm[1], 64)
	return v
}

var benchLine = regexp.MustCompile(`^(Benchmark\w+)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// engineBenchmarks runs the session engine's in-memory benchmarks: memory
// per live session at 1,000,000 sessions, and state updates on one core.
func engineBenchmarks(r *liveResult) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkLiveSessionMemory$",
		"-benchtime", "1x", "-cpu", "1", "./core/engine")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.benchErr = fmt.Sprintf("%v: %s", err, out)
		return
	}
	cmd = exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkStateUpdates$", "-benchtime", "2000000x", "-cpu", "1", "./core/engine")
	out2, err := cmd.CombinedOutput()
	if err != nil {
		r.benchErr = fmt.Sprintf("%v: %s", err, out2)
		return
	}
	for _, line := range strings.Split(string(bytes.Join([][]byte{out, out2}, []byte("\n"))), "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		switch m[1] {
		case "BenchmarkLiveSessionMemory":
			r.memPerSession = metric(m[3], "B/session")
			r.memSessions = int(metric(m[3], "sessions"))
		case "BenchmarkStateUpdates":
			r.updateNs, _ = strconv.ParseFloat(m[2], 64)
		}
	}
}
