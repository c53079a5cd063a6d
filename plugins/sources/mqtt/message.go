package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// segmentTrack is the Segment track message a MQTT message becomes.
type segmentTrack struct {
	Type        string          `json:"type"`
	Event       string          `json:"event"`
	AnonymousID string          `json:"anonymousId"`
	Properties  json.RawMessage `json:"properties"`
	Context     mqttContext     `json:"context"`
	Timestamp   string          `json:"timestamp"`
	MessageID   string          `json:"messageId"`
}

type mqttContext struct {
	MQTT struct {
		Topic string `json:"topic"`
	} `json:"mqtt"`
}

// toTrack turns a message received at t into a Segment track message. Its
// messageId is random: an MQTT packet id is reused across connections, so
// it cannot identify a message; the built message is kept, id included,
// for as long as its batch is emitted again.
func (c *config) toTrack(topic string, payload []byte, t time.Time) ([]byte, error) {
	m := segmentTrack{Type: "track", Event: c.event, AnonymousID: c.anonymousID(topic), Properties: properties(payload),
		Timestamp: t.UTC().Format(time.RFC3339Nano), MessageID: uuid.NewString()}
	if m.Event == "" {
		m.Event = topic
	}
	m.Context.MQTT.Topic = topic
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("message on %s: %w", topic, err)
	}
	return b, nil
}

// anonymousID is the configured level of the topic, or the whole topic when
// none is configured or the topic has no such level (or it is empty).
func (c *config) anonymousID(topic string) string {
	if c.idLevel < 0 {
		return topic
	}
	levels := strings.Split(topic, "/")
	if c.idLevel >= len(levels) || levels[c.idLevel] == "" {
		return topic
	}
	return levels[c.idLevel]
}

// properties is the payload when it is a JSON object, else
// {"value": <payload>}: a number when the payload is a JSON number, a
// string otherwise (invalid UTF-8 replaced by U+FFFD).
func properties(payload []byte) json.RawMessage {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) > 0 && json.Valid(trimmed) {
		switch c := trimmed[0]; {
		case c == '{':
			return json.RawMessage(trimmed)
		case c == '-' || '0' <= c && c <= '9':
			return json.RawMessage(`{"value":` + string(trimmed) + `}`)
		}
	}
	b, _ := json.Marshal(map[string]string{"value": string(payload)}) // a string map always marshals
	return b
}
