package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/eddy-cdp/eddy/core/config"
	"github.com/eddy-cdp/eddy/core/demo"
	"github.com/eddy-cdp/eddy/core/pipeline"
	"github.com/eddy-cdp/eddy/core/plugins"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/server"
	"github.com/eddy-cdp/eddy/core/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "eddy",
		Short:         "Eddy: a real-time customer data platform",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), migrateCmd(), demoCmd(), dlqCmd(), versionCmd(), pluginCmd(),
		adminCmd(), orgCmd(), workspaceCmd(), sourceCmd(), apikeyCmd())
	return root
}

func loadConfig() (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return nil, nil, err
	}
	return cfg, newLogger(cfg.Env), nil
}

func newLogger(env config.Env) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(env.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if env.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func serveCmd() *cobra.Command {
	var roles string
	var migrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run Eddy's roles (collector, worker, api) on EDDY_HTTP_ADDR",
		Long: `Run Eddy. Without --roles every role runs in this process. To scale
collectors and workers separately, run each with its own --roles (and its
own EDDY_HTTP_ADDR when they share a machine).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := server.ParseRoles(roles)
			if err != nil {
				return fmt.Errorf("--roles: %w", err)
			}
			cfg, log, err := loadConfig()
			if err != nil {
				return err
			}
			tuneGC()
			ctx, stop := signalContext()
			defer stop()
			if migrate {
				if err := migrateDatabase(ctx, cfg.Env.DatabaseURL); err != nil {
					return err
				}
			}
			srv, err := server.New(ctx, cfg, rs, log)
			if err != nil {
				return err
			}
			if err := srv.Listen(cfg.Env.HTTPAddr); err != nil {
				srv.Close()
				return err
			}
			go announce(srv, cfg, rs)
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&roles, "roles", strings.Join(server.AllRoles, ","), "comma-separated roles to run: collector, worker, api")
	cmd.Flags().BoolVar(&migrate, "migrate", true, "apply database migrations before serving")
	return cmd
}

// defaultGCPercent is the garbage collector's target unless GOGC is set.
// Eddy's live heap is small (requests and batches in flight) while it
// allocates fast, so the default of 100 spends a quarter of its CPU in GC;
// 400 measured 15% less CPU for eddy under saturated load
// (docs/benchmarks.md) for a heap still in the hundreds of MB.
const defaultGCPercent = 400

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// announce tells a person at the terminal where Eddy is. Write keys are shown
// only outside production, and only the file's demo key.
func announce(srv *server.Server, cfg *config.Config, roles []string) {
	<-srv.Ready()
	addr := srv.Addr()
	if strings.HasPrefix(addr, "[::]:") || strings.HasPrefix(addr, "0.0.0.0:") {
		addr = "localhost:" + addr[strings.LastIndexByte(addr, ':')+1:]
	}
	fmt.Printf("\nEddy is up at http://%s (roles: %s)\n", addr, strings.Join(roles, ","))
	if cfg.Env.Production {
		return
	}
	for _, ws := range cfg.Workspaces {
		for _, src := range ws.Sources {
			if ws.ID == "demo" {
				fmt.Printf("  workspace %q, source %q: write key %s\n", ws.ID, src.ID, src.WriteKey)
				fmt.Printf("  try: curl -u %s: -H 'Content-Type: application/json' -d '{\"userId\":\"u1\",\"event\":\"Hello\",\"context\":{\"consent\":{\"categoryPreferences\":{\"analytics\":true}}}}' http://%s/v1/track\n", src.WriteKey, addr)
			}
		}
	}
	fmt.Println()
}

func migrateDatabase(ctx context.Context, url string) error {
	if err := store.EnsureDatabase(ctx, url); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if err := store.Migrate(ctx, url); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create the database if missing and apply migrations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := config.LoadEnv(os.LookupEnv)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			if err := migrateDatabase(ctx, env.DatabaseURL); err != nil {
				return err
			}
			fmt.Println("database is up to date")
			return nil
		},
	}
}

func demoCmd() *cobra.Command {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Send realistic shop traffic to a collector",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Rate < 0 {
				return fmt.Errorf("--rate must not be negative")
			}
			ctx, stop := signalContext()
			defer stop()
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			st, err := demo.Run(ctx, opts)
			fmt.Printf("sent %d events in %s (%.0f/s): %d accepted, %d rejected, %d failed; request latency p50 %s p99 %s\n",
				st.Sent, st.Elapsed.Round(time.Millisecond), float64(st.Accepted)/st.Elapsed.Seconds(),
				st.Accepted, st.Rejected, st.Failed, st.LatencyP50, st.LatencyP99)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.URL, "url", envOr("EDDY_URL", "http://127.0.0.1:8080"), "collector base URL")
	f.StringVar(&opts.WriteKey, "write-key", envOr("EDDY_DEMO_WRITE_KEY", "demo_write_key"), "source write key")
	f.Float64Var(&opts.Rate, "rate", 50, "events per second (0: as fast as the collector acknowledges)")
	f.DurationVar(&opts.Duration, "duration", time.Minute, "how long to send (0: until interrupted)")
	f.Int64Var(&opts.Events, "events", 0, "stop after this many events (0: no limit)")
	f.IntVar(&opts.BatchSize, "batch", 100, "events per request")
	f.IntVar(&opts.Concurrency, "concurrency", 8, "parallel requests")
	f.Int64Var(&opts.Seed, "seed", 0, "random seed for repeatable traffic (0: time-based)")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func dlqCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "List and replay dead-lettered messages"}
	var group string
	cmd.PersistentFlags().StringVar(&group, "group", pipeline.Group,
		"consumer group whose dead letters to use: store, sessions, process (the processors), or sink:<installation id>")

	var limit int
	var after string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead-lettered messages, oldest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 10000 {
				return fmt.Errorf("--limit must be between 1 and 10000, got %d", limit)
			}
			return withGroupQueue(group, func(ctx context.Context, q *queue.Queue, group string) error {
				return listDeadLetters(ctx, q, group, after, limit, asJSON)
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 50, "most entries to show (1..10000)")
	list.Flags().StringVar(&after, "after", "", "show entries after this DLQ id (for paging)")
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line, with the payload")

	var all bool
	replay := &cobra.Command{
		Use:   "replay [DLQ ID...]",
		Short: "Put dead-lettered messages back on their queue shard",
		RunE: func(cmd *cobra.Command, ids []string) error {
			if all == (len(ids) > 0) {
				return fmt.Errorf("give DLQ ids to replay, or --all (not both)")
			}
			return withGroupQueue(group, func(ctx context.Context, q *queue.Queue, group string) error {
				n, err := q.Replay(ctx, group, ids)
				if err != nil {
					return err
				}
				fmt.Printf("replayed %d message(s)\n", n)
				if !all && n < len(ids) {
					return fmt.Errorf("%d of the given ids were not in the dead-letter stream", len(ids)-n)
				}
				return nil
			})
		},
	}
	replay.Flags().BoolVar(&all, "all", false, "replay every dead-lettered message")
	cmd.AddCommand(list, replay)
	return cmd
}

func listDeadLetters(ctx context.Context, q *queue.Queue, group, after string, limit int, asJSON bool) error {
	total, err := q.DeadLetterCount(ctx, group)
	if err != nil {
		return err
	}
	entries, err := q.DeadLetters(ctx, group, after, limit)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		for _, d := range entries {
			if err := enc.Encode(deadJSON(d)); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Printf("%d dead-lettered message(s) in group %q\n", total, group)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DLQ ID\tSHARD\tMESSAGE ID\tWORKSPACE\tTYPE\tFAILED AT\tREASON")
	for _, d := range entries {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Shard, d.Entry.MessageID, d.Entry.WorkspaceID,
			d.Entry.Type, d.FailedAt.UTC().Format(time.RFC3339), oneLine(d.Reason))
	}
	return w.Flush()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func deadJSON(d queue.DeadEntry) map[string]any {
	return map[string]any{
		"id": d.ID, "shard": d.Shard, "original_id": d.OriginalID, "group": d.Group, "reason": d.Reason,
		"failed_at": d.FailedAt, "attempts": d.Attempts, "message_id": d.Entry.MessageID,
		"workspace_id": d.Entry.WorkspaceID, "source_id": d.Entry.SourceID, "type": d.Entry.Type,
		"received_at": d.Entry.ReceivedAt, "payload": json.RawMessage(d.Entry.Payload),
	}
}

// withGroupQueue runs f with the queue a consumer group reads and the
// group's name in it: the ingest queue for the processors (process), a
// sink installation's own queue for sink:<installation id>, else the
// events queue.
func withGroupQueue(group string, f func(ctx context.Context, q *queue.Queue, group string) error) error {
	return withQueue(func(ctx context.Context, q *queue.Queue, rdb *redis.Client, prefix string) error {
		switch {
		case group == plugins.ProcessGroup:
			in, err := queue.New(rdb, queue.Options{Prefix: server.IngestPrefix(prefix), Shards: q.Shards()})
			if err != nil {
				return err
			}
			return f(ctx, in, group)
		case strings.HasPrefix(group, "sink:"):
			id := strings.TrimPrefix(group, "sink:")
			if _, err := uuid.Parse(id); err != nil {
				return fmt.Errorf("--group sink:<installation id>: %q is not an installation id (a UUID)", id)
			}
			sq, err := queue.New(rdb, queue.Options{Prefix: plugins.SinkQueuePrefix(prefix, id), Shards: plugins.SinkShards})
			if err != nil {
				return err
			}
			return f(ctx, sq, plugins.DeliverGroup)
		}
		return f(ctx, q, group)
	})
}

// withQueue runs f with the configured queue and a context cancelled by
// SIGINT or SIGTERM.
func withQueue(f func(ctx context.Context, q *queue.Queue, rdb *redis.Client, prefix string) error) error {
	cfg, _, err := loadConfig()
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(cfg.Env.RedisURL)
	if err != nil {
		return fmt.Errorf("EDDY_REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	q, err := queue.New(rdb, queue.Options{Prefix: cfg.Queue.Prefix, Shards: cfg.Queue.Shards})
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return f(ctx, q, rdb, cfg.Queue.Prefix)
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Println("eddy", version) },
	}
}
