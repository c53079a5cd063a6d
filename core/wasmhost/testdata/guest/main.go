// Command guest is a test WASM processor built with the eddywasm SDK: it
// tags each event with the configured tag, refuses "Refuse Me", and on
// request panics ("Panic"), loops forever ("Loop") or eats memory
// ("Hog"). A configuration with "fail": true is refused at init.
package main

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

var tag = "seen"

var hoard [][]byte

func init() {
	eddywasm.Init(func(config json.RawMessage) error {
		var c struct {
			Tag  string `json:"tag"`
			Fail bool   `json:"fail"`
		}
		if err := json.Unmarshal(config, &c); err != nil {
			return err
		}
		if c.Fail {
			return errors.New("told to fail")
		}
		if c.Tag != "" {
			tag = c.Tag
		}
		return nil
	})
	eddywasm.Process(func(events []eddywasm.Event) ([]eddywasm.Event, []eddywasm.Rejection) {
		var kept []eddywasm.Event
		var rejected []eddywasm.Rejection
		for _, e := range events {
			switch {
			case strings.Contains(string(e.Payload), `"Panic"`):
				panic("asked to panic")
			case strings.Contains(string(e.Payload), `"Loop"`):
				for {
				}
			case strings.Contains(string(e.Payload), `"Hog"`):
				for {
					hoard = append(hoard, make([]byte, 1<<20))
				}
			case strings.Contains(string(e.Payload), `"Refuse Me"`):
				rejected = append(rejected, eddywasm.Rejection{MessageID: e.MessageID, Reason: "refused on request"})
				continue
			}
			var m map[string]any
			if json.Unmarshal(e.Payload, &m) != nil {
				rejected = append(rejected, eddywasm.Rejection{MessageID: e.MessageID, Reason: "not JSON"})
				continue
			}
			m["tag"] = tag
			e.Payload, _ = json.Marshal(m)
			kept = append(kept, e)
		}
		return kept, rejected
	})
}

func main() {}
