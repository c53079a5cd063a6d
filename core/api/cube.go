package api

// The Cube REST API (/cubejs-api/v1): the semantic layer (core/cube) as
// @cubejs-client/core and the tools built on it expect it. Its callers are
// workspace API keys, sent as-is in Authorization (the Cube client adds no
// "Bearer"); the key alone decides the workspace, and every query runs as
// the eddy_analytics role in a read-only transaction that row-level
// security restricts to that workspace (store.InAnalytics). Errors are
// Cube's {"error": "..."}, not the management API's shape.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/cube"
	"github.com/eddy-cdp/eddy/core/store"
)

// CubeBase is where the Cube REST API is mounted.
const CubeBase = "/cubejs-api/v1"

// Limits of the Cube API.
const (
	// maxCubeQueryLen caps the query JSON (in ?query= or a POST body).
	maxCubeQueryLen = 64 << 10
	// maxCubeTokenLen caps the Authorization header: an API key is far
	// shorter.
	maxCubeTokenLen = 512
	// cubeStatementTimeout bounds each statement of a query.
	cubeStatementTimeout = 30 * time.Second
)

// registerCube mounts the Cube REST API on r. CORS allows any origin: the
// API reads no cookie, so a page can only use a key it was given.
func (a *API) registerCube(r gin.IRouter) {
	g := r.Group(CubeBase, a.requestID, a.logRequests, cors.New(cors.Config{
		AllowAllOrigins: true,
		AllowMethods:    []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowHeaders:    []string{"Authorization", "Content-Type", "X-Request-Id"},
		ExposeHeaders:   []string{"X-Request-Id"},
		MaxAge:          24 * time.Hour,
	}))
	g.OPTIONS("/*path", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	authed := g.Group("", a.cubeAuthenticate)
	authed.GET("/load", a.cubeLoad)
	authed.POST("/load", a.cubeLoad)
	authed.GET("/sql", a.cubeSQL)
	authed.POST("/sql", a.cubeSQL)
	authed.GET("/meta", a.cubeMeta)
}

// cubeError answers Cube's error shape.
func cubeError(c *gin.Context, status int, format string, args ...any) {
	c.AbortWithStatusJSON(status, gin.H{"error": fmt.Sprintf(format, args...)})
}

// cubeFail answers err: a query's fault (a *cube.QueryError, a statement
// the database refused for the query's sake) is a 400 with its message;
// anything else a logged 500.
func (a *API) cubeFail(c *gin.Context, err error) {
	var qe *cube.QueryError
	var bad cubeBadRequest
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &qe):
		cubeError(c, http.StatusBadRequest, "%s", qe.Error())
	case errors.As(err, &bad):
		cubeError(c, http.StatusBadRequest, "%s", string(bad))
	case errors.As(err, &pgErr) && pgErr.Code == "57014":
		cubeError(c, http.StatusBadRequest, "the query ran longer than %s and was cancelled", cubeStatementTimeout)
	case errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "42P01" || pgErr.Code == "42883" ||
		pgErr.Code == "25006" || strings.HasPrefix(pgErr.Code, "22")):
		// Permission denied, no such table or function, a write in the
		// read-only transaction (a workspace cube's SQL), or a data
		// exception (a value the column's type refuses).
		cubeError(c, http.StatusBadRequest, "the database refused the query: %s", pgErr.Message)
	case c.GetBool(ctxCubeSession):
		// Under the management API, a failure is its own 500.
		a.fail(c, err)
	default:
		a.log.ErrorContext(c.Request.Context(), "cube request failed", "route", c.FullPath(), "err", err,
			"request_id", c.GetString(ctxRequestID))
		cubeError(c, http.StatusInternalServerError, "internal error (request %s)", c.GetString(ctxRequestID))
	}
}

// cubeBadRequest is a 400 of the Cube API that is no query's fault.
type cubeBadRequest string

func (e cubeBadRequest) Error() string { return string(e) }

