package collector

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/config"
)

var testLimits = config.Collector{MaxEventBytes: 32 << 10, MaxBatchMessages: 100, MaxDepth: 8, MaxKeys: 50, MaxFutureSkew: time.Hour}

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestParseRequestRefusesBadMessages(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 10) + "1" + strings.Repeat("}", 10)
	manyKeys := "{" + strings.Repeat(`"k":1,`, 60) + `"z":1}`
	tests := []struct {
		name   string
		call   string
		body   string
		index  int
		reason string
	}{
		{"malformed json", "track", `{"event":"x",`, 0, "invalid_json"},
		{"not an object", "track", `[1,2]`, 0, "invalid_json"},
		{"missing ids", "track", `{"event":"x"}`, 0, "missing_id"},
		{"empty ids", "track", `{"event":"x","userId":"","anonymousId":null}`, 0, "missing_id"},
		{"track without event", "track", `{"userId":"u"}`, 0, "missing_event"},
		{"alias without previousId", "alias", `{"userId":"u"}`, 0, "missing_previous_id"},
		{"group without groupId", "group", `{"userId":"u"}`, 0, "missing_group_id"},
		{"bad timestamp", "track", `{"userId":"u","event":"x","timestamp":"yesterday"}`, 0, "invalid_timestamp"},
		{"numeric timestamp", "track", `{"userId":"u","event":"x","timestamp":1700000000}`, 0, "invalid_json"},
		{"timestamp before 1970", "track", `{"userId":"u","event":"x","timestamp":"0001-01-01T00:00:00Z"}`, 0, "invalid_timestamp"},
		{"bad sentAt", "page", `{"userId":"u","sentAt":"2026-13-01T00:00:00Z"}`, 0, "invalid_timestamp"},
		{"properties not an object", "track", `{"userId":"u","event":"x","properties":"a"}`, 0, "invalid_field"},
		{"id is an object", "track", `{"userId":{"a":1},"event":"x"}`, 0, "invalid_json"},
		{"id too long", "track", `{"userId":"` + strings.Repeat("u", 300) + `","event":"x"}`, 0, "invalid_field"},
		{"nesting bomb", "track", `{"userId":"u","event":"x","properties":` + deep + `}`, 0, "too_deep"},
		{"too many keys", "identify", `{"userId":"u","traits":` + manyKeys + `}`, 0, "too_many_keys"},
		{"null character", "track", `{"userId":"u","event":"a\u0000b"}`, 0, "null_character"},
		{"lone high surrogate", "track", `{"userId":"u","event":"a\ud800b"}`, 0, "invalid_unicode"},
		{"lone low surrogate", "track", `{"userId":"u","event":"\udc00"}`, 0, "invalid_unicode"},
		{"oversized event", "track", `{"userId":"u","event":"x","properties":{"p":"` + strings.Repeat("x", 33<<10) + `"}}`, 0, "event_too_large"},
		{"batch: unknown type", "batch", `{"batch":[{"type":"track","event":"a","userId":"u"},{"type":"purchase","userId":"u"}]}`, 1, "invalid_type"},
		{"batch: second message bad", "batch", `{"batch":[{"type":"page","userId":"u"},{"type":"track","userId":"u"}]}`, 1, "missing_event"},
		{"batch missing", "batch", `{"sentAt":"2026-11-22T12:00:00Z"}`, -1, "empty_batch"},
		{"batch empty", "batch", `{"batch":[]}`, -1, "empty_batch"},
		{"batch not an array", "batch", `{"batch":{}}`, -1, "invalid_json"},
		{"batch malformed", "batch", `{"batch":[`, -1, "invalid_json"},
		{"batch context not object", "batch", `{"batch":[{"type":"page","userId":"u"}],"context":[]}`, -1, "invalid_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := parseRequest(tt.call, []byte(tt.body), now, testLimits)
			if len(req.problems) != 1 {
				t.Fatalf("problems = %+v, want exactly one", req.problems)
			}
			p := req.problems[0]
			if p.Index != tt.index || p.Reason != tt.reason || p.Message == "" {
				t.Fatalf("problem = %+v, want index %d reason %s with a message", p, tt.index, tt.reason)
			}
		})
	}
}

func TestParseRequestBatchTooManyMessages(t *testing.T) {
	msgs := make([]string, testLimits.MaxBatchMessages+1)
	for i := range msgs {
		msgs[i] = `{"type":"page","userId":"u"}`
	}
	req := parseRequest("batch", []byte(`{"batch":[`+strings.Join(msgs, ",")+`]}`), now, testLimits)
	if len(req.problems) != 1 || req.problems[0].Reason != "too_many_messages" || len(req.entries) != 0 {
		t.Fatalf("problems = %+v, entries = %d", req.problems, len(req.entries))
	}
}

