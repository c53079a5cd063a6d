-- Consent decided outside the event stream (core/store/consent.go): set or
-- withdrawn through the API for a person's identifiers, or a consent
-- update the visitor sent that superseded such a decision. The consent
-- gate applies them to every event of those identifiers (consent.Apply),
-- so that a withdrawal holds even when a client keeps sending an old
-- consent.

-- +goose Up

-- One row per identifier and purpose. Only a hash of the identifier is
-- kept, as for suppressions: SHA-256 of workspace_id || ':' || kind ||
-- ':' || value.
CREATE TABLE consent_decisions (
    workspace_id    uuid        NOT NULL REFERENCES workspaces (id),
    identifier_hash bytea       NOT NULL CHECK (length(identifier_hash) = 32),
    purpose         text        NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]{0,62}$'),
    granted         boolean     NOT NULL,
    decided_at      timestamptz NOT NULL,
    source          text        NOT NULL CHECK (source IN ('api', 'event')),
    PRIMARY KEY (workspace_id, identifier_hash, purpose)
);

GRANT SELECT ON consent_decisions TO eddy_workspace;
ALTER TABLE consent_decisions ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON consent_decisions TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- +goose Down

REVOKE ALL ON consent_decisions FROM eddy_workspace;
DROP TABLE consent_decisions;
