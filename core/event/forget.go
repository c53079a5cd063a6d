package event

// TypeForget is the Type of a forget entry: a control entry that a
// deletion job appends to the events queue, one per identifier of the
// deleted person, with that identifier as its ShardKey. It follows every
// event of that visitor already in the same shard, so each consumer of
// the queue meets it after them: the session engine drops the visitor's
// in-memory state and checkpoint without writing its open sessions,
// storage acknowledges it and stores nothing, and the route group hands
// it to the sinks that declare deletion support. The job deletes the
// person's stored rows once storage and the session engine have passed
// it (queue.Passed). The collector never accepts
// this type from a client (it is not a Segment call type).
const TypeForget = "eddy.forget"

// Forget is the payload of a forget entry (JSON). Identities must never
// be logged.
type Forget struct {
	// JobID is the deletion job that asked for it.
	JobID string `json:"job_id"`
	// Identities are every identifier of the person: kind (anonymous_id,
	// user_id, email) and value.
	Identities []ForgetIdentity `json:"identities"`
}

// ForgetIdentity is one identifier of a person being forgotten.
type ForgetIdentity struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}
