package api

// Plugins: an organization's catalog (the plugins of plugins.yaml, shared by
// every organization, and the WASM plugins it uploaded), and the
// installations of plugins in its workspaces.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eddy-cdp/eddy/core/apierror"
	"github.com/eddy-cdp/eddy/core/auth"
	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/core/pluginstatus"
	"github.com/eddy-cdp/eddy/core/store"
	"github.com/eddy-cdp/eddy/core/wasmhost"
)

// Where a catalog plugin comes from.
const (
	SourceBuiltin = "builtin" // a plugin shipped with Eddy (under its plugins/ folder)
	SourceFile    = "file"    // another plugin folder plugins.yaml lists
	SourceUpload  = "upload"  // a WASM plugin the organization uploaded
)

// Limits of an upload.
const (
	// MaxModuleBytes caps an uploaded WASM module.
	MaxModuleBytes = 16 << 20
	// maxUploadBytes caps the whole multipart body: both parts and their
	// headers.
	maxUploadBytes = MaxModuleBytes + plugin.MaxManifestBytes + 64<<10
	// maxPosition bounds an installation's position.
	maxPosition = 100000
)

// Mask replaces the value of a secret setting in the configurations the
// API returns; sent back in a PATCH, it keeps the stored value.
const Mask = "********"

var pluginIDPattern = regexp.MustCompile(`^(source|processor|sink|app)\.[a-z][a-z0-9_]{0,62}$`)

// CheckWASMModule checks that module is a WebAssembly module that compiles
// and follows Eddy's WASM ABI: core/wasmhost's rule, the one the runtime
// applies when it loads the module (the ABI's exports, and a handler:
// eddy_process with eddy_buffer for a processor, eddy_on_events or
// eddy_on_sessions for an app). It runs none of it.
func CheckWASMModule(ctx context.Context, module []byte) error {
	return wasmhost.Validate(ctx, module)
}

// Views.

type PluginPermissionsJSON struct {
	Events  []string `json:"events"`
	Network []string `json:"network"`
	Write   []string `json:"write"`
}

type PluginJSON struct {
	ID           string                `json:"id"`
	Version      string                `json:"version"`
	Kind         string                `json:"kind"`
	Runtime      string                `json:"runtime"`
	Description  string                `json:"description"`
	ConfigSchema any                   `json:"config_schema"`
	Permissions  PluginPermissionsJSON `json:"permissions"`
	Purposes     []string              `json:"purposes"`
	// Deletion: a sink that erases a deleted person's data at its
	// destination.
	Deletion bool   `json:"deletion"`
	Source   string `json:"source"`
	// For uploads: the module's hex SHA-256, size and upload time.
	SHA256     string     `json:"sha256,omitempty"`
	Size       int        `json:"size,omitempty"`
	UploadedAt *time.Time `json:"uploaded_at,omitempty"`
}

func pluginView(m *plugin.Manifest, source string) PluginJSON {
	schema := jsonCopy(m.Schema)
	if schema == nil {
		schema = map[string]any{"type": "object", "additionalProperties": false}
	}
	return PluginJSON{ID: m.ID, Version: m.Version, Kind: string(m.Kind()), Runtime: string(m.Runtime),
		Description: m.Description, ConfigSchema: schema,
		Permissions: PluginPermissionsJSON{Events: nonNilStrings(m.Permissions.Events),
			Network: nonNilStrings(m.Permissions.Network), Write: nonNilStrings(m.Permissions.Write)},
		Purposes: nonNilStrings(m.Purposes), Deletion: m.Deletion, Source: source}
}

func uploadView(m *plugin.Manifest, u store.UploadedPlugin) PluginJSON {
	v := pluginView(m, SourceUpload)
	v.SHA256, v.Size, v.UploadedAt = u.SHA256, u.Size, &u.CreatedAt
	return v
}

func nonNilStrings(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// jsonCopy returns a copy of a value decoded from YAML that encoding/json
// can encode (maps with non-string keys get string keys), sharing nothing
// with v: manifests are shared with the rest of the process.
func jsonCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = jsonCopy(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = jsonCopy(e)
		}
		return s
	default:
		return v
	}
}

