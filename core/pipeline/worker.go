// Package pipeline is the worker role: it takes batches from the queue's
// shard streams and commits them to PostgreSQL, acknowledging a batch only
// once it is committed.
//
// Failures are told apart by what retrying can achieve. When the database is
// unreachable the whole batch stays pending and is retried with backoff for
// as long as it takes: nothing is lost, and the idempotent store makes the
// retry harmless. When the database refuses the rows themselves (a value it
// cannot hold), the batch is split to find the offending messages, which are
// retried a bounded number of times and then moved, with the error, to the
// dead-letter stream where `eddy dlq` can list and replay them. Nothing is
// dropped silently.
package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
)

// Group is the consumer group of the storage worker.
const Group = "store"

// Writer commits rows; *store.Store is one.
type Writer interface {
	InsertEvents(ctx context.Context, events []store.Event) (int64, error)
}

// Options tunes a Worker.
type Options struct {
	// BatchSize is the most entries read from one shard at once.
	BatchSize int
	// MaxAttempts is how often a row the database refuses is tried before it
	// is dead-lettered.
	MaxAttempts int
	// TrimInterval is how often acknowledged entries are trimmed.
	TrimInterval time.Duration
	// LeaseTTL bounds how long a dead worker's shards stay unowned.
	LeaseTTL time.Duration
	// MaxBackoff is the longest wait between retries of a failing batch.
	MaxBackoff time.Duration
	// Consumer names this worker in its consumer group (default: generated).
	Consumer string
	Logger   *slog.Logger
}

// Worker moves events from the queue to the store.
type Worker struct {
	q    *queue.Queue
	w    Writer
	opts Options
	log  *slog.Logger
}

// New returns a worker reading q and writing to w.
func New(q *queue.Queue, w Writer, opts Options) *Worker {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.TrimInterval <= 0 {
		opts.TrimInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Worker{q: q, w: w, opts: opts, log: opts.Logger}
}

// Run consumes until ctx ends, trimming acknowledged entries as it goes.
func (wk *Worker) Run(ctx context.Context) error {
	if err := wk.q.EnsureGroup(ctx, Group); err != nil {
		// Redis is down at start: the consumer creates the group on each
		// shard when it reads one without it, so wait for Redis there.
		wk.log.Warn("worker: create the consumer group; retried when Redis is back", "err", err)
	}
	trimDone := make(chan struct{})
	go func() {
		defer close(trimDone)
		wk.trimLoop(ctx)
	}()
	err := wk.q.Consume(ctx, queue.ConsumerOptions{
		Group:      Group,
		Consumer:   wk.opts.Consumer,
		BatchSize:  wk.opts.BatchSize,
		LeaseTTL:   wk.opts.LeaseTTL,
		MaxBackoff: wk.opts.MaxBackoff,
		Logger:     wk.log,
	}, wk.Handle)
	<-trimDone
	return err
}

func (wk *Worker) trimLoop(ctx context.Context) {
	t := time.NewTicker(wk.opts.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := wk.q.Trim(tctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			wk.log.Warn("trim streams", "err", err)
		case n > 0:
			wk.log.Debug("trimmed acknowledged entries", "entries", n)
		}
	}
}

// Handle stores one batch. It returns an error, leaving the whole batch
// pending, when the database is unavailable; otherwise it returns the
// messages to dead-letter, and the queue acknowledges the rest. Forget
// entries (event.TypeForget) store nothing and are acknowledged.
func (wk *Worker) Handle(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
	var dead []queue.DeadLetter
	rows := make([]store.Event, 0, len(b.Messages))
	msgs := make([]queue.Message, 0, len(b.Messages))
	for _, m := range b.Messages {
		if m.Err != nil {
			dead = append(dead, queue.DeadLetter{Message: m, Reason: "undecodable queue entry: " + m.Err.Error()})
			continue
		}
		if m.Entry.Type == event.TypeForget {
			// A deletion job's control entry: nothing to store. The job
			// deletes the person's rows once this group has passed it.
			continue
		}
		row, err := Row(m.Entry)
		if err != nil {
			dead = append(dead, queue.DeadLetter{Message: m, Reason: err.Error()})
			continue
		}
		rows = append(rows, row)
		msgs = append(msgs, m)
	}
	batchSize.Observe(float64(len(rows)))
	if len(rows) == 0 {
		return dead, nil
	}
	err := wk.insert(ctx, rows)
	if err == nil {
		observeStored(rows)
		return dead, nil
	}
	if !store.IsDataError(err) {
		storeErrors.WithLabelValues("unavailable").Inc()
		return nil, fmt.Errorf("store batch of %d from shard %d: %w", len(rows), b.Shard, err)
	}
	storeErrors.WithLabelValues("rejected").Inc()
	wk.log.Warn("database refused a batch; isolating the rows at fault", "shard", b.Shard, "rows", len(rows), "err", err)
	more, err := wk.isolate(ctx, rows, msgs)
	if err != nil {
		return nil, err
	}
	// The queue counts dead letters (eddy_queue_dead_lettered_total).
	return append(dead, more...), nil
}

// isolate stores rows one by one; a row the database keeps refusing after
// MaxAttempts tries is returned as a dead letter. An availability error
// aborts, leaving the batch to be retried whole (already stored rows are
// deduplicated then).
func (wk *Worker) isolate(ctx context.Context, rows []store.Event, msgs []queue.Message) ([]queue.DeadLetter, error) {
	var dead []queue.DeadLetter
	for i := range rows {
		var err error
		for attempt := 1; attempt <= wk.opts.MaxAttempts; attempt++ {
			if err = wk.insert(ctx, rows[i:i+1]); err == nil || !store.IsDataError(err) {
				break
			}
		}
		switch {
		case err == nil:
			observeStored(rows[i : i+1])
		case store.IsDataError(err):
			wk.log.Error("dead-lettering a message the database refuses", "message_id", rows[i].MessageID,
				"workspace_id", rows[i].WorkspaceID, "attempts", wk.opts.MaxAttempts, "err", err)
			dead = append(dead, queue.DeadLetter{Message: msgs[i], Reason: fmt.Sprintf("refused by the database after %d attempts: %v", wk.opts.MaxAttempts, err)})
		default:
			return nil, fmt.Errorf("store message %s: %w", rows[i].MessageID, err)
		}
	}
	return dead, nil
}

func (wk *Worker) insert(ctx context.Context, rows []store.Event) error {
	start := time.Now()
	n, err := wk.w.InsertEvents(ctx, rows)
	storeSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		storedTotal.Add(float64(n))
		duplicatesTotal.Add(float64(int64(len(rows)) - n))
	}
	return err
}

