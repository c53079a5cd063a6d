package debugger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

func TestRecordsOnlyWhileWatched(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	rec := debugger.NewRecorder(rdb, prefix, slog.New(slog.DiscardHandler))
	var none *debugger.Recorder
	if none.Watching("ws", "src") {
		t.Fatal("a nil recorder watches")
	}
	none.Record(ctx, "ws", "src", debugger.Entry{}) // must not panic

	testenv.Must(t, rec.Refresh(ctx), "refresh")
	if rec.Watching("ws", "src") {
		t.Fatal("watched before anyone watches")
	}
	testenv.Must(t, debugger.Watch(ctx, rdb, prefix, "ws", "src"), "watch")
	if rec.Watching("ws", "src") {
		t.Fatal("watched before the recorder refreshed")
	}
	testenv.Must(t, rec.Refresh(ctx), "refresh")
	if !rec.Watching("ws", "src") || rec.Watching("ws", "other") || rec.Watching("other", "src") {
		t.Fatal("watching the wrong sources")
	}

	// A watch that expired is forgotten, and removed from Redis.
	testenv.Must(t, rdb.HSet(ctx, prefix+":debug:watch", "ws/old", time.Now().Add(-time.Second).Unix()).Err(), "stale watch")
	testenv.Must(t, rec.Refresh(ctx), "refresh")
	if rec.Watching("ws", "old") {
		t.Error("an expired watch still counts")
	}
	if n, _ := rdb.HExists(ctx, prefix+":debug:watch", "ws/old").Result(); n {
		t.Error("the expired watch was not removed")
	}

	// Entries: oldest first, capped, each with its id.
	for i := range debugger.MaxEntries + 50 {
		e := debugger.Entry{Stage: debugger.StageCollector, Outcome: debugger.Accepted}
		e.Describe([]byte(fmt.Sprintf(`{"type":"track","event":"E%d","messageId":"m-%d"}`, i, i)))
		rec.Record(ctx, "ws", "src", e)
	}
	latest, err := debugger.Read(ctx, rdb, prefix, "ws", "src", "", 3)
	testenv.Must(t, err, "read")
	if len(latest) != 3 || latest[2].MessageID != fmt.Sprintf("m-%d", debugger.MaxEntries+49) || latest[0].ID >= latest[1].ID {
		t.Fatalf("latest entries %+v", latest)
	}
	n, err := rdb.XLen(ctx, prefix+":debug:ws:src").Result()
	testenv.Must(t, err, "xlen")
	// MAXLEN ~ trims whole macro nodes: about MaxEntries are kept.
	if n < debugger.MaxEntries || n > debugger.MaxEntries+100 {
		t.Errorf("the stream keeps %d entries, want about %d", n, debugger.MaxEntries)
	}
	if ttl := rdb.TTL(ctx, prefix+":debug:ws:src").Val(); ttl <= 0 || ttl > 10*time.Minute {
		t.Errorf("the stream's TTL is %s", ttl)
	}
	after, err := debugger.Read(ctx, rdb, prefix, "ws", "src", latest[1].ID, 10)
	testenv.Must(t, err, "read after")
	if len(after) != 1 || after[0].ID != latest[2].ID {
		t.Errorf("after %s: %+v", latest[1].ID, after)
	}
}

func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		name, payload string
		want          debugger.Entry
		payloadHas    string
	}{
		{"a track", `{"type":"track","event":"Order Completed","messageId":"m1","anonymousId":"a1","userId":"u1"}`,
			debugger.Entry{MessageID: "m1", Type: "track", Event: "Order Completed", AnonymousID: "a1", UserID: "u1"}, `"Order Completed"`},
		{"not JSON", `{"type":`, debugger.Entry{}, `"not a JSON object"`},
		{"too long", `{"type":"page","messageId":"m2","x":"` + strings.Repeat("y", debugger.MaxPayloadBytes) + `"}`,
			debugger.Entry{MessageID: "m2", Type: "page"}, `"_bytes":`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e debugger.Entry
			e.Describe([]byte(c.payload))
			if e.MessageID != c.want.MessageID || e.Type != c.want.Type || e.Event != c.want.Event ||
				e.AnonymousID != c.want.AnonymousID || e.UserID != c.want.UserID {
				t.Errorf("described %+v, want %+v", e, c.want)
			}
			if !json.Valid(e.Payload) || !strings.Contains(string(e.Payload), c.payloadHas) {
				t.Errorf("payload %s, want it to hold %s", e.Payload, c.payloadHas)
			}
		})
	}
}
