package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/demo"
	"github.com/eddy-cdp/eddy/core/engine"
	"github.com/eddy-cdp/eddy/core/pipeline"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
)

type options struct {
	binary, out  string
	collectorFor time.Duration
	e2eFor       time.Duration
	e2eRate      float64
	latencyRate  float64
	liveRate     float64
	liveLowRate  float64
	senders      int
	// analyticsEvents is how many events the analytics phase loads;
	// onlyAnalytics runs that phase alone and writes no report.
	analyticsEvents int64
	onlyAnalytics   bool
}

const (
	collectorAddr = "127.0.0.1:18090"
	eddyAddr      = "127.0.0.1:18092"
	pprofAddr     = "127.0.0.1:18091"
	benchDB       = "eddy_bench"
	shards        = 16
	warmup        = 10 * time.Second
)

// collectorResult is phase 1's outcome.
type collectorResult struct {
	events, requests, errors int64
	elapsed                  time.Duration
	p50, p99                 time.Duration
	bodyBytes                int
	profileTop               string
}

// e2eResult is phase 2's outcome.
type e2eResult struct {
	offered         float64
	sent            demo.Stats
	storedInWindow  int64
	window          time.Duration
	backlogAtEnd    int64
	drain           time.Duration
	p50, p99, pmax  float64 // seconds, collect→stored
	total           int64
	profileTop      string
	avgPayloadBytes float64
	latency         *e2eResult // the run below capacity
	cpu             string     // markdown rows: process, cores used in the window
}

func run(o options) error {
	dbBase := os.Getenv("EDDY_DATABASE_URL")
	redisURL := os.Getenv("EDDY_REDIS_URL")
	if dbBase == "" || redisURL == "" {
		return errors.New("EDDY_DATABASE_URL and EDDY_REDIS_URL must be set (make bench sets them)")
	}
	if _, err := os.Stat(o.binary); err != nil {
		return fmt.Errorf("eddy binary: %w (run make build)", err)
	}
	ctx := context.Background()
	if o.onlyAnalytics {
		logf("phase 6 alone: analytics over %d events (Cube API, rollups)", o.analyticsEvents)
		_, err := analyticsBenchmarks(ctx, o.binary, dbBase, redisURL, o.analyticsEvents)
		return err
	}
	dbURL, err := withDatabase(dbBase, benchDB)
	if err != nil {
		return err
	}
	if err := recreateDatabase(ctx, dbBase, benchDB); err != nil {
		return err
	}
	defer dropDatabase(dbBase, benchDB)
	if err := store.Migrate(ctx, dbURL); err != nil {
		return err
	}
	ropts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()

	writeKey := "bench_" + randomHex(12)
	dir, err := os.MkdirTemp("", "eddy-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Phase 1: the collector alone.
	prefix1 := "eddybench:" + randomHex(6)
	defer deleteKeys(rdb, prefix1)
	cfg1, err := writeConfig(dir, "collector.yaml", prefix1, writeKey)
	if err != nil {
		return err
	}
	logf("phase 1: collector throughput for %s with %d senders", o.collectorFor, o.senders)
	p1, err := startEddy(o.binary, cfg1, dbURL, redisURL, collectorAddr, "collector", pprofAddr)
	if err != nil {
		return err
	}
	profc := make(chan string, 1)
	go func() {
		time.Sleep(2 * time.Second) // past connection set-up
		profc <- cpuProfile(o.binary, dir, o.collectorFor-4*time.Second)
	}()
	cr, err := blast("http://"+collectorAddr, writeKey, o.senders, o.collectorFor)
	cr.profileTop = <-profc
	p1.stop()
	if err != nil {
		return err
	}
	logf("  %.0f events/s acknowledged (p50 %s, p99 %s per request of 100)", float64(cr.events)/cr.elapsed.Seconds(), cr.p50, cr.p99)
	deleteKeys(rdb, prefix1)

	// Phase 2: end to end.
	prefix2 := "eddybench:" + randomHex(6)
	defer deleteKeys(rdb, prefix2)
	cfg2, err := writeConfig(dir, "all.yaml", prefix2, writeKey)
	if err != nil {
		return err
	}
	p2, err := startEddy(o.binary, cfg2, dbURL, redisURL, eddyAddr, "collector,worker,api", pprofAddr)
	if err != nil {
		return err
	}
	logf("phase 2a: end to end at %.0f events/s offered, %s warm-up + %s measured", o.e2eRate, warmup, o.e2eFor)
	q, err := queue.New(rdb, queue.Options{Prefix: prefix2, Shards: shards})
	if err != nil {
		return err
	}
	er, err := endToEnd(ctx, o, o.e2eRate, true, dbURL, writeKey, dir, q)
	if err == nil {
		logf("  %.0f events/s stored; backlog %d drained in %s", float64(er.storedInWindow)/er.window.Seconds(), er.backlogAtEnd, er.drain)
		logf("phase 2b: latency at %.0f events/s offered, %s warm-up + %s measured", o.latencyRate, warmup, o.e2eFor)
		var lr e2eResult
		lr, err = endToEnd(ctx, o, o.latencyRate, false, dbURL, writeKey, dir, q)
		er.latency = &lr
	}
	var lr liveResult
	if err == nil {
		logf("phase 3: collect→live latency at %.0f events/s offered, %s warm-up + %s measured", o.liveRate, warmup, o.e2eFor)
		lr, err = liveLatency(ctx, o, o.liveRate, dbURL, writeKey, prefix2, rdb, q)
	}
	if err == nil && o.liveLowRate > 0 {
		logf("phase 3b: collect→live latency at %.0f events/s offered", o.liveLowRate)
		var low liveResult
		low, err = liveLatency(ctx, o, o.liveLowRate, dbURL, writeKey, prefix2, rdb, q)
		lr.low = &low
	}
	p2.stop()
	if err != nil {
		return err
	}
	logf("  latency p50 %.3fs p99 %.3fs", er.latency.p50, er.latency.p99)
	for _, l := range []*liveResult{&lr, lr.low} {
		if l != nil {
			logf("  live at %.0f/s: %d of %d probes seen, p50 %s p99 %s; engine committed %.0f events/s", l.offered, l.seen, l.probes, l.p50, l.p99, l.applied)
		}
	}
	logf("phase 4: session engine in memory (1,000,000 live sessions; state updates on one core)")
	engineBenchmarks(&lr)
	logf("  %.0f bytes per live session; %.0f state updates/s on one core", lr.memPerSession, 1e9/lr.updateNs)
	logf("phase 5: plugins (WASM processor per event; gRPC sink throughput)")
	pr := pluginBenchmarks(redisURL)
	logf("  sink: %.0f events/s written to one plugin process, %.0f events/s delivered end to end", max(pr.write1, pr.write2), pr.deliver)

	var ar analyticsResult
	if o.analyticsEvents > 0 {
		logf("phase 6: analytics over %d events (Cube API, rollups)", o.analyticsEvents)
		if ar, err = analyticsBenchmarks(ctx, o.binary, dbBase, redisURL, o.analyticsEvents); err != nil {
			return err
		}
	}

	report := render(o, cr, er, lr, pr, ar, machine(ctx, dbURL, rdb))
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
		return err
	}
	logf("wrote %s", o.out)
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func withDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("EDDY_DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func recreateDatabase(ctx context.Context, base, name string) error {
	dropDatabase(base, name)
	u, err := withDatabase(base, name)
	if err != nil {
		return err
	}
	return store.EnsureDatabase(ctx, u)
}

func dropDatabase(base, name string) {
	admin, err := withDatabase(base, "postgres")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		logf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		logf("drop %s: %v", name, err)
	}
}

