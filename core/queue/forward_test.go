package queue

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// Forwarded entries reach the other queue, changed, in order and once;
// dead letters and dropped messages are acknowledged with them.
func TestForwardAppendsAtomicallyWithTheAck(t *testing.T) {
	src, rdb, _ := testQueue(t, 2)
	dst, err := New(rdb, Options{Prefix: src.prefix + ":out", Shards: 2})
	testenv.Must(t, err, "new queue")
	ctx := context.Background()
	testenv.Must(t, src.Enqueue(ctx, testEntries(40, 5)), "enqueue")

	done := make(chan struct{}, 100)
	stop := startConsumer(t, src, fastOptions(t, "process", "c1"), func(_ context.Context, b Batch) ([]DeadLetter, error) {
		var dead []DeadLetter
		for _, m := range b.Messages {
			var n int
			fmt.Sscanf(m.Entry.MessageID, "m-%d", &n)
			switch {
			case n%10 == 3:
				dead = append(dead, DeadLetter{Message: m, Reason: "bad"})
			case n%10 == 7: // dropped
			default:
				e := m.Entry
				e.Payload = []byte(`{"changed":true}`)
				b.Forward(dst, m, e)
			}
			done <- struct{}{}
		}
		return dead, nil
	})
	for range 40 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler did not see every message")
		}
	}
	waitFor(t, func() bool { n, _ := src.DeadLetterCount(ctx, "process"); return n == 4 })
	stop()

	var got []string
	for shard := range dst.Shards() {
		msgs, err := rdb.XRange(ctx, dst.streamKey(shard), "-", "+").Result()
		testenv.Must(t, err, "xrange")
		for _, m := range msgs {
			e, err := decodeEntry(m.Values)
			testenv.Must(t, err, "decode")
			if string(e.Payload) != `{"changed":true}` {
				t.Fatalf("forwarded payload = %s", e.Payload)
			}
			if dst.ShardOf(e.WorkspaceID, e.ShardKey) != shard {
				t.Fatalf("%s forwarded to shard %d", e.MessageID, shard)
			}
			got = append(got, e.MessageID)
		}
	}
	if len(got) != 32 {
		t.Fatalf("forwarded %d entries, want 32: %v", len(got), got)
	}
	for shard := range src.Shards() {
		p, err := rdb.XPending(ctx, src.streamKey(shard), "process").Result()
		testenv.Must(t, err, "xpending")
		if p.Count != 0 {
			t.Fatalf("shard %d has %d pending entries after the batch", shard, p.Count)
		}
	}
}

// A message another consumer acknowledged first (the old owner of a shard
// after a takeover) forwards nothing: forwarding never duplicates.
func TestForwardSkipsMessagesAckedElsewhere(t *testing.T) {
	src, rdb, _ := testQueue(t, 1)
	dst, err := New(rdb, Options{Prefix: src.prefix + ":out", Shards: 1})
	testenv.Must(t, err, "new queue")
	ctx := context.Background()
	testenv.Must(t, src.Enqueue(ctx, testEntries(3, 1)), "enqueue")

	handled := make(chan struct{})
	stop := startConsumer(t, src, fastOptions(t, "process", "c1"), func(_ context.Context, b Batch) ([]DeadLetter, error) {
		// Another consumer finished the first message meanwhile.
		if err := rdb.XAck(ctx, src.streamKey(0), "process", b.Messages[0].ID).Err(); err != nil {
			return nil, err
		}
		for _, m := range b.Messages {
			b.Forward(dst, m, m.Entry)
		}
		close(handled)
		return nil, nil
	})
	<-handled
	waitFor(t, func() bool { n, _ := rdb.XLen(ctx, dst.streamKey(0)).Result(); return n >= 2 })
	stop()
	msgs, err := rdb.XRange(ctx, dst.streamKey(0), "-", "+").Result()
	testenv.Must(t, err, "xrange")
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.Values[fieldMessageID].(string))
	}
	if strings.Join(ids, ",") != "m-1,m-2" {
		t.Fatalf("forwarded %v, want m-1,m-2 (m-0 was acknowledged elsewhere)", ids)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
