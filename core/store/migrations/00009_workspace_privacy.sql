-- Per-workspace privacy policy (consent.Policy as JSON): the consent
-- purposes, what processing and each plugin need, whether necessary-only
-- processing is allowed, and the minimisation applied before storage. NULL
-- means consent.DefaultPolicy (processing needs analytics).

-- +goose Up

ALTER TABLE workspaces ADD COLUMN privacy jsonb;

-- +goose Down

ALTER TABLE workspaces DROP COLUMN privacy;