// cubeAuthenticate finds the workspace API key in Authorization ("<key>"
// or "Bearer <key>"); it must hold the read scope. Cube answers a missing
// or bad token with 403.
func (a *API) cubeAuthenticate(c *gin.Context) {
	token := strings.TrimSpace(c.GetHeader("Authorization"))
	if scheme, rest, ok := strings.Cut(token, " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	}
	if token == "" {
		cubeError(c, http.StatusForbidden, "Authorization header isn't set: send a workspace API key with the read scope")
		return
	}
	if len(token) > maxCubeTokenLen {
		cubeError(c, http.StatusForbidden, "the API key is unknown or revoked")
		return
	}
	k, ws, err := a.store.APIKeyByHash(c.Request.Context(), store.HashSecret(token))
	if errors.Is(err, store.ErrNotFound) {
		cubeError(c, http.StatusForbidden, "the API key is unknown or revoked")
		return
	}
	if err != nil {
		a.cubeFail(c, err)
		return
	}
	if !auth.ScopesAllow(k.Scopes, auth.ReadWorkspace) {
		cubeError(c, http.StatusForbidden, "this API key's scopes (%v) do not include read", k.Scopes)
		return
	}
	c.Set(ctxPrincipal, &principal{key: &k, keySpace: ws, keyLabel: k.Name + " (" + k.Prefix + "…)", keyScopes: k.Scopes})
	c.Set(ctxCubeWorkspace, ws)
}

// ctxCubeWorkspace holds the workspace a Cube request queries: the API
// key's (cubeAuthenticate), or the one a console session names
// (cubeSession).
const (
	ctxCubeWorkspace = "eddy.cube_workspace"
	// ctxCubeSession marks a request of the routes under /api/v1.
	ctxCubeSession = "eddy.cube_session"
)

func cubeWorkspace(c *gin.Context) store.Workspace {
	ws, _ := c.MustGet(ctxCubeWorkspace).(store.Workspace)
	return ws
}

// registerCubeSession mounts the Cube API's load, sql and meta under a
// workspace of the management API (/api/v1/workspaces/{ws}/cube/...), for
// callers of the management API: the console, with its session cookie,
// and API keys. The caller needs the workspace's read permission; the
// answers and the errors of a query are the Cube API's; a server failure
// is the management API's 500.
func (a *API) registerCubeSession(authed gin.IRouter) {
	g := authed.Group("/workspaces/:ws/cube", a.cubeSession)
	g.GET("/load", a.cubeLoad)
	g.POST("/load", a.cubeLoad)
	g.GET("/sql", a.cubeSQL)
	g.POST("/sql", a.cubeSQL)
	g.GET("/meta", a.cubeMeta)
}

func (a *API) cubeSession(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	c.Set(ctxCubeWorkspace, ws)
	c.Set(ctxCubeSession, true)
}

// cubeRequest is what /load and /sql were asked: the query JSON and the
// queryType parameter.
type cubeRequest struct {
	query     json.RawMessage
	queryType string
}

// readCubeRequest reads ?query= (GET) or the {"query": ...} body (POST).
func readCubeRequest(c *gin.Context) (cubeRequest, bool) {
	var req cubeRequest
	if c.Request.Method == http.MethodPost {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxCubeQueryLen))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			cubeError(c, http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", maxCubeQueryLen)
			return req, false
		}
		if err != nil {
			cubeError(c, http.StatusBadRequest, "could not read the request body: %v", err)
			return req, false
		}
		var in struct {
			Query     json.RawMessage `json:"query"`
			QueryType string          `json:"queryType"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			cubeError(c, http.StatusBadRequest, "the request body must be a JSON object {\"query\": {...}}: %v", err)
			return req, false
		}
		req.query, req.queryType = in.Query, in.QueryType
		// A client may send the query as a JSON string, as in ?query=.
		var s string
		if json.Unmarshal(req.query, &s) == nil {
			req.query = json.RawMessage(s)
		}
	} else {
		raw := c.Query("query")
		if len(raw) > maxCubeQueryLen {
			cubeError(c, http.StatusRequestEntityTooLarge, "the query is longer than %d bytes", maxCubeQueryLen)
			return req, false
		}
		req.query, req.queryType = json.RawMessage(raw), c.Query("queryType")
	}
	if len(req.query) == 0 || string(req.query) == "null" {
		cubeError(c, http.StatusBadRequest, "query param is required")
		return req, false
	}
	if req.queryType != "" && req.queryType != "multi" {
		cubeError(c, http.StatusBadRequest, "queryType must be \"multi\" or absent, not %q", req.queryType)
		return req, false
	}
	// An array holds one query per result; Eddy answers one (Cube's data
	// blending is not supported).
	trimmed := strings.TrimSpace(string(req.query))
	if strings.HasPrefix(trimmed, "[") {
		var list []json.RawMessage
		if err := json.Unmarshal(req.query, &list); err != nil {
			cubeError(c, http.StatusBadRequest, "query is not valid JSON: %v", err)
			return req, false
		}
		if len(list) != 1 {
			cubeError(c, http.StatusBadRequest, "query must be one query: data blending (several at once) is not supported")
			return req, false
		}
		req.query = list[0]
	}
	return req, true
}

// compileCube parses and compiles the request's query for the caller's
// workspace; it answers the error itself.
func (a *API) compileCube(c *gin.Context) (cubeRequest, *cube.Model, *cube.Plan, bool) {
	req, ok := readCubeRequest(c)
	if !ok {
		return req, nil, nil, false
	}
	ws := cubeWorkspace(c)
	q, err := cube.ParseQuery(req.query)
	if err != nil {
		a.cubeFail(c, err)
		return req, nil, nil, false
	}
	model, err := a.cubeModel(c.Request.Context(), ws)
	if err != nil {
		a.cubeFail(c, err)
		return req, nil, nil, false
	}
	plan, err := model.Compile(q, cube.Options{WorkspaceID: ws.ID, Now: time.Now(), Rollups: true})
	if err != nil {
		a.cubeFail(c, err)
		return req, nil, nil, false
	}
	return req, model, plan, true
}

// cubeLoad answers /load: the query's rows in the shape the Cube client's
// ResultSet reads (cube-js/cube packages/cubejs-api-gateway gateway.ts,
// load and getResultInternal).
func (a *API) cubeLoad(c *gin.Context) {
	req, model, plan, ok := a.compileCube(c)
	if !ok {
		return
	}
	ws := cubeWorkspace(c)
	ctx := c.Request.Context()
	var data []map[string]any
	var total *int64
	err := a.store.InAnalytics(ctx, ws.ID, cubeStatementTimeout, func(tx pgx.Tx) error {
		var err error
		data, total, err = cube.Run(ctx, tx, plan)
		return err
	})
	if err != nil {
		a.cubeFail(c, err)
		return
	}
	if data == nil {
		data = []map[string]any{}
	}
	query := cubeQueryJSON(plan.Query)
	result := gin.H{
		"query":           query,
		"data":            data,
		"lastRefreshTime": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"annotation":      model.Annotate(plan.Query),
		"dataSource":      "default",
		"dbType":          "postgres",
		"external":        false,
		"slowQuery":       false,
		"total":           nil,
	}
	if plan.Query.Total {
		result["total"] = total
	}
	if req.queryType != "multi" {
		c.JSON(http.StatusOK, result)
		return
	}
	pivot := make(map[string]any, len(query)+1)
	for k, v := range query {
		pivot[k] = v
	}
	pivot["queryType"] = "regularQuery"
	c.JSON(http.StatusOK, gin.H{
		"queryType":  "regularQuery",
		"results":    []gin.H{result},
		"pivotQuery": pivot,
		"slowQuery":  false,
	})
}

// cubeSQL answers /sql: the SQL and parameters the query runs (gateway.ts
// sql: {"sql": {"sql": [text, params], "order": {...}, ...}}).
func (a *API) cubeSQL(c *gin.Context) {
	_, _, plan, ok := a.compileCube(c)
	if !ok {
		return
	}
	args := plan.Args
	if args == nil {
		args = []any{}
	}
	order := make(map[string]string, len(plan.Query.Order))
	for _, o := range plan.Query.Order {
		order[o.Member] = map[bool]string{false: "asc", true: "desc"}[o.Desc]
	}
	preAggs := []any{}
	if plan.Rollup != "" {
		preAggs = append(preAggs, gin.H{"preAggregationId": plan.Rollup})
	}
	c.JSON(http.StatusOK, gin.H{"sql": gin.H{
		"sql":             []any{plan.SQL, args},
		"order":           order,
		"external":        false,
		"dataSource":      "default",
		"preAggregations": preAggs,
	}})
}

// cubeMeta answers /meta: the cubes of the caller's workspace.
func (a *API) cubeMeta(c *gin.Context) {
	model, err := a.cubeModel(c.Request.Context(), cubeWorkspace(c))
	if err != nil {
		a.cubeFail(c, err)
		return
	}
	c.JSON(http.StatusOK, model.Meta())
}

// cubeQueryJSON is a normalised query as Cube echoes it in a result's
// "query" (order as [{id, desc}]).
func cubeQueryJSON(q cube.Query) map[string]any {
	out := map[string]any{
		"measures":       nonNilStrings(q.Measures),
		"dimensions":     nonNilStrings(q.Dimensions),
		"segments":       nonNilStrings(q.Segments),
		"timeDimensions": q.TimeDimensions,
		"filters":        q.Filters,
		"timezone":       q.Timezone,
	}
	if q.TimeDimensions == nil {
		out["timeDimensions"] = []cube.TimeDimension{}
	}
	if q.Filters == nil {
		out["filters"] = []cube.Filter{}
	}
	if out["timezone"] == "" {
		out["timezone"] = "UTC"
	}
	order := make([]gin.H, 0, len(q.Order))
	for _, o := range q.Order {
		order = append(order, gin.H{"id": o.Member, "desc": o.Desc})
	}
	out["order"] = order
	if q.Limit != nil {
		out["limit"] = *q.Limit
	}
	if q.Offset > 0 {
		out["offset"] = q.Offset
	}
	if q.Total {
		out["total"] = true
	}
	return out
}

// cubeModels caches each workspace's model (the base model and the
// workspace's own cubes merged) with the version of the workspace's cube
// files it was built from: a change anywhere bumps the version, so every
// API process rebuilds it on its next query.
type cubeModels struct {
	mu   sync.Mutex
	byWS map[string]cubeModelEntry
}

type cubeModelEntry struct {
	version int64
	model   *cube.Model
}

// baseCubes is the model every workspace starts from.
func (a *API) baseCubes() *cube.Model {
	if a.opts.Cubes != nil {
		return a.opts.Cubes
	}
	return cube.Shipped()
}

// cubeModel returns the model of a workspace.
func (a *API) cubeModel(ctx context.Context, ws store.Workspace) (*cube.Model, error) {
	version, err := a.store.WorkspaceCubesVersion(ctx, ws.ID)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		return a.baseCubes(), nil
	}
	a.cubes.mu.Lock()
	e, ok := a.cubes.byWS[ws.ID]
	a.cubes.mu.Unlock()
	if ok && e.version == version {
		return e.model, nil
	}
	files, err := a.store.WorkspaceCubes(ctx, ws)
	if err != nil {
		return nil, err
	}
	model, _, errs := mergeCubeFiles(a.baseCubes(), files.Files)
	if errs != nil {
		// Valid when stored: the shipped models changed since.
		return nil, cubeBadRequest("the workspace's cube files no longer fit the shipped models; fix them with PUT /api/v1/workspaces/" +
			ws.Slug + "/cubes: " + errs.Error())
	}
	a.cubes.mu.Lock()
	if a.cubes.byWS == nil {
		a.cubes.byWS = map[string]cubeModelEntry{}
	}
	if cur, ok := a.cubes.byWS[ws.ID]; !ok || cur.version < files.Version {
		a.cubes.byWS[ws.ID] = cubeModelEntry{version: files.Version, model: model}
	}
	a.cubes.mu.Unlock()
	return model, nil
}

// forgetCubeModel drops a workspace's cached model.
func (a *API) forgetCubeModel(workspaceID string) {
	a.cubes.mu.Lock()
	delete(a.cubes.byWS, workspaceID)
	a.cubes.mu.Unlock()
}

// mergeCubeFiles parses a workspace's cube files and merges them into base,
// returning the model and the workspace's own cubes; each problem is a
// FieldError of its file ("file:line: reason").
func mergeCubeFiles(base *cube.Model, files map[string]string) (*cube.Model, []*cube.Cube, FieldErrors) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs FieldErrors
	var extra []*cube.Cube
	for _, name := range names {
		cubes, err := cube.Parse(name, []byte(files[name]))
		if err != nil {
			addCubeErrors(&errs, name, err)
			continue
		}
		for _, c := range cubes {
			if len(c.PreAggregations) > 0 {
				// A rollup is a table with triggers on Eddy's tables:
				// the installation's models declare them, not a workspace.
				errs.Add("files."+name, "%s:%d: cube %q: pre_aggregations are kept for the installation's models (its cubes folder); a workspace's own cubes are answered from the tables",
					name, c.Line, c.Name)
			}
		}
		extra = append(extra, cubes...)
	}
	if errs != nil {
		return nil, nil, errs
	}
	model, err := base.Merge(extra)
	if err != nil {
		addCubeErrors(&errs, "", err)
		return nil, nil, errs
	}
	return model, extra, nil
}

// addCubeErrors adds one FieldError per problem of a model error, each
// "file:line: reason", under files.<file>.
func addCubeErrors(errs *FieldErrors, name string, err error) {
	var list cube.Errors
	if !errors.As(err, &list) {
		list = cube.Errors{{File: name, Message: err.Error()}}
	}
	for _, e := range list {
		field := "files"
		if e.File != "" {
			field = "files." + e.File
		}
		errs.Add(field, "%s", e.Error())
	}
}
