package queue

import (
	"context"
	"slices"
	"testing"

	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// groupState says how far a group got: it read the first read entries and
// acknowledged the first acked of them.
type groupState struct {
	name        string
	read, acked int
}

func TestTrimKeepsWhatAnyGroupStillNeeds(t *testing.T) {
	const n = 100
	tests := []struct {
		name        string
		groups      []groupState
		wantRemoved int
	}{
		{"no group: never trimmed", nil, 0},
		{"one group that acknowledged everything", []groupState{{"fast", n, n}}, n},
		{"lagging group with pending entries", []groupState{{"fast", n, n}, {"slow", 30, 10}}, 10},
		{"lagging group that read nothing", []groupState{{"fast", n, n}, {"slow", 0, 0}}, 0},
		{"lagging group with nothing pending", []groupState{{"fast", n, n}, {"slow", 40, 40}}, 40},
		{"pending below the other group's position", []groupState{{"a", 60, 5}, {"b", 20, 20}}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, rdb, _ := testQueue(t, 1)
			ctx := context.Background()
			testenv.Must(t, q.Enqueue(ctx, testEntries(n, 1)), "enqueue")
			ids := streamIDs(t, rdb, q.streamKey(0))
			for _, g := range tc.groups {
				advanceGroup(t, rdb, q.streamKey(0), g)
			}

			removed, err := q.Trim(ctx)
			testenv.Must(t, err, "trim")
			if removed != int64(tc.wantRemoved) {
				t.Errorf("Trim removed %d entries, want %d", removed, tc.wantRemoved)
			}
			if left := streamIDs(t, rdb, q.streamKey(0)); !slices.Equal(left, ids[tc.wantRemoved:]) {
				t.Errorf("after Trim %d entries left starting %v, want the last %d", len(left), head(left), n-tc.wantRemoved)
			}
			again, err := q.Trim(ctx)
			testenv.Must(t, err, "trim again")
			if again != 0 {
				t.Errorf("second Trim removed %d more, want 0", again)
			}
		})
	}
}

// TestTrimFollowsTheSlowestGroup lets a lagging group catch up in steps:
// each Trim removes exactly what both groups acknowledged.
func TestTrimFollowsTheSlowestGroup(t *testing.T) {
	q, rdb, _ := testQueue(t, 1)
	ctx := context.Background()
	testenv.Must(t, q.Enqueue(ctx, testEntries(50, 1)), "enqueue")
	stream := q.streamKey(0)
	advanceGroup(t, rdb, stream, groupState{"fast", 50, 50})
	advanceGroup(t, rdb, stream, groupState{"slow", 20, 5})
	steps := []struct {
		read, ack   int // further entries the slow group reads and acknowledges
		wantRemoved int64
	}{
		{0, 0, 5},
		{0, 15, 15},
		{30, 10, 10},
		{0, 20, 20},
	}
	for i, s := range steps {
		readAndAck(t, rdb, stream, "slow", s.read, s.ack)
		removed, err := q.Trim(ctx)
		testenv.Must(t, err, "trim step %d", i)
		if removed != s.wantRemoved {
			t.Errorf("step %d: Trim removed %d, want %d", i, removed, s.wantRemoved)
		}
	}
	if l := rdb.XLen(ctx, stream).Val(); l != 0 {
		t.Errorf("stream has %d entries after every group acknowledged all, want 0", l)
	}
}

func streamIDs(t *testing.T, rdb *redis.Client, stream string) []string {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
	testenv.Must(t, err, "xrange %s", stream)
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func advanceGroup(t *testing.T, rdb *redis.Client, stream string, g groupState) {
	t.Helper()
	testenv.Must(t, rdb.XGroupCreate(context.Background(), stream, g.name, "0").Err(), "create group %s", g.name)
	readAndAck(t, rdb, stream, g.name, g.read, g.acked)
}

// readAndAck reads read new entries for group, then acknowledges its
// ack oldest pending entries.
func readAndAck(t *testing.T, rdb *redis.Client, stream, group string, read, ack int) {
	t.Helper()
	ctx := context.Background()
	if read > 0 {
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: int64(read), Block: -1,
		}).Result()
		testenv.Must(t, err, "read for %s", group)
		if got := len(res[0].Messages); got != read {
			t.Fatalf("group %s read %d entries, want %d", group, got, read)
		}
	}
	if ack > 0 {
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: "-", End: "+", Count: int64(ack)}).Result()
		testenv.Must(t, err, "pending of %s", group)
		ids := make([]string, len(pending))
		for i, p := range pending {
			ids[i] = p.ID
		}
		testenv.Must(t, rdb.XAck(ctx, stream, group, ids...).Err(), "ack for %s", group)
	}
}
