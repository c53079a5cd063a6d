//go:build wasip1

package eddywasm

import (
	"encoding/json"
	"runtime"
	"unsafe"
)

var (
	process func([]Event) ([]Event, []Rejection)
	initf   func(config json.RawMessage) error
	// buffers keeps memory handed to the host alive until it is freed.
	buffers = map[uint32][]byte{}
)

// Process registers the module's processor.
func Process(f func(events []Event) (kept []Event, rejected []Rejection)) { process = f }

// Init registers a function that receives the installation's
// configuration (a JSON object) before any batch; an error refuses it.
func Init(f func(config json.RawMessage) error) { initf = f }

//go:wasmexport eddy_abi_version
func abiVersion() uint32 { return ABIVersion }

//go:wasmexport eddy_alloc
func alloc(size uint32) uint32 {
	b := make([]byte, size)
	if size == 0 {
		b = make([]byte, 1)
	}
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	buffers[p] = b
	return p
}

//go:wasmexport eddy_free
func free(p uint32) {
	delete(buffers, p)
	// A Go guest's garbage collector only progresses while the guest
	// runs: yield on every call, or memory grows until the cap kills it.
	runtime.Gosched()
}

//go:wasmexport eddy_init
func initExport(p, n uint32) uint64 {
	var res InitResult
	if initf != nil {
		if err := initf(json.RawMessage(input(p, n))); err != nil {
			res.Error = err.Error()
		}
	}
	return output(res)
}

//go:wasmexport eddy_process
func processExport(p, n uint32) uint64 {
	var b Batch
	var res Result
	switch {
	case process == nil:
		res.Error = "this module registers no processor (eddywasm.Process)"
	case json.Unmarshal(input(p, n), &b) != nil:
		res.Error = "the host sent a batch that is not JSON"
	default:
		res.Events, res.Rejected = process(b.Events)
	}
	return output(res)
}

func input(p, n uint32) []byte {
	b := buffers[p]
	if uint32(len(b)) < n {
		return nil
	}
	return b[:n]
}

// output encodes v into a buffer the host frees, packed as ptr<<32 | len.
func output(v any) uint64 {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(Result{Error: "encode result: " + err.Error()})
	}
	p := alloc(uint32(len(b)))
	copy(buffers[p], b)
	return uint64(p)<<32 | uint64(len(b))
}
