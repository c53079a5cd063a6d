//go:build wasip1

package main

import (
	"encoding/json"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// One instance serves one installation: the host initialises each
// instance with its installation's configuration.
var cfg config

func init() {
	eddywasm.Init(func(raw json.RawMessage) error {
		c, err := parseConfig(raw)
		if err != nil {
			return err
		}
		cfg = c
		return nil
	})
	eddywasm.Process(func(events []eddywasm.Event, results []eddywasm.Result) {
		for i := range events {
			results[i] = enrich(cfg, &events[i])
		}
	})
}
