-- Eddy's first schema: workspaces and their sources (write keys), and the
-- events table, partitioned by day of receipt, with its deduplication table.
--
-- Every workspace-scoped table leads its keys with workspace_id.

-- +goose Up

CREATE TABLE workspaces (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text        NOT NULL UNIQUE,
    name       text        NOT NULL DEFAULT '',
    -- managed rows come from plugins.yaml (GitOps) and are kept in sync by it.
    managed    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sources (
    workspace_id     uuid        NOT NULL REFERENCES workspaces (id),
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    slug             text        NOT NULL,
    name             text        NOT NULL DEFAULT '',
    -- Write keys are stored only as a hex SHA-256, plus a few leading
    -- characters to recognise a key in the console. The constraint is deferred
    -- so that two sources can swap keys in one sync.
    write_key_hash   text        NOT NULL,
    write_key_prefix text        NOT NULL DEFAULT '',
    managed          boolean     NOT NULL DEFAULT false,
    -- A revoked source's key is refused; its events stay.
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, slug),
    CONSTRAINT sources_write_key_hash_key UNIQUE (write_key_hash) DEFERRABLE INITIALLY DEFERRED
);

-- events holds every stored message, one partition per UTC day of
-- received_at (events_pYYYYMMDD), created on demand by
-- eddy_ensure_events_partition. There is deliberately no DEFAULT partition:
-- a row for a missing day fails loudly instead of piling up where retention
-- cannot drop it.
CREATE TABLE events (
    workspace_id       uuid        NOT NULL,
    received_at        timestamptz NOT NULL,
    message_id         text        NOT NULL,
    source_id          uuid,
    type               text        NOT NULL,
    event              text,
    name               text,
    anonymous_id       text,
    user_id            text,
    group_id           text,
    previous_id        text,
    "timestamp"        timestamptz NOT NULL,
    original_timestamp timestamptz,
    sent_at            timestamptz,
    ip                 inet,
    properties         jsonb,
    context            jsonb,
    traits             jsonb,
    integrations       jsonb,
    -- When the row was written (like Segment's uuid_ts): loaded_at minus
    -- received_at is the collect-to-stored latency.
    loaded_at          timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (received_at);

-- Listing a workspace's events over a time range, with (timestamp,
-- message_id) as the pagination cursor.
CREATE INDEX events_workspace_timestamp_idx ON events (workspace_id, "timestamp", message_id);
-- A visitor's or a user's events.
CREATE INDEX events_workspace_anonymous_idx ON events (workspace_id, anonymous_id, "timestamp")
    WHERE anonymous_id IS NOT NULL;
CREATE INDEX events_workspace_user_idx ON events (workspace_id, user_id, "timestamp")
    WHERE user_id IS NOT NULL;
-- No (workspace_id, type, event) index: measured as the costliest (+4.5 µs
-- of server CPU per row, 16% of the insert cost; docs/benchmarks.md), while
-- queries by event name over a time range are served by the timestamp index
-- within the day partitions they touch.
-- Time slices within a day partition (received_at only grows, so BRIN fits).
CREATE INDEX events_received_at_brin ON events USING brin (received_at);

-- event_ids makes writes idempotent. A unique constraint on events would have
-- to include received_at (the partition key), and a client's retry gets a new
-- received_at, possibly on another day; so the (workspace_id, message_id) key
-- lives here, unpartitioned, and a row enters events only when its key is new
-- here in the same statement. received_at records the first receipt (for
-- pruning old keys later).
CREATE TABLE event_ids (
    workspace_id uuid        NOT NULL,
    message_id   text        NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, message_id)
);

-- eddy_ensure_events_partition creates the events partition for one UTC day
-- unless it exists. Creators serialise on a transaction-level advisory lock, so
-- concurrent workers never collide.
-- +goose StatementBegin
CREATE FUNCTION eddy_ensure_events_partition(day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    parent    regclass := 'events'::regclass;
    nsp       name;
    partition text := 'events_p' || to_char(day, 'YYYYMMDD');
BEGIN
    SELECT n.nspname INTO nsp
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;
    -- Fast path, without the lock: creating a partition locks events itself,
    -- waiting for every write in progress.
    IF to_regclass(format('%I.%I', nsp, partition)) IS NOT NULL THEN
        RETURN;
    END IF;
    -- 1701078137 is "eddy" in ASCII; the second key names this lock.
    PERFORM pg_advisory_xact_lock(1701078137, 1);
    -- After waiting for the lock, to_regclass may not see a partition that
    -- another session just created (an advisory lock does not refresh the
    -- catalog caches); IF NOT EXISTS does, as it locks the schema first.
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
        nsp, partition, parent,
        to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00',
        to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
END
$$;
-- +goose StatementEnd

-- +goose Down

DROP FUNCTION eddy_ensure_events_partition(date);
DROP TABLE event_ids;
DROP TABLE events;
DROP TABLE sources;
DROP TABLE workspaces;
