package plugins

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/actions"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/debugger"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// An app's action past the consent gate reaches its visitor's pages
// (actions.Since reads what a page that connects gets); an action naming
// no anonymous id, and other visitors, get nothing.
func TestAppActionsReachTheVisitorsPages(t *testing.T) {
	app := Installation{ID: "00000000-0000-4000-8000-0000000000e1", WorkspaceID: wsA, PluginID: "app.greeter", Enabled: true, UpdatedAt: time.Unix(1, 0)}
	var prefix string
	h := newHarnessWith(t, func(o *Options) { prefix = o.Prefix }, app)
	ctx := context.Background()
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{entry(wsA, "a1", "Signed Up"), entry(wsA, "a2", "Viewed")}), "enqueue")
	var got []actions.Action
	testenv.Eventually(t, defaultTestTimeout, "the welcome action in anon-a1's actions", func() bool {
		var err error
		got, err = actions.Since(ctx, h.rdb, prefix, wsA, "anon-a1", "")
		return err == nil && len(got) == 1
	})
	a := got[0]
	if a.Type != "welcome" || !strings.HasPrefix(a.MessageID, "act-") || !strings.Contains(string(a.Data), `"signed_up":"a1"`) || a.At.IsZero() {
		t.Errorf("action %+v", a)
	}
	time.Sleep(300 * time.Millisecond)
	if other, _ := actions.Since(ctx, h.rdb, prefix, wsA, "anon-a2", ""); len(other) != 0 {
		t.Errorf("another visitor got %+v", other)
	}
	if again, _ := actions.Since(ctx, h.rdb, prefix, wsA, "anon-a1", ""); len(again) != 1 {
		t.Errorf("anon-a1 has %d actions, want 1", len(again))
	}
}

// The consent gate tells the live debugger of a watched source why it
// refused an event.
func TestGateFeedsTheDebugger(t *testing.T) {
	var prefix string
	var rec *debugger.Recorder
	client, _ := testenv.Redis(t) // a client of the same server; the harness picks the prefix
	h := newHarnessWith(t, func(o *Options) {
		prefix = o.Prefix
		o.Policies = func(context.Context, string) (consent.Policy, error) { return consent.DefaultPolicy(), nil }
		rec = debugger.NewRecorder(client, o.Prefix, slog.New(slog.DiscardHandler))
		o.Debug = rec
	}, processorIn(wsA, 0))
	ctx := context.Background()
	src := entry(wsA, "x", "x").SourceID
	testenv.Must(t, debugger.Watch(ctx, h.rdb, prefix, wsA, src), "watch")
	testenv.Must(t, rec.Refresh(ctx), "refresh")
	testenv.Must(t, h.ingest.Enqueue(ctx, []event.Entry{
		entry(wsA, "none", "Viewed"),
		withConsent(entry(wsA, "withdrawn", "Viewed"), `{"analytics":false}`),
		withConsent(entry(wsA, "fine", "Viewed"), `{"analytics":true}`),
	}), "enqueue")
	h.stored(1)
	var got []debugger.Entry
	testenv.Eventually(t, defaultTestTimeout, "two refusals in the debugger", func() bool {
		got, _ = debugger.Read(ctx, h.rdb, prefix, wsA, src, "", 10)
		return len(got) == 2
	})
	for _, e := range got {
		if e.Stage != debugger.StageConsent || e.Outcome != debugger.Rejected || e.Event != "Viewed" {
			t.Errorf("entry %+v", e)
		}
	}
	if got[0].MessageID != "none" || !strings.Contains(got[0].Reason, "no consent") ||
		got[1].MessageID != "withdrawn" || !strings.Contains(got[1].Reason, "withdrawn") {
		t.Errorf("reasons: %q for %s, %q for %s", got[0].Reason, got[0].MessageID, got[1].Reason, got[1].MessageID)
	}
}
