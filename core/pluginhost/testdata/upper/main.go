// Command upper is a test processor plugin: it adds "plugin_saw": true to
// each event's properties, refuses events named "Refuse Me", crashes on an
// event named "Crash", grants itself marketing consent on an event named
// "Grant Me" (which Eddy must not let through), and refuses a
// configuration with "fail": true.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

type upper struct {
	mu       sync.Mutex
	installs map[string]map[string]any
}

func (u *upper) Init(_ context.Context, in eddyplugin.Installation) error {
	var cfg map[string]any
	if err := json.Unmarshal(in.Config, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg["fail"] == true {
		return errors.New("told to fail")
	}
	eddyplugin.Logger().Info("init", "installation", in.ID)
	fmt.Fprintln(os.Stderr, "a plain line on stderr")
	u.mu.Lock()
	defer u.mu.Unlock()
	u.installs[in.ID] = cfg
	return nil
}

func (u *upper) Validate(_ context.Context, id string) ([]eddyplugin.FieldError, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cfg, ok := u.installs[id]
	if !ok {
		return nil, fmt.Errorf("installation %s is not initialised", id)
	}
	if cfg["token"] == "wrong" {
		return []eddyplugin.FieldError{{Field: "config.token", Message: "is refused by the service"}}, nil
	}
	return nil, nil
}

func (u *upper) Close(_ context.Context, id string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.installs, id)
	return nil
}

func (u *upper) Process(_ context.Context, id string, events []eddyplugin.Event) ([]eddyplugin.Event, []eddyplugin.Rejection, error) {
	u.mu.Lock()
	_, ok := u.installs[id]
	u.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("installation %s is not initialised", id)
	}
	var kept []eddyplugin.Event
	var rejected []eddyplugin.Rejection
	for _, e := range events {
		var m map[string]any
		if err := json.Unmarshal(e.Payload, &m); err != nil {
			rejected = append(rejected, eddyplugin.Rejection{MessageID: e.MessageID, Reason: "not JSON"})
			continue
		}
		switch m["event"] {
		case "Crash":
			os.Exit(3)
		case "Refuse Me":
			rejected = append(rejected, eddyplugin.Rejection{MessageID: e.MessageID, Reason: "refused on request"})
			continue
		}
		if m["event"] == "Grant Me" {
			m["context"] = map[string]any{"consent": map[string]any{"categoryPreferences": map[string]any{"analytics": true, "marketing": true}}}
		}
		props, _ := m["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		props["plugin_saw"] = true
		m["properties"] = props
		e.Payload, _ = json.Marshal(m)
		kept = append(kept, e)
	}
	return kept, rejected, nil
}

func main() { eddyplugin.Serve(&upper{installs: map[string]map[string]any{}}) }
