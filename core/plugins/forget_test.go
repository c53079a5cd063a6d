package plugins

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/event"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/internal/testenv"
	"github.com/eddy-cdp/eddy/sdk/plugintest"
)

// The test plugins of deletion, built once: the recording sink (it
// declares deletion and takes track events only) and the null sink.
var (
	deletionOnce        sync.Once
	recorderM, nullM    *plugin.Manifest
	forgetJob           = "job-0001"
	personAnon, personU = "anon-person", "user-person"
)

func deletionManifests(t *testing.T) {
	t.Helper()
	manifests(t)
	deletionOnce.Do(func() {
		bt := &keepTB{TB: t}
		recorderM = plugintest.Build(bt, "testdata/recorder")
		nullM = plugintest.Build(bt, "testdata/nullsink")
	})
	if recorderM == nil || nullM == nil {
		t.Fatal("building the deletion test plugins failed in an earlier test")
	}
}

// deletionPlugin is the harness's catalog of the deletion tests' plugins.
func deletionPlugin(id string) (Plugin, bool) {
	if recorderM == nil {
		return Plugin{}, false
	}
	with := func(base *plugin.Manifest, change func(*plugin.Manifest)) (Plugin, bool) {
		m := *base
		m.ID = id
		change(&m)
		return Plugin{Manifest: &m}, true
	}
	switch id {
	case recorderM.ID:
		return Plugin{Manifest: recorderM}, true
	case "sink.recorder_plain":
		// The same binary without deletion, taking every event.
		return with(recorderM, func(m *plugin.Manifest) { m.Deletion, m.Permissions.Events = false, []string{"*"} })
	case "sink.null_deleting":
		// Declares deletion but implements no Delete.
		return with(nullM, func(m *plugin.Manifest) { m.Deletion = true })
	case "app.greeter_all":
		// An app that takes every event type.
		return with(greeterM, func(m *plugin.Manifest) { m.Permissions.Events = []string{"*"} })
	}
	return Plugin{}, false
}

func recorderIn(id, pluginID, file string, failDeletes int) Installation {
	cfg, _ := json.Marshal(map[string]any{"file": file, "fail_deletes": failDeletes})
	return Installation{ID: id, WorkspaceID: wsA, PluginID: pluginID, Enabled: true, Config: cfg, UpdatedAt: time.Unix(1, 0)}
}

// personEvent is an event of the deleted person (or of someone else,
// with another anonymous id), consented to everything.
func personEvent(id, anon string) event.Entry {
	e := withConsent(entry(wsA, id, "Viewed"), `{"analytics":true,"marketing":true}`)
	e.ShardKey = anon
	e.Payload = []byte(strings.Replace(string(e.Payload), `"anonymousId":"anon-`+id+`"`, `"anonymousId":"`+anon+`"`, 1))
	return e
}

// forgetEntry is a deletion job's forget entry for one of the person's
// identifiers, as the job appends it to the events queue.
func forgetEntry(kind, value string) event.Entry {
	payload, _ := json.Marshal(event.Forget{JobID: forgetJob, Identities: []event.ForgetIdentity{
		{Kind: "anonymous_id", Value: personAnon}, {Kind: "user_id", Value: personU}}})
	return event.Entry{WorkspaceID: wsA, MessageID: "forget-" + forgetJob + "-" + kind, Type: event.TypeForget, ShardKey: value,
		ReceivedAt: time.Now().UTC(), Timestamp: time.Now().UTC(), Payload: payload}
}

const wantDeletion = "delete " + "job-0001" + " anonymous_id=anon-person,user_id=user-person"

