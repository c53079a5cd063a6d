package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eddy-cdp/eddy/core/collector"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// sourceLeaseTTL bounds how long a source stays unrun after the worker
// running it died: one worker of the cluster runs each source
// installation, holding a lease it renews every third of this.
const sourceLeaseTTL = 15 * time.Second

// sourceLoop runs one source installation while this worker holds its
// lease: the plugin's batches are validated as the collector validates a
// batch and queued on the ingest queue, the same path as collected
// events, before the plugin is told to acknowledge them upstream.
type sourceLoop struct {
	r      *Runtime
	ru     *running
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *Runtime) startSource(ru *running) *sourceLoop {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sourceLoop{r: r, ru: ru, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
	return s
}

func (s *sourceLoop) stop() {
	s.cancel()
	<-s.done
}

// run takes the lease when it is free and runs the source while it holds
// it; a run that ends (plugin crashed, stream broken) starts again after a
// backoff.
func (s *sourceLoop) run(ctx context.Context) {
	lease := queue.NewLease(s.r.rdb, s.r.opts.Prefix+":plugin:source-lease:"+s.ru.in.ID, s.r.opts.Worker, sourceLeaseTTL)
	wait := s.r.opts.Sinks.withDefaults().MinBackoff
	for ctx.Err() == nil {
		if ok, err := lease.Acquire(ctx); err != nil || !ok {
			// Another worker runs it, or Redis is down: look again later.
			if !sleep(ctx, sourceLeaseTTL/3) {
				return
			}
			continue
		}
		err := s.runHeld(ctx, lease)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = lease.Release(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.ru.stats.fail(err)
			s.r.log.Warn("source run ended; starting again", "installation", s.ru.in.ID, "plugin_id", s.ru.in.PluginID, "wait", wait, "err", err)
		}
		if !sleep(ctx, jitter(wait)) {
			return
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// runHeld runs the source until ctx ends, the run ends or the lease is
// lost.
func (s *sourceLoop) runHeld(ctx context.Context, lease *queue.Lease) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(sourceLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if ok, err := lease.Renew(runCtx); err == nil && !ok {
				cancel(errors.New("source lease lost"))
				return
			}
		}
	}()
	ru := s.ru
	if ru.sup == nil {
		return errors.New("a source must be a gRPC plugin")
	}
	err := ru.sup.Do(runCtx, func(c *eddyplugin.Client) error {
		return c.RunSource(runCtx, ru.in.ID, s.queue)
	})
	if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil {
		return cause
	}
	return err
}

// queue validates and queues one batch; an error leaves it unacknowledged.
func (s *sourceLoop) queue(ctx context.Context, messages [][]byte) ([]eddyplugin.Rejection, error) {
	ru := s.ru
	start := time.Now()
	entries, problems := collector.Accept(messages, ru.in.WorkspaceID, ru.in.ID, time.Now(), s.r.opts.Collector)
	var rejected []eddyplugin.Rejection
	for _, p := range problems {
		rejected = append(rejected, eddyplugin.Rejection{MessageID: messageID(messages[p.Index], p.Index), Reason: p.Reason + ": " + p.Message})
	}
	err := s.r.opts.Ingest.Enqueue(ctx, entries)
	ru.stats.call(time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("queue %d events of %s: %w", len(entries), ru.in.PluginID, err)
	}
	ru.stats.events(int64(len(messages)), int64(len(entries)), int64(len(rejected)))
	return rejected, nil
}

// messageID names a refused message: its messageId if it has a readable
// one, else its position.
func messageID(raw []byte, i int) string {
	var m struct {
		MessageID string `json:"messageId"`
	}
	if err := json.Unmarshal(raw, &m); err == nil && m.MessageID != "" {
		return m.MessageID
	}
	return fmt.Sprintf("#%d", i)
}
