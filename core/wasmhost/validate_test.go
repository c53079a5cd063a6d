package wasmhost

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Validate applies Load's export rule to a module without running it.
func TestValidate(t *testing.T) {
	ctx := context.Background()
	abi := []string{"eddy_abi_version", "eddy_alloc", "eddy_free", "eddy_init"}
	with := func(extra ...string) []byte { return wasmModule(append(append([]string{}, abi...), extra...)...) }
	tests := []struct {
		name    string
		wasm    []byte
		wantErr string // "" when valid
	}{
		{"a processor", with("eddy_process", "eddy_buffer"), ""},
		{"an app with a session handler", with("eddy_on_sessions"), ""},
		{"an app with an events handler", with("eddy_on_events"), ""},
		{"an app with both handlers", with("eddy_on_events", "eddy_on_sessions"), ""},
		{"no handler", with(), "it exports none of eddy_process, eddy_on_events or eddy_on_sessions"},
		{"a processor without its buffer", with("eddy_process"), "it exports eddy_process without eddy_buffer"},
		{"some of the ABI missing", wasmModule("eddy_abi_version", "eddy_on_events"), "it does not export eddy_alloc, eddy_free, eddy_init ("},
		{"no exports at all", wasmModule(), "it does not export eddy_abi_version, eddy_alloc, eddy_free, eddy_init, nor any of eddy_process"},
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), `it is not a WebAssembly module (it does not start with "\0asm")`},
		{"empty", nil, "it is not a WebAssembly module"},
		{"wasm that does not compile", []byte("\x00asm\x01\x00\x00\x00\x07\xff"), "it does not compile: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(ctx, tt.wasm)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("Validate: %v, want ErrInvalidModule starting %q", err, tt.wantErr)
			}
		})
	}
}
