package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/semver"
)

// Installation is a plugin installed in a workspace.
type Installation struct {
	// ID and WorkspaceID are UUIDs; PluginID is the manifest's id.
	ID, WorkspaceID, PluginID string
	Enabled                   bool
	// Config is the plugin's configuration, a JSON object, secrets in clear.
	Config json.RawMessage
	// Position orders a workspace's processors, ascending.
	Position int
	// RateLimit is the most events per second a sink installation is
	// delivered, 0 for unlimited.
	RateLimit float64
	// Managed installations are declared in plugins.yaml.
	Managed              bool
	CreatedAt, UpdatedAt time.Time
}

// InstallationSpec is an installation as plugins.yaml declares it.
type InstallationSpec struct {
	// Workspace is the slug of a workspace SyncWorkspaces applied.
	Workspace string
	PluginID  string
	Enabled   bool
	// Config is a JSON object; nil means {}.
	Config json.RawMessage
	// RateLimit is as Installation's, 0 to MaxRateLimit.
	RateLimit float64
}

// MaxRateLimit bounds an installation's rate limit, in events per second
// (the column's check says the same).
const MaxRateLimit = 1_000_000

// Redactor returns what the audit log records of an installation's
// configuration: the configuration without its secrets. A nil Redactor
// records none of it.
type Redactor func(config json.RawMessage) any

const installationColumns = `id::text, workspace_id::text, plugin_id, enabled, config, position, rate_limit, managed, created_at, updated_at`

func scanInstallation(row pgx.Row) (Installation, error) {
	var in Installation
	err := row.Scan(&in.ID, &in.WorkspaceID, &in.PluginID, &in.Enabled, &in.Config, &in.Position, &in.RateLimit, &in.Managed,
		&in.CreatedAt, &in.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return in, ErrNotFound
	}
	return in, err
}

