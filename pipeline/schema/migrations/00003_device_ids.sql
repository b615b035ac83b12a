-- +goose Up
-- A number per device, for deliver's sent marks: a campaign marks devices in
-- Redis bitmaps by this id (a bit per device) instead of a set of token
-- digests (~60 bytes and a hash-table insert per device). The row of an
-- (app, token) is updated in place by every later event, so its id never
-- changes: a token moving between users or registered again keeps it.
ALTER TABLE devices ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
-- The covering index carries it, so the token lookup stays index-only.
DROP INDEX devices_app_user_active;
CREATE INDEX devices_app_user_active ON devices (app, user_id) INCLUDE (platform, token, id) WHERE state = 0;

-- +goose Down
DROP INDEX devices_app_user_active;
CREATE INDEX devices_app_user_active ON devices (app, user_id) INCLUDE (platform, token) WHERE state = 0;
ALTER TABLE devices DROP COLUMN id;