func deleteKeys(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Unlink(ctx, iter.Val())
	}
}

func writeConfig(dir, name, prefix, key string) (string, error) {
	path := filepath.Join(dir, name)
	y := fmt.Sprintf("version: 1\nqueue:\n  prefix: %q\n  shards: %d\nworkspaces:\n  - id: bench\n    sources:\n      - id: load\n        write_key: %q\n", prefix, shards, key)
	return path, os.WriteFile(path, []byte(y), 0o600)
}

type eddyProcess struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

func startEddy(binary, cfg, dbURL, redisURL, addr, roles, pprof string) (*eddyProcess, error) {
	cmd := exec.Command(binary, "serve", "--roles", roles, "--migrate=false")
	cmd.Env = append(os.Environ(), "EDDY_CONFIG="+cfg, "EDDY_DATABASE_URL="+dbURL, "EDDY_REDIS_URL="+redisURL,
		"EDDY_HTTP_ADDR="+addr, "EDDY_LOG_LEVEL=warn", "EDDY_ENV=test", "EDDY_PPROF_ADDR="+pprof)
	p := &eddyProcess{cmd: cmd, logs: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = io.Discard, p.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start eddy: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("eddy did not become ready on %s: %s", addr, p.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *eddyProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// batches builds distinct Segment batches of 100 realistic events.
func batches(n int) [][]byte {
	out := make([][]byte, n)
	now := time.Now().UTC()
	for i := range out {
		var b bytes.Buffer
		b.WriteString(`{"sentAt":"` + now.Format(time.RFC3339Nano) + `","batch":[`)
		for j := 0; j < 100; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"track","event":"Product Viewed","messageId":"%s","anonymousId":"anon-%d-%d","timestamp":"%s",`+
				`"properties":{"product_id":"sku-%d","name":"Trail Running Shoe","price":89.9,"currency":"EUR","category":"Shoes","brand":"Eddy"},`+
				`"context":{"library":{"name":"eddy-bench","version":"1"},"page":{"url":"https://shop.example.com/p/sku-%d","path":"/p/sku-%d","referrer":"https://www.google.com/"},`+
				`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","locale":"fr-FR",`+
				`"consent":{"categoryPreferences":{"necessary":true,"analytics":true}}}}`,
				randomHex(16), i, j%25, now.Format(time.RFC3339Nano), j, j, j)
		}
		b.WriteString(`]}`)
		out[i] = b.Bytes()
	}
	return out
}

// blast sends pre-built batches from senders goroutines for d and counts
// what the collector acknowledged.
func blast(base, key string, senders int, d time.Duration) (collectorResult, error) {
	bodies := batches(256)
	tr := &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var events, reqs, errs atomic.Int64
	lat := make([][]time.Duration, senders)
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := s; time.Now().Before(deadline); i += senders {
				req, _ := http.NewRequest(http.MethodPost, base+"/v1/batch", bytes.NewReader(bodies[i%len(bodies)]))
				req.SetBasicAuth(key, "")
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				reqs.Add(1)
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, body))
					continue
				}
				lat[s] = append(lat[s], time.Since(t0))
				events.Add(100)
			}
		}(s)
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := collectorResult{events: events.Load(), requests: reqs.Load(), errors: errs.Load(), elapsed: elapsed, bodyBytes: len(bodies[0])}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	if r.errors > 0 {
		logf("  %d failed requests; first: %v", r.errors, firstErr.Load())
	}
	if r.events == 0 {
		return r, fmt.Errorf("the collector acknowledged nothing: %v", firstErr.Load())
	}
	return r, nil
}

