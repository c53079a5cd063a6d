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
//		eddywasm.Process(func(events []eddywasm.Event, results []eddywasm.Result) {
//			for i, e := range events {
//				switch {
//				case e.Type == "alias":
//					results[i] = eddywasm.Drop()
//				case len(e.Payload) > 32<<10:
//					results[i] = eddywasm.Reject("larger than 32 KiB")
//				}
//				// Left alone, results[i] keeps the event unchanged.
//			}
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
// # The exchange (ABI version 2)
//
// The host writes a batch into a buffer the guest keeps and reuses, in a
// compact little-endian layout (see EncodeBatch), and the SDK hands the
// processor events whose strings and byte slices point into that buffer,
// without copying: they are valid only during the call. A processor that
// keeps anything beyond the call (a cache, a map key) copies it first
// (strings.Clone, bytes.Clone). The SDK answers one result per event, in
// the same layout family (see DecodeResults): an unchanged event costs one
// byte; a changed one carries its new payload and IP; a dropped one
// nothing; a rejected one its reason.
//
// The types and codecs in this file are shared with the host
// (core/wasmhost); Event's JSON form is what apps receive.
package eddywasm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// ABIVersion is the version of the exports' contract; a module exports
// eddy_abi_version returning it, and the host refuses any other.
const ABIVersion = 2

