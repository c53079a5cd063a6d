-- Checkpoints of the session engine (core/engine): the in-memory state of
-- every visitor a shard's owner holds, written in the transaction that
-- writes the sessions, identities and orders of each batch, so that a
-- worker taking a shard over restores exactly what the last commit left.

-- +goose Up

-- One row per queue shard of the session engine's consumer group.
CREATE TABLE session_shards (
    shard         integer     PRIMARY KEY,
    -- Fencing token: each acquisition of the shard increments it, and every
    -- write of the shard's state checks it, so that a worker that lost the
    -- shard (a lease expired during a long pause) cannot overwrite its
    -- successor's state.
    epoch         bigint      NOT NULL,
    owner         text        NOT NULL,
    -- The last stream entry whose effects are committed; entries at or
    -- below it are skipped when delivered again.
    last_entry_id text        NOT NULL DEFAULT '0-0',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per visitor a shard's owner holds in memory, in the session
-- engine's snapshot format (session.Visitor.AppendBinary).
CREATE TABLE session_visitors (
    workspace_id uuid    NOT NULL REFERENCES workspaces (id),
    anonymous_id text    NOT NULL,
    shard        integer NOT NULL,
    state        bytea   NOT NULL,
    PRIMARY KEY (workspace_id, anonymous_id)
);
CREATE INDEX session_visitors_shard_idx ON session_visitors (shard);

-- Internal to the worker: the workspace role reads nothing here.
ALTER TABLE session_visitors ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON session_visitors TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- A profile's sessions include those of the profiles merged into it
-- (ProfileOpenSessions walks merged_into backwards).
CREATE INDEX profiles_merged_into_idx ON profiles (workspace_id, merged_into) WHERE merged_into IS NOT NULL;

-- The session engine rewrites a session's row, its profile's row and its
-- visitor's checkpoint on every batch that touches the visitor. Leave room
-- on each page for those updates to stay on the page (HOT updates: no new
-- index entries), and drop the one index whose column changes with every
-- event (the live list is served from Redis).
DROP INDEX sessions_open_idx;
ALTER TABLE sessions SET (fillfactor = 70);
ALTER TABLE profiles SET (fillfactor = 80);
ALTER TABLE session_visitors SET (fillfactor = 70);

-- +goose Down

ALTER TABLE profiles RESET (fillfactor);
ALTER TABLE sessions RESET (fillfactor);
CREATE INDEX sessions_open_idx ON sessions (workspace_id, last_event_at) WHERE NOT closed;

DROP INDEX profiles_merged_into_idx;
DROP TABLE session_visitors;
DROP TABLE session_shards;
