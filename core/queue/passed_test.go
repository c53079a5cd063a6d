package queue

import (
	"context"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/redis/go-redis/v9"
)

func TestPassedTellsWhetherAGroupAcknowledgedEverythingBeforeTheMark(t *testing.T) {
	const before, after = 10, 5 // entries appended before and after the mark
	tests := []struct {
		name string
		// setup brings the groups of the stream (10 entries before the
		// mark, 5 after) to the state under test.
		setup func(t *testing.T, rdb *redis.Client, stream string)
		want  bool
	}{
		{"stream without groups", func(*testing.T, *redis.Client, string) {}, true},
		{"another group exists, not this one", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"other", 0, 0})
		}, true},
		{"nothing delivered", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", 0, 0})
		}, false},
		{"some entries before the mark undelivered", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", 6, 6})
		}, false},
		{"last entry before the mark undelivered", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before - 1, before - 1})
		}, false},
		{"all delivered, the newest pending", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before, before - 1})
		}, false},
		{"all delivered, one in the middle pending", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before, 0})
			ids := streamIDs(t, rdb, stream)
			for i, id := range ids[:before] {
				if i != 3 {
					testenv.Must(t, rdb.XAck(context.Background(), stream, "g", id).Err(), "ack")
				}
			}
		}, false},
		{"all before the mark acknowledged", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before, before})
		}, true},
		{"only entries after the mark pending", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before + after, before})
		}, true},
		{"everything acknowledged", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before + after, before + after})
		}, true},
		{"this group done, another lagging", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before, before})
			advanceGroup(t, rdb, stream, groupState{"other", 2, 0})
		}, true},
		{"pending entry deleted from the stream", func(t *testing.T, rdb *redis.Client, stream string) {
			// Still in the pending list until the consumer acknowledges
			// it: not passed.
			advanceGroup(t, rdb, stream, groupState{"g", before, before - 1})
			ids := streamIDs(t, rdb, stream)
			testenv.Must(t, rdb.XDel(context.Background(), stream, ids[before-1]).Err(), "xdel")
		}, false},
		{"undelivered entries deleted from the stream", func(t *testing.T, rdb *redis.Client, stream string) {
			advanceGroup(t, rdb, stream, groupState{"g", before - 2, before - 2})
			ids := streamIDs(t, rdb, stream)
			testenv.Must(t, rdb.XDel(context.Background(), stream, ids[before-2:before]...).Err(), "xdel")
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, rdb, _ := testQueue(t, 1)
			ctx := context.Background()
			entries := testEntries(before+after, 1)
			testenv.Must(t, q.Enqueue(ctx, entries[:before]), "enqueue before the mark")
			mark, err := q.Mark(ctx)
			testenv.Must(t, err, "mark")
			// Entries appended within the mark's millisecond fall below
			// it (Mark errs on the safe side): these come later.
			time.Sleep(3 * time.Millisecond)
			testenv.Must(t, q.Enqueue(ctx, entries[before:]), "enqueue after the mark")
			tc.setup(t, rdb, q.streamKey(0))

			got, err := q.Passed(ctx, "g", mark)
			testenv.Must(t, err, "passed")
			if got != tc.want {
				t.Errorf("Passed(g, mark) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPassedOnAQueueThatDoesNotExistYet(t *testing.T) {
	q, _, _ := testQueue(t, 4)
	ctx := context.Background()
	mark, err := q.Mark(ctx)
	testenv.Must(t, err, "mark")
	testenv.Must(t, q.EnsureGroup(ctx, "created"), "ensure group")
	for _, group := range []string{"missing", "created"} {
		ok, err := q.Passed(ctx, group, mark)
		testenv.Must(t, err, "passed %s", group)
		if !ok {
			t.Errorf("Passed(%s) on empty streams = false, want true", group)
		}
	}
}

func TestPassedChecksEveryShard(t *testing.T) {
	const shards = 4
	q, rdb, _ := testQueue(t, shards)
	ctx := context.Background()
	entries := testEntries(40, 16)
	testenv.Must(t, q.Enqueue(ctx, entries), "enqueue")
	mark, err := q.Mark(ctx)
	testenv.Must(t, err, "mark")
	testenv.Must(t, q.EnsureGroup(ctx, "g"), "ensure group")
	per := map[int]int{}
	for _, e := range entries {
		per[q.ShardOf(e.WorkspaceID, e.ShardKey)]++
	}
	if len(per) != shards {
		t.Fatalf("test entries fill %d shards, want %d", len(per), shards)
	}
	// Shard by shard: until the last one is acknowledged, the group has
	// not passed.
	for s := range shards {
		ok, err := q.Passed(ctx, "g", mark)
		testenv.Must(t, err, "passed")
		if ok {
			t.Fatalf("Passed = true with shards %d..%d not acknowledged", s, shards-1)
		}
		readAndAck(t, rdb, q.streamKey(s), "g", per[s], per[s])
	}
	ok, err := q.Passed(ctx, "g", mark)
	testenv.Must(t, err, "passed")
	if !ok {
		t.Errorf("Passed = false after every shard was acknowledged")
	}
}

func TestPassedFollowsAConsumer(t *testing.T) {
	q, _, _ := testQueue(t, 2)
	ctx := context.Background()
	testenv.Must(t, q.Enqueue(ctx, testEntries(200, 20)), "enqueue")
	mark, err := q.Mark(ctx)
	testenv.Must(t, err, "mark")
	testenv.Must(t, q.EnsureGroup(ctx, "g"), "ensure group")
	if ok, err := q.Passed(ctx, "g", mark); err != nil || ok {
		t.Fatalf("Passed before any consumer = %v, %v; want false", ok, err)
	}
	rec := newRecorder()
	opts := fastOptions(t, "g", "c1")
	opts.BatchSize = 7
	startConsumer(t, q, opts, func(_ context.Context, b Batch) ([]DeadLetter, error) {
		rec.record(b)
		return nil, nil
	})
	testenv.Eventually(t, 10*time.Second, "the consumer passes the mark", func() bool {
		ok, err := q.Passed(ctx, "g", mark)
		testenv.Must(t, err, "passed")
		return ok
	})
	if n := rec.count(); n < 200 {
		t.Errorf("Passed = true after the handler saw %d of 200 entries", n)
	}
}

func TestMarkIsAboveEveryAppendedEntry(t *testing.T) {
	q, rdb, _ := testQueue(t, 2)
	ctx := context.Background()
	// An entry from a clock ahead of this one (or a Redis whose clock went
	// back since).
	testenv.Must(t, q.Enqueue(ctx, testEntries(10, 5)), "enqueue")
	future := "99999999999999-5"
	testenv.Must(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.streamKey(1), ID: future, Values: []any{"w", "x"}}).Err(), "xadd")
	mark, err := q.Mark(ctx)
	testenv.Must(t, err, "mark")
	if mark != "99999999999999-6" {
		t.Errorf("Mark = %s, want 99999999999999-6 (after the newest entry)", mark)
	}

	q2, _, _ := testQueue(t, 2)
	start := time.Now()
	mark, err = q2.Mark(ctx)
	testenv.Must(t, err, "mark of an empty queue")
	id, err := parseStreamID(mark)
	testenv.Must(t, err, "parse mark")
	if ms := int64(id.ms); ms < start.Add(-time.Minute).UnixMilli() || ms > time.Now().Add(time.Minute).UnixMilli() {
		t.Errorf("Mark of an empty queue = %s, want about the current time in ms", mark)
	}
}

func TestPassedRefusesABadPoint(t *testing.T) {
	q, _, _ := testQueue(t, 1)
	for _, p := range []string{"", "abc", "12-x", "-1"} {
		if _, err := q.Passed(context.Background(), "g", p); err == nil {
			t.Errorf("Passed(g, %q) = nil error, want one", p)
		}
	}
	if _, err := q.Passed(context.Background(), "", "1-0"); err == nil {
		t.Errorf("Passed with an empty group = nil error, want one")
	}
}

func TestEntryIDs(t *testing.T) {
	for _, c := range []struct {
		id    string
		valid bool
	}{
		{"1700000000000-0", true}, {"0-0", true}, {"18446744073709551615-18446744073709551615", true},
		{"", false}, {"1700000000000", false}, {"1-x", false}, {"-1-0", false}, {"+1-0", false},
		{"1-0;DROP", false}, {"18446744073709551616-0", false}, {"1 -0", false},
	} {
		if got := ValidEntryID(c.id); got != c.valid {
			t.Errorf("ValidEntryID(%q) = %v, want %v", c.id, got, c.valid)
		}
	}
	for _, c := range []struct {
		a, b  string
		after bool
	}{
		{"2-0", "1-9", true}, {"1-10", "1-9", true}, {"1-9", "1-9", false}, {"1-8", "1-9", false},
		{"10-0", "9-99", true}, {"x", "1-0", false}, {"2-0", "x", false},
	} {
		if got := EntryIDAfter(c.a, c.b); got != c.after {
			t.Errorf("EntryIDAfter(%q, %q) = %v, want %v", c.a, c.b, got, c.after)
		}
	}
}
