package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/internal/testenv"
)

// consentOut is a profile's consent as the API answers it.
type consentOut struct {
	ProfileID string `json:"profile_id"`
	Purposes  map[string]struct {
		Granted   bool      `json:"granted"`
		At        time.Time `json:"at"`
		Source    string    `json:"source"`
		MessageID *string   `json:"message_id"`
	} `json:"purposes"`
}

// A person's consent set and withdrawn through the API: recorded on each
// of their identifiers (hashed), shown with its source, merged into the
// profile, audited without identifiers, and read back by the consent
// gate's lookup (store.PrivacyDecisions).
func TestProfileConsentAPI(t *testing.T) {
	w := newPrivacyWorld(t)
	ctx := context.Background()
	x := w.x
	path := "/workspaces/shop/profiles/" + x.profile + "/consent"

	var before consentOut
	w.owner.must(http.StatusOK, "GET", path, nil, &before)
	if got := before.Purposes["analytics"]; !got.Granted || got.Source != consent.SourceEvent || got.MessageID == nil {
		t.Fatalf("consent before: %+v, want analytics granted by an event", before.Purposes)
	}

	start := time.Now().Add(-time.Second)
	var after consentOut
	w.owner.must(http.StatusOK, "PUT", path, map[string]any{"categoryPreferences": map[string]any{"marketing": false, "personalization": true}}, &after)
	for purpose, want := range map[string]bool{"marketing": false, "personalization": true} {
		got, ok := after.Purposes[purpose]
		if !ok || got.Granted != want || got.Source != consent.SourceAPI || got.MessageID != nil || got.At.Before(start) {
			t.Errorf("%s after PUT: %+v, want %t from the API, now", purpose, got, want)
		}
	}
	if got := after.Purposes["analytics"]; !got.Granted || got.Source != consent.SourceEvent {
		t.Errorf("analytics after PUT: %+v, want the event's grant kept", got)
	}

	// The profile shows the merged consent.
	var prof struct {
		Consent map[string]bool `json:"consent"`
	}
	w.owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles/"+x.profile, nil, &prof)
	if prof.Consent["marketing"] || !prof.Consent["personalization"] || !prof.Consent["analytics"] {
		t.Errorf("profile consent %v, want analytics and personalization granted, marketing withdrawn", prof.Consent)
	}

	// Every anonymous and user id of the person carries the decisions, as
	// the gate looks them up; another person's carry none.
	var hashes [][32]byte
	for _, a := range x.anons {
		hashes = append(hashes, consent.IdentifierHash(w.ws.ID, "anonymous_id", a))
	}
	hashes = append(hashes, consent.IdentifierHash(w.ws.ID, "user_id", x.userID))
	yHash := consent.IdentifierHash(w.ws.ID, "user_id", w.y.userID)
	found, err := w.p.store.PrivacyDecisions(ctx, w.ws.ID, append(hashes, yHash))
	testenv.Must(t, err, "privacy decisions")
	for i, h := range hashes {
		if len(found[h]) != 2 {
			t.Errorf("identifier %d of the person has decisions %+v, want marketing and personalization", i, found[h])
		}
	}
	if len(found[yHash]) != 0 {
		t.Errorf("another person has decisions %+v", found[yHash])
	}
	if has, err := w.p.store.HasPrivacyDecisions(ctx, w.other.ID); err != nil || has {
		t.Errorf("the other workspace has decisions: %t, %v", has, err)
	}
	// The person's own store hash is the suppressions' hash.
	if got, want := consent.IdentifierHash(w.ws.ID, "user_id", x.userID), store.SuppressionHash(w.ws.ID, "user_id", x.userID); string(got[:]) != string(want) {
		t.Error("consent.IdentifierHash and store.SuppressionHash disagree")
	}

	// Audited, with no identifier of the person.
	entries, err := w.p.store.AuditLog(ctx, w.ws.OrgID, store.AuditFilter{Action: "profile.consent", Limit: 10})
	testenv.Must(t, err, "audit log")
	if len(entries) != 1 || !strings.Contains(string(entries[0].After), `"marketing": false`) {
		t.Fatalf("audit entries %+v, want one profile.consent with the decision", entries)
	}
	for _, v := range x.values() {
		if strings.Contains(entries[0].TargetID+string(entries[0].After), v) {
			t.Errorf("the audit entry holds an identifier of the person")
		}
	}

	// The export holds the decisions, named by the person's identifiers.
	var x2 struct {
		ConsentDecisions []struct {
			Kind, Value, Purpose, Source string
			Granted                      bool
		} `json:"consent_decisions"`
	}
	w.owner.must(http.StatusOK, "GET", "/workspaces/shop/profiles/"+x.profile+"/export", nil, &x2)
	if len(x2.ConsentDecisions) != 2*len(hashes) {
		t.Errorf("export has %d consent decisions, want %d: %+v", len(x2.ConsentDecisions), 2*len(hashes), x2.ConsentDecisions)
	}
	for _, d := range x2.ConsentDecisions {
		if d.Value == "" || d.Source != consent.SourceAPI || (d.Purpose == "marketing") == d.Granted {
			t.Errorf("exported decision %+v", d)
		}
	}

	// A later API decision replaces an earlier one.
	w.owner.must(http.StatusOK, "PUT", path, map[string]any{"categoryPreferences": map[string]any{"marketing": true}}, &after)
	if got := after.Purposes["marketing"]; !got.Granted || got.Source != consent.SourceAPI {
		t.Errorf("marketing after the second PUT: %+v, want granted", got)
	}
}

