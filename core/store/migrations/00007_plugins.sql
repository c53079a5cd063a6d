-- Plugins: their installations in workspaces (one per plugin and workspace,
-- made through the API or declared in plugins.yaml), and the WASM plugins
-- organizations upload to their own catalog.

-- +goose Up

CREATE TABLE plugin_installations (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    -- The plugin's manifest id, such as sink.webhook.
    plugin_id    text        NOT NULL,
    enabled      boolean     NOT NULL DEFAULT true,
    -- Checked against the manifest's config_schema before it is written. It
    -- holds the plugin's secrets in clear: the runtime hands them over.
    config       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    -- Processors of a workspace run in ascending position.
    position     integer     NOT NULL DEFAULT 0,
    -- The most events per second a sink installation is delivered; 0 is
    -- unlimited.
    rate_limit   double precision NOT NULL DEFAULT 0 CHECK (rate_limit >= 0 AND rate_limit <= 1000000),
    -- managed installations are declared in plugins.yaml; the API cannot
    -- change them.
    managed      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, plugin_id)
);

-- WASM plugins an organization uploaded: its catalog beside the plugins of
-- plugins.yaml. Each version is kept; the highest is the one that runs.
-- Organization-level like memberships and invitations: the workspace role
-- is granted nothing here, and the store always names the organization.
CREATE TABLE plugin_uploads (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    plugin_id       text        NOT NULL,
    version         text        NOT NULL,
    -- The plugin.yaml as uploaded.
    manifest        text        NOT NULL,
    module          bytea       NOT NULL,
    -- The module's hex SHA-256 and size in bytes.
    sha256          text        NOT NULL,
    size            integer     NOT NULL CHECK (size > 0),
    -- The uploader, as the audit log labels actors.
    created_by      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, plugin_id, version)
);

-- Row-level security, as for every workspace table (migration 00002): a
-- workspace transaction sees and changes its own workspace's installations
-- only.
GRANT SELECT, INSERT, UPDATE, DELETE ON plugin_installations TO eddy_workspace;
ALTER TABLE plugin_installations ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON plugin_installations TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- The workspace role reads no uploads; should a grant ever be added, the
-- policy already confines it to the workspace's own organization.
ALTER TABLE plugin_uploads ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON plugin_uploads TO eddy_workspace
    USING (organization_id = (SELECT w.organization_id FROM workspaces w WHERE w.id = eddy_current_workspace()));

-- +goose Down

DROP POLICY organization_isolation ON plugin_uploads;
DROP POLICY workspace_isolation ON plugin_installations;
REVOKE ALL ON plugin_installations FROM eddy_workspace;
DROP TABLE plugin_uploads;
DROP TABLE plugin_installations;
