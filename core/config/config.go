// Package config loads and validates Eddy's configuration: the plugins.yaml
// file (the GitOps view of workspaces and sources, and the tuning of the
// collector, queue and worker) and the EDDY_* environment variables.
//
// Scalars in the file may reference the environment as ${VAR} or
// ${VAR:-default}; "$$" is a literal "$". Expansion happens on parsed values,
// never on the raw text, so a variable cannot change the file's structure.
// Every error names the file, the line and the field it is about.
package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/plugin"
)

// Config is the whole validated configuration of an Eddy process.
type Config struct {
	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
	// Version is the configuration format version; only 1 exists.
	Version int `yaml:"version"`
	// Queue tunes the Redis Streams queue between collectors and workers.
	Queue Queue `yaml:"queue"`
	// Collector tunes the HTTP collector's limits and time handling.
	Collector Collector `yaml:"collector"`
	// Worker tunes the workers that move events from the queue to storage.
	Worker Worker `yaml:"worker"`
	// Workspaces are created or updated in the database at start.
	Workspaces []Workspace `yaml:"workspaces"`
	// Plugins are the plugins installed: each a folder holding its
	// manifest (plugin.yaml), relative to this file.
	Plugins []PluginRef `yaml:"plugins"`
	// Cubes is the folder of the semantic layer's models (Cube-style YAML
	// files), relative to this file; empty: the models shipped in the
	// binary. Invalid models stop Eddy at start, naming file and line.
	Cubes string `yaml:"cubes"`
	// Manifests are the installed plugins' manifests, by plugin id.
	Manifests map[string]*plugin.Manifest `yaml:"-"`

	// Env holds the EDDY_* environment settings.
	Env Env `yaml:"-"`
}

// Queue configures the Redis Streams queue.
type Queue struct {
	// Shards is the number of shard streams events are spread over by visitor.
	// Changing it on a running system reorders in-flight events of a visitor.
	Shards int `yaml:"shards"`
	// Prefix is prepended to every Redis key Eddy uses.
	Prefix string `yaml:"prefix"`
}

