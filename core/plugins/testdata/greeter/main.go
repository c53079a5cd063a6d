//go:build wasip1

// Command greeter is a test app: for each "Signed Up" track event it asks
// for a "welcome" action for the visitor.
package main

import (
	"encoding/json"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

func init() {
	eddywasm.OnEvents(func(events []eddywasm.Event) []eddywasm.Action {
		var out []eddywasm.Action
		for _, e := range events {
			var m struct {
				Event       string `json:"event"`
				AnonymousID string `json:"anonymousId"`
			}
			if json.Unmarshal(e.Payload, &m) != nil || m.Event != "Signed Up" {
				continue
			}
			data, _ := json.Marshal(map[string]string{"signed_up": e.MessageID})
			out = append(out, eddywasm.Action{Type: "welcome", AnonymousID: m.AnonymousID, Data: data})
		}
		return out
	})
}

func main() {}
