package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/redis/go-redis/v9"
)

// Fields a dead-letter entry carries besides the original entry's fields.
const (
	dlqFieldPrefix   = "dlq."
	dlqFieldShard    = "dlq.shard"
	dlqFieldID       = "dlq.id"
	dlqFieldReason   = "dlq.reason"
	dlqFieldAt       = "dlq.at" // Unix microseconds
	dlqFieldAttempts = "dlq.attempts"
)

// defaultDeadLetterPage is the page size of DeadLetters with count <= 0 and
// of Replay.
const defaultDeadLetterPage = 100

// entryFieldOrder is the order in which entry fields are written, so that
// copies (dead letters, replays) share the field names of their stream.
var entryFieldOrder = []string{
	fieldWorkspace, fieldSource, fieldMessageID, fieldType, fieldShardKey,
	fieldReceivedAt, fieldSentAt, fieldTimestamp, fieldIP, fieldContext, fieldPayload,
}

// DeadEntry is an entry in a group's dead-letter stream.
type DeadEntry struct {
	// ID is the entry's id in the dead-letter stream.
	ID string
	// Shard is the shard the entry came from.
	Shard int
	// OriginalID is the entry's id in its shard stream.
	OriginalID string
	// Group is the consumer group that rejected it.
	Group string
	// Reason is the handler's reason for rejecting it.
	Reason string
	// FailedAt is when it was dead-lettered.
	FailedAt time.Time
	// Attempts is how many times the entry had been delivered to the group.
	Attempts int
	// Entry is the decoded entry, if Err is nil.
	Entry event.Entry
	// Err says why the original fields could not be decoded.
	Err error
}

// DeadLetters lists up to count entries of group's dead-letter stream,
// oldest first, starting after the dead-letter id after ("" for the start).
// A count <= 0 means 100.
func (q *Queue) DeadLetters(ctx context.Context, group, after string, count int) ([]DeadEntry, error) {
	if count <= 0 {
		count = defaultDeadLetterPage
	}
	start := "-"
	if after != "" {
		start = "(" + after
	}
	key := q.deadLetterKey(group)
	msgs, err := q.rdb.XRangeN(ctx, key, start, "+", int64(count)).Result()
	if err != nil {
		return nil, wrapErr(err, "list dead letters of %s", group)
	}
	out := make([]DeadEntry, len(msgs))
	for i, m := range msgs {
		out[i] = parseDeadEntry(group, m)
	}
	return out, nil
}

func parseDeadEntry(group string, m redis.XMessage) DeadEntry {
	d := DeadEntry{ID: m.ID, Group: group, Shard: -1}
	get := func(name string) string { s, _ := m.Values[name].(string); return s }
	if n, err := strconv.Atoi(get(dlqFieldShard)); err == nil {
		d.Shard = n
	}
	d.OriginalID = get(dlqFieldID)
	d.Reason = get(dlqFieldReason)
	if us, err := strconv.ParseInt(get(dlqFieldAt), 10, 64); err == nil {
		d.FailedAt = time.UnixMicro(us).UTC()
	}
	d.Attempts, _ = strconv.Atoi(get(dlqFieldAttempts))
	d.Entry, d.Err = decodeEntry(m.Values)
	return d
}

// DeadLetterCount returns the number of entries in group's dead-letter
// stream.
func (q *Queue) DeadLetterCount(ctx context.Context, group string) (int64, error) {
	n, err := q.rdb.XLen(ctx, q.deadLetterKey(group)).Result()
	if err != nil {
		return 0, wrapErr(err, "count dead letters of %s", group)
	}
	return n, nil
}

