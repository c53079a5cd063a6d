//go:build wasip1

package eddywasm

import (
	"encoding/json"
	"runtime"
	"unsafe"
)

var (
	onEvents   func([]Event) []Action
	onSessions func([]SessionChange) []Action
)

// OnEvents registers the app's handler of event batches: it returns the
// actions the events call for.
func OnEvents(f func(events []Event) []Action) { onEvents = f }

// OnSessions registers the app's handler of session changes: it returns
// the actions the changes call for.
func OnSessions(f func(changes []SessionChange) []Action) { onSessions = f }

//go:wasmexport eddy_on_events
func onEventsExport(p, n uint32) uint64 {
	var in EventsCall
	var res AppResult
	switch {
	case onEvents == nil:
		// An app that handles sessions only has nothing to do with events
		// (the host sends an app both).
	case json.Unmarshal(input(p, n), &in) != nil:
		res.Error = "the host sent events that are not JSON"
	default:
		res.Actions = onEvents(in.Events)
	}
	// The garbage collector only progresses while the guest runs.
	runtime.Gosched()
	return output(res)
}

//go:wasmexport eddy_on_sessions
func onSessionsExport(p, n uint32) uint64 {
	var in SessionsCall
	var res AppResult
	switch {
	case onSessions == nil:
		// An app that handles events only has nothing to do with session
		// changes.
	case json.Unmarshal(input(p, n), &in) != nil:
		res.Error = "the host sent session changes that are not JSON"
	default:
		res.Actions = onSessions(in.Changes)
	}
	runtime.Gosched()
	return output(res)
}

// The state host functions. Pointers are offsets in the module's memory;
// each returns a length (≥ 0) or one of the State* codes.
//
//go:wasmimport eddy state_get
func hostStateGet(keyPtr, keyLen, bufPtr, bufCap uint32) int32

//go:wasmimport eddy state_set
func hostStateSet(keyPtr, keyLen, valuePtr, valueLen uint32) int32

//go:wasmimport eddy state_delete
func hostStateDelete(keyPtr, keyLen uint32) int32

// StateGet returns the value the installation keeps under key, and
// whether there is one. A storage failure reads as no value.
func StateGet(key string) ([]byte, bool) {
	kp, kn := stringPtr(key)
	buf := make([]byte, 1024)
	// The value may grow between a call that measures it and the next.
	for range 4 {
		n := hostStateGet(kp, kn, bytesPtr(buf), uint32(len(buf)))
		runtime.KeepAlive(key)
		switch {
		case n < 0:
			return nil, false
		case int(n) <= len(buf):
			return buf[:n], true
		}
		buf = make([]byte, n)
	}
	return nil, false
}

// StateSet keeps value under key for the installation: at most
// MaxStateKeyBytes of key, MaxStateValueBytes of value, MaxStateKeys keys.
func StateSet(key string, value []byte) error {
	kp, kn := stringPtr(key)
	code := hostStateSet(kp, kn, bytesPtr(value), uint32(len(value)))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return stateError(code)
}

// StateDelete removes key from the installation's state; removing a key
// that is not there is no error.
func StateDelete(key string) error {
	kp, kn := stringPtr(key)
	code := hostStateDelete(kp, kn)
	runtime.KeepAlive(key)
	return stateError(code)
}

// stateError turns a host function's code into an error, nil for success.
func stateError(code int32) error {
	switch {
	case code >= 0:
		return nil
	case code == StateBadKey:
		return ErrStateBadKey
	case code == StateValueTooLarge:
		return ErrStateValueTooLarge
	case code == StateFull:
		return ErrStateFull
	case code == StateUnavailable:
		return ErrStateUnavailable
	default:
		return ErrStateFailed
	}
}

func stringPtr(s string) (uint32, uint32) {
	if len(s) == 0 {
		return 0, 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.StringData(s)))), uint32(len(s))
}

func bytesPtr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
