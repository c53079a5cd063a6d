// Package api is Eddy's management REST API under /api/v1: admins log in,
// manage organizations, members, invitations, workspaces, sources, API keys
// and plugins (the catalog, uploads, installations), read the audit log and
// the stored events. docs/api.md explains the model; openapi.yaml is the
// contract, kept true by tests.
//
// Every handler finds its caller (principal.go), checks what the caller may
// do on the organization or workspace it names (access.go), and reads or
// changes it through the store, which records each change in the audit log in
// the same transaction. Errors leave through one function, fail, in the one
// shape apierror writes.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/cube"
	"github.com/eddy-cdp/eddy/core/live"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginstatus"
	"github.com/eddy-cdp/eddy/core/queue"
	"github.com/eddy-cdp/eddy/core/store"
)

// Options configure the API.
type Options struct {
	Store *store.Store
	// Redis keeps the failed-login counters; Prefix namespaces its keys.
	Redis  *redis.Client
	Prefix string
	Logger *slog.Logger
	// SecureCookies marks the session cookie Secure even on plain HTTP (set
	// it behind a TLS-terminating proxy). It is Secure on TLS connections
	// regardless.
	SecureCookies bool
	// KeysChanged is called after a write key was created, rotated or
	// revoked, so that collectors reload theirs at once.
	KeysChanged func(ctx context.Context)
	// LoginDelay is the pause after the first failed login for an email; it
	// doubles with each further failure, up to MaxLoginDelay. Defaults 200ms
	// and 2s.
	LoginDelay, MaxLoginDelay time.Duration
	// MaxLoginFailures are the failed logins allowed per email and per client
	// address within LoginWindow before logins answer 429. Defaults 10, 100
	// and 15 minutes.
	MaxLoginFailuresPerEmail, MaxLoginFailuresPerIP int
	LoginWindow                                     time.Duration
	// MaxLiveStreams caps the live-session event streams this process
	// serves at once; beyond it a stream request answers 503. Default 256.
	MaxLiveStreams int
	// LiveHeartbeat is the interval of the streams' comment heartbeats.
	// Default 15s.
	LiveHeartbeat time.Duration
	// Manifests are the plugins plugins.yaml installs, by id: the part of
	// every organization's plugin catalog that the file provides.
	Manifests map[string]*plugin.Manifest
	// BuiltinPluginsDir is the folder of the plugins shipped with Eddy (the
	// repository's plugins/): the catalog calls the Manifests under it
	// "builtin", the others "file".
	BuiltinPluginsDir string
	// PluginStatus reads the plugin status reports of the workers; by
	// default one over Redis under Prefix.
	PluginStatus *pluginstatus.Store
	// PluginsChanged is called after an installation or the catalog
	// changed, so that the plugin runtime reloads at once.
	PluginsChanged func(ctx context.Context)
	// Ingest and Events are the ingest queue (read by the process group)
	// and the events queue (read by storage and the session engine): a
	// person's deletion job waits until their groups have passed the
	// person's events in flight (privacy.go). Nil (API-only tests): the
	// job does not wait.
	Ingest, Events *queue.Queue
	// Cubes is the semantic layer's model every workspace starts from
	// (its own cube files add to it); cube.Shipped() by default.
	Cubes *cube.Model
}

// API serves /api/v1.
type API struct {
	opts  Options
	store *store.Store
	log   *slog.Logger
	// live reads the open sessions the workers mirror in Redis (nil
	// without Redis).
	live *live.Mirror
	// streams holds a token per live stream being served.
	streams chan struct{}
	// status reads plugin status reports (nil without Redis).
	status *pluginstatus.Store
	// closing is closed by Close, ending every live stream.
	closing   chan struct{}
	closeOnce sync.Once
	// deletions runs deletion jobs (privacy.go).
	deletions *deletionRunner
	// cubes caches each workspace's semantic-layer model (cube.go).
	cubes cubeModels
}