// Collector configures the HTTP collector.
type Collector struct {
	// MaxEventBytes is the largest accepted message, in bytes.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// MaxRequestBytes is the largest accepted request body after decompression.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxBatchMessages is the largest number of messages in one batch request.
	MaxBatchMessages int `yaml:"max_batch_messages"`
	// MaxDepth is the deepest nesting of objects and arrays in a message.
	MaxDepth int `yaml:"max_depth"`
	// MaxKeys is the largest number of object keys in one message.
	MaxKeys int `yaml:"max_keys"`
	// MaxFutureSkew is how far in the future (after clock-skew correction) an
	// event time may be; later times are clamped to the receive time.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// EnqueueTimeout bounds the wait for Redis before answering 503.
	EnqueueTimeout time.Duration `yaml:"enqueue_timeout"`
	// TrustedProxies are the addresses or CIDRs whose X-Forwarded-For header is
	// believed when finding a client's IP. Empty: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AllowedOrigins are the browser origins allowed by CORS ("*" for any).
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Worker configures the workers.
type Worker struct {
	// BatchSize is the most entries read from one shard and stored at once.
	BatchSize int `yaml:"batch_size"`
	// MaxAttempts is how often a message the database rejects is retried
	// before it moves to the dead-letter stream.
	MaxAttempts int `yaml:"max_attempts"`
	// TrimInterval is how often acknowledged entries are trimmed from streams.
	TrimInterval time.Duration `yaml:"trim_interval"`
	// LeaseTTL is how long a worker's hold on a shard lasts without renewal:
	// the time within which a dead worker's shards are taken over.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// MaxBackoff is the longest wait between retries while the database is
	// unavailable.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Workspace is a workspace declared in the file.
type Workspace struct {
	// ID is the workspace's stable slug, e.g. "demo".
	ID string `yaml:"id"`
	// Name is the display name; defaults to the ID.
	Name string `yaml:"name"`
	// Organization is the id of the organization the workspace belongs to,
	// created when missing; defaults to "default".
	Organization string `yaml:"organization"`
	// Sources are the workspace's data inputs.
	Sources []Source `yaml:"sources"`
	// Plugins are the installed plugins this workspace uses.
	Plugins []Installation `yaml:"plugins"`
	// Privacy, when present, is the workspace's consent policy and data
	// minimisation, applied at each start (fields left out take
	// consent.DefaultPolicy's values); absent, the workspace keeps the
	// policy it has (the default, or what the API set).
	Privacy *consent.Policy `yaml:"privacy"`
}

// PluginRef installs a plugin.
type PluginRef struct {
	// Path is the plugin's folder, relative to plugins.yaml.
	Path string `yaml:"path"`
}

// Installation enables and configures a plugin for a workspace.
type Installation struct {
	// ID is the plugin's id, such as sink.webhook.
	ID string `yaml:"id"`
	// Enabled is false to keep the configuration without running the
	// plugin; true if absent.
	Enabled *bool `yaml:"enabled"`
	// Config is checked against the plugin's configuration schema.
	// Values may come from the environment (${VAR}), as secrets should.
	Config map[string]any `yaml:"config"`
	// RateLimit is the most events per second a sink installation is
	// delivered, 0 to MaxRateLimit, fractions allowed; 0 (or absent) is
	// unlimited.
	RateLimit float64 `yaml:"rate_limit"`
}

// MaxRateLimit bounds an installation's rate_limit, in events per second.
const MaxRateLimit = 1_000_000

// IsEnabled reports whether the installation runs.
func (in Installation) IsEnabled() bool { return in.Enabled == nil || *in.Enabled }

// Source is a data input of a workspace, identified by its write key.
type Source struct {
	// ID is the source's slug, unique within its workspace, e.g. "web".
	ID string `yaml:"id"`
	// Name is the display name; defaults to the ID.
	Name string `yaml:"name"`
	// WriteKey authenticates the source's SDKs. Keep it in the environment.
	WriteKey string `yaml:"write_key"`
}

// Env holds the settings that come from the environment.
type Env struct {
	DatabaseURL string // EDDY_DATABASE_URL
	RedisURL    string // EDDY_REDIS_URL
	HTTPAddr    string // EDDY_HTTP_ADDR
	Production  bool   // EDDY_ENV=production
	LogLevel    string // EDDY_LOG_LEVEL: debug, info, warn, error
	LogFormat   string // EDDY_LOG_FORMAT: json or text
	// PprofAddr, when set, serves net/http/pprof on this separate address
	// (keep it on localhost): EDDY_PPROF_ADDR.
	PprofAddr string
	// SecureCookies marks the console's session cookie Secure on plain HTTP
	// too, for a TLS-terminating proxy in front: EDDY_SECURE_COOKIES=true.
	// It defaults to true in production.
	SecureCookies bool
}

// Defaults for everything the file may leave out.
const (
	DefaultConfigPath  = "./plugins.yaml"
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/eddy?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultHTTPAddr    = ":8080"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// minProductionKeyLen is the shortest write key accepted in production.
const minProductionKeyLen = 16

// LookupEnv finds an environment variable; os.LookupEnv in production.
type LookupEnv func(string) (string, bool)

// Load reads the file named by EDDY_CONFIG (default ./plugins.yaml) and the
// environment, and validates both.
func Load(lookup LookupEnv) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	path := DefaultConfigPath
	if p, ok := lookup("EDDY_CONFIG"); ok && p != "" {
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w (set EDDY_CONFIG to the plugins.yaml to use)", err)
	}
	return Parse(path, data, lookup)
}

// Parse validates data read from the file at path.
func Parse(path string, data []byte, lookup LookupEnv) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env, err := LoadEnv(lookup)
	if err != nil {
		return nil, err
	}
	doc, err := decode(path, data, lookup)
	if err != nil {
		return nil, err
	}
	cfg := doc.cfg
	cfg.Path = path
	cfg.Env = env
	cfg.applyDefaults()
	if errs := doc.validate(cfg); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// LoadEnv reads and checks the EDDY_* environment settings alone, for
// commands that need no configuration file.
func LoadEnv(lookup LookupEnv) (Env, error) {
	get := func(name, def string) string {
		if v, ok := lookup(name); ok && v != "" {
			return v
		}
		return def
	}
	env := Env{
		DatabaseURL: get("EDDY_DATABASE_URL", DefaultDatabaseURL),
		RedisURL:    get("EDDY_REDIS_URL", DefaultRedisURL),
		HTTPAddr:    get("EDDY_HTTP_ADDR", DefaultHTTPAddr),
		LogLevel:    get("EDDY_LOG_LEVEL", "info"),
		LogFormat:   get("EDDY_LOG_FORMAT", "json"),
		PprofAddr:   get("EDDY_PPROF_ADDR", ""),
	}
	switch e := get("EDDY_ENV", "development"); e {
	case "production":
		env.Production = true
	case "development", "test":
	default:
		return env, fmt.Errorf("EDDY_ENV: %q is not one of production, development, test", e)
	}
	switch v := get("EDDY_SECURE_COOKIES", fmt.Sprint(env.Production)); v {
	case "true", "1":
		env.SecureCookies = true
	case "false", "0":
	default:
		return env, fmt.Errorf("EDDY_SECURE_COOKIES: %q is not true or false", v)
	}
	switch env.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return env, fmt.Errorf("EDDY_LOG_LEVEL: %q is not one of debug, info, warn, error", env.LogLevel)
	}
	switch env.LogFormat {
	case "json", "text":
	default:
		return env, fmt.Errorf("EDDY_LOG_FORMAT: %q is not one of json, text", env.LogFormat)
	}
	return env, nil
}

func (c *Config) applyDefaults() {
	if c.Version == 0 {
		c.Version = 1
	}
	if c.Queue.Shards == 0 {
		c.Queue.Shards = 16
	}
	if c.Queue.Prefix == "" {
		c.Queue.Prefix = "eddy"
	}
	col := &c.Collector
	setInt(&col.MaxEventBytes, 32<<10)
	setInt(&col.MaxRequestBytes, 500<<10)
	setInt(&col.MaxBatchMessages, 2500)
	setInt(&col.MaxDepth, 32)
	setInt(&col.MaxKeys, 1000)
	setDuration(&col.MaxFutureSkew, time.Hour)
	setDuration(&col.EnqueueTimeout, 3*time.Second)
	if col.AllowedOrigins == nil {
		col.AllowedOrigins = []string{"*"}
	}
	setInt(&c.Worker.BatchSize, 1000)
	setInt(&c.Worker.MaxAttempts, 3)
	setDuration(&c.Worker.TrimInterval, 10*time.Second)
	setDuration(&c.Worker.LeaseTTL, 15*time.Second)
	setDuration(&c.Worker.MaxBackoff, 10*time.Second)
	for i := range c.Workspaces {
		ws := &c.Workspaces[i]
		if ws.Name == "" {
			ws.Name = ws.ID
		}
		if ws.Privacy != nil {
			p := ws.Privacy.WithDefaults()
			ws.Privacy = &p
		}
		for j := range ws.Sources {
			if ws.Sources[j].Name == "" {
				ws.Sources[j].Name = ws.Sources[j].ID
			}
		}
	}
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDuration(v *time.Duration, def time.Duration) {
	if *v == 0 {
		*v = def
	}
}

// validate checks the decoded configuration; each error names file, line
// and field.
func (d *document) validate(c *Config) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, d.errorf(path, format, args...))
	}
	if c.Version != 1 {
		bad("version", "unsupported version %d (only 1 exists)", c.Version)
	}
	if c.Queue.Shards < 1 || c.Queue.Shards > 1024 {
		bad("queue.shards", "must be between 1 and 1024, got %d", c.Queue.Shards)
	}
	positive := []struct {
		path string
		v    int
		max  int
	}{
		{"collector.max_event_bytes", c.Collector.MaxEventBytes, 1 << 20},
		{"collector.max_request_bytes", c.Collector.MaxRequestBytes, 16 << 20},
		{"collector.max_batch_messages", c.Collector.MaxBatchMessages, 100000},
		{"collector.max_depth", c.Collector.MaxDepth, 1000},
		{"collector.max_keys", c.Collector.MaxKeys, 100000},
		{"worker.batch_size", c.Worker.BatchSize, 10000},
		{"worker.max_attempts", c.Worker.MaxAttempts, 100},
	}
	for _, p := range positive {
		if p.v < 1 || p.v > p.max {
			bad(p.path, "must be between 1 and %d, got %d", p.max, p.v)
		}
	}
	if c.Collector.MaxEventBytes > c.Collector.MaxRequestBytes {
		bad("collector.max_event_bytes", "must not exceed collector.max_request_bytes (%d)", c.Collector.MaxRequestBytes)
	}
	for _, p := range []struct {
		path string
		v    time.Duration
	}{
		{"collector.max_future_skew", c.Collector.MaxFutureSkew},
		{"collector.enqueue_timeout", c.Collector.EnqueueTimeout},
		{"worker.trim_interval", c.Worker.TrimInterval},
		{"worker.lease_ttl", c.Worker.LeaseTTL},
		{"worker.max_backoff", c.Worker.MaxBackoff},
	} {
		if p.v < 0 {
			bad(p.path, "must not be negative, got %s", p.v)
		}
	}
	if c.Worker.LeaseTTL > 0 && c.Worker.LeaseTTL < 100*time.Millisecond {
		bad("worker.lease_ttl", "must be at least 100ms, got %s", c.Worker.LeaseTTL)
	}

	errs = append(errs, d.loadPlugins(c)...)

	wsSeen := map[string]bool{}
	keySeen := map[string]string{}
	for i, ws := range c.Workspaces {
		wp := fmt.Sprintf("workspaces[%d]", i)
		switch {
		case ws.ID == "":
			bad(wp+".id", "is required")
		case !idPattern.MatchString(ws.ID):
			bad(wp+".id", "%q must be lower-case letters, digits, '-' or '_' (at most 63, starting with a letter or digit)", ws.ID)
		case wsSeen[ws.ID]:
			bad(wp+".id", "workspace %q is declared twice", ws.ID)
		}
		wsSeen[ws.ID] = true
		if ws.Organization != "" && !idPattern.MatchString(ws.Organization) {
			bad(wp+".organization", "%q must be lower-case letters, digits, '-' or '_' (at most 63, starting with a letter or digit)", ws.Organization)
		}
		srcSeen := map[string]bool{}
		for j, src := range ws.Sources {
			sp := fmt.Sprintf("%s.sources[%d]", wp, j)
			switch {
			case src.ID == "":
				bad(sp+".id", "is required")
			case !idPattern.MatchString(src.ID):
				bad(sp+".id", "%q must be lower-case letters, digits, '-' or '_' (at most 63, starting with a letter or digit)", src.ID)
			case srcSeen[src.ID]:
				bad(sp+".id", "source %q is declared twice in workspace %q", src.ID, ws.ID)
			}
			srcSeen[src.ID] = true
			kp := sp + ".write_key"
			switch {
			case src.WriteKey == "":
				bad(kp, "must not be empty")
			case keySeen[src.WriteKey] != "":
				bad(kp, "is the same as %s's: every source needs its own key", keySeen[src.WriteKey])
			case c.Env.Production && d.usedDefault(kp):
				bad(kp, "uses the default from the file; EDDY_ENV=production requires setting it in the environment")
			case c.Env.Production && len(src.WriteKey) < minProductionKeyLen:
				bad(kp, "is %d characters; EDDY_ENV=production requires at least %d", len(src.WriteKey), minProductionKeyLen)
			}
			if src.WriteKey != "" && keySeen[src.WriteKey] == "" {
				keySeen[src.WriteKey] = ws.ID + "/" + src.ID
			}
		}
		errs = append(errs, d.checkInstallations(c, wp, ws)...)
		errs = append(errs, d.checkPrivacy(c, wp, ws)...)
	}
	return errs
}

