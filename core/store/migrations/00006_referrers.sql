-- Per-workspace referrer settings of the session engine (session.Rules):
-- the workspace's own domains (a referrer on them is internal navigation)
-- and the third-party sites whose referrals continue a visit (payment
-- pages). NULL ignored_referrers means the engine's default list
-- (session.DefaultRules).

-- +goose Up

ALTER TABLE workspaces
    ADD COLUMN own_domains       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN ignored_referrers text[];

-- +goose Down

ALTER TABLE workspaces DROP COLUMN own_domains, DROP COLUMN ignored_referrers;
