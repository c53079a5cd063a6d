-- The identity graph and customer profiles (core/identity), kept by the
-- PostgreSQL identity store (core/store/identity.go).
--
-- Every workspace-scoped table leads its primary key with workspace_id.

-- +goose Up

-- profiles holds one row per profile id ever issued. A live profile has
-- merged_into NULL; an absorbed one keeps only its id and merged_into (its
-- state moved to the survivor). Profile ids are name-based UUIDs of the
-- workspace and the identity that created the profile (identity.ProfileID).
CREATE TABLE profiles (
    workspace_id   uuid        NOT NULL,
    id             uuid        NOT NULL,
    -- The profile's current user_id; NULL for an anonymous profile.
    user_id        text,
    merged_into    uuid,
    first_seen     timestamptz,
    last_seen      timestamptz,
    sessions_count bigint      NOT NULL DEFAULT 0,
    orders_count   bigint      NOT NULL DEFAULT 0,
    -- Lifetime revenue in millionths of the workspace's currency unit.
    revenue_micros bigint      NOT NULL DEFAULT 0,
    -- The newest order: {"id", "at", "value", "currency"}, NULL if none.
    last_order     jsonb,
    -- Top-level traits with the stamp that decides last-write-wins:
    -- {"plan": {"value": "pro", "at": "2026-03-01T12:00:00Z", "message_id": "m1"}}.
    traits         jsonb       NOT NULL DEFAULT '{}',
    -- Consent purposes, stamped likewise:
    -- {"analytics": {"granted": true, "at": "...", "message_id": "..."}}.
    consent        jsonb       NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);

-- identities maps every linked identity to its live profile; a merge
-- re-points the absorbed profile's identities at the survivor.
CREATE TABLE identities (
    workspace_id uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('anonymous_id', 'user_id', 'email')),
    value        text        NOT NULL,
    profile_id   uuid        NOT NULL,
    -- The time of the event that linked the identity.
    first_seen   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, kind, value)
);
CREATE INDEX identities_profile_idx ON identities (workspace_id, profile_id);

-- profile_merges records every merge, in order.
CREATE TABLE profile_merges (
    workspace_id uuid        NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    survivor     uuid        NOT NULL,
    absorbed     uuid        NOT NULL,
    -- The time and message id of the event that caused the merge, and the
    -- identity whose link joined the two profiles.
    at           timestamptz NOT NULL,
    message_id   text        NOT NULL,
    via_kind     text        NOT NULL,
    via_value    text        NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX profile_merges_absorbed_idx ON profile_merges (workspace_id, absorbed);

-- profile_counted makes counting idempotent: a session or an order is
-- counted on a profile once per workspace (identity.Tx.Claim).
CREATE TABLE profile_counted (
    workspace_id uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('session', 'order')),
    id           text        NOT NULL,
    -- The profile it was first counted on (which may have been merged since).
    profile_id   uuid        NOT NULL,
    counted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, kind, id)
);

-- The API reads profiles under row-level security (store.InWorkspace); only
-- the worker, connected as the owner, writes them.
GRANT SELECT ON profiles, identities, profile_merges, profile_counted TO eddy_workspace;
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON profiles TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE identities ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON identities TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE profile_merges ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON profile_merges TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE profile_counted ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON profile_counted TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- +goose Down

REVOKE ALL ON profiles, identities, profile_merges, profile_counted FROM eddy_workspace;
DROP TABLE profile_counted;
DROP TABLE profile_merges;
DROP TABLE identities;
DROP TABLE profiles;