func observeStored(rows []store.Event) {
	now := time.Now()
	for i := range rows {
		endToEnd.Observe(now.Sub(rows[i].ReceivedAt).Seconds())
	}
}

// Row turns a queue entry into the row stored for it. An error means the
// entry can never be stored as it is.
func Row(e event.Entry) (store.Event, error) {
	var m event.Message
	if err := event.Decode(e.Payload, &m); err != nil {
		return store.Event{}, fmt.Errorf("decode payload: %w", err)
	}
	row := store.Event{
		WorkspaceID:  e.WorkspaceID,
		SourceID:     e.SourceID,
		MessageID:    e.MessageID,
		Type:         e.Type,
		Event:        m.Event,
		Name:         m.Name,
		AnonymousID:  string(m.AnonymousID),
		UserID:       string(m.UserID),
		GroupID:      string(m.GroupID),
		PreviousID:   string(m.PreviousID),
		Timestamp:    e.Timestamp,
		ReceivedAt:   e.ReceivedAt,
		SentAt:       e.SentAt,
		Properties:   object(m.Properties),
		Traits:       object(m.Traits),
		Integrations: object(m.Integrations),
	}
	// The client's own claim of when the event happened.
	for _, s := range []string{m.OriginalTimestamp, m.Timestamp} {
		if t, err := event.ParseTime(s); s != "" && err == nil {
			row.OriginalTimestamp = t
			break
		}
	}
	ctx, err := mergeContext(e.Context, object(m.Context))
	if err != nil {
		return store.Event{}, err
	}
	row.Context = ctx
	row.IP = clientIP(ctx, e.IP)
	return row, nil
}

func object(raw json.RawMessage) []byte {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// mergeContext lays the message's context over the batch's: the message's
// keys win.
func mergeContext(batch, msg []byte) ([]byte, error) {
	switch {
	case batch == nil:
		return msg, nil
	case msg == nil:
		return batch, nil
	}
	var b, m map[string]json.RawMessage
	if err := json.Unmarshal(batch, &b); err != nil {
		return nil, fmt.Errorf("decode batch context: %w", err)
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, fmt.Errorf("decode context: %w", err)
	}
	for k, v := range m {
		b[k] = v
	}
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode context: %w", err)
	}
	return out, nil
}

// clientIP is context.ip when the client set a valid one (server-side SDKs
// forward their user's address there), else the address the collector saw.
func clientIP(ctx []byte, seen string) string {
	if ctx != nil && bytes.Contains(ctx, []byte(`"ip"`)) {
		var c struct {
			IP string `json:"ip"`
		}
		if event.Decode(ctx, &c) == nil && c.IP != "" {
			if a, err := netip.ParseAddr(c.IP); err == nil {
				return a.String()
			}
		}
	}
	if a, err := netip.ParseAddr(seen); err == nil {
		return a.String()
	}
	return ""
}