// AllInstallations returns the installations of every workspace, ordered by
// workspace, position and plugin id. It is for Eddy's plugin runtime, not
// for callers acting for a principal; deleted workspaces' installations are
// left out.
func (s *Store) AllInstallations(ctx context.Context) ([]Installation, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT i.id::text, i.workspace_id::text, i.plugin_id, i.enabled, i.config, i.position, i.rate_limit, i.managed,
		       i.created_at, i.updated_at
		FROM plugin_installations i JOIN workspaces w ON w.id = i.workspace_id
		WHERE w.deleted_at IS NULL
		ORDER BY i.workspace_id, i.position, i.plugin_id`)
	if err != nil {
		return nil, fmt.Errorf("all installations: %w", err)
	}
	return collect(rows, scanInstallation, "all installations")
}

// SyncInstallations makes the managed installations match specs (the
// plugins.yaml view), in one transaction: it creates or updates each
// declared installation (enabled, config, rate limit, position = its order
// among its workspace's specs) and marks it managed, taking over an installation the
// API made of the same plugin; it deletes managed installations no longer
// declared and leaves the others alone. Running it again with the same
// specs changes nothing. Call it after SyncWorkspaces.
func (s *Store) SyncInstallations(ctx context.Context, specs []InstallationSpec) error {
	var wsSlugs, pluginIDs []string
	var enabled []bool
	var configs []string
	var positions []int32
	var rateLimits []float64
	seen := map[[2]string]bool{}
	next := map[string]int32{}
	for _, sp := range specs {
		if sp.Workspace == "" || sp.PluginID == "" {
			return errors.New("sync installations: an installation has no workspace or plugin id")
		}
		k := [2]string{sp.Workspace, sp.PluginID}
		if seen[k] {
			return fmt.Errorf("sync installations: plugin %s is declared twice in workspace %s", sp.PluginID, sp.Workspace)
		}
		seen[k] = true
		cfg := sp.Config
		if len(cfg) == 0 {
			cfg = json.RawMessage(`{}`)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cfg, &obj); err != nil || obj == nil {
			return fmt.Errorf("sync installations: the config of %s in workspace %s is not a JSON object", sp.PluginID, sp.Workspace)
		}
		if !(sp.RateLimit >= 0 && sp.RateLimit <= MaxRateLimit) {
			return fmt.Errorf("sync installations: the rate limit of %s in workspace %s must be from 0 to %d events per second",
				sp.PluginID, sp.Workspace, MaxRateLimit)
		}
		wsSlugs = append(wsSlugs, sp.Workspace)
		pluginIDs = append(pluginIDs, sp.PluginID)
		enabled = append(enabled, sp.Enabled)
		configs = append(configs, string(cfg))
		positions = append(positions, next[sp.Workspace])
		rateLimits = append(rateLimits, sp.RateLimit)
		next[sp.Workspace]++
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Concurrent syncs (several processes starting together) take turns.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(1701078137, 3)"); err != nil {
			return err
		}
		var missing []string
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT u.slug FROM unnest($1::text[]) AS u(slug)
			WHERE NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.slug = u.slug AND w.deleted_at IS NULL)`, wsSlugs)
		if err != nil {
			return fmt.Errorf("check workspaces: %w", err)
		}
		if missing, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("check workspaces: %w", err)
		}
		if len(missing) > 0 {
			return fmt.Errorf("workspaces %v do not exist (sync workspaces first)", missing)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO plugin_installations (workspace_id, plugin_id, enabled, config, position, rate_limit, managed)
			SELECT w.id, u.plugin_id, u.enabled, u.config::jsonb, u.position, u.rate_limit, true
			FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::integer[], $6::double precision[])
			     AS u(workspace_slug, plugin_id, enabled, config, position, rate_limit)
			JOIN workspaces w ON w.slug = u.workspace_slug
			ON CONFLICT (workspace_id, plugin_id) DO UPDATE
			SET enabled = excluded.enabled, config = excluded.config, position = excluded.position,
			    rate_limit = excluded.rate_limit, managed = true, updated_at = now()
			WHERE (plugin_installations.enabled, plugin_installations.config, plugin_installations.position,
			       plugin_installations.rate_limit, plugin_installations.managed)
			      IS DISTINCT FROM (excluded.enabled, excluded.config, excluded.position, excluded.rate_limit, true)`,
			wsSlugs, pluginIDs, enabled, configs, positions, rateLimits)
		if err != nil {
			return fmt.Errorf("upsert installations: %w", err)
		}
		_, err = tx.Exec(ctx, `
			DELETE FROM plugin_installations i
			USING workspaces w
			WHERE w.id = i.workspace_id AND i.managed
			  AND NOT EXISTS (
			      SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(workspace_slug, plugin_id)
			      WHERE k.workspace_slug = w.slug AND k.plugin_id = i.plugin_id)`,
			wsSlugs, pluginIDs)
		if err != nil {
			return fmt.Errorf("delete undeclared installations: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync installations: %w", err)
	}
	return nil
}

// InstallationCursor continues a list of installations after the last one
// shown; FirstInstallations starts it.
type InstallationCursor struct {
	Position int
	PluginID string
}

// FirstInstallations is the cursor of a list's first page.
var FirstInstallations = InstallationCursor{Position: math.MinInt32}

// Installations lists a workspace's installations in processing order
// (position, then plugin id), after the cursor, at most limit.
func (s *Store) Installations(ctx context.Context, w Workspace, after InstallationCursor, limit int) ([]Installation, error) {
	var out []Installation
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+installationColumns+` FROM plugin_installations
			WHERE workspace_id = $1 AND (position, plugin_id) > ($2, $3)
			ORDER BY position, plugin_id LIMIT $4`, w.ID, after.Position, after.PluginID, limit)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanInstallation, "installations")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("installations of %s: %w", w.Slug, err)
	}
	return out, nil
}

// InstallationOf returns a workspace's installation of a plugin.
func (s *Store) InstallationOf(ctx context.Context, w Workspace, pluginID string) (Installation, error) {
	var in Installation
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		in, err = scanInstallation(tx.QueryRow(ctx, `SELECT `+installationColumns+` FROM plugin_installations
			WHERE workspace_id = $1 AND plugin_id = $2`, w.ID, pluginID))
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return in, fmt.Errorf("installation of %s in %s: %w", pluginID, w.Slug, err)
	}
	return in, err
}

func installationAudit(in Installation, redact Redactor) map[string]any {
	m := map[string]any{"enabled": in.Enabled, "position": in.Position, "rate_limit": in.RateLimit}
	if redact != nil {
		m["config"] = redact(in.Config)
	}
	return m
}

// NewInstallation is what installing a plugin sets.
type NewInstallation struct {
	PluginID string
	Enabled  bool
	// Config is a JSON object the caller checked against the plugin's schema.
	Config json.RawMessage
	// Position, when nil, places the installation after the workspace's
	// others.
	Position *int
	// RateLimit is the most events per second a sink installation is
	// delivered, 0 for unlimited.
	RateLimit float64
}

// CreateInstallation installs a plugin in a workspace. A plugin installed
// there already is a ConflictError.
func (s *Store) CreateInstallation(ctx context.Context, who Change, w Workspace, n NewInstallation, redact Redactor) (Installation, error) {
	var in Installation
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		in, err = scanInstallation(tx.QueryRow(ctx, `
			INSERT INTO plugin_installations (workspace_id, plugin_id, enabled, config, position, rate_limit)
			VALUES ($1, $2, $3, $4, coalesce($5::integer, (SELECT max(position) + 1 FROM plugin_installations WHERE workspace_id = $1), 0), $6)
			RETURNING `+installationColumns, w.ID, n.PluginID, n.Enabled, n.Config, n.Position, n.RateLimit))
		if isUniqueViolation(err, "plugin_installations_workspace_id_plugin_id_key") {
			return conflict("plugin %s is already installed in workspace %s", n.PluginID, w.Slug)
		}
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "plugin.install", targetType: "plugin_installation",
			targetID: n.PluginID, workspace: w.Slug, after: installationAudit(in, redact)})
	})
	if err != nil {
		return in, fmt.Errorf("install %s in %s: %w", n.PluginID, w.Slug, err)
	}
	return in, nil
}

// UpdateInstallation changes a workspace's installation of a plugin: it
// locks it, refuses a managed one (ConflictError), and stores what change
// returns (its enabled, config, position and rate limit); change may refuse with an
// error, returned as is. A change that changes nothing is not written or
// audited.
func (s *Store) UpdateInstallation(ctx context.Context, who Change, w Workspace, pluginID string,
	change func(Installation) (Installation, error), redact Redactor) (Installation, error) {
	var out Installation
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		before, err := scanInstallation(tx.QueryRow(ctx, `SELECT `+installationColumns+` FROM plugin_installations
			WHERE workspace_id = $1 AND plugin_id = $2 FOR UPDATE`, w.ID, pluginID))
		if err != nil {
			return err
		}
		if before.Managed {
			return managedInstallation(w, pluginID)
		}
		after, err := change(before)
		if err != nil {
			return err
		}
		var same bool
		err = tx.QueryRow(ctx, `SELECT ($1::jsonb = $2::jsonb)`, before.Config, after.Config).Scan(&same)
		if err != nil {
			return err
		}
		if same && after.Enabled == before.Enabled && after.Position == before.Position && after.RateLimit == before.RateLimit {
			out = before
			return nil
		}
		out, err = scanInstallation(tx.QueryRow(ctx, `
			UPDATE plugin_installations SET enabled = $3, config = $4, position = $5, rate_limit = $6, updated_at = now()
			WHERE workspace_id = $1 AND plugin_id = $2
			RETURNING `+installationColumns, w.ID, pluginID, after.Enabled, after.Config, after.Position, after.RateLimit))
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "plugin.update", targetType: "plugin_installation",
			targetID: pluginID, workspace: w.Slug, before: installationAudit(before, redact), after: installationAudit(out, redact)})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return out, fmt.Errorf("update %s in %s: %w", pluginID, w.Slug, err)
	}
	return out, err
}

// DeleteInstallation uninstalls a plugin from a workspace and returns what
// was removed. A managed installation is a ConflictError.
func (s *Store) DeleteInstallation(ctx context.Context, who Change, w Workspace, pluginID string, redact Redactor) (Installation, error) {
	var in Installation
	err := s.InWorkspace(ctx, w.ID, func(tx pgx.Tx) error {
		var err error
		in, err = scanInstallation(tx.QueryRow(ctx, `SELECT `+installationColumns+` FROM plugin_installations
			WHERE workspace_id = $1 AND plugin_id = $2 FOR UPDATE`, w.ID, pluginID))
		if err != nil {
			return err
		}
		if in.Managed {
			return managedInstallation(w, pluginID)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM plugin_installations WHERE id = $1`, in.ID); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: w.OrgID, action: "plugin.uninstall", targetType: "plugin_installation",
			targetID: pluginID, workspace: w.Slug, before: installationAudit(in, redact)})
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return in, fmt.Errorf("uninstall %s from %s: %w", pluginID, w.Slug, err)
	}
	return in, err
}