// recorded reads a recorder's file, a line each.
func recorded(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	testenv.Must(t, err, "read the record")
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func indexOf(lines []string, line string) int { return slices.Index(lines, line) }

// A forget entry goes, in the order of its shard, to the sinks that
// declare deletion, whatever event types and consent they take, and to no
// other sink or app; no sink's Write ever sees it.
func TestForgetReachesDeletingSinksOnly(t *testing.T) {
	deletionManifests(t)
	dir := t.TempDir()
	recFile, plainFile := filepath.Join(dir, "rec"), filepath.Join(dir, "plain")
	policy := consent.DefaultPolicy()
	// The recorder needs marketing consent, which forget entries do not
	// carry.
	policy.Plugins = map[string][]string{"sink.recorder": {"marketing"}}
	app := Installation{ID: "00000000-0000-4000-8000-0000000000a1", WorkspaceID: wsA, PluginID: "app.greeter_all", Enabled: true, UpdatedAt: time.Unix(1, 0)}
	h := newHarnessWith(t, func(o *Options) {
		o.Policies = func(context.Context, string) (consent.Policy, error) { return policy, nil }
	}, recorderIn("sink-rec", "sink.recorder", recFile, 0), recorderIn("sink-plain", "sink.recorder_plain", plainFile, 0), app)
	done := deletions(t, "sink.recorder", wsA, "done")
	ctx := context.Background()
	testenv.Must(t, h.events.Enqueue(ctx, []event.Entry{
		personEvent("p1", personAnon), personEvent("o1", "anon-other"), personEvent("p2", personAnon),
		forgetEntry("anonymous_id", personAnon), forgetEntry("user_id", personU),
		personEvent("p3", personAnon),
	}), "enqueue")

	var rec []string
	testenv.Eventually(t, defaultTestTimeout, "the recorder has 4 events and 2 deletions", func() bool {
		rec = recorded(t, recFile)
		return len(rec) == 6
	})
	for _, id := range []string{"p1", "o1", "p2", "p3"} {
		if indexOf(rec, "write "+id+" track") < 0 {
			t.Errorf("the recorder did not get %s: %q", id, rec)
		}
	}
	// The person's shard: p1, p2, the deletion, p3.
	first := indexOf(rec, wantDeletion)
	if first < 0 || slices.Index(rec[first+1:], wantDeletion) < 0 {
		t.Fatalf("record %q, want two deletions %q (one per identifier)", rec, wantDeletion)
	}
	between := false
	for i, l := range rec {
		if l == wantDeletion && i > indexOf(rec, "write p2 track") && i < indexOf(rec, "write p3 track") {
			between = true
		}
	}
	if !between || indexOf(rec, "write p1 track") > indexOf(rec, "write p2 track") {
		t.Errorf("record %q: want p1, p2, then a deletion, then p3", rec)
	}

	testenv.Eventually(t, defaultTestTimeout, "the plain sink has the 4 events", func() bool { return len(recorded(t, plainFile)) >= 4 })
	testenv.Eventually(t, defaultTestTimeout, "the app has the 4 events", func() bool { return appEventsIn(h, app.ID) >= 4 })
	time.Sleep(300 * time.Millisecond)
	plain := recorded(t, plainFile)
	slices.Sort(plain)
	if want := []string{"write o1 track", "write p1 track", "write p2 track", "write p3 track"}; !slices.Equal(plain, want) {
		t.Errorf("the sink without deletion recorded %q, want only the 4 events", plain)
	}
	if n := appEventsIn(h, app.ID); n != 4 {
		t.Errorf("the app received %d entries, want the 4 events only", n)
	}
	for _, l := range append(recorded(t, recFile), recorded(t, plainFile)...) {
		if strings.Contains(l, event.TypeForget) {
			t.Errorf("a Write received a forget entry: %q", l)
		}
	}
	if got := deletions(t, "sink.recorder", wsA, "done") - done; got != 2 {
		t.Errorf("eddy_plugin_deletions_total{outcome=done} grew by %v, want 2", got)
	}
	if dead, err := h.rt.DeadLetters(ctx, "sink-rec", "", 10); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %v (%v), want none", dead, err)
	}
}

// deletions reads the deletions counter of a plugin, workspace and
// outcome.
func deletions(t *testing.T, plugin, ws, outcome string) float64 {
	t.Helper()
	var m dto.Metric
	testenv.Must(t, deletionsTotal.WithLabelValues(plugin, ws, outcome).Write(&m), "read eddy_plugin_deletions_total")
	return m.GetCounter().GetValue()
}

// appEventsIn is how many entries an app installation was handed.
func appEventsIn(h *harness, id string) int64 {
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	if ru := h.rt.active[id]; ru != nil {
		return ru.stats.in.Load()
	}
	return -1
}

