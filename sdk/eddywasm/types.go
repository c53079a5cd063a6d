// Package eddywasm is the Go guest SDK for Eddy's WASM plugins: a
// processor or an app is one small Go file, built with the standard Go
// toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
//	package main
//
//	import "github.com/eddy-cdp/eddy/sdk/eddywasm"
//
//	func init() {
//		eddywasm.Process(func(events []eddywasm.Event) ([]eddywasm.Event, []eddywasm.Rejection) {
//			return events, nil // keep them all
//		})
//	}
//
//	func main() {}
//
// Eddy calls the module with a batch of events at a time (never one call
// per event), through exports this package defines; it runs each call
// under a memory cap and a time limit, and a call that panics, loops or
// exhausts its memory fails only its own batch.
//
// The types in this file are shared with the host (core/wasmhost): they
// are the JSON the two exchange.
package eddywasm

import (
	"encoding/json"
	"time"
)

// Event is one collected message.
type Event struct {
	MessageID   string    `json:"message_id"`
	WorkspaceID string    `json:"workspace_id"`
	Type        string    `json:"type"`
	Timestamp   time.Time `json:"timestamp"`
	// Payload is the Segment message JSON.
	Payload json.RawMessage `json:"payload"`
}

// Rejection names an event refused for good, and why.
type Rejection struct {
	MessageID string `json:"message_id"`
	Reason    string `json:"reason"`
}

// Batch is what a processor call receives.
type Batch struct {
	Events []Event `json:"events"`
}

// Result is what a processor call returns.
type Result struct {
	Events   []Event     `json:"events"`
	Rejected []Rejection `json:"rejected,omitempty"`
	// Error fails the whole batch (Eddy retries it).
	Error string `json:"error,omitempty"`
}

// InitResult is what an init call returns.
type InitResult struct {
	Error string `json:"error,omitempty"`
}

// ABIVersion is the version of the exports' contract; a module exports
// eddy_abi_version returning it.
const ABIVersion = 1
