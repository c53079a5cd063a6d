package plugins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// ProcessGroup is the consumer group of the ingest queue that runs the
// processors.
const ProcessGroup = "process"

// processAttempts is how often a failing processor call is tried, with
// processBackoff doubling between tries, before its events are
// dead-lettered (`eddy dlq replay --group process` brings them back).
const (
	processAttempts = 3
	processBackoff  = 200 * time.Millisecond
)

// Process is the handler of the process group: it runs each workspace's
// processors on the batch's events, in order, and forwards what they keep
// to the events queue, atomically with the batch's acknowledgement.
// Events a processor rejects, and events of a processor that keeps
// failing, are dead-lettered with the reason; events a processor drops
// are acknowledged and counted. Workspaces without processors pass
// straight through. A processor can change an event's payload, batch
// context and IP, never its workspace, id, type or times, nor add events.
func (r *Runtime) Process(ctx context.Context, b queue.Batch) ([]queue.DeadLetter, error) {
	chains := r.chains.Load()
	var dead []queue.DeadLetter
	var adm *admission
	if r.policies != nil {
		var err error
		if adm, err = r.prepare(ctx, b.Messages); err != nil {
			return nil, err
		}
	}
	// Messages grouped by workspace, each group in stream order.
	groups := map[string][]queue.Message{}
	var order []string
	for i := range b.Messages {
		m := &b.Messages[i]
		if m.Err != nil {
			dead = append(dead, queue.DeadLetter{Message: *m, Reason: "undecodable queue entry: " + m.Err.Error()})
			continue
		}
		if adm != nil {
			// Consent first: an event its visitor did not allow goes no
			// further (it is acknowledged and counted), and the rest is
			// minimised before any processor or store sees it.
			ok, reason, err := adm.admit(ctx, &m.Entry)
			if err != nil {
				return nil, fmt.Errorf("consent policy of workspace %s: %w", m.Entry.WorkspaceID, err)
			}
			if !ok {
				if r.opts.Debug.Watching(m.Entry.WorkspaceID, m.Entry.SourceID) {
					d := debugger.Entry{Stage: debugger.StageConsent, Outcome: debugger.Rejected,
						Reason: consent.Explain(reason), MessageID: m.Entry.MessageID, Type: m.Entry.Type}
					d.Describe(m.Entry.Payload)
					r.opts.Debug.Record(ctx, m.Entry.WorkspaceID, m.Entry.SourceID, d)
				}
				continue
			}
		}
		ws := m.Entry.WorkspaceID
		if len(chains[ws]) == 0 {
			b.Forward(r.events, *m, m.Entry)
			continue
		}
		if _, ok := groups[ws]; !ok {
			order = append(order, ws)
		}
		groups[ws] = append(groups[ws], *m)
	}
	for _, ws := range order {
		d, err := r.processWorkspace(ctx, &b, chains[ws], groups[ws])
		if err != nil {
			return nil, err
		}
		dead = append(dead, d...)
	}
	if adm != nil {
		if err := adm.record(ctx); err != nil {
			return nil, fmt.Errorf("record consent updates: %w", err)
		}
	}
	return dead, nil
}