// Replay moves dead letters of group back onto their shard streams, where
// every group reading the shard receives them again, and returns how many it
// moved. Each entry's XADD and its XDEL from the dead-letter stream are
// applied in one MULTI/EXEC. Empty ids means all entries present when Replay
// starts; ids that are not in the dead-letter stream are skipped.
func (q *Queue) Replay(ctx context.Context, group string, ids []string) (int, error) {
	key := q.deadLetterKey(group)
	if len(ids) > 0 {
		return q.replayIDs(ctx, group, key, ids)
	}
	// Stop at the newest entry present now, so that entries which fail again
	// while we replay are not replayed in a loop.
	last, err := q.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return 0, wrapErr(err, "replay dead letters of %s", group)
	}
	if len(last) == 0 {
		return 0, nil
	}
	total := 0
	start := "-"
	for {
		msgs, err := q.rdb.XRangeN(ctx, key, start, last[0].ID, defaultDeadLetterPage).Result()
		if err != nil {
			return total, wrapErr(err, "replay dead letters of %s", group)
		}
		if len(msgs) == 0 {
			return total, nil
		}
		n, err := q.replayMessages(ctx, group, key, msgs)
		total += n
		if err != nil {
			return total, err
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func (q *Queue) replayIDs(ctx context.Context, group, key string, ids []string) (int, error) {
	total := 0
	for chunk := range slices.Chunk(ids, defaultDeadLetterPage) {
		pipe := q.rdb.Pipeline()
		cmds := make([]*redis.XMessageSliceCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = pipe.XRange(ctx, key, id, id)
		}
		_, _ = pipe.Exec(ctx)
		var msgs []redis.XMessage
		for i, cmd := range cmds {
			found, err := cmd.Result()
			if err != nil {
				if redis.HasErrorPrefix(err, "Invalid stream ID") {
					return total, fmt.Errorf("replay dead letters of %s: invalid id %q", group, chunk[i])
				}
				return total, wrapErr(err, "replay dead letters of %s", group)
			}
			msgs = append(msgs, found...)
		}
		n, err := q.replayMessages(ctx, group, key, msgs)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// replayMessages moves msgs from the dead-letter stream key back to their
// shards in one MULTI/EXEC.
func (q *Queue) replayMessages(ctx context.Context, group, key string, msgs []redis.XMessage) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	pipe := q.rdb.TxPipeline()
	dels := make([]*redis.IntCmd, len(msgs))
	for i, m := range msgs {
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: q.streams[q.replayShard(m)],
			Values: originalFields(m.Values, nil),
		})
		dels[i] = pipe.XDel(ctx, key, m.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, wrapErr(err, "replay dead letters of %s", group)
	}
	n := 0
	for _, d := range dels {
		n += int(d.Val())
	}
	return n, nil
}

// replayShard returns the shard a dead letter goes back to: the one it came
// from, or, if that no longer exists, the one its entry maps to now.
func (q *Queue) replayShard(m redis.XMessage) int {
	s, _ := m.Values[dlqFieldShard].(string)
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < q.shards {
		return n
	}
	if e, err := decodeEntry(m.Values); err == nil {
		return q.ShardOf(e.WorkspaceID, e.ShardKey)
	}
	return 0
}

// originalFields appends to dst the fields of an entry as field, value
// pairs without dead-letter fields: known entry fields first in their
// canonical order, then any others sorted by name.
func originalFields(values map[string]any, dst []any) []any {
	for _, f := range entryFieldOrder {
		if v, ok := values[f]; ok {
			dst = append(dst, f, v)
		}
	}
	var extra []string
	for f := range values {
		if !strings.HasPrefix(f, dlqFieldPrefix) && !slices.Contains(entryFieldOrder, f) {
			extra = append(extra, f)
		}
	}
	slices.Sort(extra)
	for _, f := range extra {
		dst = append(dst, f, values[f])
	}
	return dst
}

// deadLetterFields returns the fields of the dead-letter entry for message
// id of shard, whose raw fields were values.
func deadLetterFields(shard int, id, reason string, attempts int64, at time.Time, values map[string]any) []any {
	dst := make([]any, 0, 10+2*len(values))
	dst = append(dst,
		dlqFieldShard, strconv.Itoa(shard),
		dlqFieldID, id,
		dlqFieldReason, reason,
		dlqFieldAt, strconv.FormatInt(at.UnixMicro(), 10),
		dlqFieldAttempts, strconv.FormatInt(attempts, 10),
	)
	return originalFields(values, dst)
}