// endToEnd offers rate events/s for warm-up plus the window and measures
// what was committed in the window, then waits for the backlog to drain.
func endToEnd(ctx context.Context, o options, rate float64, profile bool, dbURL, key, dir string, q *queue.Queue) (e2eResult, error) {
	r := e2eResult{offered: rate, window: o.e2eFor}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return r, err
	}
	defer conn.Close(ctx)
	count := func() int64 {
		var n int64
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
		return n
	}

	base := count() // events stored by earlier runs
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	statsc := make(chan demo.Stats, 1)
	go func() {
		st, err := demo.Run(loadCtx, demo.Options{URL: "http://" + eddyAddr, WriteKey: key, Rate: rate,
			Duration: warmup + o.e2eFor, BatchSize: 100, Concurrency: o.senders, Seed: 42})
		if err != nil && loadCtx.Err() == nil {
			logf("  demo traffic: %v", err)
		}
		statsc <- st
	}()
	time.Sleep(warmup)
	windowStart := time.Now()
	c0 := count()
	ticks0 := cpuTicks()
	profc := make(chan string, 1)
	if profile {
		go func() { profc <- cpuProfile(o.binary, dir, min(30*time.Second, o.e2eFor)) }()
	} else {
		profc <- ""
	}
	time.Sleep(o.e2eFor)
	c1 := count()
	windowEnd := time.Now()
	r.cpu = cpuSplit(ticks0, cpuTicks(), windowEnd.Sub(windowStart))
	r.window = windowEnd.Sub(windowStart)
	r.storedInWindow = c1 - c0
	r.sent = <-statsc
	r.backlogAtEnd = base + r.sent.Accepted - c1
	r.profileTop = <-profc

	// Watch the queue, not the table: a count(*) over millions of rows every
	// poll would compete with the inserts it waits for.
	drainStart := time.Now()
	for !drained(ctx, q) && time.Since(drainStart) < 10*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	r.drain = time.Since(drainStart)
	r.total = count() - base
	err = conn.QueryRow(ctx, `SELECT
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM loaded_at - received_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM loaded_at - received_at)),
		max(extract(epoch FROM loaded_at - received_at))::float8,
		avg(pg_column_size(properties) + pg_column_size(context))::float8
		FROM events WHERE received_at BETWEEN $1 AND $2`, windowStart, windowEnd).Scan(&r.p50, &r.p99, &r.pmax, &r.avgPayloadBytes)
	if err != nil {
		return r, fmt.Errorf("latency query: %w", err)
	}
	return r, nil
}

// drained reports whether the storage and session groups have nothing
// pending or undelivered on any shard.
func drained(ctx context.Context, q *queue.Queue) bool {
	stats, err := q.Stats(ctx)
	if err != nil {
		return false
	}
	for _, sh := range stats {
		for _, g := range sh.Groups {
			if (g.Name == pipeline.Group || g.Name == engine.Group) && (g.Pending > 0 || g.Lag != 0) {
				return false
			}
		}
	}
	return true
}

// cpuProfile takes a CPU profile of the eddy process and returns pprof's
// top functions.
func cpuProfile(binary, dir string, d time.Duration) string {
	path := filepath.Join(dir, "cpu.pprof")
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(d.Seconds())))
	if err != nil {
		return "profile failed: " + err.Error()
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err.Error()
	}
	_, err = io.Copy(f, resp.Body)
	f.Close()
	if err != nil {
		return err.Error()
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", binary, path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("pprof: %v: %s", err, out)
	}
	return string(out)
}

type machineInfo struct {
	cpu, kernel, goVersion, postgres, redis string
	cores                                   int
	memGiB                                  float64
}

func machine(ctx context.Context, dbURL string, rdb *redis.Client) machineInfo {
	m := machineInfo{cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.cpu = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %f kB", &kb)
		m.memGiB = kb / (1 << 20)
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.kernel = strings.TrimSpace(string(out))
	}
	if conn, err := pgx.Connect(ctx, dbURL); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&m.postgres)
		conn.Close(ctx)
	}
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
				m.redis = v
			}
		}
	}
	return m
}
