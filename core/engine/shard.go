package engine

import (
	"container/heap"
	"sync/atomic"
	"time"

	"github.com/eddy-cdp/eddy/core/session"
	"github.com/eddy-cdp/eddy/core/store"
)

// shard is the state of one owned shard. Only the shard's goroutine (the
// queue's batches, ticks and hooks of that shard) touches it, apart from
// the counters.
type shard struct {
	id    int
	epoch int64
	// last is the last entry whose effects are committed.
	last entryID
	// broken is set while the visitors are ahead of storage: from the
	// first change of a batch or tick until its commit.
	broken bool

	byKey   map[vkey]*visitor
	queue   dueQueue
	dirty   map[*visitor]struct{}
	dropped []store.VisitorKey

	visitors, open atomic.Int64
}

type vkey struct{ ws, anon string }

// visitor is a device's sessions and its place in the shard's close queue.
type visitor struct {
	v *session.Visitor
	// due is when the visitor next needs the tick (UnixNano): its next
	// session close, or, without open sessions, when it is dropped.
	due int64
	idx int
}

func newShard(id int, epoch int64, last entryID) *shard {
	return &shard{id: id, epoch: epoch, last: last, byKey: make(map[vkey]*visitor), dirty: make(map[*visitor]struct{})}
}

// add inserts a restored visitor.
func (sh *shard) add(v *session.Visitor, now time.Time) *visitor {
	vis := &visitor{v: v}
	sh.byKey[vkey{v.Workspace().ID(), v.AnonymousID()}] = vis
	vis.due = dueOf(v, now)
	heap.Push(&sh.queue, vis)
	sh.visitors.Add(1)
	liveVisitors.Inc()
	n := int64(v.Len())
	sh.open.Add(n)
	liveSessions.Add(float64(n))
	return vis
}

// dueOf is when a visitor needs the tick: its next close, or, when it has
// no open session, after the grace period for late events has passed
// again (until then it refuses events of its closed sessions as too late;
// afterwards such an event would start a session of its own).
func dueOf(v *session.Visitor, now time.Time) int64 {
	if t, ok := v.NextClose(); ok {
		return t.UnixNano()
	}
	return now.Add(v.Workspace().Rules().Grace).UnixNano()
}

// visitor returns the visitor of anonymousID in w, created if new.
func (sh *shard) visitor(w *session.Workspace, anonymousID string, now time.Time) *visitor {
	if vis, ok := sh.byKey[vkey{w.ID(), anonymousID}]; ok {
		return vis
	}
	return sh.add(w.NewVisitor(anonymousID), now)
}

// touch records that vis changed, with before open sessions before.
func (sh *shard) touch(vis *visitor, before int, now time.Time) {
	sh.dirty[vis] = struct{}{}
	after := vis.v.Len()
	if d := int64(after - before); d != 0 {
		sh.open.Add(d)
		liveSessions.Add(float64(d))
	}
	if after > 0 || before > 0 {
		// Open sessions, or just idle: otherwise an idle visitor keeps
		// the drop time it has.
		vis.due = dueOf(vis.v, now)
		heap.Fix(&sh.queue, vis.idx)
	}
}

// drop forgets the visitor of anonymousID in workspace ws, known or not,
// without closing its sessions: the next commit deletes its checkpoint
// row and writes nothing of it.
func (sh *shard) drop(ws, anonymousID string) {
	k := vkey{ws, anonymousID}
	sh.dropped = append(sh.dropped, store.VisitorKey{WorkspaceID: ws, AnonymousID: anonymousID})
	vis, ok := sh.byKey[k]
	if !ok {
		return
	}
	heap.Remove(&sh.queue, vis.idx)
	delete(sh.byKey, k)
	delete(sh.dirty, vis)
	n := int64(vis.v.Len())
	sh.open.Add(-n)
	liveSessions.Sub(float64(n))
	sh.visitors.Add(-1)
	liveVisitors.Dec()
}

// due reports whether a visitor needs the tick at now.
func (sh *shard) due(now time.Time) bool {
	return sh.queue.Len() > 0 && sh.queue[0].due <= now.UnixNano()
}

// closeDue closes the sessions due at now and drops the visitors idle
// long enough, appending the Closed changes to out.
func (sh *shard) closeDue(now time.Time, out []session.Change) []session.Change {
	t := now.UnixNano()
	for sh.queue.Len() > 0 && sh.queue[0].due <= t {
		vis := sh.queue[0]
		if before := vis.v.Len(); before > 0 {
			out = vis.v.Close(now, out)
			sh.touch(vis, before, now)
			if vis.due <= t { // cannot happen: Close closes what NextClose said
				vis.due = t + int64(time.Second)
				heap.Fix(&sh.queue, vis.idx)
			}
			continue
		}
		heap.Pop(&sh.queue)
		k := vkey{vis.v.Workspace().ID(), vis.v.AnonymousID()}
		delete(sh.byKey, k)
		delete(sh.dirty, vis)
		sh.dropped = append(sh.dropped, store.VisitorKey{WorkspaceID: k.ws, AnonymousID: k.anon})
		sh.visitors.Add(-1)
		liveVisitors.Dec()
	}
	return out
}

// checkpoint encodes the visitors changed since the last commit.
func (sh *shard) checkpoint() (put []store.VisitorState, del []store.VisitorKey, size int, err error) {
	put = make([]store.VisitorState, 0, len(sh.dirty))
	for vis := range sh.dirty {
		b, err := vis.v.AppendBinary(nil)
		if err != nil {
			return nil, nil, 0, err
		}
		size += len(b)
		put = append(put, store.VisitorState{WorkspaceID: vis.v.Workspace().ID(), AnonymousID: vis.v.AnonymousID(), State: b})
	}
	return put, sh.dropped, size, nil
}

// committed records a successful commit of the entries up to last.
func (sh *shard) committed(last entryID) {
	sh.last = last
	clear(sh.dirty)
	sh.dropped = nil
	sh.broken = false
}

// forget takes a shard's counts out of the gauges when it is let go.
func (sh *shard) forget() {
	liveSessions.Sub(float64(sh.open.Swap(0)))
	liveVisitors.Sub(float64(sh.visitors.Swap(0)))
}

// dueQueue is a min-heap of visitors by due.
type dueQueue []*visitor

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due < q[j].due }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].idx, q[j].idx = i, j
}
func (q *dueQueue) Push(x any) {
	v := x.(*visitor)
	v.idx = len(*q)
	*q = append(*q, v)
}
func (q *dueQueue) Pop() any {
	old := *q
	v := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	v.idx = -1
	return v
}
