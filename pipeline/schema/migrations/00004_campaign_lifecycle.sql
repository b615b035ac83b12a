-- +goose Up
-- The campaign's lifecycle is kept here, the record of truth that outlives
-- Redis: state (scheduled|splitting|running|done|canceled|failed), when it
-- started and finished, and the counts as they stood when it ended (a copy of
-- the Redis counters, so a list after a Redis loss still says what was sent).
-- send_at is when a scheduled campaign is released; rate_per_second its own
-- cap (0: only the provider's); priority normal|high.
ALTER TABLE campaigns
    ADD COLUMN send_at         timestamptz,
    ADD COLUMN rate_per_second integer     NOT NULL DEFAULT 0,
    ADD COLUMN priority        text        NOT NULL DEFAULT 'normal',
    ADD COLUMN started_at      timestamptz,
    ADD COLUMN finished_at     timestamptz,
    ADD COLUMN counts          jsonb;
-- GET /v1/campaigns pages newest first by (created_at, id).
CREATE INDEX campaigns_created ON campaigns (created_at DESC, id DESC);

-- +goose Down
DROP INDEX campaigns_created;
ALTER TABLE campaigns
    DROP COLUMN send_at, DROP COLUMN rate_per_second, DROP COLUMN priority,
    DROP COLUMN started_at, DROP COLUMN finished_at, DROP COLUMN counts;
