// Package live mirrors the open sessions of every workspace in Redis, so
// that any API process can answer "who is on the site right now" without
// knowing which worker owns which visitor.
//
// The worker that owns a shard publishes, after each commit, the sessions
// the commit changed (Publish). For each workspace Redis holds:
//
//   - {prefix}:live:{ws}:s:{session}: the session's state as JSON, expiring
//     a little after the session is due to close, so that a dead worker's
//     sessions do not linger (its successor republishes them);
//   - {prefix}:live:{ws}:active: a sorted set of the open sessions' ids by
//     last event time, in milliseconds, for listing and paging;
//   - {prefix}:live:{ws}:changes: a pub/sub channel of Change messages,
//     feeding the API's Server-Sent Events stream.
//
// The mirror follows PostgreSQL: a worker publishes only what it has
// committed, so the live view never shows a state storage could lose. A
// failed publish is logged and counted by the caller; the next change of
// the session, or the next takeover of its shard, publishes it again.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
)

// Change is one message of a workspace's changes channel: a session's state
// after a commit.
type Change struct {
	// Kind is "started", "updated", "merged" or "closed": the most telling
	// of the session's changes in the commit (a session started and updated
	// in one batch is "started").
	Kind    string              `json:"kind"`
	Session store.StoredSession `json:"session"`
	// Absorbed lists the sessions this one absorbed (Kind "merged"): they
	// no longer exist.
	Absorbed []string `json:"absorbed,omitempty"`
	// Consent is the visitor's consent as of the session's latest event
	// that stated one (session.Session.Consent; nil: none did), for the
	// tap to check apps' purposes against. It is not published.
	Consent consent.Preferences `json:"-"`
}

