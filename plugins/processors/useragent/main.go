// Command useragent is the processor.useragent WASM plugin: it parses each
// event's user agent (the message's context.userAgent, else the batch
// context's) with github.com/mileusna/useragent and writes into the
// message's context the device type, operating system, browser and
// whether the agent is a bot, keeping every value the client set itself.
// Configured with drop_bots, it drops the events of bots.
//
// Built for wasip1 (see plugin.yaml); its logic (enrich.go) is plain Go,
// tested natively as well as through Eddy's WASM host.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// config is the installation's configuration.
type config struct {
	// DropBots drops the events whose user agent is a bot's.
	DropBots bool `json:"drop_bots"`
}

// parseConfig decodes the configuration strictly.
func parseConfig(raw json.RawMessage) (config, error) {
	var c config
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return config{}, fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return config{}, fmt.Errorf("config: more than one JSON value")
	}
	return c, nil
}

func main() {}