// checkPrivacy checks a workspace's privacy policy, and that the plugins it
// adds purposes for are installed.
func (d *document) checkPrivacy(c *Config, wp string, ws Workspace) []error {
	if ws.Privacy == nil {
		return nil
	}
	var errs []error
	for _, fe := range ws.Privacy.Validate() {
		errs = append(errs, d.errorf(wp+"."+fe.Field, "%s", fe.Message))
	}
	for _, id := range slices.Sorted(maps.Keys(ws.Privacy.Plugins)) {
		if _, ok := c.Manifests[id]; !ok {
			errs = append(errs, d.errorf(wp+".privacy.plugins."+id, "plugin %q is not installed (installed: %s)", id, installed(c.Manifests)))
		}
	}
	return errs
}

// loadPlugins reads the manifest of every installed plugin.
func (d *document) loadPlugins(c *Config) []error {
	var errs []error
	c.Manifests = map[string]*plugin.Manifest{}
	where := map[string]string{}
	for i, ref := range c.Plugins {
		pp := fmt.Sprintf("plugins[%d].path", i)
		if ref.Path == "" {
			errs = append(errs, d.errorf(pp, "is required: the plugin's folder, holding its plugin.yaml"))
			continue
		}
		dir := ref.Path
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(d.path), dir)
		}
		name := filepath.Join(dir, "plugin.yaml")
		data, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, d.errorf(pp, "read the plugin's manifest: %v", err))
			continue
		}
		m, err := plugin.ParseManifest(name, dir, data)
		if err != nil {
			errs = append(errs, d.errorf(pp, "%v", err))
			continue
		}
		if other, ok := where[m.ID]; ok {
			errs = append(errs, d.errorf(pp, "installs %s again (already installed by %s)", m.ID, other))
			continue
		}
		where[m.ID] = pp
		c.Manifests[m.ID] = m
	}
	return errs
}