// processWorkspace runs one workspace's chain over its messages. It
// returns an error only when ctx ends (the batch is delivered again).
func (r *Runtime) processWorkspace(ctx context.Context, b *queue.Batch, chain []*running, msgs []queue.Message) ([]queue.DeadLetter, error) {
	byID := make(map[string]int, len(msgs))
	cur := make([]eddyplugin.Event, len(msgs))
	// Each event's consent as its visitor sent it, read once: what every
	// processor is checked against, and what none may change.
	consents := make([]visitorConsent, len(msgs))
	for i, m := range msgs {
		byID[m.Entry.MessageID] = i
		cur[i] = toPluginEvent(&m.Entry)
		consents[i].prefs, consents[i].present = consentOf(m.Entry.Payload, m.Entry.Context)
	}
	g, err := r.gateFor(ctx, msgs[0].Entry.WorkspaceID)
	if err != nil {
		return nil, err
	}
	var dead []queue.DeadLetter
	for _, ru := range chain {
		// The events this processor may see (its event types, and the
		// consent its purposes need); the others pass it by.
		var in, by []eddyplugin.Event
		for _, e := range cur {
			c := consents[byID[e.MessageID]]
			if ru.receives(e.Type) && g.allows(ru, c.prefs, c.present) {
				in = append(in, e)
			} else {
				by = append(by, e)
			}
		}
		if len(in) == 0 {
			continue
		}
		kept, rejected, err := r.callProcessor(ctx, ru, in)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			for _, e := range in {
				dead = append(dead, queue.DeadLetter{Message: msgs[byID[e.MessageID]],
					Reason: fmt.Sprintf("processor %s failed %d times: %v", ru.in.PluginID, processAttempts, err)})
			}
			cur = by
			continue
		}
		sent := make(map[string]bool, len(in))
		for _, e := range in {
			sent[e.MessageID] = true
		}
		for _, rj := range rejected {
			if i, ok := byID[rj.MessageID]; ok && sent[rj.MessageID] {
				delete(sent, rj.MessageID) // one verdict per event
				dead = append(dead, queue.DeadLetter{Message: msgs[i], Reason: fmt.Sprintf("rejected by processor %s: %s", ru.in.PluginID, rj.Reason)})
			}
		}
		next := by
		changedConsent := 0
		for _, e := range kept {
			if !sent[e.MessageID] {
				// Not an event it was given (or given twice): a processor
				// cannot add events.
				ru.stats.fail(fmt.Errorf("processor returned unknown or repeated event %q", e.MessageID))
				continue
			}
			delete(sent, e.MessageID)
			i := byID[e.MessageID]
			if prefs, present := consentOf(e.Payload, e.BatchContext); present != consents[i].present || !maps.Equal(prefs, consents[i].prefs) {
				// A plugin cannot grant itself, or the plugins after it,
				// what the visitor did not.
				dead = append(dead, queue.DeadLetter{Message: msgs[i], Reason: fmt.Sprintf("processor %s changed the event's consent", ru.in.PluginID)})
				changedConsent++
				continue
			}
			orig := msgs[i].Entry
			next = append(next, keepIdentity(e, &orig))
		}
		ru.stats.events(int64(len(in)), int64(len(kept)-changedConsent), int64(len(rejected)+changedConsent))
		cur = next
	}
	// Forward in stream order (events a processor did not receive were
	// set aside): a reader sees a visitor's events in the order they came.
	slices.SortFunc(cur, func(a, b eddyplugin.Event) int { return byID[a.MessageID] - byID[b.MessageID] })
	for _, e := range cur {
		m := msgs[byID[e.MessageID]]
		out := m.Entry
		out.Payload, out.Context, out.IP = e.Payload, e.BatchContext, e.IP
		b.Forward(r.events, m, out)
	}
	return dead, nil
}

// callProcessor calls a processor, retrying a failed call with backoff.
func (r *Runtime) callProcessor(ctx context.Context, ru *running, in []eddyplugin.Event) (kept []eddyplugin.Event, rejected []eddyplugin.Rejection, err error) {
	wait := processBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		kept, rejected, err = ru.process(ctx, in)
		ru.stats.call(time.Since(start), err)
		if err == nil || attempt == processAttempts || ctx.Err() != nil {
			return kept, rejected, err
		}
		r.log.Warn("processor call failed; retrying", "installation", ru.in.ID, "plugin_id", ru.in.PluginID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// process runs the installation's processor once.
func (ru *running) process(ctx context.Context, in []eddyplugin.Event) (kept []eddyplugin.Event, rejected []eddyplugin.Rejection, err error) {
	switch {
	case ru.initErr != nil:
		return nil, nil, fmt.Errorf("%w: %v", errNotStarted, ru.initErr)
	case ru.sup != nil:
		err = ru.sup.Do(ctx, func(c *eddyplugin.Client) error {
			var cerr error
			kept, rejected, cerr = c.Process(ctx, ru.in.ID, in)
			return cerr
		})
		return kept, rejected, err
	case ru.module != nil:
		return wasmProcess(ctx, ru.module, in)
	}
	return nil, nil, errors.New("installation has no runtime")
}

// keepIdentity takes from a processed event only what a processor may
// change: payload, batch context and IP.
func keepIdentity(e eddyplugin.Event, orig *event.Entry) eddyplugin.Event {
	out := toPluginEvent(orig)
	out.Payload, out.BatchContext, out.IP = e.Payload, e.BatchContext, e.IP
	return out
}

func toPluginEvent(e *event.Entry) eddyplugin.Event {
	return eddyplugin.Event{
		MessageID: e.MessageID, WorkspaceID: e.WorkspaceID, SourceID: e.SourceID, Type: e.Type,
		Timestamp: e.Timestamp, ReceivedAt: e.ReceivedAt, Payload: e.Payload, BatchContext: e.Context, IP: e.IP,
	}
}
