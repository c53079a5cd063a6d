package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestToTrack(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	level1 := &config{idLevel: 1}
	tests := []struct {
		name           string
		cfg            *config
		topic, payload string
		wantEvent      string
		wantAnon       string
		wantProps      string
	}{
		{"JSON object", level1, "sensors/d1/temperature", `{"celsius": 21.5, "ok": true}`, "sensors/d1/temperature", "d1", `{"celsius":21.5,"ok":true}`},
		{"number", level1, "sensors/d2/temperature", "21.5\n", "sensors/d2/temperature", "d2", `{"value":21.5}`},
		{"negative number", level1, "sensors/d2/temperature", "-3e2", "sensors/d2/temperature", "d2", `{"value":-300}`},
		{"text", &config{idLevel: -1}, "doors/front", "open", "doors/front", "doors/front", `{"value":"open"}`},
		{"JSON array is text", level1, "a/b", "[1,2]", "a/b", "b", `{"value":"[1,2]"}`},
		{"JSON string is text", level1, "a/b", `"on"`, "a/b", "b", `{"value":"\"on\""}`},
		{"empty payload", level1, "a/b", "", "a/b", "b", `{"value":""}`},
		{"invalid UTF-8", level1, "a/b", "\xff", "a/b", "b", `{"value":"\ufffd"}`},
		{"level beyond the topic", &config{idLevel: 5}, "a/b", "1", "a/b", "a/b", `{"value":1}`},
		{"empty level", &config{idLevel: 1}, "a//c", "1", "a//c", "a//c", `{"value":1}`},
		{"configured event", &config{idLevel: -1, event: "Reading"}, "a/b", "1", "Reading", "a/b", `{"value":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.cfg.toTrack(tt.topic, []byte(tt.payload), at)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Type, Event, AnonymousID, Timestamp, MessageID string
				Properties                                     json.RawMessage
				Context                                        map[string]map[string]string
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("not JSON: %s", b)
			}
			var gotProps, wantProps any
			if err := json.Unmarshal(m.Properties, &gotProps); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.wantProps), &wantProps); err != nil {
				t.Fatal(err)
			}
			if m.Type != "track" || m.Event != tt.wantEvent || m.AnonymousID != tt.wantAnon || m.Context["mqtt"]["topic"] != tt.topic ||
				m.Timestamp != "2026-11-22T09:00:00.123456789Z" || len(m.MessageID) != 36 || string(mustJSON(t, gotProps)) != string(mustJSON(t, wantProps)) {
				t.Fatalf("got %s; want event %q, anonymousId %q, properties %s", b, tt.wantEvent, tt.wantAnon, tt.wantProps)
			}
		})
	}
	a, _ := level1.toTrack("a/b", []byte("1"), at)
	b, _ := level1.toTrack("a/b", []byte("1"), at)
	var ma, mb map[string]any
	_ = json.Unmarshal(a, &ma)
	_ = json.Unmarshal(b, &mb)
	if ma["messageId"] == mb["messageId"] {
		t.Fatalf("two messages share the messageId %v", ma["messageId"])
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
