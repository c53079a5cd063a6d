package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Mark returns a point of the queue for Passed: a stream id above the id of
// every entry appended to any shard before the call. It is the larger of
// the Redis clock's next millisecond and the id after the newest entry of
// each shard (which covers a Redis clock that went back), so an entry
// appended after Mark may fall below it too: Passed then waits for it as
// well, which errs on the safe side.
func (q *Queue) Mark(ctx context.Context) (string, error) {
	pipe := q.rdb.Pipeline()
	now := pipe.Time(ctx)
	lasts := make([]*redis.XMessageSliceCmd, q.shards)
	for i := range lasts {
		lasts[i] = pipe.XRevRangeN(ctx, q.streams[i], "+", "-", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return "", wrapErr(err, "mark queue %s", q.prefix)
	}
	t := now.Val()
	// Every id appended so far has a millisecond part at most the clock's
	// (unless the clock went back, see below): the next millisecond's
	// first id is above them all.
	mark := streamID{ms: uint64(t.UnixMilli()) + 1}
	for _, cmd := range lasts {
		for _, m := range cmd.Val() {
			id, err := parseStreamID(m.ID)
			if err != nil {
				return "", fmt.Errorf("mark queue %s: %w", q.prefix, err)
			}
			if next := id.next(); mark.less(next) {
				mark = next
			}
		}
	}
	return mark.String(), nil
}

// passedScript tells whether a consumer group has acknowledged every
// entry of one stream below ARGV[2] (an exclusive bound, "(ms-seq"): 1 if
// so, 0 if not. It runs atomically, so no entry can move from undelivered
// to pending between its two checks:
//
//   - undelivered: an entry after the group's last-delivered-id and below
//     the bound (XRANGE with exclusive ends, COUNT 1);
//   - pending: an entry of the group's pending list below the bound
//     (XPENDING's extended form, whose ids are sorted: COUNT 1).
//
// A stream that does not exist, or that has no such group, has passed.
var passedScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local h = {}
  for i = 1, #g, 2 do h[g[i]] = g[i + 1] end
  if h['name'] == ARGV[1] then
    if #redis.call('XRANGE', KEYS[1], '(' .. h['last-delivered-id'], ARGV[2], 'COUNT', 1) > 0 then
      return 0
    end
    if h['pending'] > 0 and #redis.call('XPENDING', KEYS[1], ARGV[1], '-', ARGV[2], 1) > 0 then
      return 0
    end
    return 1
  end
end
return 1
`)

// Passed reports whether group has acknowledged, on every shard stream,
// every entry whose id is below before (a stream id "ms-seq", or "ms" for
// "ms-0", typically from Mark): no such entry is still undelivered to the
// group, nor delivered and pending in it. A stream or a group that does
// not exist yet counts as passed: nothing of it is in flight. Entries
// dead-lettered by the group have been acknowledged. Each shard is checked
// by one atomic script; the shards one after another, stopping at the
// first that has not passed.
func (q *Queue) Passed(ctx context.Context, group, before string) (bool, error) {
	if group == "" {
		return false, errors.New("passed: empty group name")
	}
	id, err := parseStreamID(before)
	if err != nil {
		return false, fmt.Errorf("passed: %w", err)
	}
	if id == (streamID{}) {
		return true, nil // nothing is below 0-0
	}
	bound := "(" + id.String()
	for i := range q.shards {
		ok, err := passedScript.Run(ctx, q.rdb, []string{q.streams[i]}, group, bound).Int()
		if err != nil {
			return false, wrapErr(err, "passed %s on %s", group, q.streams[i])
		}
		if ok == 0 {
			return false, nil
		}
	}
	return true, nil
}

// streamID is a stream entry id, ms-seq.
type streamID struct{ ms, seq uint64 }

// parseStreamID reads "ms-seq", or "ms" as "ms-0".
func parseStreamID(s string) (streamID, error) {
	a, b, hasSeq := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return streamID{}, fmt.Errorf("invalid stream id %q", s)
	}
	var seq uint64
	if hasSeq {
		if seq, err = strconv.ParseUint(b, 10, 64); err != nil {
			return streamID{}, fmt.Errorf("invalid stream id %q", s)
		}
	}
	return streamID{ms, seq}, nil
}

func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || id.ms == o.ms && id.seq < o.seq
}

// next is the smallest id above id.
func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{ms: id.ms + 1}
	}
	return streamID{id.ms, id.seq + 1}
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

// ValidEntryID reports whether s is a stream entry id, "ms-seq" (what an
// API may take back from a client as a cursor).
func ValidEntryID(s string) bool {
	_, err := parseStreamID(s)
	return err == nil && strings.Contains(s, "-")
}

// EntryIDAfter reports whether stream entry id a comes after b; an id that
// does not parse comes after none.
func EntryIDAfter(a, b string) bool {
	ia, errA := parseStreamID(a)
	ib, errB := parseStreamID(b)
	return errA == nil && errB == nil && ib.less(ia)
}
