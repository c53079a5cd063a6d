package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/privacy"
	"github.com/eddy-cdp/eddy/core/store"
)

// A person's consent through the API: GET reads what Eddy knows per
// purpose (from the person's events and from decisions recorded here);
// PUT sets or withdraws purposes for every anonymous and user id of the
// profile. A decision made here holds over the consent the person's
// later events carry (a stale consent banner cannot undo a withdrawal)
// until the person decides again in a consent update
// (consent.UpdateEvent) or through this API. It applies to every batch
// the consent gate starts after the call returns.

// consentStateJSON is one purpose of a profile's consent.
type consentStateJSON struct {
	Granted bool      `json:"granted"`
	At      time.Time `json:"at"`
	// Source is "event" or "api"; MessageID names the event when known.
	Source    string  `json:"source"`
	MessageID *string `json:"message_id"`
}

type profileConsentJSON struct {
	ProfileID string                      `json:"profile_id"`
	Purposes  map[string]consentStateJSON `json:"purposes"`
}

func profileConsentView(profileID string, states []store.ConsentState) profileConsentJSON {
	v := profileConsentJSON{ProfileID: profileID, Purposes: make(map[string]consentStateJSON, len(states))}
	for _, s := range states {
		v.Purposes[s.Purpose] = consentStateJSON{Granted: s.Granted, At: s.At, Source: s.Source, MessageID: nullString(s.MessageID)}
	}
	return v
}

func (a *API) getProfileConsent(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "profile_id")
	if !ok {
		return
	}
	states, err := a.store.ProfileConsent(c.Request.Context(), ws, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, profileConsentView(id, states))
}

// setConsentRequest is Segment's consent shape: purposes to booleans.
type setConsentRequest struct {
	CategoryPreferences map[string]*bool `json:"categoryPreferences"`
}

func (a *API) setProfileConsent(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "profile_id")
	if !ok {
		return
	}
	var req setConsentRequest
	if !a.bind(c, &req) {
		return
	}
	prefs, errs := checkPreferences(req.CategoryPreferences, ws.Settings.Privacy.WithDefaults().Purposes)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	states, err := a.store.DecideConsent(c.Request.Context(), change(c), ws, id, prefs)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.privacyChanged(c.Request.Context())
	c.JSON(http.StatusOK, profileConsentView(id, states))
}

// checkPreferences validates the purposes a consent request decides: at
// least one, each a purpose of the workspace's policy (necessary needs no
// consent and cannot be decided), each true or false.
func checkPreferences(in map[string]*bool, purposes []string) (consent.Preferences, FieldErrors) {
	var errs FieldErrors
	if len(in) == 0 {
		errs.Add("categoryPreferences", "is required: an object of purposes to true or false, e.g. {\"marketing\": false}")
		return nil, errs
	}
	known := make([]string, 0, len(purposes))
	for _, p := range purposes {
		if p != consent.Necessary {
			known = append(known, p)
		}
	}
	out := make(consent.Preferences, len(in))
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field := "categoryPreferences." + clipField(k)
		switch {
		case k == consent.Necessary:
			errs.Add(field, "needs no consent: it cannot be granted or withdrawn")
		case !slices.Contains(known, k):
			errs.Add(field, "is not a purpose of this workspace (its purposes: %s)", strings.Join(known, ", "))
		case in[k] == nil:
			errs.Add(field, "must be true or false")
		default:
			out[k] = *in[k]
		}
	}
	return out, errs
}

// clipField keeps a client's key short in an error message.
func clipField(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// privacyChanged tells every process's consent gate that privacy
// decisions or a policy changed. On failure the gate still applies the
// change within its cache's lifetime (5 s); that is logged.
func (a *API) privacyChanged(ctx context.Context) {
	if a.opts.Redis == nil {
		return
	}
	if err := privacy.NewGeneration(a.opts.Redis, a.opts.Prefix).Bump(ctx); err != nil {
		a.log.WarnContext(ctx, "privacy change not announced; it applies within 5 s", "err", err)
	}
}