// checkInstallations checks a workspace's plugins: installed, once each,
// and configured as their schemas say.
func (d *document) checkInstallations(c *Config, wp string, ws Workspace) []error {
	var errs []error
	seen := map[string]bool{}
	for j, in := range ws.Plugins {
		ip := fmt.Sprintf("%s.plugins[%d]", wp, j)
		m, ok := c.Manifests[in.ID]
		switch {
		case in.ID == "":
			errs = append(errs, d.errorf(ip+".id", "is required"))
			continue
		case !ok:
			errs = append(errs, d.errorf(ip+".id", "plugin %q is not installed (installed: %s)", in.ID, installed(c.Manifests)))
			continue
		case seen[in.ID]:
			errs = append(errs, d.errorf(ip+".id", "plugin %q is configured twice in workspace %q", in.ID, ws.ID))
			continue
		}
		seen[in.ID] = true
		if !(in.RateLimit >= 0 && in.RateLimit <= MaxRateLimit) { // NaN fails both
			errs = append(errs, d.errorf(ip+".rate_limit", "must be a number of events per second from 0 (unlimited) to %d", MaxRateLimit))
		}
		for _, fe := range m.CheckConfig(in.Config) {
			errs = append(errs, d.errorf(ip+"."+fe.Field, "%s", fe.Message))
		}
	}
	return errs
}

func installed(ms map[string]*plugin.Manifest) string {
	if len(ms) == 0 {
		return "none; list plugin folders under plugins:"
	}
	return strings.Join(slices.Sorted(maps.Keys(ms)), ", ")
}
