package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// config is an installation's configuration.
type config struct {
	// Database is the path of a MaxMind-format City database (.mmdb).
	Database string `json:"database"`
	// TruncateIP truncates the address after lookup: to /24 for IPv4,
	// /48 for IPv6.
	TruncateIP bool `json:"truncate_ip"`
	// RemoveIP clears the address after lookup.
	RemoveIP bool `json:"remove_ip"`
	// Languages are the languages of place names, by preference; the
	// first one a record has is used. Default ["en"].
	Languages []string `json:"languages"`
}

func parseConfig(raw json.RawMessage) (config, error) {
	var c config
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, errors.New("config.database: is required")
	}
	if err := eddyplugin.DecodeConfig(raw, &c); err != nil {
		return c, err
	}
	switch {
	case c.Database == "":
		return c, errors.New("config.database: is required: the path of a City .mmdb file")
	case c.TruncateIP && c.RemoveIP:
		return c, errors.New("config.truncate_ip, config.remove_ip: choose one: truncating a removed address means nothing")
	}
	if c.Languages == nil {
		c.Languages = []string{"en"}
	}
	if len(c.Languages) == 0 {
		return c, errors.New("config.languages: must list at least one language, such as en")
	}
	for i, l := range c.Languages {
		if l == "" {
			return c, fmt.Errorf("config.languages[%d]: must not be empty", i)
		}
	}
	return c, nil
}

// installation is one workspace's use of the plugin.
type installation struct {
	cfg   config
	ipFix ipAction
	cache placeCache

	// mu is held for reading while a batch uses db, and for writing to
	// close it, so a Close never unmaps a file a lookup is reading.
	mu     sync.RWMutex
	db     *maxminddb.Reader
	closed bool
}

func (in *installation) close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	in.closed = true
	return in.db.Close()
}

// processor is the plugin: one process serves every installation.
type processor struct {
	log *slog.Logger

	mu    sync.RWMutex
	insts map[string]*installation
}

var _ eddyplugin.Processor = (*processor)(nil)

func newProcessor(log *slog.Logger) *processor {
	return &processor{log: log, insts: map[string]*installation{}}
}

// Init opens the installation's database; a repeated Init replaces the
// installation, and a failed one leaves none under that id.
func (p *processor) Init(_ context.Context, in eddyplugin.Installation) error {
	inst, err := openInstallation(in.Config)
	p.mu.Lock()
	old := p.insts[in.ID]
	delete(p.insts, in.ID)
	if err == nil {
		p.insts[in.ID] = inst
	}
	p.mu.Unlock()
	if old != nil {
		if cerr := old.close(); cerr != nil {
			p.log.Warn("close replaced database", "installation_id", in.ID, "error", cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("init installation %s: %w", in.ID, err)
	}
	md := inst.db.Metadata
	p.log.Info("geoip database opened", "installation_id", in.ID, "workspace_id", in.WorkspaceID,
		"database_type", md.DatabaseType, "build_time", md.BuildTime(),
		"truncate_ip", inst.cfg.TruncateIP, "remove_ip", inst.cfg.RemoveIP)
	return nil
}

func openInstallation(raw json.RawMessage) (*installation, error) {
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, err
	}
	db, err := maxminddb.Open(cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("config.database: open %q: %w", cfg.Database, err)
	}
	inst := &installation{cfg: cfg, db: db}
	switch {
	case cfg.TruncateIP:
		inst.ipFix = truncateIP
	case cfg.RemoveIP:
		inst.ipFix = removeIP
	}
	return inst, nil
}

// Validate has nothing to add to Init's checks: the database opened.
func (p *processor) Validate(_ context.Context, installationID string) ([]eddyplugin.FieldError, error) {
	if _, err := p.installation(installationID); err != nil {
		return nil, err
	}
	return nil, nil
}

// Close closes the installation's database; it is a no-op for an unknown
// or failed installation.
func (p *processor) Close(_ context.Context, installationID string) error {
	p.mu.Lock()
	inst := p.insts[installationID]
	delete(p.insts, installationID)
	p.mu.Unlock()
	if inst == nil {
		return nil
	}
	if err := inst.close(); err != nil {
		return fmt.Errorf("close installation %s: %w", installationID, err)
	}
	return nil
}

var errUnknownInstallation = errors.New("unknown installation")

func (p *processor) installation(id string) (*installation, error) {
	p.mu.RLock()
	inst := p.insts[id]
	p.mu.RUnlock()
	if inst == nil {
		return nil, fmt.Errorf("installation %s: %w (not initialised, or its Init failed)", id, errUnknownInstallation)
	}
	return inst, nil
}

// Process enriches every event and keeps them all: a place that cannot be
// found is no reason to drop an event.
func (p *processor) Process(ctx context.Context, installationID string, events []eddyplugin.Event) ([]eddyplugin.Event, []eddyplugin.Rejection, error) {
	inst, err := p.installation(installationID)
	if err != nil {
		return nil, nil, err
	}
	inst.mu.RLock()
	defer inst.mu.RUnlock()
	if inst.closed {
		return nil, nil, fmt.Errorf("installation %s: %w (closed)", installationID, errUnknownInstallation)
	}
	kept := make([]eddyplugin.Event, len(events))
	var e enricher
	e.inst = inst
	for i := range events {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, nil, fmt.Errorf("process installation %s: %w", installationID, ctx.Err())
		}
		kept[i] = events[i]
		if err := e.enrich(&kept[i]); err != nil {
			// A broken database record: the event goes on without a place.
			p.log.Warn("geoip lookup failed", "installation_id", installationID, "message_id", events[i].MessageID, "error", err)
		}
	}
	return kept, nil, nil
}

// lookup finds the place of addr; nil when the database has none.
func (in *installation) lookup(addr netip.Addr) (*place, error) {
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return nil, nil
	}
	res := in.db.Lookup(addr)
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	if !res.Found() {
		return nil, nil
	}
	pl, err := in.cache.lookup(res, in.cfg.Languages)
	if err != nil || pl.empty {
		return nil, err
	}
	return pl, nil
}
