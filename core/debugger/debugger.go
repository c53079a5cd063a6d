// Package debugger records what becomes of a source's events while someone
// watches them in the console's live debugger: accepted or rejected by the
// collector (and why), refused by the consent gate (and why).
//
// Recording costs nothing while nobody watches: a watcher (the API, each
// time the console polls) marks the source watched for a couple of minutes
// in one Redis hash, every process refreshes its copy of that hash every
// second, and only then do the collector and the gate write entries — to a
// capped Redis stream per source that expires shortly after the last
// entry. Entries are a debugging aid, not a log: a payload is cut to
// MaxPayloadBytes and a stream keeps the latest MaxEntries.
package debugger

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// MaxEntries is how many entries a source's stream keeps.
	MaxEntries = 200
	// MaxPayloadBytes caps a recorded payload; a longer one is replaced by
	// a note of its size.
	MaxPayloadBytes = 8 << 10
	// WatchFor is how long one Watch keeps a source recorded.
	WatchFor = 2 * time.Minute
	// refreshEvery is how often a Recorder reads who watches.
	refreshEvery = time.Second
	// keepFor is how long a stream outlives its latest entry.
	keepFor = 10 * time.Minute
)

// Stages an entry can come from.
const (
	StageCollector = "collector"
	StageConsent   = "consent"
)

// Outcomes of an entry.
const (
	Accepted = "accepted"
	Rejected = "rejected"
)

// Entry is what became of one message (or of a whole request, when the
// collector refused it before reading messages).
type Entry struct {
	ID          string          `json:"id"`
	At          time.Time       `json:"at"`
	Stage       string          `json:"stage"`
	Outcome     string          `json:"outcome"`
	Reason      string          `json:"reason,omitempty"`
	MessageID   string          `json:"message_id,omitempty"`
	Type        string          `json:"type,omitempty"`
	Event       string          `json:"event,omitempty"`
	AnonymousID string          `json:"anonymous_id,omitempty"`
	UserID      string          `json:"user_id,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// Describe fills the message fields of e from a message's JSON: its id,
// type, event name and identifiers, and the payload itself (cut to
// MaxPayloadBytes).
func (e *Entry) Describe(payload []byte) {
	var m struct {
		MessageID   string `json:"messageId"`
		Type        string `json:"type"`
		Event       string `json:"event"`
		AnonymousID string `json:"anonymousId"`
		UserID      string `json:"userId"`
	}
	if json.Unmarshal(payload, &m) != nil {
		e.Payload = tooLong(len(payload), "not a JSON object")
		return
	}
	if e.MessageID == "" {
		e.MessageID = m.MessageID
	}
	if e.Type == "" {
		e.Type = m.Type
	}
	e.Event, e.AnonymousID, e.UserID = m.Event, m.AnonymousID, m.UserID
	if len(payload) > MaxPayloadBytes {
		e.Payload = tooLong(len(payload), "too long to show")
		return
	}
	e.Payload = json.RawMessage(payload)
}

func tooLong(n int, why string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"_omitted": why, "_bytes": n})
	return b
}

func watchKey(prefix string) string { return prefix + ":debug:watch" }

func streamKey(prefix, workspaceID, sourceID string) string {
	return prefix + ":debug:" + workspaceID + ":" + sourceID
}

func field(workspaceID, sourceID string) string { return workspaceID + "/" + sourceID }

// source names a watched source in a Recorder's view: a lookup builds no
// string (the collector looks one up for every request).
type source struct{ workspace, source string }

// Recorder writes entries for the sources being watched. Its zero value
// is not usable; a nil *Recorder records nothing.
type Recorder struct {
	rdb     redis.UniversalClient
	prefix  string
	log     *slog.Logger
	watched atomic.Pointer[map[source]int64] // watched until (Unix seconds)
}

// NewRecorder returns a recorder; Run keeps its view of the watchers
// current.
func NewRecorder(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Recorder {
	r := &Recorder{rdb: rdb, prefix: prefix, log: log}
	r.watched.Store(&map[source]int64{})
	return r
}

// Run refreshes the recorder's view of the watched sources every second
// until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("read the debugger's watchers", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reads which sources are watched now.
func (r *Recorder) Refresh(ctx context.Context) error {
	all, err := r.rdb.HGetAll(ctx, watchKey(r.prefix)).Result()
	if err != nil {
		return fmt.Errorf("read debugger watchers: %w", err)
	}
	now := time.Now().Unix()
	m := make(map[source]int64, len(all))
	var expired []string
	for f, v := range all {
		until, err := strconv.ParseInt(v, 10, 64)
		ws, src, ok := strings.Cut(f, "/")
		if err != nil || !ok || until < now {
			expired = append(expired, f)
			continue
		}
		m[source{ws, src}] = until
	}
	r.watched.Store(&m)
	if len(expired) > 0 {
		// Another process may have renewed one meanwhile: a lost renewal
		// is made good by the console's next poll.
		r.rdb.HDel(ctx, watchKey(r.prefix), expired...)
	}
	return nil
}

// Watching reports whether a source's events are being recorded.
func (r *Recorder) Watching(workspaceID, sourceID string) bool {
	if r == nil {
		return false
	}
	until, ok := (*r.watched.Load())[source{workspaceID, sourceID}]
	return ok && until >= time.Now().Unix()
}

// Record appends entries to a source's stream. Failures are logged, never
// returned: the debugger must not fail what it watches.
func (r *Recorder) Record(ctx context.Context, workspaceID, sourceID string, entries ...Entry) {
	if r == nil || len(entries) == 0 {
		return
	}
	key := streamKey(r.prefix, workspaceID, sourceID)
	pipe := r.rdb.Pipeline()
	for _, e := range entries {
		if e.At.IsZero() {
			e.At = time.Now().UTC()
		}
		e.ID = ""
		b, err := json.Marshal(e)
		if err != nil {
			r.log.Warn("encode a debugger entry", "err", err)
			continue
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: MaxEntries, Approx: true, Values: []any{"e", b}})
	}
	pipe.Expire(ctx, key, keepFor)
	if _, err := pipe.Exec(ctx); err != nil {
		r.log.Warn("record debugger entries", "workspace", workspaceID, "source", sourceID, "err", err)
	}
}

// Watch marks a source watched for WatchFor from now.
func Watch(ctx context.Context, rdb redis.UniversalClient, prefix, workspaceID, sourceID string) error {
	until := time.Now().Add(WatchFor).Unix()
	if err := rdb.HSet(ctx, watchKey(prefix), field(workspaceID, sourceID), until).Err(); err != nil {
		return fmt.Errorf("watch source %s: %w", sourceID, err)
	}
	return nil
}

// Read returns a source's entries after the entry id after, oldest first
// (at most count); with after empty, the latest count entries.
func Read(ctx context.Context, rdb redis.UniversalClient, prefix, workspaceID, sourceID, after string, count int) ([]Entry, error) {
	key := streamKey(prefix, workspaceID, sourceID)
	var msgs []redis.XMessage
	var err error
	if after == "" {
		msgs, err = rdb.XRevRangeN(ctx, key, "+", "-", int64(count)).Result()
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	} else {
		msgs, err = rdb.XRangeN(ctx, key, "("+after, "+", int64(count)).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("read debugger entries: %w", err)
	}
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		s, _ := m.Values["e"].(string)
		var e Entry
		if json.Unmarshal([]byte(s), &e) != nil {
			continue
		}
		e.ID = m.ID
		out = append(out, e)
	}
	return out, nil
}
