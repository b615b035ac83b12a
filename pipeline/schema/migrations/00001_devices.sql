-- +goose Up
-- One row per (app, token), written only by the ingest stage: a row is what
-- the latest event of its token says (event_at is that event's time; older
-- events are ignored). Deletions and provider invalidations leave a tombstone
-- (state <> 0, owner and platform as the event carried them, 0 if unknown),
-- inserted even for a token never registered, so an older event replayed
-- later can never resurrect or regress a device.
CREATE TABLE devices (
    app        text        NOT NULL,
    token      text        NOT NULL,
    user_id    bigint      NOT NULL,
    platform   smallint    NOT NULL,             -- 1 ios, 2 android
    locale     text        NOT NULL DEFAULT '',
    state      smallint    NOT NULL DEFAULT 0,   -- 0 active, 1 deleted, 2 invalidated by the provider
    event_at   timestamptz NOT NULL,             -- event time of the last applied event
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, token)
);
-- deliver reads "the valid tokens of these users" for a batch of 1000 users:
-- a covering partial index answers it with an index-only scan.
CREATE INDEX devices_app_user_active ON devices (app, user_id) INCLUDE (platform, token) WHERE state = 0;

-- Who follows a channel. Written directly (idempotently) by the API; split
-- and resolve read a channel's subscribers in user_id order from the key.
CREATE TABLE subscriptions (
    channel    text   NOT NULL,
    user_id    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, user_id)
);

CREATE TABLE campaigns (
    id          text        PRIMARY KEY,
    app         text        NOT NULL,
    channels    text[]      NOT NULL,
    category    text        NOT NULL DEFAULT '',
    title       text        NOT NULL DEFAULT '',
    body        text        NOT NULL DEFAULT '',
    data        jsonb       NOT NULL DEFAULT '{}',
    ttl_seconds integer     NOT NULL DEFAULT 86400,
    state       text        NOT NULL DEFAULT 'splitting',
    failed_reason text      NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE campaigns;
DROP TABLE subscriptions;
DROP TABLE devices;
