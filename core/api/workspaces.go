package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/consent"
	"github.com/eddy-cdp/eddy/core/store"
)

func (a *API) listWorkspaces(c *gin.Context) {
	org, ok := a.organization(c, auth.ReadOrganization)
	if !ok {
		return
	}
	paged(a, c,
		func(ctx context.Context, p store.Page) ([]store.Workspace, error) {
			return a.store.Workspaces(ctx, org.ID, p)
		},
		func(v store.Workspace) any { return WorkspaceView(v) },
		func(v store.Workspace) string { return v.Slug })
}

// settingsPatch is a partial update of workspace settings.
type settingsPatch struct {
	Timezone              *string       `json:"timezone"`
	Currency              *string       `json:"currency"`
	SessionTimeoutMinutes *int          `json:"session_timeout_minutes"`
	OwnDomains            []string      `json:"own_domains"`
	IgnoredReferrers      []string      `json:"ignored_referrers"`
	Privacy               *privacyPatch `json:"privacy"`
}

// privacyPatch is a partial update of a workspace's privacy policy: each
// field given replaces the current one whole (plugins included).
type privacyPatch struct {
	Purposes           *[]string            `json:"purposes"`
	Required           *[]string            `json:"required"`
	AllowNecessaryOnly *bool                `json:"allow_necessary_only"`
	Plugins            *map[string][]string `json:"plugins"`
	Minimise           *minimisePatch       `json:"minimise"`
}

// minimisePatch is a partial update of a workspace's data minimisation.
type minimisePatch struct {
	IP   *string   `json:"ip"`
	Hash *[]string `json:"hash"`
	Drop *[]string `json:"drop"`
}

// apply applies the patch to p.
func (pp *privacyPatch) apply(p *consent.Policy) {
	if pp == nil {
		return
	}
	set := func(dst *[]string, v *[]string) {
		if v != nil {
			*dst = nonNilStrings(*v)
		}
	}
	set(&p.Purposes, pp.Purposes)
	set(&p.Required, pp.Required)
	if pp.AllowNecessaryOnly != nil {
		p.AllowNecessaryOnly = *pp.AllowNecessaryOnly
	}
	if pp.Plugins != nil {
		plugins := make(map[string][]string, len(*pp.Plugins))
		for id, purposes := range *pp.Plugins {
			plugins[id] = nonNilStrings(purposes)
		}
		p.Plugins = plugins
	}
	if m := pp.Minimise; m != nil {
		if m.IP != nil {
			p.Minimise.IP = *m.IP
		}
		set(&p.Minimise.Hash, m.Hash)
		set(&p.Minimise.Drop, m.Drop)
	}
}

// apply applies the patch to st and checks the outcome.
func (p *settingsPatch) apply(st *store.Settings, errs *FieldErrors) {
	if p == nil {
		return
	}
	if p.Timezone != nil {
		st.Timezone = *p.Timezone
	}
	if p.Currency != nil {
		st.Currency = *p.Currency
	}
	if p.SessionTimeoutMinutes != nil {
		st.SessionTimeoutMinutes = *p.SessionTimeoutMinutes
	}
	if p.OwnDomains != nil {
		st.OwnDomains = lowerAll(p.OwnDomains)
	}
	if p.IgnoredReferrers != nil {
		st.IgnoredReferrers = lowerAll(p.IgnoredReferrers)
	}
	p.Privacy.apply(&st.Privacy)
	errs.Settings(*st, func(name string) string { return "settings." + name })
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

type createWorkspaceRequest struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Settings *settingsPatch `json:"settings"`
}

func (a *API) createWorkspace(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	var req createWorkspaceRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Slug("id", req.ID)
	errs.Name("name", req.Name)
	st := store.DefaultSettings()
	req.Settings.apply(&st, &errs)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	ws, err := a.store.CreateWorkspace(c.Request.Context(), change(c), org, req.ID, req.Name, st)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, WorkspaceView(ws))
}

func (a *API) getWorkspace(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, WorkspaceView(ws))
}

type updateWorkspaceRequest struct {
	Name     *string        `json:"name"`
	Settings *settingsPatch `json:"settings"`
}

func (a *API) updateWorkspace(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	var req updateWorkspaceRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	name := ws.Name
	if req.Name != nil {
		errs.Name("name", *req.Name)
		name = *req.Name
	}
	st := ws.Settings
	req.Settings.apply(&st, &errs)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	ws, err := a.store.UpdateWorkspace(c.Request.Context(), change(c), ws, name, st)
	if err != nil {
		a.fail(c, err)
		return
	}
	if req.Settings != nil && req.Settings.Privacy != nil {
		a.privacyChanged(c.Request.Context())
	}
	c.JSON(http.StatusOK, WorkspaceView(ws))
}

func (a *API) deleteWorkspace(c *gin.Context) {
	ws, ok := a.workspace(c, auth.DeleteWorkspace)
	if !ok {
		return
	}
	if err := a.store.DeleteWorkspace(c.Request.Context(), change(c), ws); err != nil {
		a.fail(c, err)
		return
	}
	a.opts.KeysChanged(c.Request.Context())
	c.Status(http.StatusNoContent)
}

func (a *API) listSources(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	paged(a, c,
		func(ctx context.Context, p store.Page) ([]store.Source, error) { return a.store.Sources(ctx, ws, p) },
		func(v store.Source) any { return SourceView(ws, v) },
		func(v store.Source) string { return v.Slug })
}

type createSourceRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (a *API) createSource(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	var req createSourceRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Slug("id", req.ID)
	if req.Name == "" {
		req.Name = req.ID
	}
	errs.Name("name", req.Name)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	key := auth.NewSecret(auth.WriteKeyPrefix)
	src, err := a.store.CreateSource(c.Request.Context(), change(c), ws, req.ID, req.Name, key)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.opts.KeysChanged(c.Request.Context())
	v := SourceView(ws, src)
	v.WriteKey = key
	c.JSON(http.StatusCreated, v)
}

// source resolves the :src of the path within a workspace the caller may
// act on with perm.
func (a *API) source(c *gin.Context, perm auth.Permission) (store.Workspace, string, bool) {
	ws, ok := a.workspace(c, perm)
	if !ok {
		return ws, "", false
	}
	slug, ok := a.slugParam(c, "src")
	return ws, slug, ok
}

func (a *API) getSource(c *gin.Context) {
	ws, slug, ok := a.source(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	src, err := a.store.Source(c.Request.Context(), ws, slug)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, SourceView(ws, src))
}

type updateSourceRequest struct {
	Name string `json:"name"`
}

func (a *API) updateSource(c *gin.Context) {
	ws, slug, ok := a.source(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	var req updateSourceRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Name("name", req.Name)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	src, err := a.store.RenameSource(c.Request.Context(), change(c), ws, slug, req.Name)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, SourceView(ws, src))
}

func (a *API) revokeSource(c *gin.Context) {
	ws, slug, ok := a.source(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	if _, err := a.store.RevokeSource(c.Request.Context(), change(c), ws, slug); err != nil {
		a.fail(c, err)
		return
	}
	a.opts.KeysChanged(c.Request.Context())
	c.Status(http.StatusNoContent)
}

func (a *API) rotateSource(c *gin.Context) {
	ws, slug, ok := a.source(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	key := auth.NewSecret(auth.WriteKeyPrefix)
	src, err := a.store.RotateSourceKey(c.Request.Context(), change(c), ws, slug, key)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.opts.KeysChanged(c.Request.Context())
	v := SourceView(ws, src)
	v.WriteKey = key
	c.JSON(http.StatusOK, v)
}

func (a *API) listAPIKeys(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ManageKeys)
	if !ok {
		return
	}
	paged(a, c,
		func(ctx context.Context, p store.Page) ([]store.APIKey, error) { return a.store.APIKeys(ctx, ws, p) },
		func(v store.APIKey) any { return APIKeyView(ws, v) },
		func(v store.APIKey) string { return v.ID })
}

type createAPIKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func (a *API) createAPIKey(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ManageKeys)
	if !ok {
		return
	}
	var req createAPIKeyRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	errs.Name("name", req.Name)
	scopes, err := auth.ParseScopes(req.Scopes)
	if err != nil {
		errs.Add("scopes", "%v", err)
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	// A key cannot do more than its creator: a member cannot make a key
	// that deletes the workspace, a read key cannot make a write key.
	p := caller(c)
	for _, s := range scopes {
		if !auth.ScopeWithin(s, p.can) {
			a.fail(c, forbidden("you cannot create a key with scope %s: it allows more than you may do", s))
			return
		}
	}
	key := auth.NewSecret(auth.APIKeyPrefix)
	k, err := a.store.CreateAPIKey(c.Request.Context(), change(c), ws, req.Name, scopes, store.HashSecret(key), auth.DisplayPrefix(key))
	if err != nil {
		a.fail(c, err)
		return
	}
	v := APIKeyView(ws, k)
	v.Key = key
	c.JSON(http.StatusCreated, v)
}

func (a *API) revokeAPIKey(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ManageKeys)
	if !ok {
		return
	}
	id, ok := a.uuidParam(c, "key_id")
	if !ok {
		return
	}
	if err := a.store.RevokeAPIKey(c.Request.Context(), change(c), ws, id); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// eventCursor continues an events listing after its last row.
type eventCursor struct {
	Timestamp time.Time `json:"t"`
	MessageID string    `json:"m"`
}

// eventTypes are the Segment call types events are stored under.
var eventTypes = []string{"track", "page", "screen", "identify", "group", "alias"}

func (a *API) listEvents(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	var cur eventCursor
	limit, ok := a.pageParams(c, &cur)
	if !ok {
		return
	}
	f := store.EventFilter{Type: c.Query("type"), Event: c.Query("event"), UserID: c.Query("user_id"),
		AnonymousID: c.Query("anonymous_id"), BeforeTimestamp: cur.Timestamp, BeforeMessageID: cur.MessageID, Limit: limit + 1}
	var errs FieldErrors
	if f.Type != "" {
		errs.OneOf("type", f.Type, eventTypes)
	}
	for _, q := range []struct{ name, v string }{{"event", f.Event}, {"user_id", f.UserID}, {"anonymous_id", f.AnonymousID}} {
		if len(q.v) > 1024 {
			errs.Add(q.name, "must be at most 1024 bytes")
		}
		errs.Text(q.name, q.v)
	}
	f.From, f.To = timeRange(c, &errs)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	events, err := a.store.Events(c.Request.Context(), ws, f)
	if err != nil {
		a.fail(c, err)
		return
	}
	list(c, events, limit, func(e store.StoredEvent) any { return eventView(e) },
		func(e store.StoredEvent) any { return eventCursor{Timestamp: e.Timestamp, MessageID: e.MessageID} })
}
