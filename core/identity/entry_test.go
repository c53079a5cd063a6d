package identity

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/event"
)

func TestFromEntry(t *testing.T) {
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		file  string
		typ   string
		batch string // the batch envelope's context
		want  Event
	}{
		{"identify.json", "identify", "", Event{
			AnonymousID: "anon-7c1e", UserID: "user-42",
			Traits:  json.RawMessage(`{"email": "Ann.Smith@Example.com", "name": "Ann Smith", "plan": "pro", "address": {"city": "Lyon"}}`),
			Consent: map[string]bool{"analytics": true, "advertising": false},
		}},
		{"track.json", "track", "", Event{
			AnonymousID: "anon-7c1e",
			Traits:      json.RawMessage(`{"email": "ann.smith@example.com", "plan": "pro"}`),
		}},
		{"alias.json", "alias", "", Event{PreviousID: "anon-7c1e", UserID: "42"}},
		{"group.json", "group", "", Event{UserID: "user-42", Traits: json.RawMessage(`{"title": "CTO"}`)}},
		{"page_batch_context.json", "page", `{"traits":{"plan":"free"},"consent":{"categoryPreferences":{"ads":true}}}`, Event{
			AnonymousID: "anon-9d2f",
			Traits:      json.RawMessage(`{"plan":"free"}`),
			Consent:     map[string]bool{"ads": true},
		}},
		{"odd_shapes.json", "track", "", Event{AnonymousID: "anon-1", Consent: map[string]bool{"email": true}}},
		{"consent_null_overrides_batch.json", "track", `{"consent":{"categoryPreferences":{"ads":true}}}`, Event{AnonymousID: "anon-2"}},
		{"identify.json", "", "", Event{ // the payload's type when the entry has none
			AnonymousID: "anon-7c1e", UserID: "user-42",
			Traits:  json.RawMessage(`{"email": "Ann.Smith@Example.com", "name": "Ann Smith", "plan": "pro", "address": {"city": "Lyon"}}`),
			Consent: map[string]bool{"analytics": true, "advertising": false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			e := &event.Entry{WorkspaceID: ws, MessageID: "msg-1", Type: tt.typ, Timestamp: ts, Payload: payload}
			if tt.batch != "" {
				e.Context = []byte(tt.batch)
			}
			got, err := FromEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.WorkspaceID, want.MessageID, want.Timestamp = ws, "msg-1", ts
			want.Type = tt.typ
			if want.Type == "" {
				want.Type = "identify"
			}
			if got.WorkspaceID != want.WorkspaceID || got.MessageID != want.MessageID || got.Type != want.Type ||
				got.AnonymousID != want.AnonymousID || got.UserID != want.UserID || got.PreviousID != want.PreviousID ||
				!got.Timestamp.Equal(want.Timestamp) {
				t.Errorf("event = %+v\nwant    %+v", got, want)
			}
			if string(got.Traits) != string(want.Traits) {
				t.Errorf("traits = %s, want %s", got.Traits, want.Traits)
			}
			if !maps.Equal(got.Consent, want.Consent) {
				t.Errorf("consent = %v, want %v", got.Consent, want.Consent)
			}
		})
	}
}

func TestFromEntryRefusesBadJSON(t *testing.T) {
	for _, payload := range []string{`{"userId":`, `{"anonymousId":{"x":1}}`, "\xff"} {
		if _, err := FromEntry(&event.Entry{Payload: []byte(payload)}); err == nil {
			t.Errorf("FromEntry(%q) succeeded", payload)
		}
	}
}

// TestFromEntryThroughApply reads the sample messages in order and applies
// them: the identify, a track on another device carrying the same email,
// and the alias with a numeric userId.
func TestFromEntryThroughApply(t *testing.T) {
	g := NewGraph(ws)
	for i, f := range []struct{ file, typ, anon string }{
		{"identify.json", "identify", ""},
		{"track.json", "track", "anon-other-device"},
		{"alias.json", "alias", ""},
	} {
		payload, err := os.ReadFile(filepath.Join("testdata", f.file))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := FromEntry(&event.Entry{WorkspaceID: ws, MessageID: f.file, Type: f.typ, Timestamp: at(i), Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if f.anon != "" {
			ev.AnonymousID = f.anon
		}
		mustApply(t, g, ev)
	}
	want := "[a:anon-7c1e a:anon-other-device e:ann.smith@example.com u:user-42] [u:42]"
	if got := groups(g); got != want {
		t.Errorf("profiles = %s, want %s (the alias joins two users and is refused)", got, want)
	}
	p := profileOf(t, g, "u:user-42")
	if string(p.Trait("plan")) != `"pro"` || len(p.Consent) != 2 {
		t.Errorf("traits %+v consent %+v", p.Traits, p.Consent)
	}
}
