package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/identity"
	"github.com/eddy-cdp/eddy/core/store"
)

// listSessions answers a page of the workspace's stored sessions, newest
// first.
func (a *API) listSessions(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	f := store.SessionFilter{AnonymousID: c.Query("anonymous_id"), ProfileID: c.Query("profile_id")}
	var errs FieldErrors
	if len(f.AnonymousID) > 1024 {
		errs.Add("anonymous_id", "must be at most 1024 bytes")
	}
	errs.Text("anonymous_id", f.AnonymousID)
	if f.ProfileID != "" {
		if u, err := uuid.Parse(f.ProfileID); err != nil || len(f.ProfileID) != 36 {
			errs.Add("profile_id", "is not an id: it must be a UUID")
		} else {
			f.ProfileID = u.String()
		}
	}
	switch c.Query("open") {
	case "":
	case "true":
		f.Open = true
	case "false":
		f.Closed = true
	default:
		errs.Add("open", "must be true or false")
	}
	f.From, f.To = timeRange(c, &errs)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	paged(a, c, func(ctx context.Context, p store.Page) ([]store.StoredSession, error) {
		sessions, err := a.store.Sessions(ctx, ws, f, p)
		if errors.Is(err, store.ErrInvalidCursor) {
			return nil, FieldErrors{{Field: "cursor", Message: "is not a cursor from this list's next_cursor"}}
		}
		return sessions, err
	}, func(s store.StoredSession) any { return sessionView(s) }, func(s store.StoredSession) string { return s.ID })
}

func (a *API) getSession(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "session_id")
	if !ok {
		return
	}
	s, err := a.store.Session(c.Request.Context(), ws, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, sessionView(s))
}

// getProfile answers the live profile an id resolves to: a profile merged
// into another answers the survivor.
func (a *API) getProfile(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "profile_id")
	if !ok {
		return
	}
	p, err := a.store.WorkspaceProfile(c.Request.Context(), ws, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeProfile(c, ws, p)
}

var identityKinds = []string{string(identity.AnonymousID), string(identity.UserID), string(identity.Email)}

// findProfile answers the profile ?identity=<kind>:<value> is linked to.
func (a *API) findProfile(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	q := c.Query("identity")
	kind, value, found := strings.Cut(q, ":")
	var errs FieldErrors
	switch {
	case q == "":
		errs.Add("identity", "is required: kind:value, kind one of %s", strings.Join(identityKinds, ", "))
	case !found:
		errs.Add("identity", "must be kind:value, kind one of %s", strings.Join(identityKinds, ", "))
	default:
		errs.OneOf("identity", kind, identityKinds)
		if value == "" {
			errs.Add("identity", "has no value after the kind")
		}
		if len(value) > 1024 {
			errs.Add("identity", "must be at most 1024 bytes")
		}
		errs.Text("identity", value)
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	p, err := a.store.ProfileByIdentity(c.Request.Context(), ws, kind, value)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeProfile(c, ws, p)
}

// writeProfile answers a live profile with its open sessions, read from
// storage: those recorded on the profile or on any profile merged into it.
func (a *API) writeProfile(c *gin.Context, ws store.Workspace, p identity.Profile) {
	open, err := a.store.ProfileOpenSessions(c.Request.Context(), ws, p.ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	// The consent shown is what the gate applies: the events' and the
	// decisions made through the API, the latest of each purpose.
	states, err := a.store.ConsentOf(c.Request.Context(), ws, p)
	if err != nil {
		a.fail(c, err)
		return
	}
	v := profileView(p, open)
	for _, s := range states {
		v.Consent[s.Purpose] = s.Granted
	}
	c.JSON(http.StatusOK, v)
}
