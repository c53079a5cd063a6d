package consent

import (
	"maps"
	"testing"
	"time"
)

func TestApplyDecisions(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	before, after := t0.Add(-time.Hour), t0.Add(time.Hour)
	api := func(purpose string, granted bool, at time.Time) Decision {
		return Decision{Purpose: purpose, Granted: granted, At: at, Source: SourceAPI}
	}
	deletion := Decision{Purpose: All, At: t0, Source: SourceDeletion}
	required := []string{"analytics"}
	tests := []struct {
		name        string
		prefs       Preferences
		present     bool
		decisions   []Decision
		update      bool
		at          time.Time
		want        Preferences
		wantPresent bool
		changed     bool
		suppressed  bool
		record      Preferences
	}{
		{name: "no decisions: the event's own consent",
			prefs: Preferences{"analytics": true}, present: true, at: after,
			want: Preferences{"analytics": true}, wantPresent: true},
		{name: "API withdrawal beats a stale grant",
			prefs: Preferences{"analytics": true, "marketing": true}, present: true, at: after,
			decisions: []Decision{api("marketing", false, t0)},
			want:      Preferences{"analytics": true, "marketing": false}, wantPresent: true, changed: true},
		{name: "API withdrawal holds even for events sent after it",
			prefs: Preferences{"marketing": true}, present: true, at: after.Add(time.Hour),
			decisions: []Decision{api("marketing", false, t0)},
			want:      Preferences{"marketing": false}, wantPresent: true, changed: true},
		{name: "a consent update after the withdrawal decides, and is recorded",
			prefs: Preferences{"marketing": true}, present: true, update: true, at: after,
			decisions: []Decision{api("marketing", false, t0)},
			want:      Preferences{"marketing": true}, wantPresent: true, record: Preferences{"marketing": true}},
		{name: "a consent update older than the withdrawal does not",
			prefs: Preferences{"marketing": true}, present: true, update: true, at: before,
			decisions: []Decision{api("marketing", false, t0)},
			want:      Preferences{"marketing": false}, wantPresent: true, changed: true},
		{name: "API grant fills a purpose the event does not state",
			present: false, at: after,
			decisions: []Decision{api("analytics", true, t0)},
			want:      Preferences{"analytics": true}, wantPresent: true, changed: true},
		{name: "API grant never overrides the visitor's refusal",
			prefs: Preferences{"analytics": false}, present: true, at: after,
			decisions: []Decision{api("analytics", true, t0)},
			want:      Preferences{"analytics": false}, wantPresent: true},
		{name: "the latest decision of a purpose rules",
			prefs: Preferences{"marketing": true}, present: true, at: after,
			decisions: []Decision{api("marketing", false, before), api("marketing", true, t0)},
			want:      Preferences{"marketing": true}, wantPresent: true},
		{name: "deleted person: suppressed, every stated purpose withdrawn",
			prefs: Preferences{"analytics": true, "marketing": true}, present: true, at: after,
			decisions: []Decision{deletion},
			want:      Preferences{"analytics": false, "marketing": false}, wantPresent: true, changed: true, suppressed: true},
		{name: "deleted person who consents again in an update",
			prefs: Preferences{"analytics": true, "marketing": false}, present: true, update: true, at: after,
			decisions: []Decision{deletion},
			want:      Preferences{"analytics": true, "marketing": false}, wantPresent: true, record: Preferences{"analytics": true}},
		{name: "after consenting again, ordinary events pass; purposes not granted again stay withdrawn",
			prefs: Preferences{"analytics": true, "marketing": true}, present: true, at: after.Add(time.Hour),
			decisions: []Decision{deletion, {Purpose: "analytics", Granted: true, At: after, Source: SourceEvent}},
			want:      Preferences{"analytics": true, "marketing": false}, wantPresent: true, changed: true},
		{name: "a deletion newer than a grant wins",
			prefs: Preferences{"analytics": true}, present: true, at: after,
			decisions: []Decision{api("analytics", true, before), deletion},
			want:      Preferences{"analytics": false}, wantPresent: true, changed: true, suppressed: true},
		{name: "deleted person without consent: suppressed, nothing present",
			at: after, decisions: []Decision{deletion}, want: Preferences{}, suppressed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Apply(tt.prefs, tt.present, tt.decisions, tt.update, tt.at, required)
			if !maps.Equal(got.Prefs, tt.want) || got.Present != tt.wantPresent {
				t.Errorf("prefs = %v present %t; want %v present %t", got.Prefs, got.Present, tt.want, tt.wantPresent)
			}
			if got.Changed != tt.changed {
				t.Errorf("Changed = %t, want %t", got.Changed, tt.changed)
			}
			if got.Suppressed != tt.suppressed {
				t.Errorf("Suppressed = %t, want %t", got.Suppressed, tt.suppressed)
			}
			if !maps.Equal(got.Record, tt.record) {
				t.Errorf("Record = %v, want %v", got.Record, tt.record)
			}
		})
	}
}

func TestSetPreferences(t *testing.T) {
	tests := []struct {
		name, payload string
		want          Preferences
	}{
		{"replaces existing preferences", `{"type":"track","context":{"ip":"1.2.3.4","consent":{"categoryPreferences":{"marketing":true},"x":1}}}`,
			Preferences{"marketing": false}},
		{"adds a context", `{"type":"page","userId":"u1"}`, Preferences{"analytics": true}},
		{"null consent", `{"type":"page","context":{"consent":null}}`, Preferences{"analytics": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := SetPreferences([]byte(tt.payload), tt.want)
			if err != nil {
				t.Fatal(err)
			}
			// The batch context must not matter any more: the message's wins.
			got, present, err := Parse(out, []byte(`{"consent":{"categoryPreferences":{"analytics":false,"marketing":true}}}`))
			if err != nil || !present || !maps.Equal(got, tt.want) {
				t.Errorf("Parse(SetPreferences) = %v, %t, %v; want %v", got, present, err, tt.want)
			}
		})
	}
	if _, err := SetPreferences([]byte(`{"context":"text"}`), Preferences{}); err == nil {
		t.Error("SetPreferences accepted a context that is not an object")
	}
}
