// Package queue is Eddy's durable hand-off between the collector and the
// workers: a set of Redis Streams that the collector appends accepted
// entries to and that workers consume in consumer groups, at least once and
// in order per visitor.
//
// # Shards
//
// Entries are spread over a fixed number of shard streams
// (Prefix+":events:"+shard). An entry's shard is a stable hash of its
// workspace and shard key (the visitor), so all entries of one visitor land
// in one stream, in the order they were enqueued. Enqueue writes a whole
// batch in one pipelined round trip and succeeds only when Redis has
// acknowledged every XADD; a failure that means Redis cannot be reached or
// cannot take writes wraps ErrUnavailable, so the collector can answer 503
// and the client retries. A retried batch may duplicate entries that were
// written before the failure: consumers must be idempotent (the store keys
// events by message id). Changing Shards re-maps visitors to shards, so the
// per-visitor order only holds for entries enqueued under one setting.
//
// # Consumer groups and shard leases
//
// Each role that reads the queue (for example "store") is a consumer group
// created at id 0 on every shard (EnsureGroup), so entries enqueued before
// any worker existed are delivered. Within a group, every shard has at most
// one owner at a time: a lease key (Prefix+":lease:"+group+":"+shard) set
// with SET NX PX, renewed by a compare-and-pexpire script and released with
// a compare-and-delete script on clean exit. Live consumers register in a
// sorted set (Prefix+":consumers:"+group) whose scores are heartbeat
// expiries, computed from the Redis clock; each consumer aims for
// ceil(shards/live) leases, releases surplus ones after finishing its current
// batch and picks up free ones, so shards rebalance when consumers join,
// leave or die (a dead consumer's leases and registration expire after
// LeaseTTL).
//
// A consumer runs one goroutine per owned shard. On acquiring a shard it
// first claims every entry still pending in the group (XAUTOCLAIM with
// min-idle 0: the lease proves the previous owner is gone) and processes its
// pending entries in id order, then reads new entries with XREADGROUP ">".
// When the handler fails nothing is acknowledged; after a backoff the same
// pending entries are read again (XREADGROUP id "0") before anything new,
// so a failing batch is never skipped and the order per visitor holds.
//
// # Dead letters
//
// A handler can reject individual messages (for example an entry that
// cannot be decoded or violates the schema). They are appended to the
// group's dead-letter stream (Prefix+":dlq:"+group) together with their
// shard, original id, reason, time and delivery count, in the same
// MULTI/EXEC as the XACK of the batch. DeadLetters lists them and Replay
// moves them back onto their shard stream (MULTI: XADD + XDEL). A replayed
// entry is appended at the end of its shard, and every group reading that
// shard sees it again.
//
// # Trimming
//
// XADD never trims. Trim removes, per shard, the entries that every group
// has acknowledged: the safe point is the minimum over all groups of the
// oldest pending id, or of the id after the last delivered one when nothing
// is pending; it runs as one Lua script per shard (XINFO GROUPS, XPENDING,
// XTRIM MINID), so it is atomic against consumers. A stream without any
// group is never trimmed.
//
// # Progress of a group
//
// Mark and Passed tell when a group is done with what was appended up to a
// point (a person's deletion waits so for the person's events in flight):
// Mark returns a stream id above every entry appended so far, and Passed
// reports whether, on every shard, the group has no entry below it left
// undelivered (after its last-delivered-id) or pending, checked per shard
// by one atomic script. A stream or group that does not exist has passed.
//
// # Metrics
//
// With Options.Registerer set, the queue registers a collector that reads
// Redis at scrape time (bounded by 2s): eddy_queue_length{shard},
// eddy_queue_pending{shard,group}, eddy_queue_lag{shard,group} (absent when
// Redis cannot tell), eddy_queue_dead_letters{group} and eddy_queue_up; and
// metrics updated inline: eddy_queue_enqueue_seconds, eddy_queue_enqueued_total,
// eddy_queue_acked_total{group}, eddy_queue_dead_lettered_total{group},
// eddy_queue_redelivered_total{group} and eddy_queue_shards_owned{group}.
//
// # Durability
//
// The queue is as durable as the Redis server's persistence: with
// appendonly yes and appendfsync everysec (Eddy's recommended setting) a
// machine crash can lose about the last second of acknowledged writes, a
// Redis process crash alone loses nothing; appendfsync always closes that
// window at a large cost in throughput.
//
// # Redis Cluster
//
// Enqueue, consumption, leases and Trim only touch one key per command and
// work with any redis.UniversalClient. Dead-lettering and Replay use
// MULTI/EXEC across a shard stream and the dead-letter stream, which Redis
// Cluster refuses unless both keys hash to one slot; the key layout is
// meant for a single Redis server (with replicas).
package queue
