// Command recorder is a test sink plugin that appends, in order, a line
// per event written ("write <message id> <type>") and per deletion
// ("delete <job id> <kind>=<value>,…") to the file its configuration
// names, and fails the first fail_deletes deletions of an installation.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

type config struct {
	File        string `json:"file"`
	FailDeletes int    `json:"fail_deletes"`
}

type installation struct {
	cfg     config
	deletes int // calls so far
}

type recorder struct {
	mu       sync.Mutex
	installs map[string]*installation
}

var _ eddyplugin.Deleter = (*recorder)(nil)

func (r *recorder) Init(_ context.Context, in eddyplugin.Installation) error {
	var cfg config
	if err := eddyplugin.DecodeConfig(in.Config, &cfg); err != nil {
		return err
	}
	if !filepath.IsAbs(cfg.File) {
		return fmt.Errorf("config.file: %q must be an absolute path", cfg.File)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.installs[in.ID]; ok {
		// Init again after a restart or change: keep the count of calls.
		old.cfg = cfg
		return nil
	}
	r.installs[in.ID] = &installation{cfg: cfg}
	return nil
}

func (r *recorder) Validate(_ context.Context, id string) ([]eddyplugin.FieldError, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.installs[id] == nil {
		return nil, fmt.Errorf("installation %s is not initialised", id)
	}
	return nil, nil
}

func (r *recorder) Close(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.installs, id)
	return nil
}

func (r *recorder) Write(_ context.Context, id string, events []eddyplugin.Event) (eddyplugin.WriteResult, error) {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "write %s %s\n", e.MessageID, e.Type)
	}
	return eddyplugin.WriteResult{}, r.record(id, b.String(), false)
}

func (r *recorder) Delete(_ context.Context, id string, d eddyplugin.Deletion) (eddyplugin.DeleteResult, error) {
	ids := make([]string, len(d.Identities))
	for i, x := range d.Identities {
		ids[i] = x.Kind + "=" + x.Value
	}
	return eddyplugin.DeleteResult{}, r.record(id, "delete "+d.JobID+" "+strings.Join(ids, ",")+"\n", true)
}

// record appends lines to the installation's file; a deletion fails
// instead while the installation has failures left.
func (r *recorder) record(id, lines string, deletion bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.installs[id]
	if in == nil {
		return fmt.Errorf("installation %s is not initialised", id)
	}
	if deletion {
		in.deletes++
		if in.deletes <= in.cfg.FailDeletes {
			return errors.New("told to fail this deletion")
		}
	}
	f, err := os.OpenFile(in.cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open record file: %w", err)
	}
	if _, err := f.WriteString(lines); err != nil {
		f.Close()
		return fmt.Errorf("record: %w", err)
	}
	return f.Close()
}

func main() {
	eddyplugin.Serve(&recorder{installs: map[string]*installation{}})
}
