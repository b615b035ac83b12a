-- +goose Up
-- Users' mutes, the record of truth (pipeline/prefs): the API writes a row
-- before it answers 204, then the Redis hash resolve reads. version grows
-- by one per update (the row lock orders updates of one user), and the
-- Redis copy keeps it, so a rebuild from this table never overwrites a
-- newer update with an older row. A user who unmutes everything keeps a
-- row with empty lists, so the version never goes back.
CREATE TABLE preferences (
    user_id          bigint      PRIMARY KEY,
    muted_channels   text[]      NOT NULL DEFAULT '{}',
    muted_categories text[]      NOT NULL DEFAULT '{}',
    version          bigint      NOT NULL DEFAULT 1,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE preferences;
