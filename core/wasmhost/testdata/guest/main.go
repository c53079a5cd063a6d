// Command guest is a test WASM processor built with the eddywasm SDK: it
// tags each event's payload with the configured tag, drops "Drop Me",
// refuses "Refuse Me", clears the IP of "Anonymize" (payload unchanged),
// keeps "Keep Me" unchanged, and on request panics ("Panic"), loops
// forever ("Loop") or eats memory ("Hog"). A configuration with "fail": true is refused at init.
package main

import (
	"bytes"
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
	eddywasm.Process(func(events []eddywasm.Event, results []eddywasm.Result) {
		for i, e := range events {
			switch {
			case bytes.Contains(e.Payload, []byte(`"Panic"`)):
				panic("asked to panic")
			case bytes.Contains(e.Payload, []byte(`"Loop"`)):
				for {
				}
			case bytes.Contains(e.Payload, []byte(`"Hog"`)):
				for {
					hoard = append(hoard, make([]byte, 1<<20))
				}
			case bytes.Contains(e.Payload, []byte(`"Keep Me"`)):
				continue
			case bytes.Contains(e.Payload, []byte(`"Drop Me"`)):
				results[i] = eddywasm.Drop()
				continue
			case bytes.Contains(e.Payload, []byte(`"Refuse Me"`)):
				results[i] = eddywasm.Reject("refused on request: " + strings.Clone(e.MessageID))
				continue
			case bytes.Contains(e.Payload, []byte(`"Anonymize"`)):
				results[i] = eddywasm.Change(nil, "")
				continue
			}
			var m map[string]any
			if json.Unmarshal(e.Payload, &m) != nil {
				results[i] = eddywasm.Reject("not JSON")
				continue
			}
			m["tag"] = tag
			// The event's fields, echoed so that the test checks what
			// the guest received.
			m["seen"] = map[string]any{"message_id": e.MessageID, "workspace_id": e.WorkspaceID,
				"source_id": e.SourceID, "type": e.Type, "ip": e.IP, "timestamp": e.Timestamp,
				"received_at": e.ReceivedAt, "batch_context": json.RawMessage(orNull(e.BatchContext))}
			p, err := json.Marshal(m)
			if err != nil {
				results[i] = eddywasm.Reject(err.Error())
				continue
			}
			results[i] = eddywasm.Change(p, e.IP+"-seen")
		}
	})
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func main() {}
