-- +goose NO TRANSACTION
-- +goose Up
-- The campaigns not over yet, for the API's campaign progress metrics
-- (pipeline/campaign/metrics.go), read at every scrape: without it each
-- scrape read the whole table, direct messages' rows included. Built
-- CONCURRENTLY (hence NO TRANSACTION): the table takes a row per message.
CREATE INDEX CONCURRENTLY IF NOT EXISTS campaigns_active ON campaigns (state, created_at DESC)
    WHERE kind = 'campaign' AND state IN ('scheduled', 'splitting', 'running');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS campaigns_active;
