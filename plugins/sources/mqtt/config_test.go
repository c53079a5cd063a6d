package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// The example configuration in testdata is valid, and the defaults apply
// to what it leaves out.
func TestParseConfigDefaults(t *testing.T) {
	data, err := os.ReadFile("testdata/full.good.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig("i1", data)
	if err != nil {
		t.Fatalf("testdata/full.good.json: %v", err)
	}
	if c.broker != "ssl://mqtt.example.com:8883" || len(c.topics) != 2 || c.qos != 1 || c.clientID != "eddy-sensors" ||
		c.username != "eddy" || c.password != "a password" || c.event != "Reading" || c.idLevel != 1 || c.batchSize != 500 ||
		c.flushAfter != time.Second {
		t.Fatalf("parsed %+v", c)
	}

	c, err = parseConfig("i1", []byte(`{"broker":"tcp://localhost:1883","topics":["a/#"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.qos != 1 || c.clientID != "eddy-i1" || c.event != "" || c.idLevel != -1 || c.batchSize != 100 || c.flushAfter != 200*time.Millisecond {
		t.Fatalf("defaults: %+v; want qos 1, client id eddy-i1, whole-topic ids, batches of 100 flushed after 200ms", c)
	}
}

// Each bad configuration is refused with an error naming its field, and
// never repeats the password.
func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		change map[string]any // applied to a valid configuration; nil deletes
		want   string
	}{
		{"no topics", map[string]any{"topics": nil}, "config.topics: is required"},
		{"empty topics", map[string]any{"topics": []string{}}, "config.topics: is required"},
		{"too many topics", map[string]any{"topics": manyTopics(51)}, "config.topics: lists 51 topic filters, at most 50"},
		{"no broker", map[string]any{"broker": nil}, "config.broker: is required"},
		{"http broker", map[string]any{"broker": "http://127.0.0.1:1883"}, `config.broker: scheme "http" is not supported`},
		{"broker without port", map[string]any{"broker": "tcp://127.0.0.1"}, "config.broker: must name a host and a port"},
		{"broker not a URL", map[string]any{"broker": "tcp://[::1"}, "config.broker: is not a URL"},
		{"credentials in the URL", map[string]any{"broker": "tcp://u:pw@host:1883"}, "config.broker: must not hold credentials"},
		{"# not last", map[string]any{"topics": []string{"a/b", "a/#/b"}}, `config.topics[1]: "a/#/b": # must be the last level`},
		{"+ inside a level", map[string]any{"topics": []string{"a/b+"}}, `config.topics[0]: "a/b+": + and # must stand alone`},
		{"empty topic", map[string]any{"topics": []string{""}}, "config.topics[0]: is empty"},
		{"duplicate topic", map[string]any{"topics": []string{"a/+", "a/+"}}, `config.topics[1]: "a/+" is listed twice`},
		{"qos 2", map[string]any{"qos": 2}, "config.qos: must be 0 or 1"},
		{"negative level", map[string]any{"anonymous_id_topic_level": -1}, "config.anonymous_id_topic_level: must be between 0 and 100"},
		{"batch size 0", map[string]any{"batch_size": 0}, "config.batch_size: must be between 1 and 10000"},
		{"flush too long", map[string]any{"flush_ms": 60001}, "config.flush_ms: must be between 1 and 60000"},
		{"password without user", map[string]any{"username": nil}, "config.username: is required when a password is set"},
		{"unknown field", map[string]any{"colour": "red"}, `unknown field "colour"`},
		{"wrong type", map[string]any{"qos": "one"}, "config: json: cannot unmarshal string into Go struct field rawConfig.qos of type int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("i1", badConfig(t, tt.change))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v; want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2-secret") {
				t.Fatalf("the error repeats the password: %v", err)
			}
		})
	}
}

// badConfig is a valid configuration with change applied.
func badConfig(t *testing.T, change map[string]any) []byte {
	t.Helper()
	cfg := map[string]any{"broker": "tcp://127.0.0.1:1883", "topics": []string{"a/#"}, "username": "u", "password": "hunter2-secret"}
	for k, v := range change {
		if v == nil {
			delete(cfg, k)
			continue
		}
		cfg[k] = v
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manyTopics(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "t/" + strings.Repeat("x", i+1)
	}
	return out
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"sensors/+/temperature", "sensors/d1/temperature", true},
		{"sensors/+/temperature", "sensors/d1/humidity", false},
		{"sensors/+/temperature", "sensors/d1/temperature/x", false},
		{"sensors/#", "sensors", true},
		{"sensors/#", "sensors/a/b/c", true},
		{"sensors/#", "other/a", false},
		{"#", "a/b", true},
		{"#", "$SYS/broker", false},
		{"+/b", "$SYS/b", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"+", "a/b", false},
	}
	for _, tt := range tests {
		if got := matchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}
