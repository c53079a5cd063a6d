package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// Limits and defaults of the configuration (the manifest's schema says
// the same).
const (
	maxTopics        = 50
	defaultQoS       = 1
	defaultBatchSize = 100
	maxBatchSize     = 10000
	defaultFlush     = 200 * time.Millisecond
	maxFlushMS       = 60000
)

// brokerSchemes are the URL schemes paho connects with.
var brokerSchemes = []string{"tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"}

// rawConfig is an installation's configuration as Eddy sends it.
type rawConfig struct {
	// Broker is the broker's URL: tcp://host:1883, ssl://host:8883…
	Broker string `json:"broker"`
	// Topics are the topic filters to subscribe to (+ and # wildcards).
	Topics []string `json:"topics"`
	// QoS is the subscriptions' quality of service, 0 or 1.
	QoS *int `json:"qos"`
	// ClientID is the MQTT client id; with QoS 1 the broker keeps the
	// session under it while Eddy is away.
	ClientID string `json:"client_id"`
	// Username and Password authenticate to the broker.
	Username string `json:"username"`
	Password string `json:"password"`
	// Event is the track event's name; the topic when empty.
	Event string `json:"event"`
	// AnonymousIDTopicLevel is the topic level (from 0) holding the
	// anonymousId; the whole topic when absent.
	AnonymousIDTopicLevel *int `json:"anonymous_id_topic_level"`
	// BatchSize is the most messages emitted at once.
	BatchSize *int `json:"batch_size"`
	// FlushMS is how long a partial batch waits before it is emitted.
	FlushMS *int `json:"flush_ms"`
}

// config is a checked configuration with its defaults applied.
type config struct {
	broker     string
	topics     []string
	qos        byte
	clientID   string
	username   string
	password   string
	event      string
	idLevel    int // -1: the whole topic
	batchSize  int
	flushAfter time.Duration
}

// parseConfig decodes and checks an installation's configuration; each
// problem names its field.
func parseConfig(installationID string, data []byte) (*config, error) {
	var raw rawConfig
	if err := eddyplugin.DecodeConfig(data, &raw); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	c := &config{broker: raw.Broker, topics: raw.Topics, qos: defaultQoS, clientID: raw.ClientID, username: raw.Username,
		password: raw.Password, event: raw.Event, idLevel: -1, batchSize: defaultBatchSize, flushAfter: defaultFlush}

	if err := checkBroker(raw.Broker); err != nil {
		bad("broker", "%v", err)
	}
	switch {
	case len(raw.Topics) == 0:
		bad("topics", "is required: list 1 to %d topic filters", maxTopics)
	case len(raw.Topics) > maxTopics:
		bad("topics", "lists %d topic filters, at most %d are allowed", len(raw.Topics), maxTopics)
	}
	seen := map[string]bool{}
	for i, t := range raw.Topics {
		if err := checkFilter(t); err != nil {
			bad(fmt.Sprintf("topics[%d]", i), "%v", err)
		} else if seen[t] {
			bad(fmt.Sprintf("topics[%d]", i), "%q is listed twice", t)
		}
		seen[t] = true
	}
	if raw.QoS != nil {
		if *raw.QoS != 0 && *raw.QoS != 1 {
			bad("qos", "must be 0 or 1, not %d", *raw.QoS)
		}
		c.qos = byte(*raw.QoS)
	}
	if c.clientID == "" {
		c.clientID = "eddy-" + installationID
	}
	if len(c.clientID) > 128 || !utf8.ValidString(c.clientID) {
		bad("client_id", "must be valid UTF-8 of at most 128 bytes")
	}
	if raw.Password != "" && raw.Username == "" {
		bad("username", "is required when a password is set")
	}
	if raw.AnonymousIDTopicLevel != nil {
		if l := *raw.AnonymousIDTopicLevel; l < 0 || l > 100 {
			bad("anonymous_id_topic_level", "must be between 0 and 100, not %d", l)
		} else {
			c.idLevel = l
		}
	}
	if raw.BatchSize != nil {
		if n := *raw.BatchSize; n < 1 || n > maxBatchSize {
			bad("batch_size", "must be between 1 and %d, not %d", maxBatchSize, n)
		} else {
			c.batchSize = n
		}
	}
	if raw.FlushMS != nil {
		if n := *raw.FlushMS; n < 1 || n > maxFlushMS {
			bad("flush_ms", "must be between 1 and %d, not %d", maxFlushMS, n)
		} else {
			c.flushAfter = time.Duration(n) * time.Millisecond
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// checkBroker accepts scheme://host:port with a scheme paho knows.
func checkBroker(s string) error {
	if s == "" {
		return errors.New("is required: the broker's URL, such as tcp://mqtt.example.com:1883")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL; want tcp://host:port or ssl://host:port")
	}
	ok := false
	for _, scheme := range brokerSchemes {
		ok = ok || u.Scheme == scheme
	}
	switch {
	case !ok:
		return fmt.Errorf("scheme %q is not supported; want one of %s", u.Scheme, strings.Join(brokerSchemes, ", "))
	case u.User != nil:
		return errors.New("must not hold credentials; set username and password instead")
	case u.Hostname() == "" || u.Port() == "":
		return errors.New("must name a host and a port, such as tcp://mqtt.example.com:1883")
	}
	return nil
}

// checkFilter accepts an MQTT topic filter: + stands for a whole level, #
// for a whole last level.
func checkFilter(f string) error {
	switch {
	case f == "":
		return errors.New("is empty")
	case len(f) > 65535:
		return errors.New("is longer than 65535 bytes")
	case !utf8.ValidString(f) || strings.ContainsRune(f, 0):
		return errors.New("must be UTF-8 text without NUL")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%q: # must be the last level", f)
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return fmt.Errorf("%q: + and # must stand alone in a level", f)
		}
	}
	return nil
}

// matchFilter reports whether topic matches the topic filter f.
func matchFilter(f, topic string) bool {
	// Filters starting with a wildcard do not match $SYS-like topics.
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	fl, tl := strings.Split(f, "/"), strings.Split(topic, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || l != "+" && l != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
