package queue

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

var codecCases = []struct {
	name  string
	entry event.Entry
}{
	{
		name: "all fields",
		entry: event.Entry{
			WorkspaceID: "9b2d4c1e-0000-4000-8000-000000000001",
			SourceID:    "5f0e7a3b-0000-4000-8000-000000000002",
			MessageID:   "ajs-next-1740830400000-7f3a",
			Type:        "identify",
			ShardKey:    "anon-42",
			ReceivedAt:  time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC),
			SentAt:      time.Date(2025, 3, 1, 11, 59, 59, 987654000, time.UTC),
			Timestamp:   time.Date(2025, 3, 1, 11, 59, 58, 1000, time.UTC),
			IP:          "2001:db8::1",
			Context:     []byte(`{"library":{"name":"analytics.js"}}`),
			Payload:     []byte(`{"type":"identify","userId":"u1","traits":{"name":"Zoë 🚀"}}`),
		},
	},
	{
		name: "no sentAt, context or ip",
		entry: event.Entry{
			WorkspaceID: "w",
			SourceID:    "s",
			MessageID:   "m",
			Type:        "track",
			ShardKey:    "",
			ReceivedAt:  time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
			Timestamp:   time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
			Payload:     []byte(`{}`),
		},
	},
	{
		name: "times before 1970 and binary-looking payload",
		entry: event.Entry{
			WorkspaceID: "w",
			MessageID:   "m\x00with\r\nodd bytes",
			Type:        "page",
			ShardKey:    "k|with|pipes",
			ReceivedAt:  time.Date(1969, 7, 20, 20, 17, 40, 5000, time.UTC),
			Timestamp:   time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC),
			Payload:     []byte{0, 1, 2, 0xff, '\r', '\n'},
		},
	},
}

// encodeFields returns the stream fields Enqueue writes for e, as field,
// value pairs.
func encodeFields(e *event.Entry) []any {
	args := make([]any, xaddArgs)
	times := make([]int64, timesPerEntry)
	putXAdd(args, times, "", e)
	return args[3:]
}

// mapOf turns field, value pairs as Enqueue writes them into the map go-redis
// returns when reading, with every value as a string.
func mapOf(t *testing.T, pairs []any) map[string]any {
	t.Helper()
	m := make(map[string]any, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		var s string
		switch v := pairs[i+1].(type) {
		case string:
			s = v
		case *string:
			s = *v
		case *int64:
			s = fmt.Sprint(*v)
		case *bytesArg:
			b, _ := v.MarshalBinary()
			s = string(b)
		default:
			t.Fatalf("field %v: unexpected argument type %T", pairs[i], v)
		}
		m[pairs[i].(string)] = s
	}
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.entry
			values := mapOf(t, encodeFields(&e))
			if len(values) != fieldsPerEntry {
				t.Errorf("encoded %d fields, want all %d on every entry", len(values), fieldsPerEntry)
			}
			got, err := decodeEntry(values)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			assertEntry(t, got, tc.entry)
		})
	}
}

// TestEnqueueRoundTripsThroughRedis writes the codec cases with Enqueue and
// reads them back raw from their shard streams.
func TestEnqueueRoundTripsThroughRedis(t *testing.T) {
	q, rdb, _ := testQueue(t, 4)
	ctx := context.Background()
	entries := make([]event.Entry, len(codecCases))
	for i, tc := range codecCases {
		entries[i] = tc.entry
	}
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	for i, tc := range codecCases {
		shard := q.ShardOf(tc.entry.WorkspaceID, tc.entry.ShardKey)
		msgs, err := rdb.XRange(ctx, q.streamKey(shard), "-", "+").Result()
		testenv.Must(t, err, "xrange shard %d", shard)
		found := false
		for _, m := range msgs {
			got, err := decodeEntry(m.Values)
			testenv.Must(t, err, "decode %s", m.ID)
			if got.MessageID == tc.entry.MessageID {
				found = true
				assertEntry(t, got, entries[i])
			}
		}
		if !found {
			t.Errorf("%s: entry %q not found in shard %d", tc.name, tc.entry.MessageID, shard)
		}
	}
}

func TestDecodeRejectsMalformedEntries(t *testing.T) {
	e := codecCases[0].entry
	good := func() map[string]any { return mapOf(t, encodeFields(&e)) }
	tests := []struct {
		name   string
		mutate func(map[string]any)
		want   string
	}{
		{"missing workspace", func(m map[string]any) { delete(m, fieldWorkspace) }, `missing field "w"`},
		{"missing payload", func(m map[string]any) { delete(m, fieldPayload) }, `missing field "p"`},
		{"bad time", func(m map[string]any) { m[fieldReceivedAt] = "yesterday" }, `field "r"`},
		{"not a string", func(m map[string]any) { m[fieldType] = 7 }, `field "y" is int`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.mutate(m)
			_, err := decodeEntry(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode error = %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	if _, err := decodeEntry(map[string]any{}); !errors.Is(err, errMissingField) {
		t.Errorf("decode of empty fields: error %v, want errMissingField", err)
	}
}

// assertEntry compares entries field by field; times must be equal
// instants after truncation to microseconds.
func assertEntry(t *testing.T, got, want event.Entry) {
	t.Helper()
	for _, tt := range []struct {
		name      string
		got, want time.Time
	}{
		{"ReceivedAt", got.ReceivedAt, want.ReceivedAt},
		{"SentAt", got.SentAt, want.SentAt},
		{"Timestamp", got.Timestamp, want.Timestamp},
	} {
		w := tt.want.Truncate(time.Microsecond)
		if !tt.got.Equal(w) || tt.got.IsZero() != w.IsZero() {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, w)
		}
	}
	got.ReceivedAt, got.SentAt, got.Timestamp = time.Time{}, time.Time{}, time.Time{}
	want.ReceivedAt, want.SentAt, want.Timestamp = time.Time{}, time.Time{}, time.Time{}
	if len(want.Context) == 0 {
		want.Context = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry = %+v\nwant    %+v", got, want)
	}
}
