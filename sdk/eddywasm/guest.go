//go:build wasip1

package eddywasm

import (
	"encoding/json"
	"runtime"
	"unsafe"
)

var (
	processor func(events []Event, results []Result)
	initf     func(config json.RawMessage) error
	// buffers keeps memory handed to the host alive until it is freed.
	buffers = map[uint32][]byte{}
)

// The processor's buffers, kept and reused from call to call (one
// instance serves one call at a time): the host writes each batch into
// in (grown by eddy_buffer when a batch does not fit), and reads the
// answer from out, which stays valid until the next call.
var (
	in      []byte
	out     []byte
	events  []Event
	results []Result
)

// Process registers the module's processor. Eddy calls it with a batch of
// events and as many results, all Unchanged; the processor sets
// results[i] (Change, Drop, Reject) for the events it does not keep as
// they are. The events, and the slices themselves, are valid only during
// the call: copy what you keep.
func Process(f func(events []Event, results []Result)) { processor = f }

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

// eddy_buffer returns the address of the batch buffer, grown to hold at
// least size bytes. The host keeps the address and asks again only for a
// larger batch.
//
//go:wasmexport eddy_buffer
func bufferExport(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	if uint32(cap(in)) < size {
		in = make([]byte, max(size, uint32(2*cap(in))))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(in[:cap(in)]))))
}

// eddy_process runs the processor on the batch of n bytes the host wrote
// at p (the batch buffer) and returns the answer's address and length,
// packed as ptr<<32 | len.
//
//go:wasmexport eddy_process
func processExport(p, n uint32) uint64 {
	out = out[:0]
	in = in[:cap(in)]
	var err error
	switch {
	case processor == nil:
		out = AppendBatchError(out, "this module registers no processor (eddywasm.Process)")
	case len(in) == 0 || p != uint32(uintptr(unsafe.Pointer(&in[0]))) || n > uint32(len(in)):
		out = AppendBatchError(out, "the host sent a batch outside the batch buffer")
	default:
		if events, err = DecodeBatch(in[:n], events[:0]); err != nil {
			out = AppendBatchError(out, err.Error())
			break
		}
		if cap(results) < len(events) {
			results = make([]Result, len(events))
		}
		results = results[:len(events)]
		clear(results)
		processor(events, results)
		out = AppendResults(out, results)
		// Let go of the batch's memory (payloads the processor built).
		clear(results)
	}
	// A Go guest's garbage collector only progresses while the guest
	// runs: yield on every call, or memory grows until the cap kills it.
	runtime.Gosched()
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
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
		b, _ = json.Marshal(InitResult{Error: "encode result: " + err.Error()})
	}
	p := alloc(uint32(len(b)))
	copy(buffers[p], b)
	return uint64(p)<<32 | uint64(len(b))
}
