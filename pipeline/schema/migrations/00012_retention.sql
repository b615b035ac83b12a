-- +goose NO TRANSACTION
-- +goose Up
-- What retention deletes, found without reading the tables whole.
-- Tombstones (devices with state <> 0) older than ingest's
-- --keep-tombstones: ingest purges them (pipeline/devices PurgeTombstones)
-- and drops registrations older than the same horizon, which nothing could
-- then order against a purged tombstone. Only tombstones are in the index:
-- the active rows, the bulk of the table, never touch it.
-- Erasure records older than the same horizon: they only void the
-- erased user's registrations still queued, and those are dropped by then.
-- Direct messages (campaign rows of kind 'message') past their expiry by
-- the API's --keep-messages (pipeline/campaign PurgeMessages): a chat app
-- writes millions a day. Campaigns are kept.
-- Built CONCURRENTLY (hence NO TRANSACTION): a production devices table
-- takes writes while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS devices_tombstones ON devices (event_at) WHERE state <> 0;
CREATE INDEX CONCURRENTLY IF NOT EXISTS campaigns_messages_created ON campaigns (created_at) WHERE kind = 'message';
CREATE INDEX CONCURRENTLY IF NOT EXISTS erasures_at ON erasures (erased_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS erasures_at;
DROP INDEX CONCURRENTLY IF EXISTS campaigns_messages_created;
DROP INDEX CONCURRENTLY IF EXISTS devices_tombstones;
