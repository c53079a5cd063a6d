package main

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// Defaults and limits of the configuration (plugin.yaml declares the same).
const (
	defaultBatchSize = 100
	maxBatchSize     = 1000
	defaultTimeoutMS = 10000
	maxTimeoutMS     = 300000
	minSecretLen     = 16
	maxHeaders       = 50
)

// header is an extra header sent with every request.
type header struct {
	// Name is the header's name: letters, digits and -.
	Name string `json:"name"`
	// Value is sent as is; it may hold a credential, so it is never logged.
	Value string `json:"value"`
}

// config is an installation's configuration.
type config struct {
	// URL is the endpoint batches are posted to (http or https).
	URL string `json:"url"`
	// Secret is the HMAC-SHA256 key of X-Eddy-Signature.
	Secret string `json:"secret"`
	// BatchSize is the most events in one request (1..1000).
	BatchSize *int `json:"batch_size"`
	// TimeoutMS is the time limit of one request, in milliseconds.
	TimeoutMS *int `json:"timeout_ms"`
	// Headers are extra headers sent with every request.
	Headers []header `json:"headers"`
}

// settings is a checked configuration with its defaults applied.
type settings struct {
	url       *url.URL
	secret    []byte
	batchSize int
	timeout   time.Duration
	headers   []header
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9-]{1,100}$`)

// reservedHeaders are set by the sink itself and may not be overridden:
// a receiver relies on them to parse and verify a request.
var reservedHeaders = map[string]bool{
	"content-type":      true,
	"content-length":    true,
	"host":              true,
	"user-agent":        true,
	"idempotency-key":   true,
	"transfer-encoding": true,
	"connection":        true,
}

// parseConfig decodes raw strictly and checks every field; the error names
// the fields at fault and never repeats the secret or a header value.
func parseConfig(raw []byte) (*settings, error) {
	var c config
	if err := eddyplugin.DecodeConfig(raw, &c); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config.%s: "+format, append([]any{field}, args...)...))
	}
	s := &settings{batchSize: defaultBatchSize, timeout: defaultTimeoutMS * time.Millisecond}

	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		bad("url", "is required")
	case err != nil:
		bad("url", "is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		bad("url", "must be an http or https URL")
	case u.Host == "":
		bad("url", "has no host")
	case u.User != nil:
		bad("url", "must not hold credentials: use headers")
	default:
		s.url = u
	}
	if len(c.Secret) < minSecretLen {
		bad("secret", "must be at least %d characters", minSecretLen)
	}
	s.secret = []byte(c.Secret)
	if c.BatchSize != nil {
		if *c.BatchSize < 1 || *c.BatchSize > maxBatchSize {
			bad("batch_size", "must be between 1 and %d", maxBatchSize)
		}
		s.batchSize = *c.BatchSize
	}
	if c.TimeoutMS != nil {
		if *c.TimeoutMS < 1 || *c.TimeoutMS > maxTimeoutMS {
			bad("timeout_ms", "must be between 1 and %d", maxTimeoutMS)
		}
		s.timeout = time.Duration(*c.TimeoutMS) * time.Millisecond
	}
	if len(c.Headers) > maxHeaders {
		bad("headers", "must list at most %d headers", maxHeaders)
	}
	for i, h := range c.Headers {
		field := "headers[" + strconv.Itoa(i) + "]"
		lower := strings.ToLower(h.Name)
		switch {
		case !headerName.MatchString(h.Name):
			bad(field+".name", "must be 1 to 100 letters, digits or -")
		case reservedHeaders[lower] || strings.HasPrefix(lower, "x-eddy-"):
			bad(field+".name", "%s is set by the sink and cannot be overridden", h.Name)
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			bad(field+".value", "must not contain line breaks or NUL")
		}
	}
	s.headers = c.Headers
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}
