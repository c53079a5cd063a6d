package queue

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/event"
)

// forwards are the entries a handler forwarded for its batch.
type forwards struct {
	outs []forward
}

type forward struct {
	from  string // id of the message the entry comes from
	to    *Queue
	entry event.Entry
}

// Forward appends e to queue to (shard to.ShardOf(e.WorkspaceID,
// e.ShardKey)) when the batch is acknowledged, in the same atomic step:
// either the message m is acknowledged and its forwarded entries are
// appended, or neither happens. An entry forwarded for a message that
// another consumer of the group acknowledged first (after a takeover) is
// not appended, so forwarding never duplicates. A message may forward any
// number of entries, to any queues of the same Redis; entries of one shard
// keep their order. Forwarded entries are dropped if the handler fails.
//
// Call Forward only from the handler of the batch.
func (b *Batch) Forward(to *Queue, m Message, e event.Entry) {
	if b.fwd == nil {
		b.fwd = &forwards{}
	}
	b.fwd.outs = append(b.fwd.outs, forward{from: m.ID, to: to, entry: e})
}

// forwardScript acknowledges a batch entry by entry, and for each entry
// the group had pending (XACK returns 1) appends its forwarded entries or
// its dead letter. KEYS[1] is the shard stream, KEYS[2] the dead-letter
// stream, KEYS[3..] the streams forwarded to. ARGV[1] is the group, then
// per message: id, mode (a: ack, f: forward, d: dead-letter), n, and for f
// n times (key index, fieldsPerEntry pairs), for d n field values.
var forwardScript = redis.NewScript(`
local group = ARGV[1]
local i, acked, added = 2, 0, 0
local width = ` + strconv.Itoa(2*fieldsPerEntry) + `
while i <= #ARGV do
  local id, mode, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local ok = redis.call('XACK', KEYS[1], group, id)
  acked = acked + ok
  if mode == 'f' then
    for _ = 1, n do
      if ok == 1 then
        redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', unpack(ARGV, i + 1, i + width))
        added = added + 1
      end
      i = i + 1 + width
    end
  elseif mode == 'd' then
    if ok == 1 then
      redis.call('XADD', KEYS[2], '*', unpack(ARGV, i, i + n - 1))
    end
    i = i + n
  end
end
return {acked, added}`)

// ackForward acknowledges a batch whose handler forwarded entries, with
// its dead letters, in one script run.
func (c *consumer) ackForward(ctx context.Context, shard int, ids []string, fwd *forwards, dead []DeadLetter, raw map[string]map[string]any, attempts map[string]int64) (acked, added int64, err error) {
	stream, group := c.q.streams[shard], c.opts.Group
	keys := []string{stream, c.q.deadLetterKey(group)}
	keyIndex := map[string]int{}
	byMsg := make(map[string][]int, len(ids))
	for i, o := range fwd.outs {
		byMsg[o.from] = append(byMsg[o.from], i)
	}
	deadOf := make(map[string]string, len(dead))
	for _, d := range dead {
		deadOf[d.Message.ID] = d.Reason
	}
	now := time.Now()
	args := make([]any, 0, 1+3*len(ids)+len(fwd.outs)*(1+2*fieldsPerEntry))
	args = append(args, group)
	cmd := make([]any, xaddArgs)
	times := make([]int64, timesPerEntry*len(fwd.outs))
	for _, id := range ids {
		if reason, ok := deadOf[id]; ok {
			fields := deadLetterFields(shard, id, reason, attempts[id], now, raw[id])
			args = append(args, id, "d", len(fields))
			args = append(args, fields...)
			continue
		}
		outs := byMsg[id]
		if len(outs) == 0 {
			args = append(args, id, "a", 0)
			continue
		}
		args = append(args, id, "f", len(outs))
		for _, i := range outs {
			o := &fwd.outs[i]
			key := o.to.streams[o.to.ShardOf(o.entry.WorkspaceID, o.entry.ShardKey)]
			k, ok := keyIndex[key]
			if !ok {
				keys = append(keys, key)
				k = len(keys)
				keyIndex[key] = k
			}
			putXAdd(cmd, times[i*timesPerEntry:(i+1)*timesPerEntry], nil, &o.entry)
			args = append(args, k)
			args = append(args, cmd[3:]...)
		}
	}
	res, err := forwardScript.Run(ctx, c.q.rdb, keys, args...).Int64Slice()
	if err != nil {
		return 0, 0, wrapErr(err, "forward %d entries and ack %d of %s", len(fwd.outs), len(ids), stream)
	}
	return res[0], res[1], nil
}
