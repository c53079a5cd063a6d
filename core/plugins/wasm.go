package plugins

import (
	"context"
	"fmt"

	"github.com/eddy-cdp/eddy/core/wasmhost"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
	"github.com/eddy-cdp/eddy/sdk/eddywasm"
)

// wasmProcess runs a WASM processor on events; it answers with one verdict
// per event, in order.
func wasmProcess(ctx context.Context, m *wasmhost.Module, in []eddyplugin.Event) ([]eddyplugin.Event, []eddyplugin.Rejection, error) {
	events := make([]eddywasm.Event, len(in))
	for i, e := range in {
		events[i] = eddywasm.Event{MessageID: e.MessageID, WorkspaceID: e.WorkspaceID, SourceID: e.SourceID, Type: e.Type,
			Timestamp: e.Timestamp, ReceivedAt: e.ReceivedAt, Payload: e.Payload, BatchContext: e.BatchContext, IP: e.IP}
	}
	results, err := m.Process(ctx, events)
	if err != nil {
		return nil, nil, err
	}
	if len(results) != len(in) {
		return nil, nil, fmt.Errorf("module answered %d results for %d events", len(results), len(in))
	}
	kept := make([]eddyplugin.Event, 0, len(in))
	var rejected []eddyplugin.Rejection
	for i, r := range results {
		switch r.Verdict {
		case eddywasm.Unchanged:
			kept = append(kept, in[i])
		case eddywasm.Changed:
			e := in[i]
			if r.Payload != nil {
				e.Payload = r.Payload
			}
			e.IP = r.IP
			kept = append(kept, e)
		case eddywasm.Rejected:
			rejected = append(rejected, eddyplugin.Rejection{MessageID: in[i].MessageID, Reason: r.Reason})
		case eddywasm.Dropped:
		default:
			return nil, nil, fmt.Errorf("module answered %s for event %s", r.Verdict, in[i].MessageID)
		}
	}
	return kept, rejected, nil
}
