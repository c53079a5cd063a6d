-- The rights of the person (core/store/deletion.go): deletion jobs, by
-- person or by time range, and the suppressions a person's deletion leaves
-- behind so that later events of theirs are dropped.

-- +goose Up

-- One row per deletion requested through the API. A job is run by the API
-- process that accepted it; a job left pending or running by a process
-- that died is run again when an API process starts (deletion is
-- idempotent).
CREATE TABLE deletion_jobs (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    kind         text        NOT NULL CHECK (kind IN ('profile', 'range')),
    -- profile: {"profile_id"} while the job is to run, replaced by
    -- {"profile_hash"} (a SHA-256) once it is done, so that the job keeps
    -- no identifier of the person; range: {"from", "to"}.
    params       jsonb       NOT NULL CHECK (jsonb_typeof(params) = 'object'),
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    -- Rows deleted per table: {"events": 12, "sessions": 2, ...}.
    counts       jsonb       NOT NULL DEFAULT '{}',
    error        text,
    -- Who asked, as the audit log labels actors.
    requested_by text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (workspace_id, id)
);
-- Jobs to resume at start.
CREATE INDEX deletion_jobs_unfinished_idx ON deletion_jobs (created_at) WHERE status IN ('pending', 'running');

-- One row per identifier of a deleted person. Only a hash is kept:
-- SHA-256 of workspace_id || ':' || kind || ':' || value (emails trimmed
-- and in lower case, as identities store them). The ingestion gate looks a
-- visitor's identifiers up here (one primary-key lookup each); lifted_at
-- is set when the person consents again.
CREATE TABLE suppressions (
    workspace_id    uuid        NOT NULL REFERENCES workspaces (id),
    identifier_hash bytea       NOT NULL CHECK (length(identifier_hash) = 32),
    kind            text        NOT NULL CHECK (kind IN ('anonymous_id', 'user_id', 'email')),
    job_id          uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    lifted_at       timestamptz,
    PRIMARY KEY (workspace_id, identifier_hash)
);

-- The API reads jobs under row-level security; the jobs themselves run as
-- the owner, like the worker, naming the workspace in every statement.
GRANT SELECT ON deletion_jobs, suppressions TO eddy_workspace;
ALTER TABLE deletion_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON deletion_jobs TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE suppressions ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON suppressions TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- +goose Down

REVOKE ALL ON deletion_jobs, suppressions FROM eddy_workspace;
DROP TABLE suppressions;
DROP TABLE deletion_jobs;
