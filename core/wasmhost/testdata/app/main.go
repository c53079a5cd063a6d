// Command app is a test WASM app built with the eddywasm SDK. Each event
// is a command in its payload, answered by one action of the same type:
//
//	{"event":"set","key":"k","value":"v"}   → {"error": "…"} or {}
//	{"event":"setn","key":"k","size":65536} → sets a value of size bytes
//	{"event":"get","key":"k"}               → {"found": bool, "value": "…"}
//	{"event":"delete","key":"k"}            → {"error": "…"} or {}
//	{"event":"loop"}                        → never returns
//
// Each session change is answered by an action of the change's kind whose
// data is the session.
package main

import (
	"bytes"
	"encoding/json"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

func init() {
	eddywasm.OnEvents(func(events []eddywasm.Event) []eddywasm.Action {
		var actions []eddywasm.Action
		for _, e := range events {
			var cmd struct {
				Event string `json:"event"`
				Key   string `json:"key"`
				Value string `json:"value"`
				Size  int    `json:"size"`
			}
			if err := json.Unmarshal(e.Payload, &cmd); err != nil {
				panic(err)
			}
			data := map[string]any{}
			switch cmd.Event {
			case "set":
				if err := eddywasm.StateSet(cmd.Key, []byte(cmd.Value)); err != nil {
					data["error"] = err.Error()
				}
			case "setn":
				if err := eddywasm.StateSet(cmd.Key, bytes.Repeat([]byte("x"), cmd.Size)); err != nil {
					data["error"] = err.Error()
				}
			case "get":
				v, ok := eddywasm.StateGet(cmd.Key)
				data["found"], data["value"] = ok, string(v)
			case "delete":
				if err := eddywasm.StateDelete(cmd.Key); err != nil {
					data["error"] = err.Error()
				}
			case "loop":
				for {
				}
			}
			b, _ := json.Marshal(data)
			actions = append(actions, eddywasm.Action{Type: cmd.Event, AnonymousID: "a-" + e.MessageID, Data: b})
		}
		return actions
	})
	eddywasm.OnSessions(func(changes []eddywasm.SessionChange) []eddywasm.Action {
		actions := make([]eddywasm.Action, len(changes))
		for i, c := range changes {
			actions[i] = eddywasm.Action{Type: c.Kind, Data: c.Session}
		}
		return actions
	})
}

func main() {}
