-- Sessions (core/session) and the page views and orders of their events.
--
-- None of these tables is partitioned. sessions is updated in place, many
-- times per row while a session is open, and a merge deletes a row; its only
-- time key, the start, moves backwards when a late event becomes a session's
-- earliest. Volume is about one session row per ten to twenty events and one
-- page_views row per page call: 10 M events a day make ~0.5-1 M sessions and
-- a few million page views a day, which b-tree indexes led by workspace_id
-- serve for a long while. Partitioning page_views by day (like events) is
-- the step to take when retention needs to drop old days; its key would then
-- move to a side table, as event_ids did.

-- +goose Up

CREATE TABLE sessions (
    workspace_id    uuid        NOT NULL REFERENCES workspaces (id),
    -- session.ID: UUIDv7-shaped, derived from the session's earliest event.
    id              uuid        NOT NULL,
    anonymous_id    text        NOT NULL,
    user_id         text,
    -- The identity profile, once known.
    profile_id      text,
    started_at      timestamptz NOT NULL,
    last_event_at   timestamptz NOT NULL,
    duration        interval    GENERATED ALWAYS AS (last_event_at - started_at) STORED,
    events          integer     NOT NULL,
    page_views      integer     NOT NULL,
    landing_page    text,
    current_page    text,
    -- Set when the session closes.
    exit_page       text,
    referrer        text,
    -- The channel grouping (session.Channel: source, medium and campaign are
    -- the utm values, else derived from the click id or referrer) and the
    -- other campaign parameters the session started with (session.Campaign).
    channel_group   text        NOT NULL,
    source          text,
    medium          text,
    campaign        text,
    term            text,
    content         text,
    click_id_param  text,
    click_id        text,
    device_type     text,
    os              text,
    browser         text,
    country         text,
    city            text,
    -- {"items": [{"product_id", "sku", "name", "price", "quantity"}], "value"}
    -- as of the session's latest e-commerce event; NULL when empty.
    cart            jsonb,
    -- Orders count (an order id once) and their summed totals, exact to the
    -- millionth, whatever their currency.
    orders_count    integer     NOT NULL,
    revenue         numeric(24, 6) NOT NULL,
    converted       boolean     GENERATED ALWAYS AS (orders_count > 0) STORED,
    -- Bounced is decided when the session closes, false before.
    bounced         boolean     NOT NULL,
    closed          boolean     NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX sessions_started_idx ON sessions (workspace_id, started_at);
CREATE INDEX sessions_anonymous_idx ON sessions (workspace_id, anonymous_id);
CREATE INDEX sessions_profile_idx ON sessions (workspace_id, profile_id) WHERE profile_id IS NOT NULL;
CREATE INDEX sessions_open_idx ON sessions (workspace_id, last_event_at) WHERE NOT closed;

-- One row per page or screen call, keyed by its message id.
CREATE TABLE page_views (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    message_id   text        NOT NULL,
    session_id   uuid        NOT NULL,
    anonymous_id text        NOT NULL,
    user_id      text,
    ts           timestamptz NOT NULL,
    url          text,
    referrer     text,
    -- The page or screen name.
    title        text,
    PRIMARY KEY (workspace_id, message_id)
);
CREATE INDEX page_views_session_idx ON page_views (workspace_id, session_id);
CREATE INDEX page_views_ts_idx ON page_views (workspace_id, ts);

-- One row per Order Completed, keyed by its order id: the first kept.
CREATE TABLE orders (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id),
    order_id     text        NOT NULL,
    message_id   text        NOT NULL,
    session_id   uuid        NOT NULL,
    anonymous_id text        NOT NULL,
    user_id      text,
    profile_id   text,
    ts           timestamptz NOT NULL,
    total        numeric(24, 6) NOT NULL,
    currency     text,
    -- [{"product_id", "sku", "name", "price", "quantity"}]
    products     jsonb,
    PRIMARY KEY (workspace_id, order_id)
);
CREATE INDEX orders_session_idx ON orders (workspace_id, session_id);
CREATE INDEX orders_ts_idx ON orders (workspace_id, ts);

GRANT SELECT ON sessions, page_views, orders TO eddy_workspace;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON sessions TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE page_views ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON page_views TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_isolation ON orders TO eddy_workspace
    USING (workspace_id = eddy_current_workspace());

-- +goose Down

REVOKE ALL ON sessions, page_views, orders FROM eddy_workspace;
DROP TABLE orders;
DROP TABLE page_views;
DROP TABLE sessions;
