package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// Protocol constants a receiver relies on (see README.md).
const (
	userAgent       = "Eddy-Webhook/1"
	signatureScheme = "v1="
	// maxReasonBody is how much of a refusing answer's body a rejection
	// quotes.
	maxReasonBody = 200
	// Bounds of a throttling answer's Retry-After.
	defaultRetryAfter = time.Second
	maxRetryAfter     = time.Hour
)

// sink implements eddyplugin.Sink for every installation of the process.
type sink struct {
	log *slog.Logger
	now func() time.Time

	installs eddyplugin.Installations[*installation]
}

var _ eddyplugin.Deleter = (*sink)(nil)

// installation is one configured endpoint with its own connections.
type installation struct {
	id     string
	cfg    *settings
	client *http.Client
}

func newSink(log *slog.Logger) *sink {
	return &sink{log: log, now: time.Now}
}

// Init configures (or reconfigures) an installation.
func (s *sink) Init(_ context.Context, in eddyplugin.Installation) error {
	if in.ID == "" {
		return errors.New("init: installation id is empty")
	}
	cfg, err := parseConfig(in.Config)
	if err != nil {
		return fmt.Errorf("init installation %s: %w", in.ID, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	inst := &installation{id: in.ID, cfg: cfg, client: &http.Client{
		Transport: transport,
		// A redirect would turn the POST into a GET or resend the signed
		// body elsewhere: the answer is reported instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if old, ok := s.installs.Put(in.ID, inst); ok {
		old.client.CloseIdleConnections()
	}
	s.log.Info("webhook installation ready", "installation_id", in.ID, "workspace_id", in.WorkspaceID,
		"host", cfg.url.Host, "batch_size", cfg.batchSize, "timeout", cfg.timeout)
	return nil
}

// Validate has nothing to check beyond the configuration: probing the
// endpoint would deliver a request the receiver did not ask for.
func (s *sink) Validate(_ context.Context, installationID string) ([]eddyplugin.FieldError, error) {
	if _, err := s.installation(installationID); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	return nil, nil
}

// Close forgets an installation; it is safe for one never initialised.
func (s *sink) Close(_ context.Context, installationID string) error {
	if inst, ok := s.installs.Delete(installationID); ok {
		inst.client.CloseIdleConnections()
	}
	return nil
}

func (s *sink) installation(id string) (*installation, error) { return s.installs.Get(id) }

// Write posts events in requests of at most batch_size events. After an
// answer that says the endpoint is down or throttling, the requests not
// yet sent are not attempted: their events go to Retry with the rest.
func (s *sink) Write(ctx context.Context, installationID string, events []eddyplugin.Event) (eddyplugin.WriteResult, error) {
	var res eddyplugin.WriteResult
	inst, err := s.installation(installationID)
	if err != nil {
		return res, fmt.Errorf("write: %w", err)
	}
	// Events whose payload cannot be sent are refused before any request.
	msgs := make([]json.RawMessage, 0, len(events))
	ids := make([]string, 0, len(events))
	for _, e := range events {
		m, err := message(e)
		if err != nil {
			res.Rejected = append(res.Rejected, eddyplugin.Rejection{MessageID: e.MessageID, Reason: err.Error()})
			continue
		}
		msgs = append(msgs, m)
		ids = append(ids, e.MessageID)
	}
	for start := 0; start < len(msgs); start += inst.cfg.batchSize {
		end := min(start+inst.cfg.batchSize, len(msgs))
		out := s.post(ctx, inst, ids[start:end], msgs[start:end])
		if ctx.Err() != nil {
			return eddyplugin.WriteResult{}, fmt.Errorf("write to installation %s: %w", installationID, ctx.Err())
		}
		switch out.kind {
		case delivered:
		case rejected:
			for _, id := range ids[start:end] {
				res.Rejected = append(res.Rejected, eddyplugin.Rejection{MessageID: id, Reason: out.reason})
			}
		case retry:
			res.Retry = append(res.Retry, ids[start:]...)
			res.RetryAfter = out.retryAfter
			return res, nil
		}
	}
	return res, nil
}

// outcome classifies one request's answer.
type outcome struct {
	kind       outcomeKind
	reason     string        // rejected: why
	retryAfter time.Duration // retry: how long Eddy should wait
}

type outcomeKind int

const (
	delivered outcomeKind = iota
	rejected
	retry
)

// post sends one request and classifies its answer.
func (s *sink) post(ctx context.Context, inst *installation, ids []string, msgs []json.RawMessage) outcome {
	now := s.now()
	body, err := json.Marshal(struct {
		Batch  []json.RawMessage `json:"batch"`
		SentAt string            `json:"sent_at"`
	}{msgs, now.UTC().Format(time.RFC3339)})
	if err != nil { // payloads were checked by message: not expected
		return outcome{kind: rejected, reason: "encode batch: " + err.Error()}
	}
	delivery := deliveryID(ids)
	log := s.log.With("installation_id", inst.id, "host", inst.cfg.url.Host, "delivery", delivery, "events", len(ids))
	return s.send(ctx, inst, now, body, "X-Eddy-Delivery", delivery, log)
}

// Delete posts a deletion notice: {"type": "deletion", "job_id": …,
// "identities": [{"kind": …, "value": …}], "sent_at": …}, signed as
// deliveries are, with X-Eddy-Deletion (and Idempotency-Key) derived from
// the job and the installation, so that every call of one job carries the
// same key. The receiver's answer is classified as a delivery's is.
func (s *sink) Delete(ctx context.Context, installationID string, d eddyplugin.Deletion) (eddyplugin.DeleteResult, error) {
	inst, err := s.installation(installationID)
	if err != nil {
		return eddyplugin.DeleteResult{}, fmt.Errorf("delete: %w", err)
	}
	type identity struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	}
	ids := make([]identity, len(d.Identities))
	for i, id := range d.Identities {
		ids[i] = identity{id.Kind, id.Value}
	}
	now := s.now()
	body, err := json.Marshal(struct {
		Type       string     `json:"type"`
		JobID      string     `json:"job_id"`
		Identities []identity `json:"identities"`
		SentAt     string     `json:"sent_at"`
	}{"deletion", d.JobID, ids, now.UTC().Format(time.RFC3339)})
	if err != nil {
		return eddyplugin.DeleteResult{Rejected: "encode deletion notice: " + err.Error()}, nil
	}
	key := deletionID(d.JobID, installationID)
	// The identities are personal data: only the job is logged.
	log := s.log.With("installation_id", inst.id, "host", inst.cfg.url.Host, "deletion", key, "job_id", d.JobID)
	out := s.send(ctx, inst, now, body, "X-Eddy-Deletion", key, log)
	if ctx.Err() != nil {
		return eddyplugin.DeleteResult{}, fmt.Errorf("delete for installation %s: %w", installationID, ctx.Err())
	}
	switch out.kind {
	case rejected:
		return eddyplugin.DeleteResult{Rejected: out.reason}, nil
	case retry:
		return eddyplugin.DeleteResult{Retry: true, RetryAfter: out.retryAfter}, nil
	}
	return eddyplugin.DeleteResult{}, nil
}

// send posts a signed body, naming it by idHeader: id (also sent as
// Idempotency-Key), and classifies the answer.
func (s *sink) send(ctx context.Context, inst *installation, now time.Time, body []byte, idHeader, id string, log *slog.Logger) outcome {
	ts := strconv.FormatInt(now.Unix(), 10)
	ctx, cancel := context.WithTimeout(ctx, inst.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, inst.cfg.url.String(), bytes.NewReader(body))
	if err != nil { // the URL was checked at Init: not expected
		s.log.Error("build webhook request", "installation_id", inst.id) // the error would quote the URL
		return outcome{kind: retry}
	}
	for _, h := range inst.cfg.headers {
		req.Header.Set(h.Name, h.Value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Eddy-Timestamp", ts)
	req.Header.Set("X-Eddy-Signature", sign(inst.cfg.secret, ts, body))
	req.Header.Set(idHeader, id)
	// With an Idempotency-Key, net/http resends the request once when a
	// kept-alive connection turns out closed before any answer: the
	// bounded retry on a connection reset.
	req.Header.Set("Idempotency-Key", id)

	start := time.Now()
	resp, err := inst.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may hold a token: log the cause only.
		var ue interface{ Unwrap() error }
		cause := err
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			cause = ue.Unwrap()
		}
		log.Warn("webhook request failed, to retry", "error", cause.Error(), "timeout", isTimeout(err))
		return outcome{kind: retry}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxReasonBody))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	log = log.With("status", resp.StatusCode, "duration", time.Since(start))

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		log.Debug("webhook request delivered")
		return outcome{kind: delivered}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		d := retryAfter(resp.Header.Get("Retry-After"), now)
		log.Warn("webhook endpoint throttling, to retry", "retry_after", d)
		return outcome{kind: retry, retryAfter: d}
	case code == http.StatusRequestTimeout || code >= 500:
		log.Warn("webhook endpoint failed, to retry")
		return outcome{kind: retry}
	default:
		reason := fmt.Sprintf("HTTP %d: %s", code, snippet)
		if len(inst.cfg.secret) > 0 {
			reason = strings.ReplaceAll(reason, string(inst.cfg.secret), "[redacted]")
		}
		// Reasons travel in protobuf strings, which must be UTF-8; the
		// 200-byte cut may split a character.
		reason = strings.ToValidUTF8(reason, "\uFFFD")
		log.Warn("webhook endpoint refused the request, rejected")
		return outcome{kind: rejected, reason: reason}
	}
}