// New returns the API; Register mounts it.
func New(o Options) *API {
	if o.LoginDelay == 0 {
		o.LoginDelay = 200 * time.Millisecond
	}
	if o.MaxLoginDelay == 0 {
		o.MaxLoginDelay = 2 * time.Second
	}
	if o.MaxLoginFailuresPerEmail == 0 {
		o.MaxLoginFailuresPerEmail = 10
	}
	if o.MaxLoginFailuresPerIP == 0 {
		o.MaxLoginFailuresPerIP = 100
	}
	if o.LoginWindow == 0 {
		o.LoginWindow = 15 * time.Minute
	}
	if o.KeysChanged == nil {
		o.KeysChanged = func(context.Context) {}
	}
	if o.PluginsChanged == nil {
		o.PluginsChanged = func(context.Context) {}
	}
	if o.MaxLiveStreams <= 0 {
		o.MaxLiveStreams = 256
	}
	if o.LiveHeartbeat <= 0 {
		o.LiveHeartbeat = 15 * time.Second
	}
	a := &API{opts: o, store: o.Store, log: o.Logger,
		streams: make(chan struct{}, o.MaxLiveStreams), closing: make(chan struct{}), status: newPluginStatus(o),
		deletions: newDeletionRunner()}
	if o.Redis != nil {
		a.live = live.New(o.Redis, o.Prefix)
	}
	return a
}

// Close ends the live streams being served, and any started later at
// once: call it when the server shuts down (http.Server.Shutdown waits for
// requests to end but does not cancel their contexts). It also stops the
// deletion jobs running, which the next start resumes (ResumeDeletions),
// and waits for them to return.
func (a *API) Close() {
	a.closeOnce.Do(func() {
		close(a.closing)
		a.deletions.close()
	})
}

// Base is where the API is mounted.
const Base = "/api/v1"

// maxBodyBytes caps every request body.
const maxBodyBytes = 64 << 10

// Register mounts the API's routes on r: the management API under Base,
// and the Cube REST API of the semantic layer under CubeBase (cube.go).
func (a *API) Register(r gin.IRouter) {
	a.registerCube(r)

	g := r.Group(Base, a.requestID, a.logRequests)
	g.GET("/openapi.json", a.openAPI)
	g.POST("/auth/login", a.login)
	g.POST("/invitations/accept", a.optionalAuth, a.checkCSRF, a.acceptInvitation)

	authed := g.Group("", a.authenticate, a.checkCSRF)
	authed.POST("/auth/logout", a.logout)
	authed.GET("/auth/me", a.me)

	authed.GET("/organizations", a.listOrganizations)
	authed.POST("/organizations", a.createOrganization)
	authed.GET("/organizations/:org", a.getOrganization)
	authed.PATCH("/organizations/:org", a.updateOrganization)
	authed.GET("/organizations/:org/members", a.listMembers)
	authed.PATCH("/organizations/:org/members/:admin_id", a.updateMember)
	authed.DELETE("/organizations/:org/members/:admin_id", a.removeMember)
	authed.GET("/organizations/:org/invitations", a.listInvitations)
	authed.POST("/organizations/:org/invitations", a.createInvitation)
	authed.DELETE("/organizations/:org/invitations/:invitation_id", a.revokeInvitation)
	authed.GET("/organizations/:org/workspaces", a.listWorkspaces)
	authed.POST("/organizations/:org/workspaces", a.createWorkspace)
	authed.GET("/organizations/:org/audit-log", a.auditLog)
	authed.GET("/organizations/:org/plugins", a.listPlugins)
	authed.POST("/organizations/:org/plugins", a.uploadPlugin)

	authed.GET("/workspaces/:ws", a.getWorkspace)
	authed.PATCH("/workspaces/:ws", a.updateWorkspace)
	authed.DELETE("/workspaces/:ws", a.deleteWorkspace)
	authed.GET("/workspaces/:ws/sources", a.listSources)
	authed.POST("/workspaces/:ws/sources", a.createSource)
	authed.GET("/workspaces/:ws/sources/:src", a.getSource)
	authed.PATCH("/workspaces/:ws/sources/:src", a.updateSource)
	authed.DELETE("/workspaces/:ws/sources/:src", a.revokeSource)
	authed.POST("/workspaces/:ws/sources/:src/rotate", a.rotateSource)
	authed.GET("/workspaces/:ws/sources/:src/debugger", a.sourceDebugger)
	authed.GET("/workspaces/:ws/api-keys", a.listAPIKeys)
	authed.POST("/workspaces/:ws/api-keys", a.createAPIKey)
	authed.DELETE("/workspaces/:ws/api-keys/:key_id", a.revokeAPIKey)
	authed.GET("/workspaces/:ws/events", a.listEvents)
	authed.GET("/workspaces/:ws/sessions", a.listSessions)
	authed.GET("/workspaces/:ws/sessions/live", a.listLiveSessions)
	authed.GET("/workspaces/:ws/sessions/live/stream", a.streamLiveSessions)
	authed.GET("/workspaces/:ws/sessions/:session_id", a.getSession)
	authed.GET("/workspaces/:ws/profiles", a.findProfile)
	authed.GET("/workspaces/:ws/profiles/:profile_id", a.getProfile)
	authed.DELETE("/workspaces/:ws/profiles", a.deleteProfileByIdentity)
	authed.DELETE("/workspaces/:ws/profiles/:profile_id", a.deleteProfile)
	authed.GET("/workspaces/:ws/profiles/:profile_id/export", a.exportProfile)
	authed.GET("/workspaces/:ws/profiles/:profile_id/consent", a.getProfileConsent)
	authed.PUT("/workspaces/:ws/profiles/:profile_id/consent", a.setProfileConsent)
	authed.POST("/workspaces/:ws/deletions", a.createRangeDeletion)
	authed.GET("/workspaces/:ws/deletions/:job_id", a.getDeletion)
	authed.GET("/workspaces/:ws/plugins", a.listInstallations)
	authed.POST("/workspaces/:ws/plugins", a.installPlugin)
	authed.GET("/workspaces/:ws/plugins/:plugin_id", a.getInstallation)
	authed.PATCH("/workspaces/:ws/plugins/:plugin_id", a.updateInstallation)
	authed.DELETE("/workspaces/:ws/plugins/:plugin_id", a.uninstallPlugin)
	authed.GET("/workspaces/:ws/plugins/:plugin_id/dead-letters", a.listDeadLetters)
	authed.POST("/workspaces/:ws/plugins/:plugin_id/dead-letters/replay", a.replayDeadLetters)
	authed.GET("/workspaces/:ws/cubes", a.getCubes)
	authed.PUT("/workspaces/:ws/cubes", a.putCubes)
	a.registerCubeSession(authed)
}

