package eddywasm

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleEvents() []Event {
	at := time.Date(2026, 11, 22, 10, 0, 0, 42, time.UTC)
	return []Event{
		{MessageID: "m0", WorkspaceID: "w", SourceID: "s", Type: "page", Timestamp: at, ReceivedAt: at.Add(time.Second),
			Payload: []byte(`{"type":"page"}`), BatchContext: []byte(`{"ip":"1.2.3.4"}`), IP: "203.0.113.7"},
		// Zero times, no batch context, no IP.
		{MessageID: "m1", WorkspaceID: "w", Type: "track", Payload: []byte(`{"type":"track"}`)},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	events := sampleEvents()
	buf := make([]byte, BatchSize(events))
	if n := EncodeBatch(buf, events); n != len(buf) {
		t.Fatalf("EncodeBatch wrote %d bytes, BatchSize said %d", n, len(buf))
	}
	got, err := DecodeBatch(buf, nil)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if len(got) != len(events) {
		t.Fatalf("decoded %d events, want %d", len(got), len(events))
	}
	for i, e := range events {
		g := got[i]
		if g.MessageID != e.MessageID || g.WorkspaceID != e.WorkspaceID || g.SourceID != e.SourceID || g.Type != e.Type ||
			g.IP != e.IP || !bytes.Equal(g.Payload, e.Payload) || !bytes.Equal(g.BatchContext, e.BatchContext) ||
			!g.Timestamp.Equal(e.Timestamp) || !g.ReceivedAt.Equal(e.ReceivedAt) || g.Timestamp.IsZero() != e.Timestamp.IsZero() {
			t.Errorf("event %d decoded\n%+v\nwant\n%+v", i, g, e)
		}
	}
	// Payloads are views of the buffer whose capacity ends with them, so
	// that an append cannot overwrite the next field.
	if cap(got[0].Payload) != len(got[0].Payload) {
		t.Fatalf("payload capacity %d, length %d", cap(got[0].Payload), len(got[0].Payload))
	}
	// A truncated or padded buffer, or a count the buffer cannot hold,
	// is refused, never read out of bounds.
	for name, bad := range map[string][]byte{
		"truncated": buf[:len(buf)-1],
		"padded":    append(bytes.Clone(buf), 0),
		"count":     {0xff, 0xff, 0xff, 0x0f},
		"empty":     nil,
	} {
		if _, err := DecodeBatch(bad, nil); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want errMalformed", name, err)
		}
	}
}

func TestResultsRoundTrip(t *testing.T) {
	events := append(sampleEvents(), sampleEvents()...)
	results := []Result{
		{},
		Change([]byte(`{"new":true}`), "203.0.113.0"),
		Drop(),
		Reject("no user"),
	}
	buf := AppendResults(nil, results)
	got, err := DecodeResults(buf, events, nil)
	if err != nil {
		t.Fatalf("DecodeResults: %v", err)
	}
	if !reflect.DeepEqual(got, results) {
		t.Fatalf("decoded %+v, want %+v", got, results)
	}
	// Unchanged costs one byte.
	if one := AppendResults(nil, []Result{{}}); len(one) != 1+4+1 {
		t.Fatalf("one unchanged result takes %d bytes, want 6", len(one))
	}
	// Decoded payloads are copies: the guest's buffer is reused.
	clear(buf)
	if string(got[1].Payload) != `{"new":true}` || got[1].IP != "203.0.113.0" || got[3].Reason != "no user" {
		t.Fatalf("results changed with the buffer: %+v", got)
	}
	// A change without a payload keeps the event's, and the same IP
	// shares the event's string.
	got, err = DecodeResults(AppendResults(nil, []Result{Change(nil, "203.0.113.7")}), events[:1], nil)
	if err != nil || string(got[0].Payload) != `{"type":"page"}` || got[0].IP != "203.0.113.7" {
		t.Fatalf("IP-only change: %+v, %v", got, err)
	}
}

func TestDecodeResultsRefusesMalformedAnswers(t *testing.T) {
	events := sampleEvents()
	good := AppendResults(nil, []Result{{}, Reject("x")})
	for name, bad := range map[string][]byte{
		"empty":           nil,
		"unknown status":  {7},
		"too few results": AppendResults(nil, []Result{{}}),
		"unknown verdict": {0, 2, 0, 0, 0, 0, 9},
		"truncated":       good[:len(good)-1],
		"padded":          append(bytes.Clone(good), 0),
		"huge length":     {0, 2, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := DecodeResults(bad, events, nil); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want errMalformed", name, err)
		}
	}
	var be *BatchError
	if _, err := DecodeResults(AppendBatchError(nil, "no processor"), events, nil); !errors.As(err, &be) || be.Message != "no processor" {
		t.Fatalf("batch error: %v, want *BatchError", err)
	}
}