func TestProfileConsentBadInput(t *testing.T) {
	w := newPrivacyWorld(t)
	path := "/workspaces/shop/profiles/" + w.x.profile + "/consent"
	o := w.owner.in(t)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no body", nil, "body"},
		{"no preferences", map[string]any{}, "categoryPreferences"},
		{"empty preferences", map[string]any{"categoryPreferences": map[string]any{}}, "categoryPreferences"},
		{"preferences not an object", map[string]any{"categoryPreferences": "yes"}, "categoryPreferences"},
		{"a value not a boolean", map[string]any{"categoryPreferences": map[string]any{"marketing": "no"}}, "categoryPreferences"},
		{"a null value", map[string]any{"categoryPreferences": map[string]any{"marketing": nil}}, "categoryPreferences.marketing"},
		{"an unknown purpose", map[string]any{"categoryPreferences": map[string]any{"ads": true}}, "categoryPreferences.ads"},
		{"necessary", map[string]any{"categoryPreferences": map[string]any{"necessary": false}}, "categoryPreferences.necessary"},
		{"an unknown field", map[string]any{"categoryPreferences": map[string]any{"marketing": true}, "user_id": "x"}, "user_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.do("PUT", path, tc.body).wantInvalid(t, tc.field)
		})
	}
	o.do("PUT", "/workspaces/shop/profiles/not-a-uuid/consent", map[string]any{"categoryPreferences": map[string]any{"marketing": true}}).wantInvalid(t, "profile_id")
	for _, p := range []string{"/workspaces/shop/profiles/" + w.namesake.profile + "/consent", "/workspaces/shop/profiles/00000000-0000-4000-8000-00000000beef/consent"} {
		o.expect(http.StatusNotFound, "not_found", "PUT", p, map[string]any{"categoryPreferences": map[string]any{"marketing": true}})
		o.expect(http.StatusNotFound, "not_found", "GET", p, nil)
	}
	viewer := w.p.member("privacy", "viewer@privacy.test", "viewer").in(t)
	viewer.expect(http.StatusForbidden, "forbidden", "PUT", path, map[string]any{"categoryPreferences": map[string]any{"marketing": true}})
	viewer.must(http.StatusOK, "GET", path, nil, nil)
	// Nothing was recorded by the refused calls.
	if has, err := w.p.store.HasPrivacyDecisions(context.Background(), w.ws.ID); err != nil || has {
		t.Errorf("refused calls recorded decisions: %t, %v", has, err)
	}
}
