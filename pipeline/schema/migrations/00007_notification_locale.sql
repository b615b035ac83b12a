-- +goose Up
-- The whole notification object of a campaign (subtitle, badge, sound,
-- image, thread, collapse id, silent, priority, localized texts), as the API
-- validated it; NULL for a campaign of title, body and data only.
ALTER TABLE campaigns ADD COLUMN notification jsonb;
-- Deliver picks each device's text by its locale: the covering index carries
-- it, so the token lookup stays index-only.
DROP INDEX devices_app_user_active;
CREATE INDEX devices_app_user_active ON devices (app, user_id) INCLUDE (platform, token, id, locale) WHERE state = 0;

-- +goose Down
DROP INDEX devices_app_user_active;
CREATE INDEX devices_app_user_active ON devices (app, user_id) INCLUDE (platform, token, id) WHERE state = 0;
ALTER TABLE campaigns DROP COLUMN notification;
