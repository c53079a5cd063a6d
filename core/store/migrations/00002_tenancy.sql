-- Multi-tenancy: admins, organizations and their memberships and invitations,
-- workspace settings, API keys, console sessions and the audit log; and
-- row-level security on every workspace-scoped table.
--
-- Every workspace-scoped table leads its primary key with workspace_id.

-- +goose Up

CREATE TABLE organizations (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text        NOT NULL UNIQUE,
    name       text        NOT NULL DEFAULT '',
    -- managed organizations were created for workspaces that plugins.yaml declares.
    managed    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Workspaces from before this migration (plugins.yaml's) join the default
-- organization, which plugins.yaml workspaces use unless they name another.
INSERT INTO organizations (slug, name, managed) VALUES ('default', 'Default', true);

ALTER TABLE workspaces
    ADD COLUMN organization_id uuid REFERENCES organizations (id),
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN currency text NOT NULL DEFAULT 'USD',
    ADD COLUMN session_timeout_minutes integer NOT NULL DEFAULT 30
        CHECK (session_timeout_minutes BETWEEN 1 AND 1440),
    -- A deleted workspace is gone for the API and its keys; its rows stay
    -- until the data is purged.
    ADD COLUMN deleted_at timestamptz;
UPDATE workspaces SET organization_id = (SELECT id FROM organizations WHERE slug = 'default');
ALTER TABLE workspaces ALTER COLUMN organization_id SET NOT NULL;
CREATE INDEX workspaces_organization_idx ON workspaces (organization_id, slug);

CREATE TABLE admins (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    name          text        NOT NULL DEFAULT '',
    -- An argon2id hash in PHC string form.
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admins_email_key ON admins (lower(email));

CREATE TABLE memberships (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    admin_id        uuid        NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    role            text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, admin_id)
);
CREATE INDEX memberships_admin_idx ON memberships (admin_id);

CREATE TABLE invitations (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    email           text        NOT NULL,
    role            text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    -- The invitation's token, as a hex SHA-256.
    token_hash      text        NOT NULL UNIQUE,
    invited_by      uuid        REFERENCES admins (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz,
    revoked_at      timestamptz,
    PRIMARY KEY (organization_id, id)
);
-- At most one open invitation per address and organization.
CREATE UNIQUE INDEX invitations_open_key ON invitations (organization_id, lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE api_keys (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    name         text        NOT NULL,
    -- The key as a hex SHA-256 (keys are 256-bit random, so a fast hash is
    -- safe), and its first characters for recognising it in a list.
    key_hash     text        NOT NULL UNIQUE,
    key_prefix   text        NOT NULL,
    scopes       text[]      NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin'] AND cardinality(scopes) > 0),
    created_by   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (workspace_id, id)
);

-- Console sessions. The cookie holds the token; only its hash is stored.
CREATE TABLE admin_sessions (
    token_hash   text        PRIMARY KEY,
    admin_id     uuid        NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX admin_sessions_admin_idx ON admin_sessions (admin_id);

CREATE TABLE audit_log (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_type      text        NOT NULL CHECK (actor_type IN ('admin', 'api_key', 'cli', 'system')),
    actor_id        text,
    actor_label     text        NOT NULL DEFAULT '',
    action          text        NOT NULL,
    target_type     text        NOT NULL,
    target_id       text        NOT NULL,
    -- The workspace the change touched, if any (its slug at the time).
    workspace       text,
    before          jsonb,
    after           jsonb,
    request_id      text,
    ip              inet,
    PRIMARY KEY (organization_id, id)
);

-- Row-level security. API transactions on workspace data run as
-- eddy_workspace with eddy.workspace_id set (store.InWorkspace); the policies
-- then hide every other workspace's rows, and all rows when none is set.
-- Processes connect as the database owner, which the policies do not bind
-- (the worker writes events of many workspaces in one transaction).
-- +goose StatementBegin
DO $$
BEGIN
    CREATE ROLE eddy_workspace NOLOGIN;
EXCEPTION
    -- The role is cluster-wide: another database of this cluster, or a
    -- concurrent migration, may have created it.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
DO $$
BEGIN
    -- The migrating user must be able to SET ROLE eddy_workspace. A
    -- superuser already can (and is never granted, which avoids concurrent
    -- grants on this cluster-wide catalog).
    IF NOT pg_has_role(current_user, 'eddy_workspace', 'MEMBER') THEN
        EXECUTE format('GRANT eddy_workspace TO %I', current_user);
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- +goose StatementEnd

GRANT SELECT ON workspaces TO eddy_workspace;
GRANT SELECT, INSERT, UPDATE ON sources, api_keys TO eddy_workspace;
GRANT SELECT ON events, event_ids TO eddy_workspace;
-- Changes made in a workspace transaction record themselves in the audit log.
GRANT INSERT ON audit_log TO eddy_workspace;

-- eddy_current_workspace is the workspace the transaction was opened for, or
-- NULL.
CREATE FUNCTION eddy_current_workspace() RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('eddy.workspace_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION eddy_current_workspace() TO eddy_workspace;

ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON workspaces TO eddy_workspace
    USING (id = eddy_current_workspace());
ALTER TABLE sources ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON sources TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON api_keys TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON events TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE event_ids ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON event_ids TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
-- A workspace transaction may record changes in its own organization's
-- audit log only (it cannot read the log at all).
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_audit ON audit_log FOR INSERT TO eddy_workspace
    WITH CHECK (organization_id = (SELECT w.organization_id FROM workspaces w WHERE w.id = eddy_current_workspace()));

-- +goose Down

DROP POLICY workspace_audit ON audit_log;
ALTER TABLE audit_log DISABLE ROW LEVEL SECURITY;
DROP POLICY workspace_isolation ON event_ids;
ALTER TABLE event_ids DISABLE ROW LEVEL SECURITY;
DROP POLICY workspace_isolation ON events;
ALTER TABLE events DISABLE ROW LEVEL SECURITY;
DROP POLICY workspace_isolation ON api_keys;
DROP POLICY workspace_isolation ON sources;
ALTER TABLE sources DISABLE ROW LEVEL SECURITY;
DROP POLICY workspace_isolation ON workspaces;
ALTER TABLE workspaces DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON workspaces, sources, events, event_ids, audit_log FROM eddy_workspace;
DROP FUNCTION eddy_current_workspace();
DROP TABLE audit_log;
DROP TABLE admin_sessions;
DROP TABLE api_keys;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE admins;
ALTER TABLE workspaces
    DROP COLUMN organization_id, DROP COLUMN timezone, DROP COLUMN currency,
    DROP COLUMN session_timeout_minutes, DROP COLUMN deleted_at;
DROP TABLE organizations;