func TestParseRequestListsEveryBadMessage(t *testing.T) {
	body := `{"batch":[{"type":"track","userId":"u"},{"type":"page","userId":"u"},{"type":"identify"}]}`
	req := parseRequest("batch", []byte(body), now, testLimits)
	got := fmt.Sprint(req.problems)
	if len(req.problems) != 2 || req.problems[0].Index != 0 || req.problems[1].Index != 2 {
		t.Fatalf("problems = %s, want indexes 0 and 2", got)
	}
}

func TestParseRequestBuildsEntries(t *testing.T) {
	body := `{"writeKey":"wk","sentAt":"2026-11-22T11:59:59Z","context":{"library":{"name":"x"}},"batch":[
		{"type":"track","event":"Order Completed","userId":42,"messageId":"m1","timestamp":"2026-11-22T10:00:00.123456789Z"},
		{"type":"page","anonymousId":"a1","userId":"u1"}
	]}`
	req := parseRequest("batch", []byte(body), now, testLimits)
	if len(req.problems) != 0 {
		t.Fatalf("problems: %+v", req.problems)
	}
	if req.writeKey != "wk" || len(req.entries) != 2 {
		t.Fatalf("writeKey %q, %d entries", req.writeKey, len(req.entries))
	}
	e0, e1 := req.entries[0], req.entries[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"type from message", e0.Type, "track"},
		{"numeric userId is the shard key", e0.ShardKey, "42"},
		{"client messageId kept", e0.MessageID, "m1"},
		{"explicit timestamp kept, truncated to µs", e0.Timestamp, time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)},
		{"batch sentAt", e0.SentAt, time.Date(2026, 11, 22, 11, 59, 59, 0, time.UTC)},
		{"receivedAt", e0.ReceivedAt, now},
		{"batch context carried", string(e0.Context), `{"library":{"name":"x"}}`},
		{"anonymousId wins as shard key", e1.ShardKey, "a1"},
		{"generated messageId", len(e1.MessageID), 36},
		{"no time: receive time", e1.Timestamp, now},
		{"payload is the raw message", strings.HasPrefix(string(e1.Payload), `{"type":"page"`), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEventTime(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want time.Time
	}{
		{"explicit timestamp wins over skew correction", `{"timestamp":"2026-11-22T10:00:00Z","originalTimestamp":"2026-11-22T09:00:00Z","sentAt":"2026-11-22T09:00:10Z"}`, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
		{"skew corrected: device clock 2 h behind", `{"originalTimestamp":"2026-11-22T09:59:50Z","sentAt":"2026-11-22T10:00:00Z"}`, now.Add(-10 * time.Second)},
		{"original without sentAt kept", `{"originalTimestamp":"2026-11-20T08:00:00+02:00"}`, time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)},
		{"date only", `{"timestamp":"2026-11-01"}`, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"far future clamped to receive time", `{"timestamp":"2027-01-01T00:00:00Z"}`, now},
		{"near future kept", `{"timestamp":"2026-11-22T12:30:00Z"}`, now.Add(30 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Replace(tt.msg, "{", `{"userId":"u",`, 1)
			req := parseRequest("page", []byte(body), now, testLimits)
			if len(req.problems) != 0 {
				t.Fatalf("problems: %+v", req.problems)
			}
			if got := req.entries[0].Timestamp; !got.Equal(tt.want) {
				t.Fatalf("timestamp = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCheckStructureIgnoresBracketsInStrings(t *testing.T) {
	s := `{"a":"{{{{{{{{{{[[[[[[[[[[ :::: \" \\u0000"}`
	if err := checkStructure([]byte(s), 2, 2); err != nil {
		t.Fatalf("checkStructure: %v", err)
	}
}

func TestCheckStructureAcceptsSurrogatePairs(t *testing.T) {
	if err := checkStructure([]byte(`{"e":"\ud83d\ude00 \u00e9"}`), 2, 2); err != nil {
		t.Fatalf("checkStructure: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add("batch", `{"batch":[{"type":"track","event":"a","userId":"u"}]}`)
	f.Add("track", `{"event":"a","anonymousId":"x","properties":{"a":[1,{"b":"\u00e9"}]}}`)
	f.Fuzz(func(t *testing.T, call, body string) {
		if _, ok := calls[call]; !ok {
			call = "track"
		}
		req := parseRequest(calls[call], []byte(body), now, testLimits)
		if len(req.problems) == 0 {
			for _, e := range req.entries {
				if e.MessageID == "" || e.ShardKey == "" || e.Timestamp.IsZero() {
					t.Fatalf("accepted an incomplete entry: %+v", e)
				}
			}
		}
	})
}
