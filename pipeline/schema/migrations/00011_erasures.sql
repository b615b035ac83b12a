-- +goose NO TRANSACTION
-- +goose Up
-- A user's erasure (DELETE /v1/users/{id}, pushpipe users delete): the event
-- time it was accepted at. Written by pipeline/devices.Erase; read by
-- ingest's upsert (stages/ingest/apply.go), which turns a put of this user
-- no newer than erased_at into a tombstone without the user: a registration
-- accepted before the erasure but still queued in the ingest stream must
-- not bring the device back. A later put (the user came back) is applied.
-- It keeps the user id and a time, nothing else, and must outlive every
-- event older than it that a stream or a replay may still hold.
CREATE TABLE IF NOT EXISTS erasures (
    user_id   bigint      PRIMARY KEY,
    erased_at timestamptz NOT NULL
);
-- One user's devices and channels (GET /v1/users/{id}, and the erasure)
-- in any app: the other indexes lead with app or channel, so without these
-- each lookup read the whole table. Built CONCURRENTLY (hence NO
-- TRANSACTION): a production devices table takes writes while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS devices_user ON devices (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS subscriptions_user ON subscriptions (user_id, channel);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS subscriptions_user;
DROP INDEX CONCURRENTLY IF EXISTS devices_user;
DROP TABLE IF EXISTS erasures;