// NoRoute answers a request under Base that matches no route; the server
// installs it for the engine's unmatched paths under Base.
func NoRoute(c *gin.Context) {
	setRequestID(c)
	apierror.Abort(c, apierror.New(http.StatusNotFound, "not_found", "no such API route: %s %s", c.Request.Method, c.Request.URL.Path))
}

func (a *API) openAPI(c *gin.Context) {
	doc, err := OpenAPIJSON()
	if err != nil {
		a.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// requestID gives every request an id: the caller's X-Request-Id when it is
// sane, else a new UUID. It comes back in the response header, the logs and
// the audit log.
func (a *API) requestID(c *gin.Context) {
	setRequestID(c)
	c.Next()
}

// setRequestID notes the request's id and sends it back: NoRoute, outside
// the API's middleware, needs it too.
func setRequestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		id = uuid.NewString()
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-Id", id)
}

// logRequests logs each request's outcome: never its body, headers or query
// (which may hold secrets).
func (a *API) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	a.log.LogAttrs(c.Request.Context(), level, "api request",
		slog.String("method", c.Request.Method), slog.String("route", c.FullPath()),
		slog.Int("status", status), slog.Duration("took", time.Since(start)),
		slog.String("request_id", c.GetString(ctxRequestID)))
}

const (
	ctxRequestID = "eddy.request_id"
	ctxPrincipal = "eddy.principal"
)

// fail answers with the error err stands for: a store sentinel, a
// validation error, an apierror, or, for anything else, a logged 500.
func (a *API) fail(c *gin.Context, err error) {
	var apiErr *apierror.Error
	var conflict *store.ConflictError
	var invalid FieldErrors
	switch {
	case errors.As(err, &apiErr):
		apierror.Abort(c, apiErr)
	case errors.As(err, &invalid):
		e := apierror.New(http.StatusBadRequest, "invalid_request", "%s", invalid.Error())
		e.Details = invalid
		apierror.Abort(c, e)
	case errors.Is(err, store.ErrNotFound):
		apierror.Abort(c, notFound())
	case errors.As(err, &conflict):
		apierror.Abort(c, apierror.New(http.StatusConflict, "conflict", "%s", conflict.Msg))
	default:
		a.log.ErrorContext(c.Request.Context(), "api request failed", "route", c.FullPath(), "err", err,
			"request_id", c.GetString(ctxRequestID))
		apierror.Abort(c, apierror.Internal())
	}
}

func notFound() *apierror.Error {
	return apierror.New(http.StatusNotFound, "not_found", "not found, or not yours to see")
}

func forbidden(format string, args ...any) *apierror.Error {
	return apierror.New(http.StatusForbidden, "forbidden", format, args...)
}
