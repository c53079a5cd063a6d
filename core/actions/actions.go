// Package actions carries the actions apps emit for a visitor to the pages
// that visitor has open: the tracker's `eddy.on('action', fn)`.
//
// An action is an app's event about a visitor (core/plugins, apps.go). Once
// it has passed the consent gate like any event, the route group publishes
// it here: appended to the visitor's capped stream in Redis (for a page
// that connects a moment later) and announced on one Pub/Sub channel. Every
// process serving pages keeps one subscription (a Hub) and hands each
// announcement to the pages of that visitor connected to it; a page that
// connects first reads the visitor's recent actions from the stream.
// Delivery is at least once: pages drop an id they already saw.
//
// Visitors are named by anonymous id alone, a random id only their browser
// knows; an action that names only a user id reaches no page, since a
// user id may be guessed and the write key is public.
package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// keep is how many actions a visitor's stream keeps, and how long it
	// outlives its latest one.
	keepCount = 50
	keepFor   = time.Hour
	// Recent is how far back a page that connects without a cursor reads
	// its visitor's actions.
	Recent = time.Minute
	// MaxAnonymousIDLen caps the anonymous id a page names.
	MaxAnonymousIDLen = 200
)

// Action is what a page receives.
type Action struct {
	// ID is the action's stream id: the page's cursor (Last-Event-ID).
	ID string `json:"id"`
	// MessageID is the action event's message id.
	MessageID string `json:"message_id"`
	// Type is the action's type (the event name the app gave it).
	Type string `json:"type"`
	// Data is what the app sent with it.
	Data json.RawMessage `json:"data"`
	At   time.Time       `json:"at"`
}

func streamKey(prefix, workspaceID, anonymousID string) string {
	return prefix + ":actions:" + workspaceID + ":" + anonymousID
}

func channel(prefix string) string { return prefix + ":actions" }

// announcement is what the channel carries.
type announcement struct {
	Workspace   string `json:"w"`
	AnonymousID string `json:"a"`
	Action      Action `json:"x"`
}

// Publish appends actions to their visitors' streams and announces them,
// in one round trip.
func Publish(ctx context.Context, rdb redis.UniversalClient, prefix, workspaceID string, byVisitor map[string][]Action) error {
	if len(byVisitor) == 0 {
		return nil
	}
	type added struct {
		anon string
		a    Action
		cmd  *redis.StringCmd
	}
	var adds []added
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for anon, list := range byVisitor {
			key := streamKey(prefix, workspaceID, anon)
			for _, a := range list {
				body, err := json.Marshal(a)
				if err != nil {
					return err
				}
				adds = append(adds, added{anon: anon, a: a,
					cmd: p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: keepCount, Approx: true, Values: []any{"a", body}})})
			}
			p.Expire(ctx, key, keepFor)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store actions: %w", err)
	}
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ad := range adds {
			ad.a.ID = ad.cmd.Val()
			body, err := json.Marshal(announcement{Workspace: workspaceID, AnonymousID: ad.anon, Action: ad.a})
			if err != nil {
				return err
			}
			p.Publish(ctx, channel(prefix), body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("announce actions: %w", err)
	}
	publishedTotal.Add(float64(len(adds)))
	return nil
}

// Since reads a visitor's actions after the stream id after, or, when
// after is empty, those of the last Recent; at most keepCount.
func Since(ctx context.Context, rdb redis.UniversalClient, prefix, workspaceID, anonymousID, after string) ([]Action, error) {
	start := "(" + after
	if after == "" {
		start = strconv.FormatInt(time.Now().Add(-Recent).UnixMilli(), 10)
	}
	msgs, err := rdb.XRangeN(ctx, streamKey(prefix, workspaceID, anonymousID), start, "+", keepCount).Result()
	if err != nil {
		return nil, fmt.Errorf("read actions: %w", err)
	}
	out := make([]Action, 0, len(msgs))
	for _, m := range msgs {
		s, _ := m.Values["a"].(string)
		var a Action
		if json.Unmarshal([]byte(s), &a) != nil {
			continue
		}
		a.ID = m.ID
		out = append(out, a)
	}
	return out, nil
}

// Hub hands the announced actions to the pages connected to this process.
type Hub struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger

	mu    sync.Mutex
	pages map[string]map[chan Action]struct{} // workspace + "\x00" + anonymous id
	// ready is closed once the subscription is confirmed.
	ready chan struct{}
	once  sync.Once
}

// NewHub returns a hub; Run subscribes it.
func NewHub(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Hub {
	return &Hub{rdb: rdb, prefix: prefix, log: log, pages: map[string]map[chan Action]struct{}{}, ready: make(chan struct{})}
}

// Run receives announcements until ctx ends (go-redis resubscribes after
// a lost connection; pages then miss nothing older than Recent that they
// read again on reconnecting).
func (h *Hub) Run(ctx context.Context) {
	sub := h.rdb.Subscribe(ctx, channel(h.prefix))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err == nil {
		h.once.Do(func() { close(h.ready) })
	}
	ch := sub.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			var an announcement
			if err := json.Unmarshal([]byte(m.Payload), &an); err != nil {
				h.log.Warn("undecodable action announcement", "err", err)
				continue
			}
			h.deliver(an)
		}
	}
}

// Ready is closed once the hub's subscription is in place.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

func (h *Hub) deliver(an announcement) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.pages[an.Workspace+"\x00"+an.AnonymousID] {
		select {
		case c <- an.Action:
		default:
			skippedTotal.Inc()
			// A page that does not keep up misses it now and reads it
			// from the stream when it reconnects.
		}
	}
}

// Listen registers a page of a visitor; the returned function unregisters
// it.
func (h *Hub) Listen(workspaceID, anonymousID string) (<-chan Action, func()) {
	k := workspaceID + "\x00" + anonymousID
	c := make(chan Action, 16)
	h.mu.Lock()
	if h.pages[k] == nil {
		h.pages[k] = map[chan Action]struct{}{}
	}
	h.pages[k][c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		delete(h.pages[k], c)
		if len(h.pages[k]) == 0 {
			delete(h.pages, k)
		}
		h.mu.Unlock()
	}
}

// jsonAction is an action as a page receives it.
func jsonAction(a Action) ([]byte, error) {
	if len(a.Data) == 0 {
		a.Data = json.RawMessage("{}")
	}
	return json.Marshal(a)
}