func managedInstallation(w Workspace, pluginID string) error {
	return conflict("plugin %s in workspace %s is declared in plugins.yaml, which manages it; change it there", pluginID, w.Slug)
}

// UploadedPlugin is a version of a WASM plugin an organization uploaded.
type UploadedPlugin struct {
	// ID and OrganizationID are UUIDs.
	ID, OrganizationID, PluginID, Version string
	// Manifest is the plugin.yaml as uploaded.
	Manifest string
	// Module is the WASM module; empty where only the manifest was read.
	Module []byte
	// SHA256 is the module's hex SHA-256; Size its length in bytes.
	SHA256    string
	Size      int
	CreatedBy string
	CreatedAt time.Time
}

const uploadColumns = `id::text, organization_id::text, plugin_id, version, manifest, sha256, size, created_by, created_at`

func scanUpload(row pgx.Row) (UploadedPlugin, error) {
	var u UploadedPlugin
	err := row.Scan(&u.ID, &u.OrganizationID, &u.PluginID, &u.Version, &u.Manifest, &u.SHA256, &u.Size, &u.CreatedBy, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, ErrNotFound
	}
	return u, err
}

// CreateUpload stores a version of an uploaded WASM plugin in an
// organization's catalog (the caller checked manifest and module). A
// version uploaded before is a ConflictError.
func (s *Store) CreateUpload(ctx context.Context, who Change, org Organization, u UploadedPlugin) (UploadedPlugin, error) {
	var out UploadedPlugin
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = scanUpload(tx.QueryRow(ctx, `
			INSERT INTO plugin_uploads (organization_id, plugin_id, version, manifest, module, sha256, size, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING `+uploadColumns, org.ID, u.PluginID, u.Version, u.Manifest, u.Module, u.SHA256, len(u.Module), who.Actor.Label))
		if isUniqueViolation(err, "plugin_uploads_organization_id_plugin_id_version_key") {
			return conflict("version %s of plugin %s was uploaded already; upload a higher version", u.Version, u.PluginID)
		}
		if err != nil {
			return err
		}
		return s.writeAudit(ctx, tx, who, audit{orgID: org.ID, action: "plugin.upload", targetType: "plugin",
			targetID: u.PluginID, after: map[string]any{"version": out.Version, "sha256": out.SHA256, "size": out.Size}})
	})
	if err != nil {
		return out, fmt.Errorf("upload plugin %s: %w", u.PluginID, err)
	}
	return out, nil
}