// Event is one collected message.
//
// In a processor, every field points into the host's batch buffer and is
// valid only during the call: copy what you keep. A processor must not
// modify Payload's bytes in place; to change an event, build a new payload
// and return Change. Its times are in the module's local time zone, UTC
// under WASI.
type Event struct {
	MessageID   string `json:"message_id"`
	WorkspaceID string `json:"workspace_id"`
	SourceID    string `json:"source_id,omitempty"`
	// Type is track, page, screen, identify, group or alias.
	Type string `json:"type"`
	// Timestamp is the corrected event time; ReceivedAt when the collector
	// received it.
	Timestamp  time.Time `json:"timestamp"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// Payload is the Segment message JSON.
	Payload json.RawMessage `json:"payload"`
	// BatchContext is the batch's context JSON, if it had one (the
	// message's own context keys win over it).
	BatchContext json.RawMessage `json:"batch_context,omitempty"`
	// IP is the client's address as the collector saw it.
	IP string `json:"ip,omitempty"`
}

// Verdict is what a processor decided about one event.
type Verdict uint8

// The verdicts. The zero value keeps the event unchanged.
const (
	// Unchanged keeps the event as it came (nothing travels back).
	Unchanged Verdict = iota
	// Changed keeps the event with a new payload and IP.
	Changed
	// Dropped discards the event silently (a filter).
	Dropped
	// Rejected refuses the event for good, with a reason; Eddy
	// dead-letters it.
	Rejected
)

func (v Verdict) String() string {
	switch v {
	case Unchanged:
		return "unchanged"
	case Changed:
		return "changed"
	case Dropped:
		return "dropped"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Result is the processor's answer for one event. Its zero value keeps
// the event unchanged.
type Result struct {
	Verdict Verdict
	// Payload and IP are the event's new payload and IP (Changed).
	Payload []byte
	IP      string
	// Reason says why the event is refused (Rejected).
	Reason string
}

// Change keeps the event with a new payload and IP: pass the event's own
// IP to leave it as it is, a nil payload to change only the IP. The SDK
// copies payload once the processor returns: do not reuse its memory for
// another event of the batch.
func Change(payload []byte, ip string) Result {
	return Result{Verdict: Changed, Payload: payload, IP: ip}
}

// Drop discards the event.
func Drop() Result { return Result{Verdict: Dropped} }

// Reject refuses the event for good, saying why.
func Reject(reason string) Result { return Result{Verdict: Rejected, Reason: reason} }

// InitResult is what an init call returns (JSON).
type InitResult struct {
	Error string `json:"error,omitempty"`
}

// Layout of a batch (host to guest), little-endian:
//
//	u32 count
//	count × event:
//	  header (52 bytes):
//	    u32 lengths of message_id, workspace_id, source_id, type, ip
//	    timestamp, received_at: i64 Unix seconds (MinInt64 for the zero
//	      time), u32 nanoseconds (below 1e9)
//	    u32 lengths of payload, batch_context
//	  the seven fields' bytes, in that order
//
// Fixed-size headers let the guest decode an event in straight-line code:
// in a module run under a time limit, every loop iteration, every call of
// a non-inlined function and every taken jump of Go's WebAssembly code
// (which branches through a loop) costs a check by the host, so the
// guest's hot path avoids them; normalised seconds and nanoseconds spare
// it time.Unix's normalisation.
//
// Layout of the results (guest to host):
//
//	u8 status: 0 ok, 1 the whole batch failed (then str message, and no more)
//	u32 count
//	count × result:
//	  u8 verdict
//	  Changed:  str payload, str ip
//	  Rejected: str reason
//
// where str is a u32 length then the bytes.
const (
	statusOK    = 0
	statusError = 1
	zeroTime    = math.MinInt64
	// eventHeader is the size of an event's fixed-size header.
	eventHeader = 7*4 + 2*12
)

// errMalformed reports a buffer that does not follow the layout.
var errMalformed = errors.New("malformed buffer")

// BatchSize is the number of bytes EncodeBatch writes for events.
func BatchSize(events []Event) int {
	n := 4
	for i := range events {
		e := &events[i]
		n += eventHeader + len(e.MessageID) + len(e.WorkspaceID) + len(e.SourceID) + len(e.Type) + len(e.IP) +
			len(e.Payload) + len(e.BatchContext)
	}
	return n
}

// EncodeBatch writes events into buf, which holds at least
// BatchSize(events) bytes, and returns the number of bytes written.
func EncodeBatch(buf []byte, events []Event) int {
	le := binary.LittleEndian
	le.PutUint32(buf, uint32(len(events)))
	o := 4
	for i := range events {
		e := &events[i]
		h := buf[o : o+eventHeader]
		le.PutUint32(h[0:], uint32(len(e.MessageID)))
		le.PutUint32(h[4:], uint32(len(e.WorkspaceID)))
		le.PutUint32(h[8:], uint32(len(e.SourceID)))
		le.PutUint32(h[12:], uint32(len(e.Type)))
		le.PutUint32(h[16:], uint32(len(e.IP)))
		putTime(h[20:], e.Timestamp)
		putTime(h[32:], e.ReceivedAt)
		le.PutUint32(h[44:], uint32(len(e.Payload)))
		le.PutUint32(h[48:], uint32(len(e.BatchContext)))
		o += eventHeader
		o += copy(buf[o:], e.MessageID)
		o += copy(buf[o:], e.WorkspaceID)
		o += copy(buf[o:], e.SourceID)
		o += copy(buf[o:], e.Type)
		o += copy(buf[o:], e.IP)
		o += copy(buf[o:], e.Payload)
		o += copy(buf[o:], e.BatchContext)
	}
	return o
}

// putTime writes t as Unix seconds and nanoseconds.
func putTime(b []byte, t time.Time) {
	sec, nsec := t.Unix(), uint32(t.Nanosecond())
	if t.IsZero() {
		sec, nsec = zeroTime, 0
	}
	binary.LittleEndian.PutUint64(b, uint64(sec))
	binary.LittleEndian.PutUint32(b[8:], nsec)
}

// reader walks a buffer, failing once on the first out-of-bounds read.
type reader struct {
	b   []byte
	o   int
	bad bool
}

func (r *reader) u8() byte {
	if r.o >= len(r.b) {
		r.bad = true
		return 0
	}
	r.o++
	return r.b[r.o-1]
}

func (r *reader) u32() uint32 {
	if len(r.b)-r.o < 4 {
		r.bad = true
		return 0
	}
	r.o += 4
	return binary.LittleEndian.Uint32(r.b[r.o-4:])
}

// bytes returns the next length-prefixed bytes, as a view of the buffer
// whose capacity ends with it (an append never overwrites what follows);
// nil when empty.
func (r *reader) bytes() []byte {
	n := int(r.u32())
	if r.bad || n > len(r.b)-r.o {
		r.bad = true
		return nil
	}
	if n == 0 {
		return nil
	}
	r.o += n
	return r.b[r.o-n : r.o : r.o]
}

// DecodeBatch decodes a batch written by EncodeBatch into events (reusing
// its capacity); the events share buf's memory. Payload and BatchContext
// are views whose capacity ends with them, so that an append copies
// rather than overwrites what follows.
func DecodeBatch(buf []byte, events []Event) ([]Event, error) {
	le := binary.LittleEndian
	if len(buf) < 4 {
		return events[:0], fmt.Errorf("batch: %w", errMalformed)
	}
	n := int(le.Uint32(buf))
	// Each event takes at least its header: a count beyond that is a lie.
	if n > (len(buf)-4)/eventHeader {
		return events[:0], fmt.Errorf("batch: %w", errMalformed)
	}
	if cap(events) < n {
		events = make([]Event, n)
	}
	events = events[:n]
	o := 4
	// Straight-line code, no calls: see the layout's comment.
	for i := range events {
		if len(buf)-o < eventHeader {
			return events[:0], fmt.Errorf("batch: event %d: %w", i, errMalformed)
		}
		h := buf[o : o+eventHeader]
		lm, lw, ls := int(le.Uint32(h[0:])), int(le.Uint32(h[4:])), int(le.Uint32(h[8:]))
		lt, li := int(le.Uint32(h[12:])), int(le.Uint32(h[16:]))
		ts, tn := int64(le.Uint64(h[20:])), int64(le.Uint32(h[28:]))
		rs, rn := int64(le.Uint64(h[32:])), int64(le.Uint32(h[40:]))
		lp, lc := int(le.Uint32(h[44:])), int(le.Uint32(h[48:]))
		o += eventHeader
		// Lengths are below 2^32 each: their sum cannot overflow an int
		// (64 bits, also on wasm).
		if lm+lw+ls+lt+li+lp+lc > len(buf)-o {
			return events[:0], fmt.Errorf("batch: event %d: %w", i, errMalformed)
		}
		e := &events[i]
		e.MessageID = unsafe.String(unsafe.SliceData(buf[o:]), lm)
		o += lm
		e.WorkspaceID = unsafe.String(unsafe.SliceData(buf[o:]), lw)
		o += lw
		e.SourceID = unsafe.String(unsafe.SliceData(buf[o:]), ls)
		o += ls
		e.Type = unsafe.String(unsafe.SliceData(buf[o:]), lt)
		o += lt
		e.IP = unsafe.String(unsafe.SliceData(buf[o:]), li)
		o += li
		e.Payload = buf[o : o+lp : o+lp]
		o += lp
		e.BatchContext = buf[o : o+lc : o+lc]
		o += lc
		// No UTC(): its branches would cost more than the rest of the
		// event (a module's local time zone is UTC anyway).
		e.Timestamp = time.Unix(ts, tn)
		e.ReceivedAt = time.Unix(rs, rn)
		if ts == zeroTime {
			e.Timestamp = time.Time{}
		}
		if rs == zeroTime {
			e.ReceivedAt = time.Time{}
		}
	}
	if o != len(buf) {
		return events[:0], fmt.Errorf("batch: %w: %d bytes after the last event", errMalformed, len(buf)-o)
	}
	return events, nil
}

// AppendResults appends the encoding of results to buf.
func AppendResults(buf []byte, results []Result) []byte {
	le := binary.LittleEndian
	buf = append(buf, statusOK)
	buf = le.AppendUint32(buf, uint32(len(results)))
	for i := range results {
		r := &results[i]
		buf = append(buf, byte(r.Verdict))
		switch r.Verdict {
		case Changed:
			buf = le.AppendUint32(buf, uint32(len(r.Payload)))
			buf = append(buf, r.Payload...)
			buf = le.AppendUint32(buf, uint32(len(r.IP)))
			buf = append(buf, r.IP...)
		case Rejected:
			buf = le.AppendUint32(buf, uint32(len(r.Reason)))
			buf = append(buf, r.Reason...)
		}
	}
	return buf
}

// AppendBatchError appends the encoding of a failure of the whole batch
// (Eddy retries it) to buf.
func AppendBatchError(buf []byte, msg string) []byte {
	buf = append(buf, statusError)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(msg)))
	return append(buf, msg...)
}

// BatchError is a failure of a whole batch reported by the module itself.
type BatchError struct{ Message string }

func (e *BatchError) Error() string { return "the module failed the batch: " + e.Message }

// DecodeResults decodes the guest's answer for events into results (one
// per event, reusing its capacity). Everything it returns is copied out of
// buf (the changed payloads into one shared allocation), except that a Changed result shares its event's IP string when the
// IP is the same, and its event's payload when the module sent none. A failure the module reported is a *BatchError.
func DecodeResults(buf []byte, events []Event, results []Result) ([]Result, error) {
	r := reader{b: buf}
	switch r.u8() {
	case statusOK:
	case statusError:
		msg := r.bytes()
		if r.bad {
			return results[:0], fmt.Errorf("results: %w", errMalformed)
		}
		return results[:0], &BatchError{Message: string(msg)}
	default:
		return results[:0], fmt.Errorf("results: %w: unknown status", errMalformed)
	}
	n := r.u32()
	if r.bad || int(n) != len(events) {
		return results[:0], fmt.Errorf("results: %w: %d results for %d events", errMalformed, n, len(events))
	}
	results = results[:0]
	// Changed payloads are copied into one slab, allocated once: it cannot
	// outgrow buf.
	var slab []byte
	for i := range events {
		var res Result
		res.Verdict = Verdict(r.u8())
		switch res.Verdict {
		case Unchanged, Dropped:
		case Changed:
			p, ip := r.bytes(), r.bytes()
			if len(p) == 0 {
				res.Payload = events[i].Payload
			} else {
				if slab == nil {
					slab = make([]byte, 0, len(buf))
				}
				start := len(slab)
				slab = append(slab, p...)
				res.Payload = slab[start:len(slab):len(slab)]
			}
			if string(ip) == events[i].IP {
				res.IP = events[i].IP
			} else {
				res.IP = string(ip)
			}
		case Rejected:
			res.Reason = string(r.bytes())
		default:
			return results[:0], fmt.Errorf("results: %w: unknown verdict %d for event %d", errMalformed, res.Verdict, i)
		}
		if r.bad {
			break
		}
		results = append(results, res)
	}
	if r.bad || r.o != len(buf) {
		return results[:0], fmt.Errorf("results: %w", errMalformed)
	}
	return results, nil
}