// sign returns X-Eddy-Signature for a request: "v1=" and the hex
// HMAC-SHA256 of timestamp + "." + body under secret.
func sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signatureScheme + hex.EncodeToString(mac.Sum(nil))
}

// deliveryID names a request by the messages it carries, so that a
// receiver sees the same id when Eddy delivers the same batch again.
func deliveryID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// deletionID names a deletion notice by its job and installation, so that
// a receiver sees the same id for every call of one job.
func deletionID(jobID, installationID string) string {
	h := sha256.New()
	h.Write([]byte("deletion"))
	h.Write([]byte{0})
	h.Write([]byte(jobID))
	h.Write([]byte{0})
	h.Write([]byte(installationID))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// retryAfter reads a Retry-After header: seconds or an HTTP date, at most
// an hour, one second when absent, unreadable or already past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now).Round(time.Second)
	}
	return min(max(d, defaultRetryAfter), maxRetryAfter)
}

// message returns the event's Segment message as sent to the receiver:
// the payload as received, with the batch's context merged into its
// context (the message's own keys win).
func message(e eddyplugin.Event) (json.RawMessage, error) {
	if !utf8.Valid(e.Payload) || !json.Valid(e.Payload) {
		return nil, errors.New("payload is not valid JSON")
	}
	p := bytes.TrimSpace(e.Payload)
	if len(p) == 0 || p[0] != '{' {
		return nil, errors.New("payload is not a JSON object")
	}
	if len(bytes.TrimSpace(e.BatchContext)) == 0 || string(bytes.TrimSpace(e.BatchContext)) == "null" {
		return json.RawMessage(p), nil
	}
	var batchCtx map[string]json.RawMessage
	if err := json.Unmarshal(e.BatchContext, &batchCtx); err != nil {
		// A batch context that is not an object adds nothing.
		return json.RawMessage(p), nil
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(p, &msg); err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	ctx := batchCtx
	if own, ok := msg["context"]; ok {
		var ownCtx map[string]json.RawMessage
		if err := json.Unmarshal(own, &ownCtx); err != nil || ownCtx == nil {
			// The message's context is not an object: it wins as a whole.
			return json.RawMessage(p), nil
		}
		for k, v := range ownCtx {
			ctx[k] = v
		}
	}
	merged, err := json.Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("merge batch context: %w", err)
	}
	msg["context"] = merged
	out, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("merge batch context: %w", err)
	}
	return out, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
