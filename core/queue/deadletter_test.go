package queue

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/redis/go-redis/v9"
)

func TestDeadLettersAreListedAndReplayed(t *testing.T) {
	q, rdb, reg := testQueue(t, 2)
	ctx := context.Background()
	entries := testEntries(30, 30)
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	junkID, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.streamKey(1), Values: []any{"junk", "1"}}).Result()
	testenv.Must(t, err, "add undecodable entry")
	bad := map[string]string{"m-7": "schema: event name missing", "m-21": "schema: bad timestamp"}

	var (
		accepting atomic.Bool // phase 2: accept everything
		mu        sync.Mutex
		junkSeen  int
	)
	rec := newRecorder()
	startConsumer(t, q, fastOptions(t, "store", "c1"), func(_ context.Context, b Batch) ([]DeadLetter, error) {
		var dead []DeadLetter
		ok := Batch{Shard: b.Shard}
		for _, m := range b.Messages {
			switch {
			case m.Err != nil:
				mu.Lock()
				junkSeen++
				mu.Unlock()
				if !accepting.Load() {
					dead = append(dead, DeadLetter{Message: m, Reason: "undecodable: " + m.Err.Error()})
				}
			case bad[m.Entry.MessageID] != "" && !accepting.Load():
				dead = append(dead, DeadLetter{Message: m, Reason: bad[m.Entry.MessageID]})
			default:
				ok.Messages = append(ok.Messages, m)
			}
		}
		rec.record(ok)
		return dead, nil
	})
	deadCount := func() int64 {
		n, err := q.DeadLetterCount(ctx, "store")
		testenv.Must(t, err, "dead letter count")
		return n
	}
	testenv.Eventually(t, 10*time.Second, "good entries consumed and 3 dead letters", func() bool {
		return rec.count() == len(entries)-len(bad) && deadCount() == 3
	})

	for s := range q.Shards() {
		p, err := rdb.XPending(ctx, q.streamKey(s), "store").Result()
		testenv.Must(t, err, "xpending")
		if p.Count != 0 {
			t.Errorf("shard %d: %d entries pending, want dead letters acknowledged too", s, p.Count)
		}
	}
	list, err := q.DeadLetters(ctx, "store", "", 0)
	testenv.Must(t, err, "list dead letters")
	if len(list) != 3 {
		t.Fatalf("DeadLetters listed %d entries, want 3: %+v", len(list), list)
	}
	byMessage := make(map[string]DeadEntry)
	for _, d := range list {
		if d.Group != "store" || d.Attempts != 1 || time.Since(d.FailedAt) > time.Minute || d.OriginalID == "" {
			t.Errorf("dead entry %+v: want group store, 1 attempt, recent FailedAt, original id", d)
		}
		if d.Err != nil {
			byMessage["junk"] = d
			continue
		}
		byMessage[d.Entry.MessageID] = d
	}
	for id, reason := range bad {
		d, ok := byMessage[id]
		if !ok {
			t.Fatalf("dead letter for %s missing", id)
		}
		wantShard := q.ShardOf(d.Entry.WorkspaceID, d.Entry.ShardKey)
		if d.Reason != reason || d.Shard != wantShard {
			t.Errorf("dead letter %s: reason %q shard %d, want %q shard %d", id, d.Reason, d.Shard, reason, wantShard)
		}
		assertEntry(t, d.Entry, entries[indexOf(entries, id)])
	}
	if j, ok := byMessage["junk"]; !ok || j.OriginalID != junkID || j.Shard != 1 || !strings.Contains(j.Reason, "undecodable") {
		t.Errorf("undecodable dead letter = %+v, want original id %s on shard 1 with its reason", j, junkID)
	}

	page, err := q.DeadLetters(ctx, "store", list[0].ID, 1)
	testenv.Must(t, err, "list after first")
	if len(page) != 1 || page[0].ID != list[1].ID {
		t.Errorf("DeadLetters after %s, count 1 = %+v, want just %s", list[0].ID, page, list[1].ID)
	}

	// Replay one entry: it comes back through the consumer, the others stay.
	accepting.Store(true)
	n, err := q.Replay(ctx, "store", []string{byMessage["m-7"].ID, "1-1"})
	testenv.Must(t, err, "replay m-7")
	if n != 1 {
		t.Errorf("Replay(m-7, unknown id) moved %d, want 1", n)
	}
	testenv.Eventually(t, 5*time.Second, "m-7 consumed again", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.seen["m-7"] == 1
	})
	if got := deadCount(); got != 2 {
		t.Errorf("after replaying one, %d dead letters, want 2", got)
	}

	// Replay the rest.
	n, err = q.Replay(ctx, "store", nil)
	testenv.Must(t, err, "replay all")
	if n != 2 {
		t.Errorf("Replay(all) moved %d, want 2", n)
	}
	testenv.Eventually(t, 5*time.Second, "m-21 and the junk entry consumed again", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		return rec.seen["m-21"] == 1 && junkSeen == 2
	})
	if got := deadCount(); got != 0 {
		t.Errorf("after replaying all, %d dead letters, want 0", got)
	}
	if got := gather(t, reg)[`eddy_queue_dead_lettered_total{group="store",queue="events"}`]; got != 3 {
		t.Errorf("dead_lettered_total = %v, want 3", got)
	}
}

func indexOf(entries []event.Entry, messageID string) int {
	for i, e := range entries {
		if e.MessageID == messageID {
			return i
		}
	}
	panic("no entry " + messageID)
}
