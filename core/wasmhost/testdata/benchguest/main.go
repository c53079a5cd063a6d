// Command benchguest is the minimal WASM processor the benchmarks run: it
// reads each event's type and keeps every event unchanged, or, configured
// with "change": true, returns every payload changed (a key added).
package main

import (
	"encoding/json"

	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

var (
	change bool
	// arena holds one batch's new payloads, reused from batch to batch.
	arena []byte
	// pages counts page events, so that reading the type is not optimised
	// away.
	pages int
)

func init() {
	eddywasm.Init(func(config json.RawMessage) error {
		var c struct {
			Change bool `json:"change"`
		}
		if err := json.Unmarshal(config, &c); err != nil {
			return err
		}
		change = c.Change
		return nil
	})
	eddywasm.Process(func(events []eddywasm.Event, results []eddywasm.Result) {
		size := 0
		for _, e := range events {
			if e.Type == "page" {
				pages++
			}
			size += len(e.Payload) + 16
		}
		if !change {
			return
		}
		if cap(arena) < size {
			arena = make([]byte, 0, size)
		}
		arena = arena[:0]
		for i, e := range events {
			start := len(arena)
			arena = append(arena, e.Payload[:len(e.Payload)-1]...)
			arena = append(arena, `,"seen":true}`...)
			results[i] = eddywasm.Change(arena[start:], e.IP)
		}
	})
}

func main() {}