// announcement writes a Change as published, around its session already
// encoded: kind is one of four words and absorbed holds session ids (UUIDs),
// none of which needs escaping; json.Marshal would re-scan the session.
func announcement(kind string, session []byte, absorbed []string) []byte {
	b := make([]byte, 0, len(session)+64+40*len(absorbed))
	b = append(b, `{"kind":"`...)
	b = append(b, kind...)
	b = append(b, `","session":`...)
	b = append(b, session...)
	if len(absorbed) > 0 {
		b = append(b, `,"absorbed":[`...)
		for i, id := range absorbed {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, id)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// Mirror reads and writes the live state in Redis.
type Mirror struct {
	rdb    redis.UniversalClient
	prefix string
	tap    Tap
}

// Tap is told of each change Publish announces, and may add commands to
// the pipeline that writes it (the plugin runtime queues the change for
// the workspace's apps there).
type Tap func(ctx context.Context, pipe redis.Pipeliner, workspaceID string, c *Change)

// SetTap installs the tap; call it before the mirror is used.
func (m *Mirror) SetTap(t Tap) { m.tap = t }

// New returns the mirror under prefix (the queue's prefix).
func New(rdb redis.UniversalClient, prefix string) *Mirror {
	return &Mirror{rdb: rdb, prefix: prefix}
}

func (m *Mirror) sessionKey(ws, id string) string { return m.prefix + ":live:" + ws + ":s:" + id }
func (m *Mirror) activeKey(ws string) string      { return m.prefix + ":live:" + ws + ":active" }

// Channel is the pub/sub channel of a workspace's changes.
func (m *Mirror) Channel(ws string) string { return m.prefix + ":live:" + ws + ":changes" }

// minTTL is the shortest life of a session key: a session due to close
// soon stays readable until its closing is published.
const minTTL = time.Minute

// closeMargin is how long a session key outlives the session's due close,
// for a successor to take the shard over and republish it.
const closeMargin = 2 * time.Minute

// Publish mirrors the sessions changes leave, in the order the engine
// reported them (see session.Change), and announces them. dueClose tells
// when an open session is due to close (session.Visitor.NextClose's rule:
// last event + timeout + grace); now is the caller's clock.
func (m *Mirror) Publish(ctx context.Context, changes []session.Change, dueClose func(*session.Session) time.Time, now time.Time) error {
	return m.write(ctx, changes, dueClose, now, true)
}

// Put mirrors sessions like Publish without announcing them: a worker that
// takes a shard over restores the live view of its open sessions.
func (m *Mirror) Put(ctx context.Context, changes []session.Change, dueClose func(*session.Session) time.Time, now time.Time) error {
	return m.write(ctx, changes, dueClose, now, false)
}

func (m *Mirror) write(ctx context.Context, changes []session.Change, dueClose func(*session.Session) time.Time, now time.Time, announce bool) error {
	msgs := coalesce(changes, now)
	if len(msgs) == 0 {
		return nil
	}
	pipe := m.rdb.Pipeline()
	for i := range msgs {
		c := &msgs[i]
		ws, id := c.ws, c.Session.ID
		for _, a := range c.Absorbed {
			pipe.Del(ctx, m.sessionKey(ws, a))
			pipe.ZRem(ctx, m.activeKey(ws), a)
		}
		// Encoded once, for the key and inside the announcement (sonic:
		// encoding/json took a sixth of the worker's CPU here).
		state, err := sonic.ConfigStd.Marshal(c.Session)
		if err != nil {
			return fmt.Errorf("encode live session %s: %w", id, err)
		}
		if c.Session.Closed {
			pipe.Del(ctx, m.sessionKey(ws, id))
			pipe.ZRem(ctx, m.activeKey(ws), id)
		} else {
			ttl := max(dueClose(c.state).Sub(now)+closeMargin, minTTL)
			pipe.Set(ctx, m.sessionKey(ws, id), state, ttl)
			pipe.ZAdd(ctx, m.activeKey(ws), redis.Z{Score: float64(c.Session.LastEventAt.UnixMilli()), Member: id})
		}
		if !announce {
			continue
		}
		pipe.Publish(ctx, m.Channel(ws), announcement(c.Kind, state, c.Absorbed))
		if m.tap != nil {
			m.tap(ctx, pipe, ws, &c.Change)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d live sessions: %w", len(msgs), err)
	}
	return nil
}

// coalesced is a Change with the engine's state it was made from.
type coalesced struct {
	Change
	ws    string
	state *session.Session
}

// coalesce folds changes into one Change per session, its last state, in
// order of first appearance. Sessions absorbed and not revived are dropped
// and listed in their absorber's Absorbed.
func coalesce(changes []session.Change, now time.Time) []coalesced {
	type key struct {
		ws string
		id session.ID
	}
	at := make(map[key]int, len(changes))
	out := make([]coalesced, 0, len(changes))
	for i := range changes {
		ch := &changes[i]
		k := key{ch.Session.WorkspaceID, ch.Session.ID}
		j, seen := at[k]
		if !seen || out[j].state == nil {
			j = len(out)
			at[k] = j
			out = append(out, coalesced{ws: k.ws})
			out[j].Kind = ch.Kind.String()
		} else {
			out[j].Kind = stronger(out[j].Kind, ch.Kind.String())
		}
		out[j].state = &ch.Session
		if ch.Kind == session.Merged && ch.Absorbed != ch.Session.ID {
			a := key{k.ws, ch.Absorbed}
			if aj, ok := at[a]; ok && out[aj].state != nil {
				out[j].Absorbed = append(out[j].Absorbed, out[aj].Absorbed...)
				out[aj].state = nil
				delete(at, a)
			}
			out[j].Absorbed = append(out[j].Absorbed, ch.Absorbed.String())
		}
	}
	kept := out[:0]
	for _, c := range out {
		if c.state == nil {
			continue
		}
		c.Session = store.StateOf(c.state, now)
		c.Consent = c.state.Consent
		kept = append(kept, c)
	}
	return kept
}

// stronger keeps the more telling of two kinds: closed, then started, then
// merged, then updated.
func stronger(a, b string) string {
	rank := func(k string) int {
		switch k {
		case "closed":
			return 4
		case "started":
			return 3
		case "merged":
			return 2
		}
		return 1
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// Session returns an open session of ws from the mirror, and false when it
// holds none by that id.
func (m *Mirror) Session(ctx context.Context, ws, id string) (store.StoredSession, bool, error) {
	b, err := m.rdb.Get(ctx, m.sessionKey(ws, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.StoredSession{}, false, nil
	}
	if err != nil {
		return store.StoredSession{}, false, fmt.Errorf("read live session: %w", err)
	}
	var s store.StoredSession
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("decode live session %s: %w", id, err)
	}
	return s, true, nil
}

// Filter selects live sessions; empty fields select all.
type Filter struct {
	AnonymousID, UserID, ProfileID string
	ChannelGroup, DeviceType       string
	Country                        string
}

func (f Filter) match(s *store.StoredSession) bool {
	return (f.AnonymousID == "" || s.AnonymousID == f.AnonymousID) &&
		(f.UserID == "" || s.UserID == f.UserID) &&
		(f.ProfileID == "" || s.ProfileID == f.ProfileID) &&
		(f.ChannelGroup == "" || strings.EqualFold(s.ChannelGroup, f.ChannelGroup)) &&
		(f.DeviceType == "" || strings.EqualFold(s.DeviceType, f.DeviceType)) &&
		(f.Country == "" || strings.EqualFold(s.Country, f.Country))
}

// ErrInvalidCursor reports a cursor Active did not issue.
var ErrInvalidCursor = errors.New("invalid live sessions cursor")

// scanChunk is how many ids Active reads at a time, and maxScan how many
// it reads at most for one page: a selective filter answers a short page
// with a cursor rather than scanning every live session.
const (
	scanChunk = 200
	maxScan   = 5000
)

// Active returns up to limit open sessions of ws matching f, the most
// recently active first, after cursor (empty for the first page), and the
// cursor of the next page (empty at the end). A page may be short and still
// have a cursor when a selective filter would need more than maxScan
// sessions to fill it.
func (m *Mirror) Active(ctx context.Context, ws string, f Filter, cursor string, limit int) ([]store.StoredSession, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("list live sessions: limit %d", limit)
	}
	maxScore, afterScore, afterID := "+inf", int64(0), ""
	if cursor != "" {
		score, id, ok := strings.Cut(cursor, ":")
		n, err := strconv.ParseInt(score, 10, 64)
		if !ok || err != nil || id == "" {
			return nil, "", ErrInvalidCursor
		}
		maxScore, afterScore, afterID = strconv.FormatInt(n, 10), n, id
	}
	var (
		sc     = scan{want: limit + 1} // one more, to know whether a next page exists
		offset int64
	)
	// Members whose key is gone are forgotten once the scan is over:
	// removing them during it would shift the offsets of the chunks still
	// to read, and skip live sessions.
	defer func() { m.forget(ctx, ws, sc.stale) }()
	for sc.scanned < maxScan {
		zs, err := m.rdb.ZRevRangeByScoreWithScores(ctx, m.activeKey(ws), &redis.ZRangeBy{
			Max: maxScore, Min: "-inf", Offset: offset, Count: scanChunk,
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("list live sessions: %w", err)
		}
		offset += int64(len(zs))
		end := len(zs) < scanChunk
		if afterID != "" {
			// The previous page ended at the cursor: skip its score's ids
			// at or above the cursor's (one score's members come in
			// reverse lexical order).
			n := 0
			for n < len(zs) && int64(zs[n].Score) == afterScore && zs[n].Member.(string) >= afterID {
				n++
			}
			if n < len(zs) {
				afterID = ""
			}
			zs = zs[n:]
		}
		if len(zs) > 0 {
			if err := m.read(ctx, ws, f, zs, &sc); err != nil {
				return nil, "", err
			}
			if len(sc.page) == sc.want {
				// A next page exists: it starts after the last one shown.
				return sc.page[:limit], cursorOf(sc.at[limit-1]), nil
			}
		}
		if end {
			return sc.page, "", nil
		}
	}
	return sc.page, cursorOf(sc.last), nil
}

// scan is the progress of one Active call.
type scan struct {
	want    int
	page    []store.StoredSession
	at      []redis.Z // the set's member of each session of page
	scanned int
	last    redis.Z // the last member scanned
	stale   []any   // members whose key is gone
}

// read reads the sessions of zs in order, appending those matching f to
// sc.page until it holds sc.want.
func (m *Mirror) read(ctx context.Context, ws string, f Filter, zs []redis.Z, sc *scan) error {
	keys := make([]string, len(zs))
	for i, z := range zs {
		keys[i] = m.sessionKey(ws, z.Member.(string))
	}
	vals, err := m.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return fmt.Errorf("read live sessions: %w", err)
	}
	for i, v := range vals {
		sc.scanned++
		sc.last = zs[i]
		str, ok := v.(string)
		if !ok {
			sc.stale = append(sc.stale, zs[i].Member)
			continue
		}
		var s store.StoredSession
		if err := json.Unmarshal([]byte(str), &s); err != nil {
			return fmt.Errorf("decode live session %v: %w", zs[i].Member, err)
		}
		if !f.match(&s) {
			continue
		}
		sc.page = append(sc.page, s)
		sc.at = append(sc.at, zs[i])
		if len(sc.page) == sc.want {
			return nil
		}
	}
	return nil
}

func cursorOf(z redis.Z) string {
	return strconv.FormatInt(int64(z.Score), 10) + ":" + z.Member.(string)
}

// forget removes from the active set ids whose session key expired (its
// worker died and no successor has republished it yet, or a lost close).
// An id whose key is back (a successor republished the session since it
// was read) stays.
func (m *Mirror) forget(ctx context.Context, ws string, ids []any) {
	if len(ids) == 0 {
		return
	}
	keys := make([]string, 1, len(ids)+1)
	keys[0] = m.activeKey(ws)
	for _, id := range ids {
		keys = append(keys, m.sessionKey(ws, id.(string)))
	}
	_ = forgetScript.Run(ctx, m.rdb, keys, ids...).Err() // best effort: the next read retries
}

// forgetScript removes from the set KEYS[1] each member ARGV[i] whose
// session key KEYS[i+1] does not exist.
var forgetScript = redis.NewScript(`
local n = 0
for i, id in ipairs(ARGV) do
	if redis.call('EXISTS', KEYS[i + 1]) == 0 then
		n = n + redis.call('ZREM', KEYS[1], id)
	end
end
return n`)

// Count returns how many sessions of ws are open (including any whose key
// expired and that a read has not yet forgotten).
func (m *Mirror) Count(ctx context.Context, ws string) (int64, error) {
	n, err := m.rdb.ZCard(ctx, m.activeKey(ws)).Result()
	if err != nil {
		return 0, fmt.Errorf("count live sessions: %w", err)
	}
	return n, nil
}

// Subscribe subscribes to ws's changes; decode each message's payload
// with DecodeChange. The caller closes the subscription.
func (m *Mirror) Subscribe(ctx context.Context, ws string) *redis.PubSub {
	return m.rdb.Subscribe(ctx, m.Channel(ws))
}

// DecodeChange decodes a message of a changes channel.
func DecodeChange(payload string) (Change, error) {
	var c Change
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		return c, fmt.Errorf("decode live change: %w", err)
	}
	return c, nil
}
