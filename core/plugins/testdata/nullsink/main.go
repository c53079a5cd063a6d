// Command nullsink is a test sink plugin for benchmarks: it accepts and
// drops every event, counting them per installation, and when an
// installation closes writes its count (a decimal number) to the file its
// configuration names in count_file, if any.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

type config struct {
	CountFile string `json:"count_file"`
}

type installation struct {
	cfg   config
	count atomic.Int64
}

type nullSink struct {
	mu       sync.Mutex
	installs map[string]*installation
}

var _ eddyplugin.Sink = (*nullSink)(nil)

func (s *nullSink) Init(_ context.Context, in eddyplugin.Installation) error {
	var cfg config
	dec := json.NewDecoder(bytes.NewReader(in.Config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.CountFile != "" && !filepath.IsAbs(cfg.CountFile) {
		return fmt.Errorf("config.count_file: %q must be an absolute path", cfg.CountFile)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.installs[in.ID]; !ok {
		s.installs[in.ID] = &installation{cfg: cfg}
	}
	return nil
}

func (s *nullSink) Validate(_ context.Context, id string) ([]eddyplugin.FieldError, error) {
	if s.get(id) == nil {
		return nil, fmt.Errorf("installation %s is not initialised", id)
	}
	return nil, nil
}

func (s *nullSink) Close(_ context.Context, id string) error {
	s.mu.Lock()
	in := s.installs[id]
	delete(s.installs, id)
	s.mu.Unlock()
	if in == nil || in.cfg.CountFile == "" {
		return nil
	}
	if err := os.WriteFile(in.cfg.CountFile, []byte(strconv.FormatInt(in.count.Load(), 10)), 0o600); err != nil {
		return fmt.Errorf("write count of installation %s: %w", id, err)
	}
	return nil
}

func (s *nullSink) Write(_ context.Context, id string, events []eddyplugin.Event) (eddyplugin.WriteResult, error) {
	in := s.get(id)
	if in == nil {
		return eddyplugin.WriteResult{}, fmt.Errorf("installation %s is not initialised", id)
	}
	in.count.Add(int64(len(events)))
	return eddyplugin.WriteResult{}, nil
}

func (s *nullSink) get(id string) *installation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.installs[id]
}

func main() {
	eddyplugin.Serve(&nullSink{installs: map[string]*installation{}})
}
