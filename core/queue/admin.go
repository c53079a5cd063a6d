package queue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// GroupStats describes one consumer group on one shard.
type GroupStats struct {
	// Name is the group's name.
	Name string
	// Pending counts entries delivered to the group and not yet acknowledged.
	Pending int64
	// Lag counts entries not yet delivered to the group; -1 when Redis
	// cannot tell (after deletions in the undelivered range).
	Lag int64
	// LastDeliveredID is the id of the last entry delivered to the group.
	LastDeliveredID string
}

// ShardStats describes one shard stream.
type ShardStats struct {
	// Shard is the shard number.
	Shard int
	// Length is the number of entries in the stream, acknowledged ones
	// included until Trim removes them.
	Length int64
	// Groups lists the stream's consumer groups.
	Groups []GroupStats
}

// Stats returns the length and consumer groups of every shard stream, in
// one pipelined round trip.
func (q *Queue) Stats(ctx context.Context) ([]ShardStats, error) {
	pipe := q.rdb.Pipeline()
	lens := make([]*redis.IntCmd, q.shards)
	infos := make([]*redis.XInfoGroupsCmd, q.shards)
	for i := range q.shards {
		lens[i] = pipe.XLen(ctx, q.streams[i])
		infos[i] = pipe.XInfoGroups(ctx, q.streams[i])
	}
	_, _ = pipe.Exec(ctx)
	out := make([]ShardStats, q.shards)
	for i := range out {
		n, err := lens[i].Result()
		if err != nil {
			return nil, wrapErr(err, "stats of %s", q.streams[i])
		}
		groups, err := infos[i].Result()
		if err != nil && !isNoSuchKey(err) {
			return nil, wrapErr(err, "stats of %s", q.streams[i])
		}
		out[i] = ShardStats{Shard: i, Length: n, Groups: make([]GroupStats, 0, len(groups))}
		for _, g := range groups {
			out[i].Groups = append(out[i].Groups, GroupStats{
				Name:            g.Name,
				Pending:         g.Pending,
				Lag:             g.Lag,
				LastDeliveredID: g.LastDeliveredID,
			})
		}
	}
	return out, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// trimScript trims one stream below the oldest entry any group still needs,
// atomically: per group the oldest pending id or, with nothing pending, the
// id right after the last delivered one; the minimum over groups is the
// MINID. Without groups it trims nothing. Ids are compared as (ms, seq)
// pairs of Lua numbers, exact up to 2^53.
var trimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local bms, bseq = nil, nil
for _, g in ipairs(groups) do
  local h = {}
  for i = 1, #g, 2 do h[g[i]] = g[i + 1] end
  local ms, seq
  if h['pending'] > 0 then
    local p = redis.call('XPENDING', KEYS[1], h['name'])
    ms, seq = parse(p[2])
  else
    ms, seq = parse(h['last-delivered-id'])
    seq = seq + 1
  end
  if bms == nil or ms < bms or (ms == bms and seq < bseq) then
    bms, bseq = ms, seq
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', bms, bseq))
`)

// Trim removes from every shard stream the entries that all its consumer
// groups have acknowledged, and returns how many it removed. Pending and
// undelivered entries of any group are kept, and a stream without groups is
// left alone. Each shard is trimmed by one atomic script.
func (q *Queue) Trim(ctx context.Context) (int64, error) {
	var total int64
	for i := range q.shards {
		n, err := trimScript.Run(ctx, q.rdb, []string{q.streams[i]}).Int64()
		if err != nil {
			return total, wrapErr(err, "trim %s", q.streams[i])
		}
		total += n
	}
	return total, nil
}

// Range returns up to count entries of a shard stream with ids from start
// to end ("-" and "+" for the stream's ends), decoded, whatever their
// groups' progress: for tools and tests.
func (q *Queue) Range(ctx context.Context, shard int, start, end string, count int64) ([]Message, error) {
	msgs, err := q.rdb.XRangeN(ctx, q.streams[shard], start, end, count).Result()
	if err != nil {
		return nil, wrapErr(err, "range %s", q.streams[shard])
	}
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		e, err := decodeEntry(m.Values)
		out[i] = Message{ID: m.ID, Shard: shard, Entry: e, Err: err}
	}
	return out, nil
}

// Delete removes the queue from Redis: its shard streams and, for each of
// groups, its dead-letter stream, leases and consumer registry. For a
// queue that is no longer used (an uninstalled sink's); entries left in it
// are gone.
func (q *Queue) Delete(ctx context.Context, groups ...string) error {
	keys := append([]string(nil), q.streams...)
	for _, g := range groups {
		keys = append(keys, q.deadLetterKey(g), q.consumersKey(g))
		for i := range q.shards {
			keys = append(keys, q.leaseKey(g, i))
		}
	}
	if err := q.rdb.Del(ctx, keys...).Err(); err != nil {
		return wrapErr(err, "delete queue %s", q.prefix)
	}
	return nil
}