type PluginStatusJSON struct {
	// State is running, stopped, failing, disabled, or unknown when no
	// worker reported on the installation lately.
	State        string     `json:"state"`
	LastError    *string    `json:"last_error"`
	LastErrorAt  *time.Time `json:"last_error_at"`
	Calls        int64      `json:"calls"`
	EventsIn     int64      `json:"events_in"`
	EventsOut    int64      `json:"events_out"`
	EventsFailed int64      `json:"events_failed"`
	AvgLatencyMS float64    `json:"avg_latency_ms"`
	Lag          int64      `json:"lag"`
	DeadLetters  int64      `json:"dead_letters"`
	UpdatedAt    *time.Time `json:"updated_at"`
}

type InstallationJSON struct {
	ID          string          `json:"id"`
	PluginID    string          `json:"plugin_id"`
	WorkspaceID string          `json:"workspace_id"`
	Enabled     bool            `json:"enabled"`
	Config      json.RawMessage `json:"config"`
	Position    int             `json:"position"`
	// RateLimit is the most events per second a sink installation is
	// delivered, 0 for unlimited.
	RateLimit float64 `json:"rate_limit"`
	Managed   bool    `json:"managed"`
	// Source is where the plugin comes from, "" when it left the catalog.
	Source    string           `json:"source"`
	Status    PluginStatusJSON `json:"status"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// The catalog.

// catalogPlugin is a plugin of an organization's catalog.
type catalogPlugin struct {
	m      *plugin.Manifest
	source string
	upload store.UploadedPlugin
}

// fileSource tells whether a plugins.yaml plugin is builtin or not.
func (a *API) fileSource(m *plugin.Manifest) string {
	if a.opts.BuiltinPluginsDir == "" {
		return SourceFile
	}
	rel, err := filepath.Rel(a.opts.BuiltinPluginsDir, m.Dir)
	if err != nil || !filepath.IsLocal(rel) {
		return SourceFile
	}
	return SourceBuiltin
}

// findPlugin returns a plugin of an organization's catalog;
// store.ErrNotFound when there is none by that id.
func (a *API) findPlugin(ctx context.Context, orgID, id string) (catalogPlugin, error) {
	if m, ok := a.opts.Manifests[id]; ok {
		return catalogPlugin{m: m, source: a.fileSource(m)}, nil
	}
	u, err := a.store.UploadedManifest(ctx, orgID, id)
	if err != nil {
		return catalogPlugin{}, err
	}
	m, err := plugin.ParseManifest("plugin.yaml", "", []byte(u.Manifest))
	if err != nil {
		// It was checked at upload: only a change of the rules since
		// could make it fail.
		return catalogPlugin{}, fmt.Errorf("uploaded plugin %s %s: %w", id, u.Version, err)
	}
	return catalogPlugin{m: m, source: SourceUpload, upload: u}, nil
}

func (a *API) listPlugins(c *gin.Context) {
	org, ok := a.organization(c, auth.ReadOrganization)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	uploads, err := a.store.UploadedPlugins(ctx, org.ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	data := make([]PluginJSON, 0, len(a.opts.Manifests)+len(uploads))
	for _, id := range slices.Sorted(maps.Keys(a.opts.Manifests)) {
		m := a.opts.Manifests[id]
		data = append(data, pluginView(m, a.fileSource(m)))
	}
	for _, u := range uploads {
		if _, shadowed := a.opts.Manifests[u.PluginID]; shadowed {
			continue // plugins.yaml's plugin of the same id wins
		}
		m, err := plugin.ParseManifest("plugin.yaml", "", []byte(u.Manifest))
		if err != nil {
			a.log.WarnContext(ctx, "uploaded plugin no longer valid", "plugin", u.PluginID, "version", u.Version, "err", err)
			continue
		}
		data = append(data, uploadView(m, u))
	}
	slices.SortStableFunc(data, func(x, y PluginJSON) int { return strings.Compare(x.ID, y.ID) })
	c.JSON(http.StatusOK, gin.H{"data": data})
}

func tooLarge(format string, args ...any) *apierror.Error {
	return apierror.New(http.StatusRequestEntityTooLarge, "body_too_large", format, args...)
}

// readPart reads a multipart part of at most limit bytes.
func readPart(p *multipart.Part, name string, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(p, int64(limit)+1))
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &big):
		return nil, tooLarge("the request body is larger than %d bytes", maxUploadBytes)
	case err != nil:
		return nil, FieldErrors{{Field: name, Message: "could not be read: " + err.Error()}}
	case len(b) > limit:
		return nil, tooLarge("%s: is larger than %d bytes", name, limit)
	}
	return b, nil
}

// readUpload reads the manifest and module parts of an upload.
func readUpload(c *gin.Context) (manifest, module []byte, err error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxUploadBytes)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, nil, FieldErrors{{Field: "body", Message: "must be multipart/form-data with the parts manifest (plugin.yaml) and module (.wasm)"}}
	}
	var got []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return nil, nil, tooLarge("the request body is larger than %d bytes", maxUploadBytes)
		}
		if err != nil {
			return nil, nil, FieldErrors{{Field: "body", Message: "is not valid multipart/form-data: " + err.Error()}}
		}
		name := p.FormName()
		if slices.Contains(got, name) {
			return nil, nil, FieldErrors{{Field: name, Message: "is sent twice"}}
		}
		got = append(got, name)
		switch name {
		case "manifest":
			manifest, err = readPart(p, name, plugin.MaxManifestBytes)
		case "module":
			module, err = readPart(p, name, MaxModuleBytes)
		default:
			err = FieldErrors{{Field: name, Message: "is not a known part: send manifest and module"}}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return manifest, module, nil
}

func (a *API) uploadPlugin(c *gin.Context) {
	org, ok := a.organization(c, auth.ManageOrganization)
	if !ok {
		return
	}
	manifest, module, err := readUpload(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	var errs FieldErrors
	var m *plugin.Manifest
	switch {
	case len(manifest) == 0:
		errs.Add("manifest", "is required: the plugin's plugin.yaml")
	default:
		m, err = plugin.ParseManifest("plugin.yaml", "", manifest)
		if err != nil {
			msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "plugin.yaml: "), "\nplugin.yaml: ", "; ")
			errs.Add("manifest", "%s", msg)
		} else if m.Runtime != plugin.WASM {
			errs.Add("manifest.runtime", "is %q: only wasm plugins can be uploaded", m.Runtime)
		}
	}
	if len(module) == 0 {
		errs.Add("module", "is required: the plugin's WebAssembly module (.wasm)")
	} else if err := CheckWASMModule(ctx, module); err != nil {
		errs.Add("module", "%v", err)
	}
	if errs != nil {
		a.fail(c, errs)
		return
	}
	if _, taken := a.opts.Manifests[m.ID]; taken {
		a.fail(c, apierror.New(http.StatusConflict, "conflict", "plugin id %s is taken by a plugin of plugins.yaml; choose another id", m.ID))
		return
	}
	sum := sha256.Sum256(module)
	u, err := a.store.CreateUpload(ctx, change(c), org, store.UploadedPlugin{PluginID: m.ID, Version: m.Version,
		Manifest: string(manifest), Module: module, SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		a.fail(c, err)
		return
	}
	a.opts.PluginsChanged(ctx)
	c.JSON(http.StatusCreated, uploadView(m, u))
}

// Installations.

// pluginParam returns the :plugin_id of the path, or answers 400.
func (a *API) pluginParam(c *gin.Context) (string, bool) {
	v := c.Param("plugin_id")
	if !pluginIDPattern.MatchString(v) {
		a.fail(c, FieldErrors{{Field: "plugin_id", Message: "is not a plugin id: kind.name, such as sink.webhook"}})
		return "", false
	}
	return v, true
}

// installationView writes an installation, its configuration's secrets
// masked (m may be nil when the plugin left the catalog: names alone then
// tell secrets) and its runtime status.
func (a *API) installationView(ctx context.Context, w store.Workspace, in store.Installation, p catalogPlugin) InstallationJSON {
	var schema any
	if p.m != nil {
		schema = p.m.Schema
	}
	return InstallationJSON{ID: in.ID, PluginID: in.PluginID, WorkspaceID: w.Slug, Enabled: in.Enabled,
		Config: maskConfig(schema, in.Config), Position: in.Position, RateLimit: in.RateLimit, Managed: in.Managed, Source: p.source,
		Status: a.pluginStatus(ctx, in.ID), CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
}

// pluginStatus merges the workers' reports on an installation. Without
// Redis, or when it fails, the state is unknown: the installation itself
// is still worth showing.
func (a *API) pluginStatus(ctx context.Context, id string) PluginStatusJSON {
	out := PluginStatusJSON{State: "unknown"}
	if a.status == nil {
		return out
	}
	r, ok, err := a.status.Get(ctx, id)
	if err != nil {
		a.log.WarnContext(ctx, "read plugin status", "installation", id, "err", err)
		return out
	}
	if !ok {
		return out
	}
	out = PluginStatusJSON{State: r.State, LastError: nullString(r.LastError), LastErrorAt: nullTime(r.LastErrorAt),
		Calls: r.Calls, EventsIn: r.EventsIn, EventsOut: r.EventsOut, EventsFailed: r.EventsFailed,
		Lag: r.Lag, DeadLetters: r.DeadLetters, UpdatedAt: nullTime(r.UpdatedAt)}
	if r.Calls > 0 {
		out.AvgLatencyMS = r.CallSeconds * 1000 / float64(r.Calls)
	}
	if out.State == "" {
		out.State = "unknown"
	}
	return out
}

// plugins caches catalog lookups for one request.
type plugins struct {
	a     *API
	orgID string
	found map[string]catalogPlugin
}

func (a *API) pluginsOf(w store.Workspace) *plugins {
	return &plugins{a: a, orgID: w.OrgID, found: map[string]catalogPlugin{}}
}

// get returns a catalog plugin, the zero catalogPlugin when it left the
// catalog.
func (ps *plugins) get(ctx context.Context, id string) (catalogPlugin, error) {
	if p, ok := ps.found[id]; ok {
		return p, nil
	}
	p, err := ps.a.findPlugin(ctx, ps.orgID, id)
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return p, err
	}
	ps.found[id] = p
	return p, nil
}

// redactor returns what the audit log records of an installation's
// configuration: the masked configuration.
func redactor(p catalogPlugin) store.Redactor {
	var schema any
	if p.m != nil {
		schema = p.m.Schema
	}
	return func(config json.RawMessage) any { return maskConfig(schema, config) }
}

// installCursor continues a list of installations.
type installCursor struct {
	Position int    `json:"p"`
	PluginID string `json:"i"`
}

func (a *API) listInstallations(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	var cur installCursor
	limit, ok := a.pageParams(c, &cur)
	if !ok {
		return
	}
	after := store.FirstInstallations
	if c.Query("cursor") != "" {
		after = store.InstallationCursor{Position: cur.Position, PluginID: cur.PluginID}
	}
	ctx := c.Request.Context()
	items, err := a.store.Installations(ctx, ws, after, limit+1)
	if err != nil {
		a.fail(c, err)
		return
	}
	ps := a.pluginsOf(ws)
	views := make(map[string]InstallationJSON, len(items))
	for i, in := range items {
		if i == limit {
			break
		}
		p, err := ps.get(ctx, in.PluginID)
		if err != nil {
			a.fail(c, err)
			return
		}
		views[in.ID] = a.installationView(ctx, ws, in, p)
	}
	list(c, items, limit, func(in store.Installation) any { return views[in.ID] },
		func(in store.Installation) any { return installCursor{Position: in.Position, PluginID: in.PluginID} })
}

func (a *API) getInstallation(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ReadWorkspace)
	if !ok {
		return
	}
	id, ok := a.pluginParam(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	in, err := a.store.InstallationOf(ctx, ws, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	p, err := a.pluginsOf(ws).get(ctx, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, a.installationView(ctx, ws, in, p))
}

type installRequest struct {
	PluginID  string          `json:"plugin_id"`
	Config    json.RawMessage `json:"config"`
	Enabled   *bool           `json:"enabled"`
	Position  *int            `json:"position"`
	RateLimit *float64        `json:"rate_limit"`
}

func (a *API) installPlugin(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	var req installRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	if req.PluginID == "" {
		errs.Add("plugin_id", "is required: the id of a plugin of the organization's catalog, such as sink.webhook")
	} else if !pluginIDPattern.MatchString(req.PluginID) {
		errs.Add("plugin_id", "is not a plugin id: kind.name, such as sink.webhook")
	}
	checkPosition(req.Position, &errs)
	checkRateLimit(req.RateLimit, &errs)
	config, cfgErrs := decodeConfig(req.Config, true)
	errs = append(errs, cfgErrs...)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	ctx := c.Request.Context()
	p, err := a.findPlugin(ctx, ws.OrgID, req.PluginID)
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, FieldErrors{{Field: "plugin_id", Message: "is not a plugin of this organization's catalog (GET /organizations/{org}/plugins lists them)"}})
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	config, err = unmask(config, nil)
	if err != nil {
		a.fail(c, err)
		return
	}
	raw, err := checkConfig(p.m, config)
	if err != nil {
		a.fail(c, err)
		return
	}
	n := store.NewInstallation{PluginID: req.PluginID, Enabled: req.Enabled == nil || *req.Enabled, Config: raw, Position: req.Position}
	if req.RateLimit != nil {
		n.RateLimit = *req.RateLimit
	}
	in, err := a.store.CreateInstallation(ctx, change(c), ws, n, redactor(p))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.opts.PluginsChanged(ctx)
	c.JSON(http.StatusCreated, a.installationView(ctx, ws, in, p))
}

type updateInstallationRequest struct {
	Config    json.RawMessage `json:"config"`
	Enabled   *bool           `json:"enabled"`
	Position  *int            `json:"position"`
	RateLimit *float64        `json:"rate_limit"`
}

func (a *API) updateInstallation(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	id, ok := a.pluginParam(c)
	if !ok {
		return
	}
	var req updateInstallationRequest
	if !a.bind(c, &req) {
		return
	}
	var errs FieldErrors
	checkPosition(req.Position, &errs)
	checkRateLimit(req.RateLimit, &errs)
	config, cfgErrs := decodeConfig(req.Config, false)
	errs = append(errs, cfgErrs...)
	if errs != nil {
		a.fail(c, errs)
		return
	}
	ctx := c.Request.Context()
	ps := a.pluginsOf(ws)
	var p catalogPlugin
	// The plugin is looked up once the installation is found: an
	// installation that does not exist is "not found" whatever its id.
	in, err := a.store.UpdateInstallation(ctx, change(c), ws, id, func(in store.Installation) (store.Installation, error) {
		var err error
		if p, err = ps.get(ctx, id); err != nil {
			return in, err
		}
		if req.Enabled != nil {
			in.Enabled = *req.Enabled
		}
		if req.Position != nil {
			in.Position = *req.Position
		}
		if req.RateLimit != nil {
			in.RateLimit = *req.RateLimit
		}
		if config == nil {
			return in, nil
		}
		if p.m == nil {
			return in, &store.ConflictError{Msg: fmt.Sprintf("plugin %s is no longer in the catalog: its configuration cannot be checked; uninstall it", id)}
		}
		var stored map[string]any
		if err := decodeJSON(in.Config, &stored); err != nil {
			return in, fmt.Errorf("stored config of %s: %w", id, err)
		}
		merged, err := unmask(config, stored)
		if err != nil {
			return in, err
		}
		in.Config, err = checkConfig(p.m, merged)
		return in, err
	}, func(config json.RawMessage) any { return redactor(p)(config) })
	if err != nil {
		a.fail(c, err)
		return
	}
	a.opts.PluginsChanged(ctx)
	c.JSON(http.StatusOK, a.installationView(ctx, ws, in, p))
}

func (a *API) uninstallPlugin(c *gin.Context) {
	ws, ok := a.workspace(c, auth.ConfigureWorkspace)
	if !ok {
		return
	}
	id, ok := a.pluginParam(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	ps := a.pluginsOf(ws)
	in, err := a.store.DeleteInstallation(ctx, change(c), ws, id, func(config json.RawMessage) any {
		p, _ := ps.get(ctx, id) // without the schema, names alone tell secrets
		return redactor(p)(config)
	})
	if err != nil {
		a.fail(c, err)
		return
	}
	if a.status != nil {
		if err := a.status.Delete(ctx, in.ID); err != nil {
			a.log.WarnContext(ctx, "forget plugin status", "installation", in.ID, "err", err)
		}
	}
	a.opts.PluginsChanged(ctx)
	c.Status(http.StatusNoContent)
}

func checkPosition(p *int, errs *FieldErrors) {
	if p != nil && (*p < 0 || *p > maxPosition) {
		errs.Add("position", "must be a whole number from 0 to %d", maxPosition)
	}
}

// checkRateLimit bounds an installation's rate limit. JSON has no NaN or
// infinity, but the check refuses them anyway.
func checkRateLimit(r *float64, errs *FieldErrors) {
	if r != nil && !(*r >= 0 && *r <= store.MaxRateLimit) {
		errs.Add("rate_limit", "must be a number of events per second from 0 (unlimited) to %d", store.MaxRateLimit)
	}
}

// decodeJSON decodes JSON keeping numbers exact.
func decodeJSON(b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(dst)
}

// decodeConfig decodes the config of a request: nil when absent (an
// install gets {}), a FieldErrors when it is not an object.
func decodeConfig(raw json.RawMessage, install bool) (map[string]any, FieldErrors) {
	if len(raw) == 0 {
		if install {
			return map[string]any{}, nil
		}
		return nil, nil
	}
	var config map[string]any
	if err := decodeJSON(raw, &config); err != nil || config == nil {
		return nil, FieldErrors{{Field: "config", Message: "must be a JSON object"}}
	}
	return config, nil
}

// checkConfig checks a configuration against the plugin's schema and
// returns it encoded. The messages never repeat a value (configurations
// hold secrets): CheckConfig states the rules broken only.
func checkConfig(m *plugin.Manifest, config map[string]any) (json.RawMessage, error) {
	var errs FieldErrors
	for _, fe := range m.CheckConfig(config) {
		errs.Add(fe.Field, "%s", fe.Message)
	}
	if errs != nil {
		return nil, errs
	}
	b, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b, nil
}

// secretName tells whether a setting's name says it holds a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// subSchema returns the schema of a property (or, with key "", of an
// array's items) of an object schema, nil when it says nothing.
func subSchema(schema any, key string, items bool) map[string]any {
	s, _ := schema.(map[string]any)
	if s == nil {
		return nil
	}
	if items {
		sub, _ := s["items"].(map[string]any)
		return sub
	}
	props, _ := s["properties"].(map[string]any)
	sub, _ := props[key].(map[string]any)
	return sub
}

// maskConfig returns a configuration with the value of every secret
// setting replaced by Mask: properties the schema marks writeOnly, or
// whose name contains password, secret or token, at any depth.
func maskConfig(schema any, raw json.RawMessage) json.RawMessage {
	var config any
	if err := decodeJSON(raw, &config); err != nil {
		return json.RawMessage(`{}`)
	}
	b, err := json.Marshal(mask(schema, config))
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

func mask(schema any, v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			sub := subSchema(schema, k, false)
			if e != nil && (secretName(k) || sub["writeOnly"] == true) {
				out[k] = Mask
				continue
			}
			out[k] = mask(sub, e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		items := subSchema(schema, "", true)
		for i, e := range v {
			out[i] = mask(items, e)
		}
		return out
	default:
		return v
	}
}

// unmask replaces each Mask in a sent configuration by the value stored at
// the same place; a Mask where nothing is stored is an error.
func unmask(sent map[string]any, stored map[string]any) (map[string]any, error) {
	var errs FieldErrors
	out, _ := restore(sent, stored, stored != nil, "config", &errs).(map[string]any)
	if errs != nil {
		return nil, errs
	}
	return out, nil
}

func restore(sent, stored any, found bool, field string, errs *FieldErrors) any {
	switch s := sent.(type) {
	case string:
		if s != Mask {
			return s
		}
		if !found {
			errs.Add(field, "is %q, which stands for a stored secret, but none is stored here: send the value", Mask)
		}
		return stored
	case map[string]any:
		st, _ := stored.(map[string]any)
		out := make(map[string]any, len(s))
		for k, e := range s {
			v, ok := st[k]
			out[k] = restore(e, v, ok, field+"."+k, errs)
		}
		return out
	case []any:
		st, _ := stored.([]any)
		out := make([]any, len(s))
		for i, e := range s {
			var v any
			ok := i < len(st)
			if ok {
				v = st[i]
			}
			out[i] = restore(e, v, ok, fmt.Sprintf("%s[%d]", field, i), errs)
		}
		return out
	default:
		return sent
	}
}

// newPluginStatus returns the reader of plugin status reports the options
// ask for.
func newPluginStatus(o Options) *pluginstatus.Store {
	if o.PluginStatus != nil {
		return o.PluginStatus
	}
	if o.Redis == nil {
		return nil
	}
	return pluginstatus.New(o.Redis, o.Prefix, 0)
}
