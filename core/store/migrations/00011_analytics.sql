-- Analytics (the semantic layer, core/cube): the role its queries run as,
-- and the cube files workspaces add to the shipped models.
--
-- A query of the Cube API runs in a read-only transaction as eddy_analytics
-- with eddy.workspace_id set (store.InAnalytics). The role may read the
-- analytics tables only, and row-level security shows it one workspace's
-- rows: a workspace's own cube (whose sql is any SELECT its admins write)
-- reads nothing else, neither another workspace nor Eddy's keys, admins or
-- audit log.

-- +goose Up

-- +goose StatementBegin
DO $$
BEGIN
    CREATE ROLE eddy_analytics NOLOGIN;
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
    -- The migrating user must be able to SET ROLE eddy_analytics (a
    -- superuser already can).
    IF NOT pg_has_role(current_user, 'eddy_analytics', 'MEMBER') THEN
        EXECUTE format('GRANT eddy_analytics TO %I', current_user);
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- +goose StatementEnd

GRANT SELECT ON events, sessions, page_views, orders, profiles, identities TO eddy_analytics;
GRANT EXECUTE ON FUNCTION eddy_current_workspace() TO eddy_analytics;

-- Row-level security is enabled on these tables since 00002-00004; a role
-- without a policy sees no row, so eddy_analytics gets its own.
CREATE POLICY analytics_isolation ON events FOR SELECT TO eddy_analytics
    USING (workspace_id = eddy_current_workspace());
CREATE POLICY analytics_isolation ON sessions FOR SELECT TO eddy_analytics
    USING (workspace_id = eddy_current_workspace());
CREATE POLICY analytics_isolation ON page_views FOR SELECT TO eddy_analytics
    USING (workspace_id = eddy_current_workspace());
CREATE POLICY analytics_isolation ON orders FOR SELECT TO eddy_analytics
    USING (workspace_id = eddy_current_workspace());
CREATE POLICY analytics_isolation ON profiles FOR SELECT TO eddy_analytics
    USING (workspace_id = eddy_current_workspace());
CREATE POLICY analytics_isolation ON identities FOR SELECT TO eddy_analytics
    USING (workspace_id = eddy_current_workspace());

-- The policies read eddy.workspace_id, and the role is switched with
-- set_config('role', ...), which checks the session user's (Eddy's)
-- memberships, not eddy_analytics'. A workspace's cube SQL calling
-- set_config could change either mid-transaction, so only Eddy's own user
-- (and eddy_workspace, whose queries Eddy writes) may call it. This needs a
-- superuser; without one the migration warns and workspace cubes with sql
-- are refused by the API (store.AnalyticsHardened).
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC;
        EXECUTE format('GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO %I, eddy_workspace',
                       current_user);
    ELSE
        RAISE WARNING 'eddy: set_config stays executable by every role (a superuser must revoke it from PUBLIC): workspace cubes with sql are refused';
    END IF;
END
$$;
-- +goose StatementEnd

-- A workspace's own cube files: the whole set, replaced at once (PUT
-- /workspaces/{ws}/cubes). version grows with each change, so that every
-- API process knows when its cached model is stale.
CREATE TABLE workspace_cubes (
    workspace_id uuid        PRIMARY KEY REFERENCES workspaces (id),
    -- {"name.yml": "<yaml>", ...}
    files        jsonb       NOT NULL DEFAULT '{}',
    version      bigint      NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE, DELETE ON workspace_cubes TO eddy_workspace;
ALTER TABLE workspace_cubes ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON workspace_cubes TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- +goose Down

DROP TABLE workspace_cubes;
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO PUBLIC;
    END IF;
END
$$;
-- +goose StatementEnd
DROP POLICY analytics_isolation ON identities;
DROP POLICY analytics_isolation ON profiles;
DROP POLICY analytics_isolation ON orders;
DROP POLICY analytics_isolation ON page_views;
DROP POLICY analytics_isolation ON sessions;
DROP POLICY analytics_isolation ON events;
REVOKE ALL ON events, sessions, page_views, orders, profiles, identities FROM eddy_analytics;
REVOKE ALL ON FUNCTION eddy_current_workspace() FROM eddy_analytics;