// UploadedPlugins returns the highest version of each plugin an
// organization uploaded, without modules, by plugin id.
func (s *Store) UploadedPlugins(ctx context.Context, organizationID string) ([]UploadedPlugin, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+uploadColumns+` FROM plugin_uploads
		WHERE organization_id = $1 ORDER BY plugin_id, created_at`, organizationID)
	if err != nil {
		return nil, fmt.Errorf("uploaded plugins: %w", err)
	}
	all, err := collect(rows, scanUpload, "uploaded plugins")
	if err != nil {
		return nil, err
	}
	var out []UploadedPlugin
	for _, u := range all {
		if n := len(out); n > 0 && out[n-1].PluginID == u.PluginID {
			if newerVersion(u.Version, out[n-1].Version) {
				out[n-1] = u
			}
			continue
		}
		out = append(out, u)
	}
	return out, nil
}

// UploadedManifest returns the highest version of a plugin an organization
// uploaded, without its module.
func (s *Store) UploadedManifest(ctx context.Context, organizationID, pluginID string) (UploadedPlugin, error) {
	return s.latestUpload(ctx, organizationID, pluginID, false)
}

// UploadedPlugin returns the highest version of a plugin an organization
// uploaded, module included: what the runtime runs for an installation of
// it.
func (s *Store) UploadedPlugin(ctx context.Context, organizationID, pluginID string) (UploadedPlugin, error) {
	return s.latestUpload(ctx, organizationID, pluginID, true)
}

func (s *Store) latestUpload(ctx context.Context, organizationID, pluginID string, module bool) (UploadedPlugin, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+uploadColumns+` FROM plugin_uploads
		WHERE organization_id = $1 AND plugin_id = $2`, organizationID, pluginID)
	if err != nil {
		return UploadedPlugin{}, fmt.Errorf("uploaded plugin %s: %w", pluginID, err)
	}
	all, err := collect(rows, scanUpload, "uploaded plugin "+pluginID)
	if err != nil {
		return UploadedPlugin{}, err
	}
	if len(all) == 0 {
		return UploadedPlugin{}, ErrNotFound
	}
	best := all[0]
	for _, u := range all[1:] {
		if newerVersion(u.Version, best.Version) {
			best = u
		}
	}
	if module {
		err := s.pool.QueryRow(ctx, `SELECT module FROM plugin_uploads WHERE id = $1`, best.ID).Scan(&best.Module)
		if err != nil {
			return best, fmt.Errorf("uploaded plugin %s: module: %w", pluginID, err)
		}
	}
	return best, nil
}

// newerVersion tells whether semantic version a is above b.
func newerVersion(a, b string) bool {
	return semver.Compare("v"+a, "v"+b) > 0
}

// WorkspaceOrganization returns the UUID of a workspace's organization.
func (s *Store) WorkspaceOrganization(ctx context.Context, workspaceID string) (string, error) {
	var org string
	err := s.pool.QueryRow(ctx, `SELECT organization_id::text FROM workspaces WHERE id = $1`, workspaceID).Scan(&org)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("organization of workspace %s: %w", workspaceID, err)
	}
	return org, nil
}