// A failing deletion is retried with backoff until it succeeds, and the
// events after it wait for it.
func TestForgetRetriedUntilDone(t *testing.T) {
	deletionManifests(t)
	file := filepath.Join(t.TempDir(), "rec")
	h := newHarness(t, recorderIn("sink-rec", "sink.recorder", file, 2))
	ctx := context.Background()
	testenv.Must(t, h.events.Enqueue(ctx, []event.Entry{
		personEvent("p1", personAnon), forgetEntry("anonymous_id", personAnon), personEvent("p2", personAnon),
	}), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "p1, the deletion and p2 recorded", func() bool { return len(recorded(t, file)) == 3 })
	if got, want := recorded(t, file), []string{"write p1 track", wantDeletion, "write p2 track"}; !slices.Equal(got, want) {
		t.Fatalf("record %q, want %q", got, want)
	}
	h.rt.mu.Lock()
	calls := h.rt.active["sink-rec"].stats.calls.Load()
	h.rt.mu.Unlock()
	if calls != 5 { // two writes, two failed deletions, one done
		t.Errorf("%d calls to the sink, want 5 (two deletions failed, then one done)", calls)
	}
	if dead, err := h.rt.DeadLetters(ctx, "sink-rec", "", 10); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %v (%v), want none", dead, err)
	}
}

// A deletion that keeps failing is dead-lettered without holding back the
// events after it, and a replay asks again; one a sink declares but does
// not implement is dead-lettered at once.
func TestForgetDeadLetteredAndReplayed(t *testing.T) {
	deletionManifests(t)
	file := filepath.Join(t.TempDir(), "rec")
	h := newHarnessWith(t, func(o *Options) { o.Sinks.MaxRejects = 2 },
		recorderIn("sink-rec", "sink.recorder", file, 3),
		Installation{ID: "sink-null", WorkspaceID: wsA, PluginID: "sink.null_deleting", Enabled: true, Config: json.RawMessage(`{}`), UpdatedAt: time.Unix(1, 0)})
	failed := deletions(t, "sink.recorder", wsA, "failed")
	ctx := context.Background()
	testenv.Must(t, h.events.Enqueue(ctx, []event.Entry{
		personEvent("p1", personAnon), forgetEntry("anonymous_id", personAnon), personEvent("p2", personAnon),
	}), "enqueue")
	testenv.Eventually(t, defaultTestTimeout, "the deletion dead-lettered", func() bool {
		dead, err := h.rt.DeadLetters(ctx, "sink-rec", "", 10)
		return err == nil && len(dead) == 1
	})
	dead, _ := h.rt.DeadLetters(ctx, "sink-rec", "", 10)
	if dead[0].Entry.Type != event.TypeForget || !strings.Contains(dead[0].Reason, "sink.recorder failed the deletion 2 times: plugin delete: told to fail this deletion") {
		t.Errorf("dead letter %s: %q", dead[0].Entry.Type, dead[0].Reason)
	}
	testenv.Eventually(t, defaultTestTimeout, "p1 and p2 written", func() bool { return len(recorded(t, file)) == 2 })
	if got := deletions(t, "sink.recorder", wsA, "failed") - failed; got != 1 {
		t.Errorf("eddy_plugin_deletions_total{outcome=failed} grew by %v, want 1", got)
	}

	// The third call fails too; the fourth, in the same replay, is done.
	n, err := h.rt.Replay(ctx, "sink-rec", nil)
	testenv.Must(t, err, "replay")
	if n != 1 {
		t.Fatalf("replayed %d, want 1", n)
	}
	testenv.Eventually(t, defaultTestTimeout, "the replayed deletion done", func() bool { return len(recorded(t, file)) == 3 })
	if got, want := recorded(t, file), []string{"write p1 track", "write p2 track", wantDeletion}; !slices.Equal(got, want) {
		t.Errorf("record %q, want %q", got, want)
	}

	testenv.Eventually(t, defaultTestTimeout, "the null sink's deletion dead-lettered", func() bool {
		dead, err := h.rt.DeadLetters(ctx, "sink-null", "", 10)
		return err == nil && len(dead) == 1 && strings.Contains(dead[0].Reason, "sink.null_deleting declares deletion but implements no Delete")
	})
}
